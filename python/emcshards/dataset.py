"""Shard sets and variants as map-style datasets (len and getitem), the protocol PyTorch's DataLoader uses."""
import hashlib
import json
import os
import struct

import numpy as np

from .errors import ShardError
from .philox import CounterRNG
from .reader import SplitReader, crc32c, plain_file_name

STREAM_INPUT_NOISE, STREAM_PERMUTATION, STREAM_SUBSET = 5, 6, 7


def _load_manifest(folder):
    path = os.path.join(folder, "dataset.json")
    if not os.path.exists(path):
        raise ShardError("no dataset.json: not a shard set or variant (or an incomplete one)", folder)
    try:
        with open(path, "rb") as f:
            manifest = json.loads(f.read().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ShardError(f"not a JSON manifest ({e})", path) from None
    if not isinstance(manifest, dict) or manifest.get("format") != "emc-shards" or manifest.get("formatVersion") != 1:
        raise ShardError("not an emc-shards version 1 manifest", path)
    _check_listing(manifest, path)
    expected = _content_id(manifest)
    if expected != manifest.get("contentId"):
        raise ShardError("the manifest does not match its content id: it was edited after it was written", path)
    return manifest


def _count(value, path, field, minimum=0):
    """A count from the manifest: an integer (not a bool) of at least `minimum`, or a ShardError naming the field."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ShardError(f"{value!r} is not a count (an integer of at least {minimum})", path, field)
    return value


def _check_listing(manifest, path):
    """What the manifest lists before anything is read through it: the splits' sizes (as emc's own checks: positive
    shard and chunk sizes, a chunk no larger than a shard) and every shard and label file as a plain name inside the
    manifest's folder. A variant's base is a path to another folder (relative to the variant's, `..` allowed, or
    absolute, as emc resolves it); it must be a non-empty string without NUL."""
    splits = manifest.get("splits")
    if not isinstance(splits, dict):
        raise ShardError("the manifest lists no splits", path, "splits")
    for name, split in splits.items():
        field = f"splits.{name}"
        if not isinstance(split, dict) or not isinstance(split.get("shards"), list):
            raise ShardError("a split lists its sizes and shards", path, field)
        _count(split.get("samples"), path, f"{field}.samples")
        per_shard = _count(split.get("samplesPerShard"), path, f"{field}.samplesPerShard", 1)
        per_chunk = _count(split.get("chunkSamples"), path, f"{field}.chunkSamples", 1)
        if per_chunk > per_shard:
            raise ShardError(f"chunkSamples {per_chunk} is larger than samplesPerShard {per_shard}", path, f"{field}.chunkSamples")
        for i, shard in enumerate(split["shards"]):
            at = f"{field}.shards[{i}]"
            if not isinstance(shard, dict):
                raise ShardError("a shard entry is an object (file, samples, bytes, crc32c)", path, at)
            plain_file_name(shard.get("file"), path, f"{at}.file")
            _count(shard.get("samples"), path, f"{at}.samples")
            _count(shard.get("bytes"), path, f"{at}.bytes")
    variant = manifest.get("variant")
    if variant is None:
        return
    if not isinstance(variant, dict):
        raise ShardError("the variant entry is an object", path, "variant")
    base = variant.get("base")
    if not isinstance(base, str) or base == "" or "\0" in base:
        raise ShardError(f"{base!r} is not a path to the base set's folder", path, "variant.base")
    label_files = variant.get("labelFiles") or {}
    if not isinstance(label_files, dict):
        raise ShardError("the label files are listed by split", path, "variant.labelFiles")
    for split, info in label_files.items():
        at = f"variant.labelFiles.{split}"
        if not isinstance(info, dict):
            raise ShardError("a label file entry is an object (file, samples, bytes, crc32c)", path, at)
        plain_file_name(info.get("file"), path, f"{at}.file")
        _count(info.get("samples"), path, f"{at}.samples")


def _content_id(m):
    """The content id as docs/shard-format.md defines it (a shard set's, or a variant's)."""
    v = m.get("variant")
    if v:
        text = f"emc-variant/1\nbase:{v['baseContentId']}\nclasses:{m['classes']['count']}\nlabels:{v.get('labelTransform') or '-'}\n"
        text += "".join(f"inputs:{t}\n" for t in v.get("inputTransforms") or [])
        for split in sorted((v.get("labelFiles") or {}).keys()):
            info = v["labelFiles"][split]
            text += f"{split}/{info['file']}:{info['crc32c']}\n"
    else:
        s = m["schema"]
        text = f"emc-shards/1\nschema:{s['kind']},{s['height']},{s['width']},{s['channels']},{s['features']}\nclasses:{m['classes']['count']}\n"
        for split in sorted(m["splits"].keys()):
            for shard in m["splits"][split].get("shards") or []:
                text += f"{split}/{shard['file']}:{shard['samples']}:{shard['crc32c']}\n"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _read_labels(path, info, field="samples"):
    """A label file (`.emcl`): the whole file's CRC32C (from the manifest), then the raw labels' own."""
    import zstandard
    with open(path, "rb") as f:
        data = f.read()
    if "%08x" % crc32c(data) != info["crc32c"]:
        raise ShardError("label file checksum mismatch: it changed after the variant was made", path)
    if len(data) < 32 or data[:8] != b"EMCLABEL":
        raise ShardError("not an emc label file (bad magic)", path, "byte offset 0")
    version, _, count, raw_crc, stored = struct.unpack_from("<IIQII", data, 8)
    if version != 1 or 32 + stored != len(data):
        raise ShardError("unsupported version or wrong stored size", path, "byte offset 8")
    if count != info["samples"]:
        raise ShardError(f"the manifest's {field} says {info['samples']} samples, the file's header {count}", path, field)
    try:
        raw = zstandard.ZstdDecompressor().decompress(data[32:], max_output_size=4 * count)
    except Exception as e:
        raise ShardError(f"labels do not decompress ({e})", path, "byte offset 32") from None
    if len(raw) != 4 * count or crc32c(raw) != raw_crc:
        raise ShardError("labels checksum mismatch", path, "byte offset 24")
    return np.frombuffer(raw, dtype="<u4")


def _round_half_away(v):
    """Round to nearest, ties away from zero (Swift's `rounded()`), exactly: |v| − ⌊|v|⌋ is exact in binary64."""
    a = np.abs(v)
    f = np.floor(a)
    return np.copysign(f + (a - f >= 0.5), v)


class _InputTransform:
    """One input transform, exactly as emc applies it (docs/shard-format.md, "Transforms")."""

    def __init__(self, text, schema, mean, std):
        options = dict(part.split("=", 1) for part in text.split(","))
        self.kind = options["inputs"]
        self.seed = int(options.get("seed", 0))
        self.image = schema["kind"] == "image"
        self.channels = schema["channels"] if self.image else 1
        self.positions = schema["height"] * schema["width"] if self.image else schema["features"]
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)
        if self.kind not in ("gaussian", "permute", "permute-each"):
            raise ShardError(f"unknown input transform '{text}'")
        if self.kind == "permute":
            self.permutation = CounterRNG(self.seed, STREAM_PERMUTATION).permutation(self.positions)

    def apply(self, samples, indices):
        """samples: (n, sample bytes) uint8, transformed in place; indices: the samples' original indices."""
        n = samples.shape[0]
        if self.kind == "gaussian":
            seeds = CounterRNG(self.seed, STREAM_INPUT_NOISE).derived_many(indices)
            width = samples.shape[1] if self.image else self.positions
            for r in range(n):
                rng = CounterRNG(int(seeds[r]), STREAM_INPUT_NOISE)
                if self.image:
                    a, b = rng.normal_pair(np.arange((width + 1) // 2, dtype=np.uint64))
                    z = np.empty(2 * a.size)
                    z[0::2], z[1::2] = a, b
                    z = z[:width]
                    c = np.arange(width) % self.channels
                    v = self.mean[c] + self.std[c] * z
                    samples[r] = np.clip(_round_half_away(v), 0, 255).astype(np.uint8)
                else:
                    a, _ = rng.normal_pair(np.arange(width, dtype=np.uint64))
                    samples[r] = (self.mean + self.std * a).astype("<f4").view(np.uint8)
        else:
            unit = samples.shape[1] // self.positions
            for r in range(n):
                order = self.permutation if self.kind == "permute" else \
                    CounterRNG(self.seed, STREAM_PERMUTATION).derived(int(indices[r])).permutation(self.positions)
                samples[r] = samples[r].reshape(self.positions, unit)[order].reshape(-1)
        return samples


class _View:
    """A shard set or a chain of variants resolved down to the set that holds shards (as emc's DatasetView)."""

    def __init__(self, folder, visited=()):
        here = os.path.realpath(folder)
        if here in visited:
            raise ShardError("this variant's chain of bases loops back on itself", folder)
        self.folder = folder
        self.manifest = _load_manifest(folder)
        variant = self.manifest.get("variant")
        if not variant:
            self.root, self.transforms, self.label_files = self, [], {}
            return
        base_path = variant["base"] if variant["base"].startswith("/") else os.path.join(folder, variant["base"])
        base = _View(base_path, visited + (here,))
        if base.manifest["contentId"] != variant["baseContentId"]:
            raise ShardError("this variant's base set has changed since the variant was made", folder)
        self.root = base.root
        self.label_files = dict(base.label_files)
        manifest_path = os.path.join(folder, "dataset.json")
        for split, info in (variant.get("labelFiles") or {}).items():
            name = plain_file_name(info["file"], manifest_path, f"variant.labelFiles.{split}.file")
            self.label_files[split] = (os.path.join(folder, name), info, f"variant.labelFiles.{split}.samples")
        stats = base.manifest["statistics"]
        self.transforms = base.transforms + [_InputTransform(t, self.manifest["schema"], stats["mean"], stats["std"])
                                             for t in variant.get("inputTransforms") or []]


class ShardDataset:
    """One split of a shard set or variant: `len(ds)`, `ds[i] -> (sample, label)`, `ds.batch(indices)`,
    `ds.subset(n, seed)`. A sample is an H×W×C uint8 array (images) or a float32 vector (tabular), as stored, before
    normalisation. Picklable: files are opened lazily in each process, so DataLoader workers each open their own."""

    def __init__(self, path, split="train", cache_chunks=64, whole_bytes=2 << 30):
        self.path = path
        self.split = split
        self.cache_chunks = cache_chunks
        view = _View(path)
        self.manifest = view.manifest
        self.schema = self.manifest["schema"]
        root_splits = view.root.manifest["splits"]
        if split not in root_splits:
            raise ShardError(f"no split '{split}' (there are {', '.join(sorted(root_splits))})", path)
        self.classes = int(self.manifest["classes"]["count"])
        self._reader = SplitReader(view.root.folder, root_splits[split], view.root.manifest["schema"], cache_chunks, whole_bytes, split)
        self._transforms = view.transforms
        self._label_file = view.label_files.get(split)
        self._labels = None

    @property
    def shape(self):
        s = self.schema
        return (s["height"], s["width"], s["channels"]) if s["kind"] == "image" else (s["features"],)

    def __len__(self):
        return self._reader.samples

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_labels"] = None
        return state

    @property
    def labels(self):
        """Every label of the split in position order (the variant's when it has a label file)."""
        if self._labels is None and self._label_file is not None:
            labels = _read_labels(*self._label_file)
            if labels.size != len(self):
                raise ShardError(f"the label file holds {labels.size} labels, the split {len(self)}", self._label_file[0])
            self._labels = labels
        return self._labels

    def _raw(self, positions):
        positions = np.asarray(positions, dtype=np.int64).reshape(-1)
        n = len(self)
        if positions.size:
            low, high = positions.min(), positions.max()
            if low < -n or high >= n:
                raise IndexError(f"a position is outside the split's {n} samples")
            if low < 0:
                positions = np.where(positions < 0, positions + n, positions)
        out, labels, indices = self._reader.gather(positions, want_indices=bool(self._transforms))
        overlay = self.labels
        if overlay is not None:
            labels = overlay[positions].astype(np.int64)
        for t in self._transforms:
            t.apply(out, indices)
        return out, labels

    def _shape_samples(self, raw):
        if self.schema["kind"] == "image":
            return raw.reshape((raw.shape[0],) + self.shape)
        return raw.view("<f4").reshape(raw.shape[0], self.schema["features"])

    def batch(self, positions):
        """Samples and labels at these positions, as arrays (N×H×W×C uint8 or N×F float32; N int64)."""
        raw, labels = self._raw(positions)
        return self._shape_samples(raw), labels

    def __getitem__(self, i):
        if isinstance(i, slice):
            return self.batch(range(*i.indices(len(self))))
        x, y = self.batch([int(i)])
        return x[0], int(y[0])

    def __getitems__(self, indices):
        """A batch as a list of (sample, label): what PyTorch's DataLoader (2.x) asks a map-style dataset for when it
        has this method, one call per batch instead of one per sample."""
        xs, ys = self.batch(indices)
        return list(zip(xs, ys.tolist()))

    def subset(self, n, seed=0):
        """The seed's nested subset of n samples: exactly the samples an emc search trains seed `seed` on at n."""
        return Subset(self, nested_subset_positions(self._reader, n, seed))

    def __iter__(self):
        for start in range(0, len(self), 1024):
            xs, ys = self.batch(range(start, min(len(self), start + 1024)))
            for x, y in zip(xs, ys):
                yield x, int(y)


def nested_subset_positions(reader, n, seed):
    """Positions of the seed's nested subset of size n (docs/shard-format.md, "Nested subsets")."""
    if not 0 < n <= reader.samples:
        raise ValueError(f"a subset of {n} samples does not fit a split of {reader.samples}")
    chunks = reader.chunks()
    order = CounterRNG(seed, STREAM_SUBSET).permutation(len(chunks))
    positions = []
    for c in order.tolist():
        first, count = chunks[c]
        take = min(count, n - len(positions))
        positions.extend(range(first, first + take))
        if len(positions) == n:
            break
    return np.asarray(positions, dtype=np.int64)


class Subset:
    """Some positions of a ShardDataset, in order: the same protocol (len, getitem, batch)."""

    def __init__(self, dataset, positions):
        self.dataset = dataset
        self.positions = np.asarray(positions, dtype=np.int64)

    def __len__(self):
        return self.positions.size

    def batch(self, indices):
        return self.dataset.batch(self.positions[np.asarray(indices, dtype=np.int64)])

    def __getitem__(self, i):
        if isinstance(i, slice):
            return self.batch(np.arange(len(self))[i])
        x, y = self.dataset.batch([int(self.positions[int(i)])])
        return x[0], int(y[0])

    def __getitems__(self, indices):
        xs, ys = self.batch(indices)
        return list(zip(xs, ys.tolist()))
