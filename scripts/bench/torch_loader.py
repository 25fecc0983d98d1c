#!/usr/bin/env python3
"""emcshards under a real torch.utils.data.DataLoader (torch from the environment scripts/torch-env keeps): a shuffled
epoch of a shard set in batches of 128 with 0 and 2 worker processes, samples/s, and a check that the epoch saw every
sample exactly once with the labels emc reads.

    scripts/bench/torch_loader.py [DATASET_FOLDER]
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_train import ensure_torch  # noqa: E402
from torch_emc import ensure_emcshards  # noqa: E402


class Indexed:
    """The dataset with each item's position, to check that an epoch covers every sample once."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        x, y = self.ds[i]
        return x, y, i

    def __getitems__(self, indices):
        return [(x, y, i) for (x, y), i in zip(self.ds.__getitems__(indices), indices)]


def parse(argv=None):
    """The command line: --help prints the module's docstring and the options; an unknown option is an error."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", default="datasets/fashion-mnist", metavar="DATASET_FOLDER",
                        help="a shard set (default datasets/fashion-mnist)")
    return parser.parse_args(argv)


def main():
    folder = parse().folder
    ensure_torch()
    ensure_emcshards()
    import numpy as np
    import torch
    from emcshards import ShardDataset
    ds = ShardDataset(folder, split="train")
    _, labels = ds.batch(np.arange(len(ds)))
    print(f"torch {torch.__version__}, {folder}: {len(ds)} samples, shuffled, batches of 128")
    print("| DataLoader workers | samples/s | every sample once, labels as emc |\n| --- | --- | --- |")
    for workers in [0, 2]:
        loader = torch.utils.data.DataLoader(Indexed(ds), batch_size=128, shuffle=True, num_workers=workers,
                                             generator=torch.Generator().manual_seed(0))
        start = time.perf_counter()
        seen = []
        ok = True
        for x, y, i in loader:
            seen.append(i.numpy())
            ok &= bool((y.numpy() == labels[i.numpy()]).all()) and tuple(x.shape[1:]) == ds.shape
        elapsed = time.perf_counter() - start
        seen = np.concatenate(seen)
        ok &= np.array_equal(np.sort(seen), np.arange(len(ds)))
        print(f"| {workers} | {len(ds) / elapsed:,.0f} | {'yes' if ok else 'NO'} |")
        if not ok:
            sys.exit("the DataLoader epoch did not match emc's samples")


if __name__ == "__main__":
    main()
