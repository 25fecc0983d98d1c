#!/usr/bin/env python3
"""PyTorch baseline for `emc bench search`: the same EMC search rules in PyTorch, on the same data.

Doubling from 10 × classes until a trial does not fit, then bisection to 2%; each trial a fresh model on the seed's
nested subset (a prefix of one seeded permutation), SGD lr 0.01 momentum 0.9, batch 128, at most 300 epochs, fitted
= every sample of the subset classified correctly. Inputs standardised with the train mean and std, like emc's
default. Uses the virtualenv of torch_train.py (created on first use). Not part of the tests.

    scripts/bench/torch_emc.py [--width 32] [--depth 1] [--seed 0]
"""
import gzip
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_train import ensure_torch  # noqa: E402


def load_fashion_mnist(root="/usr/share/datasets/fashion-mnist"):
    import numpy as np
    with gzip.open(os.path.join(root, "train-images-idx3-ubyte.gz")) as f:
        images = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(-1, 784)
    with gzip.open(os.path.join(root, "train-labels-idx1-ubyte.gz")) as f:
        labels = np.frombuffer(f.read(), dtype=np.uint8, offset=8)
    return images, labels


def main():
    ensure_torch()
    import torch
    torch.set_num_threads(1)
    args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
    width, depth, seed = int(args.get("--width", 32)), int(args.get("--depth", 1)), int(args.get("--seed", 0))
    images, labels = load_fashion_mnist()
    x_all = torch.tensor(images, dtype=torch.float32)
    x_all = (x_all - x_all.mean()) / x_all.std()
    y_all = torch.tensor(labels, dtype=torch.long)
    order = torch.randperm(len(y_all), generator=torch.Generator().manual_seed(seed))

    def build():
        layers, d = [], 784
        for _ in range(depth):
            layers += [torch.nn.Linear(d, width), torch.nn.ReLU()]
            d = width
        layers.append(torch.nn.Linear(d, 10))
        return torch.nn.Sequential(*layers)

    def fits(n):
        torch.manual_seed(seed * 1_000_003 + n)
        x, y = x_all[order[:n]], y_all[order[:n]]
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

    last_fit, first_fail, n = 0, None, 100
    while n <= len(y_all):
        if trial(n):
            last_fit, n = n, n * 2
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
