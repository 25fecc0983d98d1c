"""A manifest is input: what it lists is checked before anything is read through it. Each test copies a set emc wrote,
edits its dataset.json as someone could (recomputing the content id, so the edit is not caught by that alone) and
checks the reader refuses it with an error naming the manifest or shard file, the field and the value."""
import json
import os
import re
import shutil

import numpy as np
import pytest

from emcshards import ShardDataset, ShardError, SplitReader
from emcshards.dataset import _content_id
from conftest import exported


def _copy(src, dst):
    shutil.copytree(src, dst)
    return str(dst)


def _manifest(folder):
    with open(os.path.join(folder, "dataset.json")) as f:
        return json.load(f)


def _edit(folder, change):
    """Applies `change` to the folder's manifest and writes it back with a content id that matches the edit."""
    m = _manifest(folder)
    change(m)
    m["contentId"] = _content_id(m)
    with open(os.path.join(folder, "dataset.json"), "w") as f:
        json.dump(m, f, indent=2, sort_keys=True)


def _at(folder, field):
    """The start of an error about `field` in the folder's manifest, as a regular expression."""
    return re.escape(f"{os.path.join(folder, 'dataset.json')}, {field}: ")


@pytest.mark.parametrize("bad", ["../victim", "{victim}", "sub/train-00000.emcs", "..", ".", "", "train-00000.emcs\0"],
                         ids=["parent", "absolute", "subfolder", "dotdot", "dot", "empty", "nul"])
def test_shard_file_names_must_be_plain_names_in_the_set(sets, tmp_path, bad):
    folder = _copy(sets["lz4"], tmp_path / "set")
    victim = tmp_path / "victim"
    shutil.copy(os.path.join(folder, "train-00000.emcs"), victim)  # a real shard: only the name check stands in the way
    bad = bad.replace("{victim}", str(victim))
    if bad == "sub/train-00000.emcs":
        os.mkdir(os.path.join(folder, "sub"))
        shutil.copy(victim, os.path.join(folder, "sub", "train-00000.emcs"))

    def change(m):
        m["splits"]["train"]["shards"][0]["file"] = bad
    _edit(folder, change)
    with pytest.raises(ShardError, match=_at(folder, "splits.train.shards[0].file") + re.escape(repr(bad)) + " is not a plain file name"):
        ShardDataset(folder, split="train")
    # The split reader on its own (given the edited split directly) refuses it too.
    m = _manifest(folder)
    with pytest.raises(ShardError, match=_at(folder, "splits.train.shards[0].file") + re.escape(repr(bad))):
        SplitReader(folder, m["splits"]["train"], m["schema"], name="train")


def _chain_with_absolute_base(sets, tmp_path):
    """A copy of the chain variant (label noise on permuted inputs) whose base is given as an absolute path to the
    original's base, as emc allows: it reads as the original does."""
    folder = _copy(sets["chain"], tmp_path / "chain")

    def change(m):
        m["variant"]["base"] = os.path.join(sets["root"], "perm")
    _edit(folder, change)
    return folder


def test_variant_base_may_be_relative_with_dotdot_or_absolute(sets, tmp_path):
    original = ShardDataset(sets["chain"]).labels
    assert _manifest(sets["chain"])["variant"]["base"] == "../perm"
    absolute = _chain_with_absolute_base(sets, tmp_path)
    assert np.array_equal(ShardDataset(absolute).labels, original)
    relative = _copy(sets["chain"], tmp_path / "deeper" / "chain")

    def change(m):
        m["variant"]["base"] = os.path.relpath(os.path.join(sets["root"], "perm"), relative)
    _edit(relative, change)
    assert _manifest(relative)["variant"]["base"].startswith("../../")
    assert np.array_equal(ShardDataset(relative).labels, original)
    for bad in ["", "perm\0"]:
        def change(m):
            m["variant"]["base"] = bad
        _edit(relative, change)
        with pytest.raises(ShardError, match=_at(relative, "variant.base") + re.escape(repr(bad)) + " is not a path"):
            ShardDataset(relative)


@pytest.mark.parametrize("bad", ["../victim", "{victim}", "labels/labels-train.emcl"], ids=["parent", "absolute", "subfolder"])
def test_label_file_names_must_be_plain_names_in_the_variant(sets, tmp_path, bad):
    folder = _chain_with_absolute_base(sets, tmp_path)
    listed = _manifest(folder)["variant"]["labelFiles"]["train"]["file"]
    victim = tmp_path / "victim"
    shutil.copy(os.path.join(folder, listed), victim)  # the real labels: only the name check stands in the way
    bad = bad.replace("{victim}", str(victim))
    if bad.startswith("labels/"):
        os.mkdir(os.path.join(folder, "labels"))
        shutil.copy(victim, os.path.join(folder, bad))

    def change(m):
        m["variant"]["labelFiles"]["train"]["file"] = bad
    _edit(folder, change)
    with pytest.raises(ShardError, match=_at(folder, "variant.labelFiles.train.file") + re.escape(repr(bad)) + " is not a plain file name"):
        ShardDataset(folder, split="test")  # refused on opening the variant, whichever split is asked for


def test_label_file_sample_count_must_match_its_header(sets, tmp_path):
    folder = _chain_with_absolute_base(sets, tmp_path)

    def change(m):
        m["variant"]["labelFiles"]["train"]["samples"] += 10
    _edit(folder, change)
    field = "variant.labelFiles.train.samples"
    with pytest.raises(ShardError, match=re.escape(f"{field}: the manifest's {field} says 60010 samples, the file's header 60000")):
        ShardDataset(folder).labels


@pytest.mark.parametrize("name,delta", [("lz4", 10), ("lz4", -10), ("sharded", 10)])
def test_split_sample_count_must_match_the_shard_headers(sets, tmp_path, name, delta):
    folder = _copy(sets[name], tmp_path / "set")
    real = _manifest(folder)["splits"]["train"]["samples"]

    def change(m):
        m["splits"]["train"]["samples"] += delta
    _edit(folder, change)
    message = _at(folder, "splits.train.samples") + f"the manifest's splits.train.samples says {real + delta}, its shards' headers hold {real}"
    for whole_bytes in [2 << 30, 0]:  # the split decoded into one array, and chunk by chunk
        with pytest.raises(ShardError, match=message):
            ShardDataset(folder, split="train", whole_bytes=whole_bytes)
    # The test split, untouched, still reads.
    assert len(ShardDataset(folder, split="test")) == 10000


@pytest.mark.parametrize("delta", [-1, 10])
def test_last_shard_sample_count_must_match_its_header(sets, tmp_path, delta):
    folder = _copy(sets["sharded"], tmp_path / "set")
    shards = _manifest(folder)["splits"]["train"]["shards"]
    assert len(shards) > 2, "the sharded set has several shards"
    last, listed = len(shards) - 1, shards[-1]["samples"]

    def change(m):
        m["splits"]["train"]["shards"][last]["samples"] += delta
    _edit(folder, change)
    field = f"splits.train.shards[{last}].samples"
    path = os.path.join(folder, shards[-1]["file"])
    with pytest.raises(ShardError, match=re.escape(f"{path}, {field}: the manifest's {field} says {listed + delta}, the shard's header says {listed}")):
        ShardDataset(folder, split="train")


def test_samples_per_shard_and_file_sizes_must_match_the_shards(sets, tmp_path):
    folder = _copy(sets["sharded"], tmp_path / "set")
    m = _manifest(folder)
    per_shard, first = m["splits"]["train"]["samplesPerShard"], m["splits"]["train"]["shards"][0]["file"]

    def change(m):
        m["splits"]["train"]["samplesPerShard"] += 1
    _edit(folder, change)
    with pytest.raises(ShardError, match=re.escape(f"{first}, splits.train.samplesPerShard: the shard holds {per_shard} samples, "
                                                   f"the manifest's splits.train.samplesPerShard says {per_shard + 1}")):
        ShardDataset(folder)

    def change(m):
        m["splits"]["train"]["samplesPerShard"] -= 1
        m["splits"]["train"]["shards"][0]["bytes"] += 1
    _edit(folder, change)
    with pytest.raises(ShardError, match=re.escape(f"{first}, splits.train.shards[0].bytes: the manifest's splits.train.shards[0].bytes says")):
        ShardDataset(folder)


@pytest.mark.parametrize("field,value", [("samplesPerShard", 0), ("chunkSamples", 0), ("samples", -1), ("samples", "60000"), ("chunkSamples", 10 ** 9)])
def test_impossible_split_sizes_are_refused(sets, tmp_path, field, value):
    folder = _copy(sets["lz4"], tmp_path / "set")

    def change(m):
        m["splits"]["train"][field] = value
    _edit(folder, change)
    with pytest.raises(ShardError, match=_at(folder, f"splits.train.{field}")):
        ShardDataset(folder)


def test_several_shards_read_as_emc_and_nothing_past_them(sets, tmp_path):
    x, y, _ = exported(sets["sharded"], "train", tmp=str(tmp_path))
    assert len(_manifest(sets["sharded"])["splits"]["train"]["shards"]) > 2
    for whole_bytes in [2 << 30, 0]:  # the split decoded into one array, and chunk by chunk
        ds = ShardDataset(sets["sharded"], whole_bytes=whole_bytes, cache_chunks=4)
        assert len(ds) == len(y) == 60000
        xs, ys = ds.batch(np.arange(len(ds)))
        assert np.array_equal(xs, x) and np.array_equal(ys, y)
        with pytest.raises(IndexError):
            ds[60000]
        with pytest.raises(IndexError):
            ds.batch([0, 60000])
    with pytest.raises(ValueError):
        ds.subset(60001)
