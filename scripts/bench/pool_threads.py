#!/usr/bin/env python3
"""Pools the repetitions of several `emc bench threads --json` runs, build by build: the median of the repetitions'
2T / 1T ratios, split by the core round trip measured before each (near: 40–150 ns, two cores sharing a cache; far:
150 ns and more; shared core: under 40 ns, one core's two hardware threads), with their counts, and the median one- and
two-thread rates.

    scripts/bench/pool_threads.py before=a1.json before=a2.json after=b1.json after=b2.json

Each argument is LABEL=FILE; runs with the same label pool together. Standard library only.
"""
import argparse
import json
import statistics
import sys


def parse(argv=None):
    """The command line: --help prints the module's docstring and the options; an unknown option is an error."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", metavar="LABEL=FILE", help="a run's JSON (emc bench threads --json) and the build it belongs to")
    args = parser.parse_args(argv)
    for argument in args.runs:
        if "=" not in argument:
            parser.error(f"each run is LABEL=FILE, not {argument}")
    return args


def main():
    pooled = {}
    for argument in parse().runs:
        label, _, path = argument.partition("=")
        try:
            with open(path) as f:
                results = json.load(f)["results"]
            fields = ("model", "repetitionSamplesPerSecond", "coreRoundTripNanoseconds")
            if not isinstance(results, list) or not all(isinstance(r, dict) and all(k in r for k in fields) for r in results):
                raise KeyError
        except (OSError, ValueError) as error:
            sys.exit(f"pool_threads.py: {path}: {error}")
        except (KeyError, TypeError):
            sys.exit(f"pool_threads.py: {path} is not the JSON of emc bench threads --json (no repetitions and round trips)")
        for r in results:
            rates, trips = r["repetitionSamplesPerSecond"], r["coreRoundTripNanoseconds"]
            entry = pooled.setdefault((r["model"], label), {"near": [], "far": [], "shared core": [], "all": [], "1T": [], "2T": []})
            for i, trip in enumerate(trips):
                ratio = rates[1][i] / rates[0][i]
                entry["all"].append(ratio)
                entry["shared core" if trip < 40 else "near" if trip < 150 else "far"].append(ratio)
            entry["1T"] += rates[0]
            entry["2T"] += rates[1]

    def ratio(values):
        return f"{statistics.median(values):.2f}× ({len(values)})" if values else "-"

    print("| model | build | 1T samples/s | 2T samples/s | near | far | shared core | all |")
    print("|---|---|---|---|---|---|---|---|")
    for (model, label), e in sorted(pooled.items()):
        print(f"| {model} | {label} | {statistics.median(e['1T']):,.0f} | {statistics.median(e['2T']):,.0f} | {ratio(e['near'])} | "
              f"{ratio(e['far'])} | {ratio(e['shared core'])} | {ratio(e['all'])} |")


if __name__ == "__main__":
    main()
