import EMCCore
import EMCShards
import EMCTestSupport
import Testing

/// Reads every sample of a split back in position order.
func readAll(_ dir: String, split: String = "train") throws -> (data: [UInt8], labels: [UInt32], indices: [UInt64]) {
    let reader = try ShardSet(directory: dir).split(split)
    var data: [UInt8] = [], labels: [UInt32] = [], indices: [UInt64] = []
    for p in 0..<reader.count {
        let s = try reader.sample(p)
        data += s.data
        labels.append(s.label)
        indices.append(s.originalIndex)
    }
    return (data, labels, indices)
}

@Suite("Shard format: spec, round trips, determinism")
struct ShardFormatTests {
    /// Builds a shard byte for byte from docs/shard-format.md, without the writer.
    static func handBuiltShard(samples: [[UInt8]], labels: [UInt32], original: [UInt64]) -> [UInt8] {
        func le(_ v: UInt64, _ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) } }
        var header = Array("EMCSHARD".utf8) + le(1, 2) + le(64, 2) + [0, 0] + le(0, 2)
        header += le(2, 4) + le(2, 4) + le(1, 4) + le(4, 4)           // 2×2×1 images, 4 bytes each
        header += le(UInt64(samples.count), 8) + le(0, 8) + le(2, 4)   // count, first position, 2 samples per chunk
        header += le(0, 4) + le(0, 4)
        header += le(UInt64(CRC32C.checksum(header)), 4)
        var file = header
        var index = le(0, 4) + le(48, 4)
        var chunks = 0
        for start in stride(from: 0, to: samples.count, by: 2) {
            let end = min(samples.count, start + 2)
            let n = end - start
            let data = samples[start..<end].flatMap { $0 }
            let labelBytes = labels[start..<end].flatMap { le(UInt64($0), 4) }
            let indexBytes = original[start..<end].flatMap { le($0, 8) }
            let stored = data + labelBytes + indexBytes
            index += le(UInt64(file.count), 8) + le(UInt64(start), 8) + le(UInt64(n), 4) + [0, 0] + le(0, 2)
            index += le(UInt64(data.count), 4) + le(UInt64(labelBytes.count), 4) + le(UInt64(indexBytes.count), 4)
            index += le(UInt64(n * 16), 4) + le(UInt64(CRC32C.checksum(stored)), 4) + le(0, 4)
            file += stored
            chunks += 1
        }
        index.replaceSubrange(0..<4, with: le(UInt64(chunks), 4))
        let indexOffset = file.count
        file += index
        file += le(UInt64(indexOffset), 8) + le(UInt64(index.count), 8) + le(UInt64(CRC32C.checksum(index)), 4) + le(UInt64(chunks), 4)
        file += Array("EMCSEND1".utf8)
        return file
    }

    @Test("a shard built byte for byte from the spec reads correctly, and the writer produces the same bytes")
    func handBuilt() throws {
        let dir = TemporaryDirectory()
        let samples: [[UInt8]] = [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]]
        let labels: [UInt32] = [7, 0, 3]
        let original: [UInt64] = [2, 0, 1]
        let bytes = Self.handBuiltShard(samples: samples, labels: labels, original: original)
        try AtomicFileWriter.write(bytes, to: dir.file("hand.emcs"))
        let reader = try ShardReader(path: dir.file("hand.emcs"))
        #expect(reader.sampleCount == 3)
        #expect(reader.schema == .image(height: 2, width: 2, channels: 1))
        #expect(reader.entries.count == 2)
        let decoder = try ChunkDecoder()
        let c0 = try reader.readChunk(0, decoder: decoder), c1 = try reader.readChunk(1, decoder: decoder)
        #expect(Array(c0.data) + Array(c1.data) == samples.flatMap { $0 })
        #expect(c0.labels + c1.labels == labels)
        #expect(c0.originalIndices + c1.originalIndices == original)

        // The writer, given the same chunks with codec none, must produce identical bytes.
        let writer = try ShardWriter(path: dir.file("written.emcs"),
                                     header: ShardHeader(schema: .image(height: 2, width: 2, channels: 1), sampleCount: 3, firstPosition: 0, chunkSamples: 2))
        let encoder = try ChunkEncoder(schema: .image(height: 2, width: 2, channels: 1), spec: .none)
        for range in [0..<2, 2..<3] {
            let data = samples[range].flatMap { $0 }
            let l = Array(labels[range]), o = Array(original[range])
            let chunk = try data.withUnsafeBytes { d in try l.withUnsafeBytes { lb in try o.withUnsafeBytes { ob in
                try encoder.encode(data: d, labels: lb, indices: ob, count: range.count) } } }
            try writer.append(stored: chunk.stored, entry: chunk.entry)
        }
        let info = try writer.finish()
        #expect(try ReadableFile.contents(of: dir.file("written.emcs")) == bytes)
        #expect(info.crc32c == hex32(CRC32C.checksum(bytes)))
    }

    @Test("round trip for every codec, images and odd sizes: 1 sample, a chunk boundary ± 1, several shards",
          arguments: ["none", "lz4", "lz4-delta", "zstd", "zstd-delta", "zstd-delta:5"])
    func roundTrip(codec: String) throws {
        let spec = try CodecSpec(parsing: codec)
        let sampleBytes = 8 * 8 * 3
        let chunkSamples = 10
        for count in [1, chunkSamples - 1, chunkSamples, chunkSamples + 1, 57] {
            let dir = TemporaryDirectory()
            let samples = Fixtures.images(count: count, seed: UInt64(count))
            let manifest = try writeSet(samples, to: dir.path, codec: spec, chunkBytes: chunkSamples * sampleBytes, shardSamples: 20)
            #expect(manifest.splits["train"]!.shards.count == (count + 19) / 20)
            let back = try readAll(dir.path)
            // Position p holds source sample indices[p]; undo the shuffle and compare.
            #expect(Set(back.indices).count == count)
            for p in 0..<count {
                let s = Int(back.indices[p])
                #expect(Array(back.data[(p * sampleBytes)..<((p + 1) * sampleBytes)]) == Array(samples.sample(s)), "codec \(codec), count \(count), position \(p)")
                #expect(back.labels[p] == samples.labels[s])
            }
            #expect(ShardSetVerifier.verify(directory: dir.path).ok)
        }
    }

    @Test("tabular float32 samples round trip bit-exactly", arguments: ["none", "lz4", "zstd"])
    func tabular(codec: String) throws {
        let dir = TemporaryDirectory()
        let samples = Fixtures.tabular(count: 333, features: 7)
        try writeSet(samples, to: dir.path, codec: try CodecSpec(parsing: codec), chunkBytes: 1000, shuffle: false, classes: 3)
        let back = try readAll(dir.path)
        #expect(back.data == samples.data)
        #expect(back.labels == samples.labels)
        #expect(back.indices == (0..<333).map { UInt64($0) })
    }

    @Test("compressible data is compressed; incompressible chunks are stored raw")
    func storeRawWhenUseless() throws {
        let dir = TemporaryDirectory()
        let rng = CounterRNG(seed: 9, stream: .test)
        let noise = LabeledSamples(schema: .image(height: 16, width: 16, channels: 1),
                                   data: (0..<(100 * 256)).map { UInt8(truncatingIfNeeded: rng.word(UInt64($0))) },
                                   labels: [UInt32](repeating: 1, count: 100))
        try writeSet(noise, to: dir.path, codec: .lz4, chunkBytes: 2560)
        let reader = try ShardReader(path: dir.file("train-00000.emcs"))
        #expect(reader.entries.allSatisfy { $0.codec == .none })
        let smooth = TemporaryDirectory()
        try writeSet(Fixtures.images(count: 100), to: smooth.path, codec: .zstdDelta, chunkBytes: 1920)
        let r2 = try ShardReader(path: smooth.file("train-00000.emcs"))
        #expect(r2.entries.allSatisfy { $0.codec == .zstd && $0.filter == .delta })
        #expect(r2.entries.reduce(0) { $0 + $1.storedSize } * 10 < r2.entries.reduce(0) { $0 + $1.rawSize } * 9)
    }

    @Test("the same seed gives byte-identical shard sets, whatever the thread count; another seed does not")
    func determinism() throws {
        let samples = Fixtures.images(count: 500)
        let a = TemporaryDirectory(), b = TemporaryDirectory(), c = TemporaryDirectory()
        try writeSet(samples, to: a.path, codec: .zstdDelta, chunkBytes: 3000, shardSamples: 200, seed: 5, threads: 1)
        try writeSet(samples, to: b.path, codec: .zstdDelta, chunkBytes: 3000, shardSamples: 200, seed: 5, threads: 2)
        try writeSet(samples, to: c.path, codec: .zstdDelta, chunkBytes: 3000, shardSamples: 200, seed: 6, threads: 2)
        for name in try FileSystem.list(a.path) {
            #expect(try ReadableFile.contents(of: a.file(name)) == ReadableFile.contents(of: b.file(name)), "\(name)")
        }
        #expect(try ReadableFile.contents(of: a.file("train-00000.emcs")) != ReadableFile.contents(of: c.file("train-00000.emcs")))
    }

    @Test("a shuffled split is a permutation, and any prefix is spread over the classes")
    func shuffledPrefix() throws {
        let dir = TemporaryDirectory()
        // Sorted by label in the source: a prefix in source order would hold one class only.
        let n = 1000
        var samples = Fixtures.images(count: n, height: 2, width: 2, channels: 1)
        samples.labels = (0..<n).map { UInt32($0 * 10 / n) }
        try writeSet(samples, to: dir.path, codec: .lz4, seed: 3)
        let back = try readAll(dir.path)
        #expect(Set(back.indices).count == n)
        #expect(Set(back.labels.prefix(100)).count == 10)
    }

    @Test("random-order reads with the chunk cache decode each chunk once")
    func randomAccess() throws {
        let dir = TemporaryDirectory()
        let samples = Fixtures.images(count: 300)
        try writeSet(samples, to: dir.path, codec: .lz4, chunkBytes: 192 * 10, shuffle: false)
        let reader = try ShardSet(directory: dir.path).split("train", cacheChunks: 64)
        let order = CounterRNG(seed: 1, stream: .test).permutation(count: 300)
        for p in order {
            let s = try reader.sample(Int(p))
            #expect(s.data == Array(samples.sample(Int(p))))
        }
        #expect(reader.chunksDecoded == 30)
        #expect(throws: EMCError.self) { _ = try reader.sample(300) }
        #expect(throws: EMCError.self) { _ = try ShardSet(directory: dir.path).split("validation") }
    }
}
