#!/usr/bin/env python3
"""PyTorch baseline for `emc bench train` and `emc bench threads`: the same models, batch size and update rule, at 1 thread
(or --threads N).

Run it as a plain script: it re-runs itself in the environment scripts/torch-env keeps (torch from PyPI, made on
first use). It is not part of the tests.

    scripts/bench/torch_train.py                 # table on stdout
    scripts/bench/torch_train.py --json > t.json # for: emc bench train --torch t.json
    scripts/bench/torch_train.py --only resnet   # the rows whose spec contains "resnet"
    scripts/bench/torch_train.py --threads 2     # torch.set_num_threads(2) (default 1)
    scripts/bench/torch_train.py --threads 1,2 --json > t.json  # both counts alternating: emc bench threads --torch t.json

With several thread counts, each repetition measures every count in turn (torch.set_num_threads between them), as
`emc bench threads` does, so that a host's slower minutes fall on every count alike and the speed-up from a second
thread is not one run's minutes set against another's.

Models are built from the same spec strings as emc's (torch_models.py: mlp, cnn, resnet, efficientnet, vit),
with PyTorch's default initialisation, nn.CrossEntropyLoss and torch.optim.SGD(lr=0.01, momentum=0.9).
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def ensure_torch():
    """Re-runs this script in the environment scripts/torch-env keeps (torch and emcshards; made on first use)."""
    try:
        import torch  # noqa: F401
        return
    except ImportError:
        pass
    python = subprocess.check_output([os.path.join(ROOT, "scripts", "torch-env")], text=True).strip()
    if sys.executable != python:
        os.execv(python, [python] + sys.argv)
    sys.exit("torch is not importable even in the benchmark virtualenv")


def build(spec, shape, classes):
    """The spec's model (scripts/bench/torch_models.py, the same layers and parameter order as emc's)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torch_models
    return torch_models.build(spec, shape, classes)


CASES = [
    ("mlp:width=8", (28, 28, 1)), ("mlp:width=16", (28, 28, 1)), ("mlp:width=32", (28, 28, 1)), ("mlp:width=256", (28, 28, 1)),
    ("cnn:channels=4,layers=2", (28, 28, 1)), ("cnn:channels=8,layers=2", (28, 28, 1)), ("cnn:channels=32,layers=2", (28, 28, 1)),
    ("cnn:channels=4,layers=2", (32, 32, 3)), ("cnn:channels=8,layers=2", (32, 32, 3)), ("cnn:channels=32,layers=2", (32, 32, 3)),
    ("resnet:width=0.5,blocks=1,stages=3", (32, 32, 3)), ("resnet:width=2,blocks=1,stages=3", (32, 32, 3)),
    ("efficientnet:width=0.25,depth=0.25", (32, 32, 3)), ("efficientnet:phi=0", (32, 32, 3)),
    ("vit:dim=64,depth=2,heads=4,patch=4", (32, 32, 3)), ("vit:dim=128,depth=4,heads=4,patch=4", (32, 32, 3)),
]


def parse(argv=None):
    """The command line: --help prints the module's docstring and the options; an unknown option is an error."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", default="1", help="thread counts, comma-separated (default 1; 1,2 alternates them)")
    parser.add_argument("--only", default="", help="only the rows whose spec contains this text")
    parser.add_argument("--json", action="store_true", help="JSON for emc bench train/threads --torch")
    args = parser.parse_args(argv)
    try:
        args.counts = [int(t) for t in args.threads.split(",")]
        assert args.counts and all(1 <= t <= 256 for t in args.counts)
    except (ValueError, AssertionError):
        parser.error(f"--threads takes counts from 1 to 256, like 2 or 1,2, not {args.threads}")
    return args


def main():
    args = parse()
    ensure_torch()
    import torch
    counts, as_json, only = args.counts, args.json, args.only
    batch = 128
    rows = []
    for spec, shape in CASES:
        if only not in spec:
            continue
        torch.manual_seed(0)
        model = build(spec, shape, 10)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        loss_fn = torch.nn.CrossEntropyLoss()
        h, w, c = shape
        x = torch.randn(batch, c, h, w)
        y = torch.randint(0, 10, (batch,))

        def step():
            opt.zero_grad(set_to_none=False)
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()

        for t in counts:
            torch.set_num_threads(t)
            for _ in range(5):
                step()
        rates = {t: [] for t in counts}
        for _ in range(5):
            for t in counts:
                torch.set_num_threads(t)
                step()  # the new count's threads awake before the clock starts
                steps = 0
                start = time.perf_counter()
                while True:
                    step()
                    steps += 1
                    elapsed = time.perf_counter() - start
                    if elapsed > 0.4 and steps >= 5:
                        break
                rates[t].append(batch * steps / elapsed)
        medians = {t: sorted(r)[len(r) // 2] for t, r in rates.items()}
        row = {"model": spec, "input": "%dx%dx%d" % shape, "samplesPerSecond": medians[counts[0]],
               "parameters": sum(p.numel() for p in model.parameters())}
        if len(counts) > 1:
            row["samplesPerSecondByThreads"] = {str(t): medians[t] for t in counts}
            # Repetition by repetition: each count against the first, the median ratio.
            row["speedUpByThreads"] = {str(t): sorted(b / a for a, b in zip(rates[counts[0]], rates[t]))[len(rates[t]) // 2]
                                       for t in counts[1:]}
        rows.append(row)
    if as_json:
        print(json.dumps({"torch": torch.__version__, "threads": counts[0] if len(counts) == 1 else counts, "batch": batch,
                          "results": rows}, indent=2))
    else:
        names = ", ".join(map(str, counts))
        print(f"PyTorch {torch.__version__}, {names} thread(s){' alternating' if len(counts) > 1 else ''}, batch {batch}, "
              f"SGD momentum 0.9 (median of 5)")
        for r in rows:
            by = r.get("samplesPerSecondByThreads", {str(counts[0]): r["samplesPerSecond"]})
            rates_text = "  ".join(f"{t}T {v:>10.0f}" for t, v in by.items())
            print(f"{r['model']:<36} {r['input']:<8} {r['parameters']:>9} params  {rates_text} samples/s")


if __name__ == "__main__":
    main()
