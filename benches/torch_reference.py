#!/usr/bin/env python3
"""PyTorch reference for `deltagrad bench`: the same cases, the same timing
method, the same JSON schema (deltagrad-bench/1), so that

    python3 benches/torch_reference.py --device cuda --json torch-gpu.json
    deltagrad bench --device gpu --compare torch-gpu.json

prints PyTorch's median over deltagrad's per case. See BENCHMARKS.md.

fp32 throughout: TF32 is switched off for matmuls and cuDNN, since WGSL
kernels cannot use tensor cores and a TF32 figure would compare different
arithmetic. Each case runs eagerly and, where it works, under torch.compile
(mode "reduce-overhead", i.e. with CUDA graphs, on CUDA); a variant that
fails is reported and skipped, not fatal.
"""

import argparse
import json
import os
import platform
import sys
import time

SCHEMA = "deltagrad-bench/1"

# The case table of `deltagrad bench` (names, kinds, full and --tiny shapes),
# as `deltagrad bench --list-cases --json` prints it; a test in the Rust
# crate keeps the committed file equal to that output.
CASES_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases.json")
CASES_FORMAT = "deltagrad-bench-cases/1"
NER_FIELDS = ["batch", "dim", "hidden", "classes", "vocab", "window"]

# Datasheet peaks (ner/src/bench/peaks.rs): adapter-name substring, fp32
# non-tensor GFLOP/s, GB/s, source. More specific names first.
PEAKS = [
    ("H100 PCIe", 51000.0, 2000.0, "NVIDIA H100 Tensor Core GPU datasheet (FP32 51 TFLOP/s, 2 TB/s)"),
    ("H100 NVL", 60000.0, 3900.0, "NVIDIA H100 Tensor Core GPU datasheet (FP32 60 TFLOP/s, 3.9 TB/s)"),
    ("H100", 67000.0, 3350.0, "NVIDIA H100 Tensor Core GPU datasheet (FP32 67 TFLOP/s, 3.35 TB/s)"),
    ("H200", 67000.0, 4800.0, "NVIDIA H200 Tensor Core GPU datasheet (FP32 67 TFLOP/s, 4.8 TB/s)"),
]

LR = 0.01
BATCHES = 4


# ---- statistics (same formulas as ner/src/bench/stats.rs) ------------------


def percentile(sorted_vals, p):
    """Linear interpolation between closest ranks (NumPy's default)."""
    rank = p / 100.0 * (len(sorted_vals) - 1)
    lo, hi = int(rank // 1), int(-(-rank // 1))
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (rank - lo)


def summarize(samples):
    s = sorted(samples)
    return {
        "median_ms": percentile(s, 50),
        "min_ms": s[0],
        "max_ms": s[-1],
        "p10_ms": percentile(s, 10),
        "p90_ms": percentile(s, 90),
    }


# ---- cases ------------------------------------------------------------------


class Case:
    """One benchmark on one device. `run` ends with the device idle."""

    def __init__(self, name, shape, flops=None, nbytes=None, windows=None):
        self.name, self.shape = name, shape
        self.flops, self.nbytes, self.windows = flops, nbytes, windows
        self.note = None

    def prepare(self):
        """Untimed host-side work for the next iteration."""

    def run(self):
        raise NotImplementedError


def make_sync(torch, device):
    if device.type == "cuda":
        return torch.cuda.synchronize
    return lambda: None


def ner_forward_flops(s):
    # Matmul FLOPs only, as in ner/src/bench/spec.rs: x·W1 and h·U.
    wd = s["window"] * s["dim"]
    return 2.0 * s["batch"] * wd * s["hidden"] + 2.0 * s["batch"] * s["hidden"] * s["classes"]


def window_net(torch, shape, sparse, g):
    """The model as an nn.Module, so that its weights are parameters (CUDA
    graphs treat parameters as static and do not copy them per replay)."""
    F = torch.nn.functional
    b, d, h, c, v, w = (shape[k] for k in ["batch", "dim", "hidden", "classes", "vocab", "window"])

    def uniform(rows, cols, a):
        return torch.nn.Parameter((torch.rand(rows, cols, generator=g) * 2 - 1) * a)

    def xavier(fan_in, fan_out):
        return uniform(fan_in, fan_out, (6.0 / (fan_in + fan_out)) ** 0.5)

    class WindowNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.E = uniform(v, d, 0.1)
            self.W1 = xavier(w * d, h)
            self.b1 = torch.nn.Parameter(torch.zeros(h))
            self.U = xavier(h, c)
            self.bo = torch.nn.Parameter(torch.zeros(c))

        def forward(self, words, labels):
            x = F.embedding(words, self.E, sparse=sparse).view(b, w * d)
            hid = torch.tanh(x @ self.W1 + self.b1)
            return F.cross_entropy(hid @ self.U + self.bo, labels)

    return WindowNet()


class NerCase(Case):
    """The window classifier: E[words] → tanh(x·W1 + b1) → h·U + b → softmax
    cross-entropy, SGD. Like deltagrad, eager mode gives the word vectors a
    sparse gradient (only the rows of the batch are updated). The random ids
    are drawn once; each iteration copies one batch to the device inside the
    timer."""

    def __init__(self, torch, name, shape, step, device, compiled):
        fwd = ner_forward_flops(shape)
        super().__init__(name, dict(shape), 3.0 * fwd if step else fwd, None, shape["batch"])
        self.torch, self.step, self.device = torch, step, device
        self.sync = make_sync(torch, device)
        g = torch.Generator().manual_seed(0x5EED)
        # torch.compile is not relied on to trace sparse gradients, so the
        # compiled variant updates the whole embedding table (and says so).
        net = window_net(torch, shape, not compiled, g).to(device)
        self.params = list(net.parameters())
        self.batches = [
            (
                torch.randint(0, shape["vocab"], (shape["batch"] * shape["window"],),
                              generator=g, dtype=torch.int64),
                torch.randint(0, shape["classes"], (shape["batch"],), generator=g, dtype=torch.int64),
            )
            for _ in range(BATCHES)
        ]
        if device.type == "cuda":
            # Pinned host memory, as a real data loader would use.
            self.batches = [(x.pin_memory(), y.pin_memory()) for x, y in self.batches]
        self.next = 0
        self.pending = None
        self.loss_fn = net
        if compiled:
            mode = "reduce-overhead" if device.type == "cuda" else "default"
            self.loss_fn = torch.compile(net, mode=mode)
            self.note = "torch.compile: dense embedding gradient"

    def prepare(self):
        self.pending = self.batches[self.next % len(self.batches)]
        self.next += 1

    def run(self):
        torch = self.torch
        words, labels = self.pending if self.pending is not None else self.batches[0]
        self.pending = None
        # The copy is part of a step; on the CPU it mirrors deltagrad's
        # upload of the id tensors.
        words = words.to(self.device, copy=True, non_blocking=True)
        labels = labels.to(self.device, copy=True, non_blocking=True)
        if self.step:
            loss = self.loss_fn(words, labels)
            loss.backward()
            with torch.no_grad():
                for p in self.params:
                    p.add_(p.grad, alpha=-LR)
                    p.grad = None
        else:
            with torch.no_grad():
                self.loss_fn(words, labels)
        self.sync()


class MatmulCase(Case):
    """n×n by n×n, 2n³ FLOPs; `trans` 'a' is Aᵀ·B and 'b' is A·Bᵀ (strided
    views, as in the backward pass)."""

    def __init__(self, torch, name, n, trans, device, compiled):
        super().__init__(name, {"m": n, "k": n, "n": n}, flops=2.0 * n**3)
        g = torch.Generator().manual_seed(0xA11CE)
        self.a = (torch.rand(n, n, generator=g) * 2 - 1).to(device)
        self.b = (torch.rand(n, n, generator=g) * 2 - 1).to(device)
        self.sync = make_sync(torch, device)
        fn = {
            None: lambda a, b: a @ b,
            "a": lambda a, b: a.t() @ b,
            "b": lambda a, b: a @ b.t(),
        }[trans]
        self.fn = torch.compile(fn) if compiled else fn

    def run(self):
        self.fn(self.a, self.b)
        self.sync()


class TanhCase(Case):
    """y = tanh(x), or g ⊙ (1 − y²) from the saved output. Eager backward uses
    aten's tanh_backward, the fused kernel autograd itself runs. Bytes: each
    input read once, the output written once."""

    def __init__(self, torch, name, n, backward, device, compiled):
        super().__init__(name, {"n": n}, nbytes=(3 if backward else 2) * 4.0 * n)
        g = torch.Generator().manual_seed(0x7A4)
        self.x = (torch.rand(n, generator=g) * 2 - 1).to(device)
        self.g = (torch.rand(n, generator=g) * 2 - 1).to(device) if backward else self.x
        self.sync = make_sync(torch, device)
        if backward:
            fn = (lambda g, y: g * (1 - y * y)) if compiled else torch.ops.aten.tanh_backward
        else:
            fn = lambda g, x: torch.tanh(x)  # noqa: E731
        self.fn = torch.compile(fn) if compiled else fn

    def run(self):
        self.fn(self.g, self.x)
        self.sync()


def build(torch, case, shape, device, compiled):
    """Sets up `case` (an entry of cases.json) at `shape` on `device`."""
    name, kind = case["name"], case["kind"]
    if kind == "ner":
        return NerCase(torch, name, shape, case["step"], device, compiled)
    if kind == "matmul":
        trans = {"none": None, "a": "a", "b": "b"}[case["transpose"]]
        return MatmulCase(torch, name, shape["n"], trans, device, compiled)
    if kind == "tanh":
        return TanhCase(torch, name, shape["n"], case["backward"], device, compiled)
    raise ValueError(f"case {name!r} has unknown kind {kind!r}")


# ---- running ----------------------------------------------------------------


def load_cases(path=CASES_FILE):
    """The case table (see CASES_FILE), in run order."""
    try:
        with open(path) as f:
            listing = json.load(f)
    except (OSError, ValueError) as e:
        raise SystemExit(f"reading the case list {path}: {e}")
    if listing.get("format") != CASES_FORMAT:
        raise SystemExit(f"{path}: format {listing.get('format')!r}, expected {CASES_FORMAT!r}")
    return listing["cases"]


def parse_cases(spec, table):
    """`--cases`: `all` or comma-separated names (duplicates dropped, order
    kept) -> entries of `table`."""
    by_name = {c["name"]: c for c in table}
    out = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        names = list(by_name) if part == "all" else [part]
        for n in names:
            if n not in by_name:
                raise SystemExit(f"unknown case {n!r}; known cases: all, {', '.join(by_name)}")
            if by_name[n] not in out:
                out.append(by_name[n])
    if not out:
        raise SystemExit(f"no case named in {spec!r}")
    return out


def case_shape(case, tiny, overrides):
    """The shape `case` runs at: its full or tiny shape from the table, with
    the NER fields given on the command line replaced."""
    shape = dict(case["tiny" if tiny else "full"])
    if case["kind"] == "ner":
        shape.update(overrides)
    return shape


def time_case(case, warmup, iters):
    samples = []
    for i in range(warmup + iters):
        case.prepare()
        t = time.perf_counter()
        case.run()
        ms = (time.perf_counter() - t) * 1e3
        if i >= warmup:
            samples.append(ms)
    return samples


def peak_for(name):
    for pat, gflops, gbps, source in PEAKS:
        if pat in name:
            return gflops, gbps, source
    return None


def result_of(torch, case, device, backend, variant, warmup, iters, samples):
    r = {
        "case": case.name,
        "device": "gpu" if device.type == "cuda" else "cpu",
        "backend": backend,
        "variant": variant,
        "shape": case.shape,
        "warmup": warmup,
        "iters": iters,
    }
    r.update(summarize(samples))
    secs = r["median_ms"] / 1e3
    if case.windows is not None:
        r["windows_per_s"] = case.windows / secs
    if case.flops is not None:
        r["gflops"] = case.flops / secs / 1e9
    if case.nbytes is not None:
        r["gbps"] = case.nbytes / secs / 1e9
    peak = peak_for(backend) if device.type == "cuda" else None
    if peak is not None:
        gflops, gbps, source = peak
        r["peak_fraction"] = r["gflops"] / gflops if "gflops" in r else r["gbps"] / gbps
        r["peak_ref"] = source
    if device.type == "cuda":
        r["peak_bytes"] = int(torch.cuda.max_memory_allocated(device))
    if case.note:
        r["note"] = case.note
    return r


def loadavg():
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def ms(v):
    return f"{v:.4f}" if v < 1 else f"{v:.3f}" if v < 100 else f"{v:.1f}"


def print_table(results):
    header = ["case", "device", "variant", "iters", "median ms", "p10 ms", "p90 ms",
              "windows/s", "GFLOP/s", "GB/s", "% peak"]
    rows = []
    for r in results:
        opt = lambda k, f: f(r[k]) if k in r else "-"  # noqa: E731
        rows.append([
            r["case"], r["device"], r["variant"], str(r["iters"]), ms(r["median_ms"]),
            ms(r["p10_ms"]), ms(r["p90_ms"]), opt("windows_per_s", lambda v: f"{v:,.0f}"),
            opt("gflops", lambda v: f"{v:.2f}"), opt("gbps", lambda v: f"{v:.2f}"),
            opt("peak_fraction", lambda v: f"{100 * v:.1f}%"),
        ])
    widths = [max(len(x) for x in col) for col in zip(header, *rows)]
    left = 3

    def line(cells):
        return "  ".join(c.ljust(w) if i < left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    print(line(header))
    print("-" * (sum(widths) + 2 * (len(widths) - 1)))
    for row in rows:
        print(line(row))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--cases", default="all", help="comma-separated case names, or all")
    ap.add_argument("--warmup", type=int, default=None, help="untimed iterations [3; 1 with --tiny]")
    ap.add_argument("--iters", type=int, default=None, help="timed iterations [20; 1 with --tiny]")
    for f in NER_FIELDS:
        ap.add_argument(f"--{f}", type=int, default=None, help=f"NER cases: override {f}")
    ap.add_argument("--tiny", action="store_true", help="every case at tiny sizes, one iteration")
    ap.add_argument("--variants", default="eager,compile",
                    help="comma list of eager, compile [eager,compile]")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch.set_num_threads (CPU); default: PyTorch's choice")
    ap.add_argument("--json", metavar="FILE", help="write deltagrad-bench/1 JSON to FILE")
    ap.add_argument("--list-cases", action="store_true",
                    help=f"print the case names (from {os.path.basename(CASES_FILE)}) and exit")
    args = ap.parse_args(argv)

    table = load_cases()
    if args.list_cases:
        for c in table:
            print(c["name"])
        return 0
    cases = parse_cases(args.cases, table)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if not variants or any(v not in ("eager", "compile") for v in variants):
        raise SystemExit(f"--variants: expected eager and/or compile, got {args.variants!r}")
    warmup = args.warmup if args.warmup is not None else (1 if args.tiny else 3)
    iters = args.iters if args.iters is not None else (1 if args.tiny else 20)
    if iters < 1 or warmup < 0:
        raise SystemExit("--iters must be at least 1 and --warmup at least 0")
    overrides = {}
    for f in NER_FIELDS:
        v = getattr(args, f)
        if v is not None:
            if v < 1:
                raise SystemExit(f"--{f} must be at least 1")
            overrides[f] = v
    try:
        # Opened now so that a bad path fails before minutes of measuring.
        json_file = open(args.json, "w") if args.json else None
    except OSError as e:
        raise SystemExit(f"--json: {e}")

    try:
        import torch
    except ImportError:
        raise SystemExit("PyTorch is not installed (pip install torch)")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch.cuda.is_available() is False")
    device = torch.device(args.device)
    if device.type == "cuda":
        backend = f"torch {torch.__version__} cuda: {torch.cuda.get_device_name(device)}"
    else:
        backend = f"torch {torch.__version__} cpu"

    host = {
        "os": sys.platform,
        "arch": platform.machine(),
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count() or 0,
        "unix_time": int(time.time()),
        "loadavg_start": loadavg(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        host["gpu"] = torch.cuda.get_device_name(device)
        host["cuda"] = torch.version.cuda

    results, failures = [], []
    total = len(cases) * len(variants)
    done = 0
    for case_def in cases:
        name = case_def["name"]
        shape = case_shape(case_def, args.tiny, overrides)
        for variant in variants:
            done += 1
            print(f"[{done}/{total}] {name} ({variant})", file=sys.stderr, flush=True)
            try:
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats(device)
                case = build(torch, case_def, shape, device, variant == "compile")
                samples = time_case(case, warmup, iters)
                results.append(result_of(torch, case, device, backend, variant, warmup, iters, samples))
            except Exception as e:  # a variant that does not work is skipped
                print(f"  {name} ({variant}) failed: {type(e).__name__}: {e}", file=sys.stderr)
                failures.append(f"{name} ({variant}): {type(e).__name__}: {str(e)[:200]}")
            finally:
                case = None

    host["loadavg_end"] = loadavg()
    report = {
        "schema": SCHEMA,
        "tool": f"torch {torch.__version__}",
        "host": {k: v for k, v in host.items() if v is not None},
        "settings": {"warmup": warmup, "iters": iters, "tiny": args.tiny,
                     "variants": variants, "tf32": False, "failures": failures},
        "results": results,
    }
    print(f"{backend}; host: {host['cpu']}, {host['logical_cores']} logical cores, "
          f"{host['torch_threads']} torch threads")
    print_table(results)
    if failures:
        print(f"{len(failures)} case variant(s) failed (see above)", file=sys.stderr)
    if json_file:
        with json_file:
            json.dump(report, json_file, indent=2)
            json_file.write("\n")
    # Eager failures are real failures; compile is best effort.
    return 1 if any("(eager)" in f for f in failures) else 0


if __name__ == "__main__":
    sys.exit(main())
