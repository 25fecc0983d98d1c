#!/usr/bin/env python3
"""The Python reader's speed: samples/s reading Fashion-MNIST in a shuffled order, in batches of 128, through
emcshards (decoded-chunk cache) against the same uint8 array read from one .npy memmap in the same order (the
ceiling), in the same run. Medians of 5 passes after one warm-up pass.

    scripts/bench/python_reader.py [DATASET_FOLDER]   (needs emcshards installed: pip install ./python)
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np



def passes(read, order, batch, repeats):
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        for i in range(0, order.size, batch):
            read(order[i:i + batch])
        times.append(time.perf_counter() - start)
    return float(np.median(times[1:]))


def parse(argv=None):
    """The command line: --help prints the module's docstring and the options; an unknown option is an error."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", default="datasets/fashion-mnist", metavar="DATASET_FOLDER",
                        help="a shard set (default datasets/fashion-mnist)")
    return parser.parse_args(argv)


def main():
    folder = parse().folder
    try:
        from emcshards import ShardDataset
    except ImportError:
        sys.exit("python_reader.py needs emcshards: pip install ./python, or run it with the Python of scripts/torch-env")
    ds = ShardDataset(folder, split="train", cache_chunks=1 << 16)
    n = len(ds)
    order = np.random.default_rng(0).permutation(n)
    with tempfile.TemporaryDirectory() as tmp:
        x, _ = ds.batch(np.arange(n))
        path = os.path.join(tmp, "x.npy")
        np.save(path, x)
        mm = np.load(path, mmap_mode="r")
        ceiling = passes(lambda idx: np.asarray(mm[idx]), order, 128, 5)
        ours = passes(lambda idx: ds.batch(idx), order, 128, 5)
        cold = ShardDataset(folder, split="train", cache_chunks=1 << 16)
        start = time.perf_counter()
        for i in range(0, n, 128):
            cold.batch(order[i:i + 128])
        first = time.perf_counter() - start
    rows = [("npy memmap, same order (ceiling)", n / ceiling, 1.0),
            ("emcshards, decoded-chunk cache", n / ours, ceiling / ours),
            ("emcshards, first pass (decoding every chunk)", n / first, ceiling / first)]
    print(f"Fashion-MNIST train ({n} samples), shuffled order, batches of 128 (median of 5 passes after a warm-up)")
    print("| reader | samples/s | of the ceiling |\n| --- | --- | --- |")
    for name, rate, ratio in rows:
        print(f"| {name} | {rate:,.0f} | {100 * ratio:.0f}% |")


if __name__ == "__main__":
    main()
