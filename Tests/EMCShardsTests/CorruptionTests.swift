import EMCCore
import EMCShards
import EMCTestSupport
import Testing

/// Opens a shard and decodes every chunk: what any reader that touches the whole file does.
func readEverything(_ path: String) throws {
    let reader = try ShardReader(path: path)
    let decoder = try ChunkDecoder()
    for k in reader.entries.indices { _ = try reader.readChunk(k, decoder: decoder) }
}

@Suite("Corruption, truncation and interrupted writes are always detected")
struct CorruptionTests {
    /// A small set with several chunks per shard, for damaging.
    static func makeSet(_ dir: TemporaryDirectory, codec: CodecSpec = .lz4) throws -> (path: String, bytes: [UInt8]) {
        try writeSet(Fixtures.images(count: 120), to: dir.path, codec: codec, chunkBytes: 192 * 16)
        let path = dir.file("train-00000.emcs")
        return (path, try ReadableFile.contents(of: path))
    }

    @Test("one flipped byte at 200 random offsets: verify and a reader both catch every one, naming shard and chunk",
          arguments: ["none", "lz4", "zstd-delta"])
    func byteFlips(codec: String) throws {
        let dir = TemporaryDirectory()
        let (path, clean) = try Self.makeSet(dir, codec: try CodecSpec(parsing: codec))
        let reader = try ShardReader(path: path)
        let seed: UInt64 = 2024
        let rng = CounterRNG(seed: seed, stream: .test)
        // Make sure every region is hit: header, each chunk, index and trailer, then random offsets.
        let indexOffset = reader.entries.last!.offset + reader.entries.last!.storedSize
        var offsets = [0, 13, 60, 63, reader.entries[1].offset, indexOffset, indexOffset + 8 + 21, clean.count - 32, clean.count - 12, clean.count - 1]
        while offsets.count < 200 { offsets.append(Int(rng.int(UInt64(offsets.count), below: UInt32(clean.count)))) }
        for offset in offsets {
            var damaged = clean
            damaged[offset] ^= UInt8(1 << (offset % 8)) | 0x01
            try AtomicFileWriter.write(damaged, to: path)
            let report = ShardSetVerifier.verify(directory: dir.path)
            #expect(!report.ok, "verify missed a flip at offset \(offset) (seed \(seed), codec \(codec))")
            #expect(report.problems.contains { $0.file == "train-00000.emcs" })
            do {
                try readEverything(path)
                Issue.record("reader missed a flip at offset \(offset) (seed \(seed), codec \(codec))")
            } catch let error as EMCError {
                #expect(error.file == path)
                if let chunk = reader.entries.firstIndex(where: { ($0.offset..<($0.offset + $0.storedSize)).contains(offset) }) {
                    // Inside a chunk: the error names that chunk and its samples.
                    #expect(error.place == .chunk(chunk, samples: reader.entries[chunk].samples), "offset \(offset): \(error)")
                    #expect(report.problems.contains { $0.chunk == chunk }, "verify should name chunk \(chunk)")
                }
            }
        }
        try AtomicFileWriter.write(clean, to: path)
        #expect(ShardSetVerifier.verify(directory: dir.path).ok)
    }

    @Test("trailer sizes with the top bit set (no file can hold them) are errors, not traps")
    func hugeTrailerValues() throws {
        let dir = TemporaryDirectory()
        let (path, clean) = try Self.makeSet(dir)
        for byte in [clean.count - 32 + 7, clean.count - 32 + 15] {  // the high bytes of indexOffset and indexSize
            var damaged = clean
            damaged[byte] |= 0x80
            try AtomicFileWriter.write(damaged, to: path)
            do { _ = try ShardReader(path: path); Issue.record("accepted a trailer value ≥ 2^63") } catch let e as EMCError {
                #expect(e.file == path && e.description.contains("impossible"), "\(e)")
            }
        }
    }

    @Test("a shard cut at 64 positions is always detected")
    func truncation() throws {
        let dir = TemporaryDirectory()
        let (path, clean) = try Self.makeSet(dir)
        let rng = CounterRNG(seed: 64, stream: .test)
        var cuts = [0, 1, 63, 64, clean.count - 1, clean.count - 32, clean.count - 33]
        while cuts.count < 64 { cuts.append(Int(rng.int(UInt64(cuts.count), below: UInt32(clean.count)))) }
        for cut in cuts {
            try AtomicFileWriter.write(Array(clean[..<cut]), to: path)
            #expect(throws: EMCError.self, "cut at \(cut)") { try readEverything(path) }
            #expect(!ShardSetVerifier.verify(directory: dir.path).ok, "verify missed a cut at \(cut)")
        }
    }

    @Test("an interrupted write leaves no file that verifies, and its partial bytes are not a shard")
    func interruptedWrite() throws {
        let dir = TemporaryDirectory()
        let schema = SampleSchema.image(height: 8, width: 8, channels: 3)
        let path = dir.file("train-00000.emcs")
        let writer = try ShardWriter(path: path, header: ShardHeader(schema: schema, sampleCount: 20, firstPosition: 0, chunkSamples: 10))
        let encoder = try ChunkEncoder(schema: schema, spec: .lz4)
        let samples = Fixtures.images(count: 10)
        let labels = samples.labels, indices = (0..<10).map { UInt64($0) }
        let chunk = try samples.data.withUnsafeBytes { d in try labels.withUnsafeBytes { l in try indices.withUnsafeBytes { i in
            try encoder.encode(data: d, labels: l, indices: i, count: 10) } } }
        try writer.append(stored: chunk.stored, entry: chunk.entry)
        // The process "dies" here: nothing under the final name, no manifest.
        #expect(!FileSystem.exists(path))
        #expect(!ShardSetVerifier.verify(directory: dir.path).ok)
        // Even the partial temporary bytes, if someone moved them into place, are rejected.
        let partial = try ReadableFile.contents(of: writer.file.temporaryPath)
        try AtomicFileWriter.write(partial, to: path)
        #expect(throws: EMCError.self) { _ = try ShardReader(path: path) }
        writer.discard()
    }

    @Test("a rerun after an interrupted conversion resumes and gives byte-identical output")
    func resume() throws {
        let samples = Fixtures.images(count: 400)
        let full = TemporaryDirectory(), resumed = TemporaryDirectory()
        try writeSet(samples, to: full.path, codec: .zstdDelta, chunkBytes: 1920, shardSamples: 100)

        struct Crash: Error {}
        var options = ShardSetOptions(codec: .zstdDelta)
        options.chunkBytes = 1920
        options.shardSamples = 100
        let classes = ClassInfo(count: 10, names: (0..<10).map { "c\($0)" })
        let first = try ShardSetWriter(directory: resumed.path, name: "fixture", schema: samples.schema, classes: classes,
                                       options: options, decoder: "test", sources: [])
        let order = first.order(split: "train", count: 400)
        // Dies while writing the third shard (positions 200..<300).
        #expect(throws: Crash.self) {
            try first.write(split: "train", count: 400) { positions, data, labels, indices in
                if positions.lowerBound >= 250 { throw Crash() }
                for (k, p) in positions.enumerated() {
                    let s = Int(order[p])
                    for b in 0..<192 { data[k * 192 + b] = samples.data[s * 192 + b] }
                    labels[k] = samples.labels[s]
                    indices[k] = UInt64(s)
                }
            }
        }
        #expect(!FileSystem.exists(resumed.file("dataset.json")))
        #expect(!FileSystem.exists(resumed.file("train-00002.emcs")))
        let second = try ShardSetWriter(directory: resumed.path, name: "fixture", schema: samples.schema, classes: classes,
                                        options: options, decoder: "test", sources: [])
        try second.write(split: "train", samples: samples)
        _ = try second.finish()
        #expect(second.reusedShards == 2)
        for name in try FileSystem.list(full.path) {
            #expect(try ReadableFile.contents(of: full.file(name)) == ReadableFile.contents(of: resumed.file(name)), "\(name)")
        }
        #expect(try FileSystem.list(full.path) == FileSystem.list(resumed.path))
    }

    @Test("a damaged or missing manifest, and a shard that disagrees with it, are clear errors")
    func manifestProblems() throws {
        let dir = TemporaryDirectory()
        _ = try Self.makeSet(dir)
        var json = try ReadableFile.contents(of: dir.file("dataset.json"))
        let text = String(decoding: json, as: UTF8.self).replacingOccurrences(of: "\"samples\" : 120", with: "\"samples\" : 121")
        json = Array(text.utf8)
        try AtomicFileWriter.write(json, to: dir.file("dataset.json"))
        #expect(throws: EMCError.self) { _ = try ShardSet(directory: dir.path).split("train") }
        #expect(!ShardSetVerifier.verify(directory: dir.path).ok)
        // Impossible numbers (a hand-edited manifest) are refused before anything is allocated by them.
        let negative = String(decoding: try ReadableFile.contents(of: dir.file("dataset.json")), as: UTF8.self)
            .replacingOccurrences(of: "\"samples\" : 121", with: "\"samples\" : -5")
        try AtomicFileWriter.write(Array(negative.utf8), to: dir.file("dataset.json"))
        do { _ = try ShardSet(directory: dir.path); Issue.record("accepted negative sample counts") } catch let e as EMCError {
            #expect(e.kind == .format)
            #expect(e.description.contains("impossible sizes"))
        }
        try AtomicFileWriter.write(Array("{ not json".utf8), to: dir.file("dataset.json"))
        #expect(throws: EMCError.self) { _ = try ShardSet(directory: dir.path) }
        FileSystem.remove(dir.file("dataset.json"))
        do { let e = try #require(#expect(throws: EMCError.self) { _ = try ShardSet(directory: dir.path) })
            #expect(e.kind == .missing)
            #expect(e.description.contains("rerun emc convert"))
        }
    }
}
