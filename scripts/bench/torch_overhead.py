#!/usr/bin/env python3
"""The torch trainer's overhead: one trial through the worker (python -m emcshards.worker, over its JSON-lines protocol,
reading its subset through the reader, deciding by emc's rules) against the same trial in a plain PyTorch loop (the same
model and initialisation, the same n samples read the same way, the same epochs in the same order, one accuracy pass at
the end), alternated, medians of several runs. Prints a Markdown table.

    scripts/bench/torch_overhead.py DATA [--repeats 5] [--device cpu] [--only TEXT]

DATA: a shard set of random labels (emc perturb fashion-mnist-set --labels random ...): no trial fits, so both sides run
every epoch. Run it with the Python of scripts/torch-env. scripts/gpu-check calls `compare` on a GPU.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

try:
    import torch

    from emcshards.fit import epoch_order
    from emcshards.models import build
    from emcshards.worker import Worker
    MISSING = None
except ImportError as error:  # --help and bad options still answer; a run says what is missing
    MISSING = error

CASES = [
    # (model, n, epochs): trials of a few seconds, as a search's are (its budget: 300 epochs, at least 2,000 steps)
    ("mlp:width=16,depth=2,act=relu", 2000, 100),
    ("mlp:width=64,depth=2,act=relu", 5000, 40),
    ("cnn:channels=4,layers=2,growth=1,fc=0,act=relu", 1000, 60),
    # emc's default budget (300 epochs): the end-of-budget pass (a full gradient, recorded) is 1/300 of the trial
    ("mlp:width=16,depth=2,act=relu", 5000, 300),
]
BATCH = 128


def worker_trial(process, request_id, data, model, n, epochs, device="cpu"):
    params = {"data": data, "n": n, "seed": 0, "trialSeed": 11, "normalize": "standard", "model": model, "classes": 10,
              "optimizer": {"kind": "sgd", "lr": 0.01, "momentum": 0.9},
              # The whole budget, always: no fit (threshold 1 on random labels) and no convergence check within it.
              "rules": {"batch": BATCH, "epochs": epochs, "minSteps": 0, "fitThreshold": 1.0, "patience": 10 ** 6,
                        "minImprovement": 0, "gradientTolerance": 0},
              "evalBatch": 1024, "evaluateTest": False, "device": device}
    start = time.perf_counter()
    process.stdin.write(json.dumps({"id": request_id, "method": "fit", "params": params}) + "\n")
    process.stdin.flush()
    while True:
        message = json.loads(process.stdout.readline())
        if "progress" not in message:
            break
    seconds = time.perf_counter() - start
    assert "result" in message, message
    assert message["result"]["epochs"] == epochs, message["result"]["reason"]
    return seconds


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def plain_trial(data, model, n, epochs, device="cpu"):
    """What a researcher writes: read the subset, normalise, train with torch.optim, count the wrong at the end."""
    start = time.perf_counter()
    loader = Worker.__new__(Worker)
    loader.torch = torch
    x, y, ds = loader._load(data, "train", n, 0, "standard", device)
    torch.manual_seed(11)
    net = build(model, ds.shape if len(ds.shape) == 3 else (1, 1, ds.shape[0]), 10).to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    net.train()
    for epoch in range(epochs):
        order = torch.from_numpy(epoch_order(11, epoch, n)).to(device)
        for s in range(0, n, BATCH):
            idx = order[s:s + BATCH]
            optimizer.zero_grad()
            loss = loss_fn(net(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        wrong = sum(int((net(x[s:s + 1024]).argmax(1) != y[s:s + 1024]).sum()) for s in range(0, n, 1024))
    sync(device)
    seconds = time.perf_counter() - start
    return seconds, wrong


def compare(data, device="cpu", repeats=5, only=None):
    """The table: each case through the worker and in the plain loop, alternated, medians. Returns its rows."""
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    process = subprocess.Popen([sys.executable, "-m", "emcshards.worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    process.stdin.write(json.dumps({"id": 0, "method": "hello", "params": {"protocol": 1}}) + "\n")
    process.stdin.flush()
    hello = json.loads(process.stdout.readline())["result"]
    print(f"torch {hello['torch']} on {device}, one CPU thread each, {os.cpu_count()} cores, medians of {repeats} alternated runs "
          f"(after one of each to warm up)\n")
    print("| trial | through the worker | plain PyTorch loop | worker / plain |")
    print("| --- | --- | --- | --- |")
    rows = []
    request_id = 1
    for model, n, epochs in CASES:
        if only and only not in f"{model} {n} {epochs}":
            continue
        worker_trial(process, request_id, data, model, n, epochs, device)
        plain_trial(data, model, n, epochs, device)
        request_id += 1
        worker_times, plain_times = [], []
        for _ in range(repeats):
            worker_times.append(worker_trial(process, request_id, data, model, n, epochs, device))
            request_id += 1
            plain_times.append(plain_trial(data, model, n, epochs, device)[0])
        w, p = statistics.median(worker_times), statistics.median(plain_times)
        rows.append({"model": model, "n": n, "epochs": epochs, "worker": w, "plain": p, "ratio": w / p})
        print(f"| {model.split(',act')[0]}, n = {n}, {epochs} epochs | {w:.2f} s | {p:.2f} s | {w / p:.3f} |", flush=True)
    process.stdin.close()
    process.wait()
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", metavar="DATA", help="a shard set of random labels")
    ap.add_argument("--repeats", type=int, default=5, help="alternated runs of each side, after one warm-up each (default 5)")
    ap.add_argument("--device", default="cpu", help="the torch device: cpu, cuda, cuda:1 … (default cpu)")
    ap.add_argument("--only", help="the cases whose 'model n epochs' contains this")
    args = ap.parse_args()
    if args.repeats < 1:
        ap.error(f"--repeats takes a count from 1, not {args.repeats}")
    if MISSING is not None:
        sys.exit(f"torch_overhead.py needs torch and emcshards ({MISSING}): run it with the Python of scripts/torch-env")
    compare(args.data, args.device, args.repeats, args.only)


if __name__ == "__main__":
    main()
