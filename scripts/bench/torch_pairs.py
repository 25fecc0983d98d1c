#!/usr/bin/env python3
"""emc against PyTorch at one thread on a noisy machine: alternate the two, one model, N times, and report each
adjacent pair's ratio and their median (a shared VM's speed drifts by tens of percent over minutes; a pair measured
back to back shares the drift, so the median of the pairs' ratios is steadier than a ratio of two separate tables).

    scripts/bench/torch_pairs.py vit:dim=64 [--pairs 7] [--emc .build/release/emc ...] [--json]

Each pair: scripts/bench/torch_train.py --only MODEL --json (PyTorch's median of 5), then
`emc bench train --only MODEL --no-raw-sgemm --repeats 5` (emc's median of 5). `--emc` may be given several times
(say an older build, then the current one): each build is measured in every pair, right after PyTorch, and gets its
own ratios. Not part of the tests.
"""
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def option(name, default):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


def first_row(model, rows):
    """The row whose spec starts with `model` (the first input shape listed)."""
    for row in rows:
        if row["model"].startswith(model):
            return row
    raise SystemExit(f"torch_pairs: no row for {model}")


def main():
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        print(__doc__.strip())
        sys.exit(0 if "-h" in sys.argv or "--help" in sys.argv else 2)
    model = sys.argv[1]
    pairs = int(option("--pairs", "7"))
    emcs = [sys.argv[i + 1] for i, a in enumerate(sys.argv[:-1]) if a == "--emc"] or [os.path.join(ROOT, ".build", "release", "emc")]
    results = []  # (PyTorch's rate, [each build's rate])
    for index in range(pairs):
        torch_out = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "bench", "torch_train.py"), "--only", model, "--json"],
                                   check=True, capture_output=True, text=True).stdout
        torch_rate = first_row(model, json.loads(torch_out)["results"])["samplesPerSecond"]
        rates = []
        for emc in emcs:
            emc_out = subprocess.run([emc, "bench", "train", "--only", model, "--no-raw-sgemm", "--repeats", "5", "--json"],
                                     check=True, capture_output=True, text=True).stdout
            rates.append(first_row(model, json.loads(emc_out)["results"])["samplesPerSecond"])
        results.append((torch_rate, rates))
        if "--json" not in sys.argv:
            each = ", ".join(f"{name} {rate:,.0f} ({rate / torch_rate:.2f}×)" for name, rate in zip(emcs, rates))
            print(f"pair {index + 1}: PyTorch {torch_rate:,.0f} samples/s; {each}", flush=True)
    builds = []
    for b, emc in enumerate(emcs):
        ratios = [r[b] / t for t, r in results]
        builds.append({"emc": emc, "pairs": [{"torch": t, "emc": r[b]} for t, r in results], "medianRatio": statistics.median(ratios),
                       "ratioRange": [min(ratios), max(ratios)]})
    if "--json" in sys.argv:
        print(json.dumps({"model": model, "builds": builds}, indent=2))
    else:
        for build in builds:
            low, high = build["ratioRange"]
            print(f"{model}, {build['emc']}: emc / PyTorch median {build['medianRatio']:.2f}× over {pairs} pairs ({low:.2f}–{high:.2f}×)")

if __name__ == "__main__":
    main()
