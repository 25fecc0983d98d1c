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
import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse(argv=None):
    """The command line: --help prints the module's docstring and the options; an unknown option is an error."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", metavar="MODEL", help="a model spec of emc bench train's rows, like vit:dim=64")
    parser.add_argument("--pairs", type=int, default=7, help="pairs to measure (default 7)")
    parser.add_argument("--emc", action="append", default=[], help="an emc binary (repeatable; default .build/release/emc)")
    parser.add_argument("--json", action="store_true", help="JSON on stdout instead of the progress and summary lines")
    args = parser.parse_args(argv)
    if args.pairs < 1:
        parser.error(f"--pairs takes a count from 1, not {args.pairs}")
    return args


def first_row(model, rows):
    """The row whose spec starts with `model` (the first input shape listed)."""
    for row in rows:
        if row["model"].startswith(model):
            return row
    raise SystemExit(f"torch_pairs: no row for {model}")


def main():
    args = parse()
    model, pairs, as_json = args.model, args.pairs, args.json
    emcs = args.emc or [os.path.join(ROOT, ".build", "release", "emc")]
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
        if not as_json:
            each = ", ".join(f"{name} {rate:,.0f} ({rate / torch_rate:.2f}×)" for name, rate in zip(emcs, rates))
            print(f"pair {index + 1}: PyTorch {torch_rate:,.0f} samples/s; {each}", flush=True)
    builds = []
    for b, emc in enumerate(emcs):
        ratios = [r[b] / t for t, r in results]
        builds.append({"emc": emc, "pairs": [{"torch": t, "emc": r[b]} for t, r in results], "medianRatio": statistics.median(ratios),
                       "ratioRange": [min(ratios), max(ratios)]})
    if as_json:
        print(json.dumps({"model": model, "builds": builds}, indent=2))
    else:
        for build in builds:
            low, high = build["ratioRange"]
            print(f"{model}, {build['emc']}: emc / PyTorch median {build['medianRatio']:.2f}× over {pairs} pairs ({low:.2f}–{high:.2f}×)")

if __name__ == "__main__":
    main()
