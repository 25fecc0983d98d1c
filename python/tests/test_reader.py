import multiprocessing
import os
import pickle
import shutil

import numpy as np
import pytest

from emcshards import CounterRNG, ShardDataset, ShardError, philox4x32
from conftest import exported


def test_philox_known_answers():
    # Random123's known-answer vectors for philox4x32_R(10, ctr, key).
    assert [int(w) for w in philox4x32(0, 0, 0, 0, 0, 0)] == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]
    assert [int(w) for w in philox4x32(*[0xFFFFFFFF] * 6)] == [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]
    assert [int(w) for w in philox4x32(0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344, 0xA4093822, 0x299F31D0)] == \
        [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]
    p = CounterRNG(7, 6).permutation(1000)
    assert sorted(p.tolist()) == list(range(1000)) and p.tolist() != list(range(1000))


@pytest.mark.parametrize("codec", ["none", "lz4", "lz4-delta", "zstd", "zstd-delta"])
def test_fashion_mnist_every_codec_equals_emc(sets, codec, tmp_path):
    for split in ["train", "test"]:
        x, y, _ = exported(sets[codec], split, tmp=str(tmp_path))
        ds = ShardDataset(sets[codec], split=split)
        assert len(ds) == len(y) == (60000 if split == "train" else 10000)
        xs, ys = ds.batch(np.arange(len(ds)))
        assert xs.shape == x.shape and np.array_equal(xs, x) and np.array_equal(ys, y)
    # The chunk-by-chunk path (used when a split's decoded size exceeds `whole_bytes`) reads the same.
    lru = ShardDataset(sets[codec], split="test", whole_bytes=0, cache_chunks=3)
    shuffled = np.random.default_rng(1).permutation(len(lru))[:3000]
    xs, ys = lru.batch(shuffled)
    assert np.array_equal(xs, x[shuffled]) and np.array_equal(ys, y[shuffled])
    # Random access and sequential reads agree.
    ds = ShardDataset(sets[codec], split="test")
    sample, label = ds[1234]
    assert np.array_equal(sample, x[1234]) and label == y[1234]
    first = next(iter(ds))
    assert np.array_equal(first[0], ds[0][0]) and first[1] == ds[0][1]


def test_synthetic_128_and_variants_equal_emc(sets, tmp_path):
    for name in ["synth", "synth-each", "chain", "gauss", "credit", "credit-gauss", "credit-perm"]:
        for split in ["train", "test"]:
            x, y, _ = exported(sets[name], split, tmp=str(tmp_path))
            ds = ShardDataset(sets[name], split=split)
            xs, ys = ds.batch(np.arange(len(ds)))
            assert np.array_equal(xs, x), f"{name}/{split}: {(xs != x).sum()} bytes differ"
            assert np.array_equal(ys, y), f"{name}/{split}: labels differ"
    credit = ShardDataset(sets["credit-gauss"])
    assert credit[0][0].dtype == np.float32 and credit[0][0].ndim == 1
    synth = ShardDataset(sets["synth"])
    assert synth[0][0].shape == (128, 128, 3) and synth[0][0].dtype == np.uint8
    # The chain really changed labels and inputs.
    chain, base = ShardDataset(sets["chain"]), ShardDataset(sets["lz4"])
    assert (chain.labels != base.batch(np.arange(len(base)))[1]).mean() == pytest.approx(0.2, abs=0.01)
    assert not np.array_equal(chain[0][0], base[0][0])


@pytest.mark.parametrize("n,seed", [(1, 0), (100, 0), (1000, 2), (2675, 5), (60000, 1)])
def test_nested_subsets_equal_emc(sets, tmp_path, n, seed):
    x, y, positions = exported(sets["chain"], "train", subset=n, seed=seed, tmp=str(tmp_path))
    sub = ShardDataset(sets["chain"]).subset(n, seed=seed)
    assert np.array_equal(sub.positions, positions)
    xs, ys = sub.batch(np.arange(n))
    assert np.array_equal(xs, x) and np.array_equal(ys, y)
    if n > 1:
        smaller = ShardDataset(sets["chain"]).subset(n // 2, seed=seed)
        assert np.array_equal(smaller.positions, sub.positions[: n // 2]), "nested: the set at n/2 is a prefix of the set at n"


def _flip(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0xFF]))


def test_flipped_byte_names_the_chunk(sets, tmp_path):
    folder = tmp_path / "damaged"
    shutil.copytree(sets["zstd-delta"], folder)
    ds = ShardDataset(str(folder))
    shard = ds._reader.shards[0]
    offset, first, n = shard.entries[3][0], shard.entries[3][1], shard.entries[3][2]
    _flip(shard.path, offset + 10)
    damaged = ShardDataset(str(folder))
    with pytest.raises(ShardError) as e:
        damaged[first + 1]
    assert "chunk 3" in str(e.value) and "train-00000.emcs" in str(e.value) and "checksum" in str(e.value)
    # Other chunks still read.
    assert damaged[0][0].shape == (28, 28, 1)
    # A damaged header or index is caught on open.
    _flip(shard.path, 20)
    with pytest.raises(ShardError, match="header checksum"):
        ShardDataset(str(folder))[0]


def test_edited_manifest_and_missing_files_are_errors(sets, tmp_path):
    folder = tmp_path / "edited"
    shutil.copytree(sets["lz4"], folder)
    text = (folder / "dataset.json").read_text().replace('"count" : 10', '"count" : 11').replace('"count":10', '"count":11')
    (folder / "dataset.json").write_text(text)
    with pytest.raises(ShardError, match="content id"):
        ShardDataset(str(folder))
    with pytest.raises(ShardError, match="dataset.json"):
        ShardDataset(str(tmp_path / "nowhere"))


def _read_in_worker(args):
    ds, positions = args
    xs, ys = ds.batch(positions)
    return xs.sum(dtype=np.int64), ys.tolist()


def test_pickling_and_reads_from_several_processes(sets):
    ds = ShardDataset(sets["chain"])
    ds[0]  # open files and fill the cache in this process first
    clone = pickle.loads(pickle.dumps(ds))
    assert np.array_equal(clone[5][0], ds[5][0])
    items = ds.__getitems__([3, 1])  # what a DataLoader asks for, one call per batch
    assert np.array_equal(items[0][0], ds[3][0]) and items[1][1] == ds[1][1]
    sub = ds.subset(5000, seed=1)
    parts = [np.arange(i, 5000, 4) for i in range(4)]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.map(_read_in_worker, [(sub, p) for p in parts])
    for p, (total, labels) in zip(parts, results):
        xs, ys = sub.batch(p)
        assert total == xs.sum(dtype=np.int64) and labels == ys.tolist()
