"""The shard file (`.emcs`) and a split of a shard set: docs/shard-format.md, "A shard file"."""
import os
import struct
from collections import OrderedDict

import numpy as np

from .errors import ShardError

HEADER_MAGIC = b"EMCSHARD"
TRAILER_MAGIC = b"EMCSEND1"
HEADER_SIZE = 64
TRAILER_SIZE = 32
ENTRY_SIZE = 48


def crc32c(data):
    import google_crc32c
    return google_crc32c.value(bytes(data))


def plain_file_name(value, manifest, field):
    """`value` when it names a file directly inside the manifest's folder; otherwise a ShardError naming the manifest,
    the field and the value. A manifest lists its shards and label files by name: no folder part ('/', a separator,
    a drive), no '.', '..', empty name or NUL, so nothing it lists can reach outside its folder."""
    if (not isinstance(value, str) or value in ("", ".", "..") or "\0" in value or "/" in value or os.sep in value
            or (os.altsep and os.altsep in value) or os.path.splitdrive(value)[0] or os.path.isabs(value)):
        raise ShardError(f"{value!r} is not a plain file name inside the set's folder (no folder part, '.', '..', "
                         "empty name or NUL)", manifest, field)
    return value


class Chunk:
    """A decoded chunk: `data` (n × sample bytes, uint8), `labels` (n, uint32), `indices` (n, uint64 original indices)."""

    __slots__ = ("data", "labels", "indices", "first")

    def __init__(self, data, labels, indices, first):
        self.data, self.labels, self.indices, self.first = data, labels, indices, first


class ShardFile:
    """One `.emcs` file, checked on open (header, trailer and index invariants); chunks read by random access."""

    def __init__(self, path):
        self.path = path
        self._file = None
        size = os.path.getsize(path)
        if size < HEADER_SIZE + 8 + TRAILER_SIZE:
            raise ShardError(f"{size} bytes is too small for a shard (at least {HEADER_SIZE + 8 + TRAILER_SIZE})", path)
        with open(path, "rb") as f:
            header = f.read(HEADER_SIZE)
            f.seek(size - TRAILER_SIZE)
            trailer = f.read(TRAILER_SIZE)
            if header[:8] != HEADER_MAGIC:
                raise ShardError("not an emc shard (bad header magic)", path, "byte offset 0")
            version, header_size, kind = struct.unpack_from("<HHB", header, 8)
            if version != 1 or header_size != HEADER_SIZE:
                raise ShardError(f"unsupported format version {version} or header size {header_size}", path, "byte offset 8")
            if crc32c(header[:60]) != struct.unpack_from("<I", header, 60)[0]:
                raise ShardError("header checksum mismatch", path, "byte offset 60")
            if trailer[24:32] != TRAILER_MAGIC:
                raise ShardError("incomplete shard: no trailer (the writer never finished)", path, f"byte offset {size - 8}")
            self.kind = kind
            self.height, self.width, self.channels, self.sample_bytes = struct.unpack_from("<IIII", header, 16)
            self.count, self.first_position = struct.unpack_from("<QQ", header, 32)
            self.chunk_samples = struct.unpack_from("<I", header, 48)[0]
            if kind not in (0, 1):
                raise ShardError(f"unknown sample kind {kind}", path, "byte offset 12")
            expected_bytes = self.height * self.width * self.channels if kind == 0 else 4 * self.width
            if self.sample_bytes != expected_bytes or self.sample_bytes == 0:
                raise ShardError(f"sample size {self.sample_bytes} does not match the shape", path, "byte offset 28")
            index_offset, index_size, index_crc, chunks = struct.unpack_from("<QQII", trailer, 0)
            if index_offset + index_size + TRAILER_SIZE != size or index_size != 8 + ENTRY_SIZE * chunks:
                raise ShardError("the trailer's index offset and size do not fit the file", path, f"byte offset {size - TRAILER_SIZE}")
            f.seek(index_offset)
            index = f.read(index_size)
        if len(index) != index_size or crc32c(index) != index_crc:
            raise ShardError("index checksum mismatch", path, f"byte offset {index_offset}")
        count, entry_size = struct.unpack_from("<II", index, 0)
        if count != chunks or entry_size != ENTRY_SIZE:
            raise ShardError("the index's chunk count or entry size is wrong", path, f"byte offset {index_offset}")
        self.entries = []
        offset, first = HEADER_SIZE, 0
        for k in range(chunks):
            e = struct.unpack_from("<QQIBBHIIIII", index, 8 + ENTRY_SIZE * k)
            chunk_offset, chunk_first, n, codec, filt, _, data_size, labels_size, indices_size, raw_size, crc = e
            last = k == chunks - 1
            if (chunk_offset != offset or chunk_first != first or n == 0 or n > self.chunk_samples
                    or (not last and n != self.chunk_samples) or raw_size != n * (self.sample_bytes + 12)
                    or codec > 2 or filt > 1 or (filt == 1 and kind != 0)):
                raise ShardError("index entry is inconsistent", path, f"chunk {k}")
            self.entries.append((chunk_offset, chunk_first, n, codec, filt, data_size, labels_size, indices_size, crc))
            offset += data_size + labels_size + indices_size
            first += n
        if offset != index_offset or first != self.count:
            raise ShardError("the chunks do not fill the file up to the index", path)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_file"] = None
        return state

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None

    def read_chunk(self, k):
        """Chunk k, its CRC32C checked before decompressing and each column checked for its raw size."""
        offset, first, n, codec, filt, data_size, labels_size, indices_size, crc = self.entries[k]
        place = f"chunk {k} (samples {first}..<{first + n})"
        if self._file is None:
            self._file = open(self.path, "rb")
        self._file.seek(offset)
        stored = self._file.read(data_size + labels_size + indices_size)
        if len(stored) != data_size + labels_size + indices_size:
            raise ShardError("the file ends inside this chunk", self.path, place)
        if crc32c(stored) != crc:
            raise ShardError("chunk checksum mismatch: the data changed after it was written", self.path, place)
        sb = self.sample_bytes
        columns = []
        at = 0
        for size, raw in ((data_size, n * sb), (labels_size, 4 * n), (indices_size, 8 * n)):
            columns.append(_decode(stored[at:at + size], codec, raw, self.path, place))
            at += size
        data = np.frombuffer(columns[0], dtype=np.uint8)
        if filt == 1:
            data = np.cumsum(data.reshape(-1, self.channels), axis=0, dtype=np.uint8).reshape(-1)
        labels = np.frombuffer(columns[1], dtype="<u4")
        indices = np.frombuffer(columns[2], dtype="<u8")
        return Chunk(data.reshape(n, sb), labels, indices, first)


def _decode(stored, codec, raw_size, path, place):
    try:
        if codec == 0:
            out = stored
        elif codec == 1:
            import lz4.block
            out = lz4.block.decompress(stored, uncompressed_size=raw_size)
        else:
            import zstandard
            out = zstandard.ZstdDecompressor().decompress(stored, max_output_size=raw_size)
    except Exception as e:  # the codecs' own errors, one kind for the caller
        raise ShardError(f"does not decompress ({e})", path, place) from None
    if len(out) != raw_size:
        raise ShardError(f"decompresses to {len(out)} bytes, not {raw_size}", path, place)
    return out


class SplitReader:
    """One split of a shard set: samples by position. When the split's decoded size fits `whole_bytes`, decoded chunks
    go into one array for the split (filled chunk by chunk as they are first touched, so a batch is one gather);
    otherwise they are kept in an LRU cache of `cache_chunks` chunks."""

    def __init__(self, folder, split_info, schema, cache_chunks=64, whole_bytes=2 << 30, name="?"):
        self.folder = folder
        self.info = split_info
        self.name = name
        self.manifest_path = os.path.join(folder, "dataset.json")
        self.samples = int(split_info["samples"])
        self.samples_per_shard = int(split_info["samplesPerShard"])
        self.chunk_samples = int(split_info["chunkSamples"])
        if self.samples < 0 or self.samples_per_shard <= 0 or not 0 < self.chunk_samples <= self.samples_per_shard:
            raise ShardError(f"impossible sizes (samples {self.samples}, samplesPerShard {self.samples_per_shard}, chunkSamples "
                             f"{self.chunk_samples})", self.manifest_path, f"splits.{name}")
        self.cache_chunks = cache_chunks
        self._shards = None
        self._cache = OrderedDict()
        self.schema = schema
        self.whole = self.samples * (schema["sampleBytes"] + 12) <= whole_bytes
        self._whole = None
        self._complete = False
        self.shards  # opening checks every shard against the manifest, so len() is what the shards hold

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_shards"] = None
        state["_cache"] = OrderedDict()
        state["_whole"] = None
        state["_complete"] = False
        return state

    def _whole_arrays(self):
        if self._whole is None:
            chunk_base = np.cumsum([0] + [len(s.entries) for s in self.shards])
            self._whole = (np.empty((self.samples, self.schema["sampleBytes"]), dtype=np.uint8), np.empty(self.samples, dtype=np.int64),
                           np.empty(self.samples, dtype=np.uint64), np.zeros(int(chunk_base[-1]), dtype=bool), chunk_base)
        return self._whole

    def gather(self, positions, want_indices):
        """(samples, labels as int64, original indices or None) at these positions; one outside the split is an IndexError."""
        if positions.size and (positions.min() < 0 or positions.max() >= self.samples):
            raise IndexError(f"a position is outside the split's {self.samples} samples")
        if self.whole:
            return self._gather_whole(positions, want_indices)
        # One gather per chunk touched: positions → (shard, chunk, offset), grouped by chunk.
        out = np.empty((positions.size, self.schema["sampleBytes"]), dtype=np.uint8)
        labels = np.empty(positions.size, dtype=np.int64)
        indices = np.empty(positions.size, dtype=np.uint64)
        shard = positions // self.samples_per_shard
        within = positions - shard * self.samples_per_shard
        chunk = within // self.chunk_samples
        offset = within - chunk * self.chunk_samples
        key = shard * (1 << 32) + chunk
        order = np.argsort(key, kind="stable")
        keys, starts = np.unique(key[order], return_index=True)
        ends = np.append(starts[1:], order.size)
        for k, a, b in zip(keys.tolist(), starts.tolist(), ends.tolist()):
            rows = order[a:b]
            c = self.chunk(k >> 32, k & 0xFFFFFFFF)
            o = offset[rows]
            out[rows] = c.data[o]
            labels[rows] = c.labels[o]
            indices[rows] = c.indices[o]
        return out, labels, (indices if want_indices else None)

    def _gather_whole(self, positions, want_indices):
        """The same from the split's decoded array, decoding the chunks first touched."""
        data, labels, indices, decoded, chunk_base = self._whole_arrays()
        if not self._complete:
            shard = positions // self.samples_per_shard
            gid = chunk_base[shard] + (positions - shard * self.samples_per_shard) // self.chunk_samples
            missing = gid[~decoded[gid]]
        else:
            missing = ()
        if len(missing):
            for g in np.unique(missing).tolist():
                s = int(np.searchsorted(chunk_base, g, side="right") - 1)
                c = self.shards[s].read_chunk(g - int(chunk_base[s]))
                a = s * self.samples_per_shard + c.first
                data[a:a + len(c.labels)] = c.data
                labels[a:a + len(c.labels)] = c.labels
                indices[a:a + len(c.labels)] = c.indices
                decoded[g] = True
            self._complete = bool(decoded.all())
        return data[positions], labels[positions], (indices[positions] if want_indices else None)

    @property
    def shards(self):
        """The split's shards, each checked on open against the manifest as emc checks them (file size, sample count,
        shape, chunk size, place in the split), and their counts against the split's: every position below the split's
        sample count lies in a chunk of a shard, and there is no position past them."""
        if self._shards is None:
            shards = []
            field = f"splits.{self.name}"
            listed = self.info["shards"]
            total = 0
            for i, s in enumerate(listed):
                at = f"{field}.shards[{i}]"
                path = os.path.join(self.folder, plain_file_name(s["file"], self.manifest_path, f"{at}.file"))
                if not os.path.exists(path):
                    raise ShardError("shard file missing", path)
                shard = ShardFile(path)
                size = os.path.getsize(path)
                if size != int(s["bytes"]):
                    raise ShardError(f"the manifest's {at}.bytes says {s['bytes']}, the file holds {size} bytes "
                                     "(replaced or damaged?)", path, f"{at}.bytes")
                if shard.count != int(s["samples"]):
                    raise ShardError(f"the manifest's {at}.samples says {s['samples']}, the shard's header says {shard.count}",
                                     path, f"{at}.samples")
                image = self.schema["kind"] == "image"
                shape = (0, self.schema["height"], self.schema["width"], self.schema["channels"]) if image else \
                    (1, 1, self.schema["features"], 1)
                if (shard.kind, shard.height, shard.width, shard.channels) != shape or shard.sample_bytes != self.schema["sampleBytes"]:
                    raise ShardError(f"the shard holds other samples than the manifest's schema says (kind {shard.kind}, "
                                     f"{shard.height}×{shard.width}×{shard.channels}, {shard.sample_bytes} bytes)", path, "schema")
                if shard.chunk_samples != self.chunk_samples:
                    raise ShardError(f"the shard's chunks hold {shard.chunk_samples} samples, the manifest's {field}.chunkSamples "
                                     f"says {self.chunk_samples}", path, f"{field}.chunkSamples")
                last = i == len(listed) - 1
                if shard.count > self.samples_per_shard or (not last and shard.count != self.samples_per_shard):
                    raise ShardError(f"the shard holds {shard.count} samples, the manifest's {field}.samplesPerShard says "
                                     f"{self.samples_per_shard} (every shard but the last holds exactly that, the last at most)",
                                     path, f"{field}.samplesPerShard")
                if shard.first_position != total:
                    raise ShardError(f"the shard's first position {shard.first_position} does not match its place in the split "
                                     f"({total})", path)
                total += shard.count
                shards.append(shard)
            if total != self.samples:
                raise ShardError(f"the manifest's {field}.samples says {self.samples}, its shards' headers hold {total}",
                                 self.manifest_path, f"{field}.samples")
            self._shards = shards
        return self._shards

    def chunks(self):
        """Every chunk of the split as (first position, count), shard by shard, chunk by chunk."""
        out = []
        for s, shard in enumerate(self.shards):
            base = s * self.samples_per_shard
            out += [(base + e[1], e[2]) for e in shard.entries]
        return out

    def chunk(self, s, c):
        key = (s, c)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        chunk = self.shards[s].read_chunk(c)
        self._cache[key] = chunk
        if len(self._cache) > self.cache_chunks:
            self._cache.popitem(last=False)
        return chunk

    def close(self):
        for shard in self._shards or []:
            shard.close()
