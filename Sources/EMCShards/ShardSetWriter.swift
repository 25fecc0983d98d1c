import EMCCore
import Foundation

/// How a shard set is laid out and compressed.
public struct ShardSetOptions: Sendable {
    /// nil: chosen from the data (`CodecSpec.automatic`).
    public var codec: CodecSpec?
    public var seed: UInt64 = 0
    /// Write samples in a seeded random order (default) or in source order.
    public var shuffle = true
    /// Target raw bytes per chunk; chunks hold whole samples (at least one).
    public var chunkBytes = 1 << 20
    /// Target raw bytes per shard file; shards hold whole chunks.
    public var shardBytes = 256 << 20
    /// Overrides `shardBytes` with an exact sample count per shard (rounded up to whole chunks).
    public var shardSamples: Int?
    public var threads = EMCEnvironment.cpuCount

    public init(codec: CodecSpec? = nil, seed: UInt64 = 0, shuffle: Bool = true) {
        self.codec = codec
        self.seed = seed
        self.shuffle = shuffle
    }

    /// Samples per chunk for a schema.
    public func chunkSamples(for schema: SampleSchema) -> Int { max(1, chunkBytes / schema.sampleBytes) }

    /// Samples per shard for a schema: a whole number of chunks.
    public func samplesPerShard(for schema: SampleSchema) -> Int {
        let chunk = chunkSamples(for: schema)
        let wanted = shardSamples ?? max(1, shardBytes / schema.sampleBytes)
        return max(1, (wanted + chunk - 1) / chunk) * chunk
    }
}

/// Writes a shard set: one `write(split:)` per split, then `finish()` writes `dataset.json`.
///
/// Resumable: every finished shard is recorded in a journal (`.emc-journal.json`) under a key made
/// of everything that determines the output (sources, options, schema, tool version). A rerun with the
/// same key keeps each recorded shard whose file still has its recorded CRC32C, and writes the rest.
/// Output is a pure function of the inputs and options, so a resumed set is byte-identical to an
/// uninterrupted one. The manifest is written last: a folder without it is not a shard set.
public final class ShardSetWriter {
    public let directory: String
    public let name: String
    public let schema: SampleSchema
    public let classes: ClassInfo
    public let options: ShardSetOptions
    public private(set) var codec: CodecSpec?
    private let decoder: String
    private let sources: [SourceFile]
    private let extraOptions: [String: String]
    private var splits: [String: SplitManifest] = [:]
    private var statistics: ChannelStatistics?
    private var journal: Journal
    public private(set) var reusedShards = 0

    struct Journal: Codable {
        var key: String
        var shards: [String: String]
    }

    public static let journalName = ".emc-journal.json"

    /// Whether `names` (a folder's files) are what a writer stopped before it finished leaves behind: its journal, shards
    /// and temporaries, no manifest. A rerun resumes such a folder (its finished shards reused by the journal's key).
    public static func isUnfinished(_ names: [String]) -> Bool {
        names.contains(journalName) && !names.contains(DatasetManifest.fileName)
            && names.allSatisfy { $0 == journalName || $0.hasSuffix(".emcs") || $0.contains(".tmp-") }
    }

    public init(directory: String, name: String, schema: SampleSchema, classes: ClassInfo, options: ShardSetOptions,
                decoder: String, sources: [SourceFile], extraOptions: [String: String] = [:]) throws {
        try schema.validate()
        self.directory = directory
        self.name = name
        self.schema = schema
        self.classes = classes
        self.options = options
        self.codec = options.codec
        self.decoder = decoder
        self.sources = sources
        self.extraOptions = extraOptions
        try FileSystem.createDirectory(directory)
        AtomicFileWriter.removeAbandonedTemporaries(in: directory)
        let key = ShardSetWriter.runKey(name: name, schema: schema, classes: classes, options: options, decoder: decoder,
                                        sources: sources, extra: extraOptions)
        let journalPath = FileSystem.join(directory, ShardSetWriter.journalName)
        if let bytes = try? ReadableFile.contents(of: journalPath),
           let old = try? JSONDecoder().decode(Journal.self, from: Data(bytes)), old.key == key {
            journal = old
        } else {
            journal = Journal(key: key, shards: [:])
        }
    }

    /// Identifies a conversion: equal keys give byte-identical output.
    static func runKey(name: String, schema: SampleSchema, classes: ClassInfo, options: ShardSetOptions, decoder: String,
                       sources: [SourceFile], extra: [String: String]) -> String {
        var text = "emc \(EMCEnvironment.version)\n\(name)\n\(decoder)\n\(schema)\n\(classes.count)\n"
        text += "\(options.codec?.description ?? "auto") \(options.seed) \(options.shuffle) \(options.chunkBytes) \(options.shardBytes) \(options.shardSamples ?? 0)\n"
        for s in sources { text += "\(s.file) \(s.bytes) \(s.md5)\n" }
        for (k, v) in extra.sorted(by: { $0.key < $1.key }) { text += "\(k)=\(v)\n" }
        return SHA256.hex(text)
    }

    public var key: String { journal.key }

    /// The order samples are written in: position p holds source sample `order[p]`.
    public func order(split: String, count: Int) -> [UInt32] {
        guard options.shuffle else { return (0..<count).map { UInt32($0) } }
        let rng = CounterRNG(seed: options.seed, stream: .shuffle).derived(UInt64(CRC32C.checksum(split)))
        return rng.permutation(count: count)
    }

    /// Writes one split from samples in memory. The train split's statistics go into the manifest.
    public func write(split: String, samples: LabeledSamples, progress: ProgressReporter? = nil) throws {
        guard samples.schema == schema else {
            throw EMCError(.invalidArgument, "split \(split) has samples of shape \(samples.schema), the set has \(schema)")
        }
        for (i, label) in samples.labels.enumerated() where Int(label) >= classes.count {
            throw EMCError(.format, "label \(label) is out of range for \(classes.count) classes", place: .sample(i))
        }
        if codec == nil {
            let n = min(samples.data.count, 1 << 20)
            codec = samples.data.withUnsafeBytes { CodecSpec.automatic(for: schema, sample: UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
        if split == "train" || statistics == nil && splits.isEmpty { statistics = .of(samples) }
        let order = self.order(split: split, count: samples.count)
        let sb = schema.sampleBytes
        try write(split: split, count: samples.count, progress: progress) { positions, data, labels, indices in
            samples.data.withUnsafeBytes { src in
                for (k, p) in positions.enumerated() {
                    let s = Int(order[p])
                    (data.baseAddress! + k * sb).copyMemory(from: src.baseAddress! + s * sb, byteCount: sb)
                    labels[k] = samples.labels[s].littleEndian
                    indices[k] = UInt64(s).littleEndian
                }
            }
        }
    }

    /// Writes one split of `count` samples; `fill(positions, data, labels, indices)` supplies the samples
    /// at those split positions (it may be called from several threads at once, for different positions).
    public func write(split: String, count: Int, progress: ProgressReporter? = nil, shuffled: Bool? = nil,
                      fill: @escaping @Sendable (Range<Int>, UnsafeMutableRawBufferPointer, UnsafeMutableBufferPointer<UInt32>,
                                                 UnsafeMutableBufferPointer<UInt64>) throws -> Void) throws {
        guard DatasetManifest.isSplitName(split) else {
            throw EMCError(.invalidArgument, "split name '\(split)' must be lowercase letters, digits or _")
        }
        guard let codec else { throw EMCError(.invalidArgument, "no codec chosen for split \(split)") }
        let chunkSamples = options.chunkSamples(for: schema)
        let perShard = options.samplesPerShard(for: schema)
        let shardCount = max(1, (count + perShard - 1) / perShard)
        var shards: [ShardFileInfo] = []
        let schema = self.schema
        let pool = ObjectPool { try ChunkEncoder(schema: schema, spec: codec) }
        for s in 0..<shardCount {
            let first = s * perShard
            let n = min(perShard, count - first)
            let fileName = String(format: "%@-%05d.emcs", split, s)
            let path = FileSystem.join(directory, fileName)
            if let info = try reusable(fileName: fileName, path: path, samples: n) {
                shards.append(info)
                reusedShards += 1
                progress?.advance(by: n)
                continue
            }
            let writer = try ShardWriter(path: path, header: ShardHeader(schema: schema, sampleCount: n, firstPosition: first, chunkSamples: chunkSamples))
            let chunks = n == 0 ? 0 : (n + chunkSamples - 1) / chunkSamples
            // Encode a window of chunks in parallel, then append them in order.
            let window = max(1, options.threads * 4)
            var k = 0
            do {
                while k < chunks {
                    let batch = min(window, chunks - k)
                    let results = ResultSlots<([UInt8], ChunkEntry)>(batch)
                    let base = k
                    try parallelFor(batch, threads: options.threads) { j in
                        let c = base + j
                        let start = first + c * chunkSamples
                        let m = min(chunkSamples, first + n - start)
                        var data = [UInt8](repeating: 0, count: m * schema.sampleBytes)
                        var labels = [UInt32](repeating: 0, count: m)
                        var indices = [UInt64](repeating: 0, count: m)
                        try data.withUnsafeMutableBytes { d in
                            try labels.withUnsafeMutableBufferPointer { l in
                                try indices.withUnsafeMutableBufferPointer { i in try fill(start..<(start + m), d, l, i) }
                            }
                        }
                        let encoded = try pool.with { encoder in
                            try data.withUnsafeBytes { d in
                                try labels.withUnsafeBytes { l in try indices.withUnsafeBytes { i in try encoder.encode(data: d, labels: l, indices: i, count: m) } }
                            }
                        }
                        results.set(j, (encoded.stored, encoded.entry))
                    }
                    for j in 0..<batch {
                        let (stored, entry) = results.get(j)!
                        try writer.append(stored: stored, entry: entry)
                        progress?.advance(by: entry.count)
                    }
                    k += batch
                }
                let info = try writer.finish()
                shards.append(info)
                journal.shards[fileName] = info.crc32c
                try saveJournal()
            } catch {
                writer.discard()
                throw error
            }
        }
        splits[split] = SplitManifest(samples: count, samplesPerShard: perShard, chunkSamples: chunkSamples,
                                      shuffled: shuffled ?? options.shuffle, shards: shards)
    }

    /// Sets the statistics recorded in the manifest (when samples were not passed in memory).
    public func setStatistics(_ value: ChannelStatistics) { statistics = value }

    /// Sets the codec when it was left automatic and samples are not passed in memory.
    public func setCodec(_ value: CodecSpec) { if codec == nil { codec = value } }

    /// A shard finished by an earlier run with the same key, still intact.
    private func reusable(fileName: String, path: String, samples: Int) throws -> ShardFileInfo? {
        guard let crc = journal.shards[fileName], FileSystem.exists(path),
              let reader = try? ShardReader(path: path), reader.sampleCount == samples,
              let actual = try? reader.wholeFileCRC(), hex32(actual) == crc else { return nil }
        return ShardFileInfo(file: fileName, samples: samples, bytes: reader.fileSize, crc32c: crc)
    }

    private func saveJournal() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try AtomicFileWriter.write(Array(try encoder.encode(journal)), to: FileSystem.join(directory, ShardSetWriter.journalName))
    }

    /// Writes `dataset.json` (last, atomically) and removes the journal.
    public func finish(skipped: [String] = []) throws -> DatasetManifest {
        let stats = statistics ?? ChannelStatistics(mean: [], std: [])
        var extra = extraOptions
        extra["chunkBytes"] = "\(options.chunkBytes)"
        extra["shardBytes"] = "\(options.shardBytes)"
        if let s = options.shardSamples { extra["shardSamples"] = "\(s)" }
        var provenance = Provenance(decoder: decoder, shuffleSeed: options.seed, codec: codec?.description ?? "none",
                                    options: extra, sources: sources, skipped: skipped)
        provenance.runKey = journal.key
        let manifest = DatasetManifest(name: name, schema: schema, classes: classes, splits: splits, statistics: stats, provenance: provenance)
        try manifest.write(directory: directory)
        FileSystem.remove(FileSystem.join(directory, ShardSetWriter.journalName))
        return manifest
    }
}
