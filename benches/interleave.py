#!/usr/bin/env python3
"""PyTorch and deltagrad timed in alternating rounds, so that both sides of
every ratio see the same minutes of a shared machine:

    python3 benches/interleave.py --deltagrad target/release/deltagrad \\
        --cases ner-small-step --rounds 10 --goal 1.5

Each round times PyTorch's eager and torch.compile variants of a case in this
process (built and compiled once, before the first round), then runs
`deltagrad bench` on the same case in a child process; the order of the two
alternates between rounds. A round's ratio is PyTorch's median over
deltagrad's (above 1: deltagrad faster). The summary gives, per case and
variant, the median ratio over the rounds, its range, and with --goal how many
rounds met it.

Why: `torch_reference.py` and `deltagrad bench --compare` run one after the
other, and on a host whose speed swings by 1.5x within a minute, a single
pair of runs can catch the two sides in different spells.

The pure parts run as doctests: python3 benches/interleave.py --self-test
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_reference as ref  # noqa: E402  (the cases, their builder, the timer)


def median(values):
    """The middle value, or the mean of the two middle ones.

    >>> median([3.0, 1.0, 2.0])
    2.0
    >>> median([4.0, 1.0, 3.0, 2.0])
    2.5
    """
    v = sorted(values)
    if not v:
        raise ValueError("median of nothing")
    mid = len(v) // 2
    return v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2


def deltagrad_median(report, case):
    """deltagrad's median for `case` in a deltagrad-bench/1 report; an error
    naming the case if it is missing (a failed case is left out of the file).

    >>> deltagrad_median({"results": [{"case": "a", "median_ms": 1.5}]}, "a")
    1.5
    >>> deltagrad_median({"results": []}, "a")
    Traceback (most recent call last):
    ...
    ValueError: deltagrad bench wrote no result for case 'a'
    """
    for r in report.get("results", []):
        if r.get("case") == case:
            return float(r["median_ms"])
    raise ValueError(f"deltagrad bench wrote no result for case {case!r}")


def summarize(ratios, goal=None):
    """Median, least and greatest ratio over the rounds, and with a goal how
    many rounds reached it.

    >>> summarize([2.0, 1.0, 3.0], goal=2.0)
    {'median': 2.0, 'min': 1.0, 'max': 3.0, 'rounds': 3, 'met': 2}
    >>> summarize([1.25])
    {'median': 1.25, 'min': 1.25, 'max': 1.25, 'rounds': 1}
    """
    out = {"median": median(ratios), "min": min(ratios), "max": max(ratios), "rounds": len(ratios)}
    if goal is not None:
        out["met"] = sum(1 for r in ratios if r >= goal)
    return out


def round_ratios(theirs, ours, before=None):
    """One round's ratios: each PyTorch variant over ours, and with a
    baseline build, each variant over the baseline's and the baseline's over
    ours (above 1: this build faster than the baseline).

    >>> round_ratios({"eager": 3.0}, 1.5)
    {'eager': 2.0}
    >>> round_ratios({"eager": 3.0}, 1.5, before=2.0)
    {'eager': 2.0, 'eager (baseline)': 1.5, 'baseline': 1.3333333333333333}
    """
    out = {v: t / ours for v, t in theirs.items()}
    if before is not None:
        out.update({f"{v} (baseline)": t / before for v, t in theirs.items()})
        out["baseline"] = before / ours
    return out


def round_row(case, index, ours, theirs, before=None):
    """A round as the --json file records it.

    >>> round_row("m", 0, 2.0, {"eager": 4.0})
    {'case': 'm', 'round': 0, 'deltagrad_ms': 2.0, 'torch_eager_ms': 4.0, 'ratio_eager': 2.0}
    >>> round_row("m", 1, 2.0, {"eager": 4.0}, before=3.0)["speedup_over_baseline"]
    1.5
    >>> round_row("m", 1, 2.0, {"eager": 4.0}, before=3.0)["ratio_eager_baseline"]
    1.3333333333333333
    """
    row = {"case": case, "round": index, "deltagrad_ms": ours}
    row.update({f"torch_{v}_ms": t for v, t in theirs.items()})
    if before is not None:
        row["baseline_ms"] = before
    for key, r in round_ratios(theirs, ours, before).items():
        if key == "baseline":
            row["speedup_over_baseline"] = r
        else:
            row["ratio_" + key.replace(" (baseline)", "_baseline")] = r
    return row


def torch_first(round_index):
    """Who goes first in a round: PyTorch in even rounds, deltagrad in odd.

    >>> [torch_first(i) for i in range(4)]
    [True, False, True, False]
    """
    return round_index % 2 == 0


def run_deltagrad(args, case, overrides, out_path, binary=None):
    cmd = [binary or args.deltagrad, "bench", "--device", "cpu", "--cases", case,
           "--warmup", str(args.warmup), "--iters", str(args.iters), "--json", out_path]
    for k, v in overrides.items():
        cmd += [f"--{k}", str(v)]
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr}")
    with open(out_path) as f:
        return deltagrad_median(json.load(f), case)


def run_torch(case, warmup, iters):
    return median(ref.time_case(case, warmup, iters))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--self-test", action="store_true", help="run the doctests and exit")
    ap.add_argument("--deltagrad", default="target/release/deltagrad", help="the deltagrad binary")
    ap.add_argument("--baseline", metavar="BINARY",
                    help="an earlier deltagrad build, timed in every round right after "
                         "--deltagrad: before and after share each round's minutes")
    ap.add_argument("--cases", default="ner-small-step", help="comma-separated case names")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3, help="untimed iterations in each round")
    ap.add_argument("--iters", type=int, default=20, help="timed iterations in each round")
    for f in ref.NER_FIELDS:
        ap.add_argument(f"--{f}", type=int, default=None, help=f"NER cases: override {f}")
    ap.add_argument("--variants", default="eager,compile", help="PyTorch variants [eager,compile]")
    ap.add_argument("--threads", type=int, default=None,
                    help="threads for both (torch.set_num_threads, DELTAGRAD_THREADS); "
                         "default: each one's own choice")
    ap.add_argument("--gap", type=float, default=0.5,
                    help="seconds of rest before each side of a round, so that the other "
                         "side's spinning worker threads have stopped [0.5]")
    ap.add_argument("--goal", type=float, default=None,
                    help="count the rounds whose ratio is at least this")
    ap.add_argument("--json", metavar="FILE", help="write every round and the summary to FILE")
    args = ap.parse_args(argv)

    if args.self_test:
        import doctest
        failed, tried = doctest.testmod(verbose=False)
        print(f"{tried - failed}/{tried} doctests passed")
        return 1 if failed or not tried else 0
    if args.rounds < 1 or args.iters < 1 or args.warmup < 0 or not args.gap >= 0:
        raise SystemExit("--rounds and --iters must be at least 1, --warmup and --gap at least 0")
    if not os.access(args.deltagrad, os.X_OK):
        raise SystemExit(f"--deltagrad: {args.deltagrad} is not an executable "
                         "(cargo build --release first)")
    if args.baseline and not os.access(args.baseline, os.X_OK):
        raise SystemExit(f"--baseline: {args.baseline} is not an executable")
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if not variants or any(v not in ("eager", "compile") for v in variants):
        raise SystemExit(f"--variants: expected eager and/or compile, got {args.variants!r}")
    cases = ref.parse_cases(args.cases, ref.load_cases())
    overrides = {f: getattr(args, f) for f in ref.NER_FIELDS if getattr(args, f) is not None}
    if any(v < 1 for v in overrides.values()):
        raise SystemExit("NER sizes must be at least 1")
    if args.threads:
        os.environ["DELTAGRAD_THREADS"] = str(args.threads)

    try:
        import torch
    except ImportError:
        raise SystemExit("PyTorch is not installed (pip install torch)")
    torch.set_float32_matmul_precision("highest")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads) against "
          f"{args.deltagrad} ({os.environ.get('DELTAGRAD_THREADS', 'default')} threads); "
          f"{args.rounds} rounds of {args.iters} iterations", flush=True)

    rounds, summary = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        out_path = os.path.join(tmp, "deltagrad.json")
        for case_def in cases:
            name = case_def["name"]
            shape = ref.case_shape(case_def, False, overrides)
            built = {}
            for v in variants:
                print(f"{name}: building PyTorch {v}", file=sys.stderr, flush=True)
                built[v] = ref.build(torch, case_def, shape, device, v == "compile")
                ref.time_case(built[v], args.warmup, 1)  # compiles, before any round
            ratios = {v: [] for v in variants}
            if args.baseline:
                ratios.update({f"{v} (baseline)": [] for v in variants}, baseline=[])
            for i in range(args.rounds):
                theirs = {}
                ours = before = None

                def ours_then_baseline():
                    time.sleep(args.gap)
                    now = run_deltagrad(args, name, overrides, out_path)
                    if not args.baseline:
                        return now, None
                    time.sleep(args.gap)
                    return now, run_deltagrad(args, name, overrides, out_path, args.baseline)

                if not torch_first(i):
                    ours, before = ours_then_baseline()
                for v in variants:
                    time.sleep(args.gap)
                    theirs[v] = run_torch(built[v], args.warmup, args.iters)
                if ours is None:
                    ours, before = ours_then_baseline()
                row = round_row(name, i, ours, theirs, before)
                row["unix_time"] = int(time.time())
                for key, r in round_ratios(theirs, ours, before).items():
                    ratios[key].append(r)
                cells = "  ".join(f"{v} {theirs[v]:.3f} ms ({theirs[v] / ours:.2f}x)" for v in variants)
                if before is not None:
                    cells += f"  baseline {before:.3f} ms ({before / ours:.2f}x ours)"
                rounds.append(row)
                print(f"{name} round {i + 1}/{args.rounds}: deltagrad {ours:.3f} ms  {cells}",
                      flush=True)
            summary[name] = {v: summarize(r, args.goal) for v, r in ratios.items()}
            built = None

    print("\nPyTorch's median over deltagrad's, per round (above 1: deltagrad faster); "
          "'(baseline)': over the --baseline build's; 'baseline': the baseline's over ours")
    for name, per_variant in summary.items():
        for v, s in per_variant.items():
            met = (f", goal {args.goal} met in {s['met']}/{s['rounds']}"
                   if args.goal and v != "baseline" else "")
            print(f"  {name} vs {v}: median {s['median']:.2f}x, "
                  f"range {s['min']:.2f}-{s['max']:.2f}x{met}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "deltagrad": args.deltagrad,
                       "baseline": args.baseline,
                       "threads": args.threads, "iters": args.iters, "warmup": args.warmup,
                       "gap_s": args.gap,
                       "goal": args.goal, "rounds": rounds, "summary": summary}, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
