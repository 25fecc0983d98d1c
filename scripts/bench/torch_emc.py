#!/usr/bin/env python3
"""PyTorch baseline for `emc bench search`: the same EMC search rules in PyTorch, on emc's own samples.

The data comes through the emcshards package (python/): each trial trains on exactly the nested subset emc trains
seed s on at that n, read from the same shard set (or variant) and standardised with its manifest's per-channel
mean and std, like emc's default. Doubling from 10 × classes until a trial does not fit, then bisection to 2%; each
trial a fresh model, SGD lr 0.01 momentum 0.9, batch 128, at most 300 epochs, fitted = every sample of the subset
classified correctly. Uses the virtualenv of torch_train.py (created on first use; emcshards is installed into it
from ./python). Not part of the tests.

    scripts/bench/torch_emc.py [--data datasets/fashion-mnist] [--width 32] [--depth 1] [--seed 0]
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_train import ensure_torch  # noqa: E402


def ensure_emcshards():
    """Installs ./python into this interpreter's environment when emcshards is missing."""
    try:
        import emcshards  # noqa: F401
    except ImportError:
        import subprocess
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", os.path.join(root, "python")])


def parse(argv=None):
    """The command line: --help prints the module's docstring and the options; an unknown option is an error."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="datasets/fashion-mnist", help="a shard set or variant (default datasets/fashion-mnist)")
    parser.add_argument("--width", type=int, default=32, help="the MLP's width (default 32)")
    parser.add_argument("--depth", type=int, default=1, help="its hidden layers (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="the search's seed (default 0)")
    args = parser.parse_args(argv)
    for name in ("width", "depth"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} takes a count from 1, not {getattr(args, name)}")
    if args.seed < 0:
        parser.error(f"--seed takes a number from 0, not {args.seed}")
    return args


def main():
    args = parse()
    ensure_torch()
    ensure_emcshards()
    import numpy as np
    import torch
    from emcshards import ShardDataset
    torch.set_num_threads(1)
    width, depth, seed = args.width, args.depth, args.seed
    data = ShardDataset(args.data, split="train")
    stats = data.manifest.get("statistics") or {}
    mean = np.asarray(stats.get("mean", [0.0]), dtype=np.float32)
    std = np.asarray(stats.get("std", [1.0]), dtype=np.float32)
    std = np.where(std > 0, std, 1)
    features = int(np.prod(data.shape))
    classes = data.classes

    def subset(n):
        """emc's nested subset of n samples for this seed, standardised per channel, as tensors."""
        x, y = data.subset(n, seed=seed).batch(np.arange(n))
        x = (x.astype(np.float32) - mean) / std
        return torch.tensor(x.reshape(n, features)), torch.tensor(y, dtype=torch.long)

    def build():
        layers, d = [], features
        for _ in range(depth):
            layers += [torch.nn.Linear(d, width), torch.nn.ReLU()]
            d = width
        layers.append(torch.nn.Linear(d, classes))
        return torch.nn.Sequential(*layers)

    def fits(n):
        torch.manual_seed(seed * 1_000_003 + n)
        x, y = subset(n)
        model = build()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        loss_fn = torch.nn.CrossEntropyLoss()
        for epoch in range(300):
            perm = torch.randperm(n)
            wrong = 0
            for i in range(0, n, 128):
                idx = perm[i:i + 128]
                out = model(x[idx])
                wrong += (out.argmax(1) != y[idx]).sum().item()
                opt.zero_grad(set_to_none=False)
                loss_fn(out, y[idx]).backward()
                opt.step()
            if wrong <= max(2, n // 200):
                with torch.no_grad():
                    if (model(x).argmax(1) != y).sum().item() == 0:
                        return True, epoch + 1
        return False, 300

    start = time.perf_counter()
    trials, sample_epochs = 0, 0
    def trial(n):
        nonlocal trials, sample_epochs
        t = time.perf_counter()
        ok, epochs = fits(n)
        trials += 1
        sample_epochs += n * epochs
        print(f"  n={n:<7d} {'fitted' if ok else 'not fitted':<11s} {epochs:4d} epochs  {time.perf_counter() - t:6.1f}s", flush=True)
        return ok

    last_fit, first_fail, n = 0, None, 10 * classes
    while n <= len(data):
        if trial(n):
            last_fit, n = n, min(len(data), n * 2) if n < len(data) else n + 1
        else:
            first_fail = n
            break
    while first_fail is not None and last_fit > 0 and first_fail - last_fit > max(1, 0.02 * last_fit):
        mid = last_fit + (first_fail - last_fit) // 2
        if trial(mid):
            last_fit = mid
        else:
            first_fail = mid
    print(f"PyTorch {torch.__version__}: EMC {last_fit} (first unfitted {first_fail}), {trials} trials, "
          f"{sample_epochs:.3g} sample-epochs, {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
