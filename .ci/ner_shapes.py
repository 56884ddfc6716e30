#!/usr/bin/env python3
"""cuBLAS (through PyTorch, fp32, TF32 off) against deltagrad on each matmul
shape of the NER training steps.

Reads the tuning report the GPU check writes (`gpu_tune --ignored
ner_step_tuning_report`), whose lines

    1024x250x100 ta=false tb=false: 64x64/4x4/k16 0.012 ms (1.00x); ...

give deltagrad's GPU time of every candidate variant on each shape (GPU
timestamps, the bare product without epilogue), times the same product with
torch.mm on the same transposed layouts (CUDA events, median of 200 after
50 warm-up runs), and prints cuBLAS ms, deltagrad's fastest ms, and
cuBLAS / deltagrad (above 1: deltagrad is faster; the goal is at least
1/1.5 on every shape).

usage: ner_shapes.py TUNE_REPORT [--json OUT]
"""

import json
import re
import sys


def shapes(report):
    pat = re.compile(r"^(\d+)x(\d+)x(\d+) ta=(true|false) tb=(true|false): (.*)$")
    seen = {}
    for line in open(report, encoding="utf-8"):
        m = pat.match(line.strip())
        if not m:
            continue
        mm, k, n = (int(m.group(i)) for i in (1, 2, 3))
        ta, tb = m.group(4) == "true", m.group(5) == "true"
        best = None
        for cand in m.group(6).split(";"):
            c = re.match(r"\s*(\S+) ([0-9.]+) ms", cand)
            if c and (best is None or float(c.group(2)) < best[1]):
                best = (c.group(1), float(c.group(2)))
        if best:
            seen[(mm, k, n, ta, tb)] = best
    return seen


def torch_ms(m, k, n, ta, tb):
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    dev = "cuda"
    a = torch.randn((k, m) if ta else (m, k), device=dev)
    b = torch.randn((n, k) if tb else (k, n), device=dev)
    a = a.t() if ta else a
    b = b.t() if tb else b
    for _ in range(50):
        torch.mm(a, b)
    torch.cuda.synchronize()
    times = []
    for _ in range(200):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        torch.mm(a, b)
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e))
    times.sort()
    return times[len(times) // 2]


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    rows = []
    for (m, k, n, ta, tb), (variant, ms) in shapes(sys.argv[1]).items():
        t = torch_ms(m, k, n, ta, tb)
        rows.append({"m": m, "k": k, "n": n, "trans_a": ta, "trans_b": tb,
                     "cublas_ms": t, "deltagrad_ms": ms, "variant": variant,
                     "cublas_over_deltagrad": t / ms})
    print(f"{'shape':<24} {'cuBLAS ms':>10} {'deltagrad ms':>13} {'ratio':>7}  variant")
    for r in rows:
        name = f"{r['m']}x{r['k']}x{r['n']}{' Aᵀ' if r['trans_a'] else ''}{' Bᵀ' if r['trans_b'] else ''}"
        print(f"{name:<24} {r['cublas_ms']:>10.4f} {r['deltagrad_ms']:>13.4f} "
              f"{r['cublas_over_deltagrad']:>6.2f}x  {r['variant']}")
    if "--json" in sys.argv:
        json.dump(rows, open(sys.argv[sys.argv.index("--json") + 1], "w"), indent=1)
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
