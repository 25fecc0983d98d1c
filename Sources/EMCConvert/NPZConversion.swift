import EMCCore
import EMCFormats
import EMCShards
import Foundation

/// Folders of `.npz` batches into shards, streaming: at most a few files are decoded at a time, whatever
/// the set's size (ImageNet-20MS is 20 million 128×128 images in many files).
///
/// Order: when the whole set fits the memory budget (a quarter of RAM) it is shuffled globally like every
/// other decoder's. Otherwise files are visited in a seeded order and shuffled within each file; a prefix is then
/// a uniform random subset when the files themselves are i.i.d. batches (as sampled sets are), and the
/// manifest records which order was used.
enum NPZConversion {
    static func run(_ request: ConvertRequest, options: NPZ.Options, quiet: Bool) throws -> ConvertResult {
        let start = Clock.now()
        let def = request.dataset
        let folder = FileSystem.isDirectory(request.raw) ? request.raw : (request.raw as NSString).deletingLastPathComponent
        let all = FileSystem.isDirectory(request.raw) ? try FileSystem.list(request.raw).filter { $0.hasSuffix(".npz") } : [FileSystem.baseName(request.raw)]
        let prefixes = def.splits.isEmpty ? ["train": [""]] : def.splits
        var splitFiles: [(String, [String])] = []
        for (split, patterns) in prefixes.sorted(by: { ($0.key == "train" ? 0 : 1, $0.key) < ($1.key == "train" ? 0 : 1, $1.key) }) {
            let files = all.filter { f in patterns.contains { f.hasPrefix($0) } }.sorted().map { FileSystem.join(folder, $0) }
            guard !files.isEmpty else { throw EMCError(.missing, "no .npz files for split '\(split)' (names starting with \(patterns))", file: request.raw) }
            splitFiles.append((split, files))
        }
        // Pass 1: counts, shape and classes from the headers and label arrays (small).
        var counts: [String: [Int]] = [:]
        var schema: SampleSchema?
        var maxLabel: UInt32 = 0
        for (split, files) in splitFiles {
            counts[split] = try files.map { path in
                let samples = try NPZ.load(path: path, options: options)
                if let s = schema, s != samples.schema {
                    throw EMCError(.format, "images are \(samples.schema), earlier files hold \(s)", file: path)
                }
                schema = samples.schema
                maxLabel = max(maxLabel, samples.labels.max() ?? 0)
                return samples.count
            }
        }
        guard let schema else { throw EMCError(.missing, "no samples", file: request.raw) }
        let classCount = def.classes.isEmpty ? Int(maxLabel) + 1 : def.classes.count
        guard Int(maxLabel) < classCount else { throw EMCError(.format, "label \(maxLabel) exceeds the \(classCount) classes the definition names") }
        var opts = request.options
        if opts.codec == nil { opts.codec = .zstdDelta }
        let total = counts.values.flatMap { $0 }.reduce(0, +)
        let global = total * schema.sampleBytes <= request.memoryBudget
        let sources = try splitFiles.flatMap { $0.1 }.map { SourceFile(file: FileSystem.baseName($0), bytes: FileSystem.fileSize($0) ?? 0, md5: try MD5.hex(file: $0)) }
        let writer = try ShardSetWriter(directory: request.out, name: def.name, schema: schema,
                                        classes: ClassInfo(count: classCount, names: def.classes.isEmpty ? (0..<classCount).map { "class \($0)" } : def.classes),
                                        options: opts, decoder: "npz", sources: sources,
                                        extraOptions: ["order": global ? "global shuffle" : "files in a seeded order, shuffled within each file"])
        if let done = try Converter.finishedEarlier(request, writer: writer) {
            return Converter.summary(done, request: request, checks: [], warnings: [], reused: 0, already: true, seconds: Clock.now() - start)
        }
        let progress = ProgressReporter("convert \(def.name)", total: total, unit: "samples", quiet: quiet)
        for (split, files) in splitFiles {
            if global {
                var merged: LabeledSamples?
                for path in files {
                    let s = try NPZ.load(path: path, options: options)
                    if merged == nil { merged = s } else { merged!.data += s.data; merged!.labels += s.labels }
                }
                try writer.write(split: split, samples: merged!, progress: progress)
                continue
            }
            let sizes = counts[split]!
            let fileOrder = CounterRNG(seed: opts.seed, stream: .shuffle).derived(UInt64(CRC32C.checksum(split))).permutation(count: files.count).map(Int.init)
            var firstPositions: [Int] = [], indexBases: [Int] = []  // in visiting order: first position and global index base
            var position = 0
            var base = [Int](repeating: 0, count: files.count)
            for f in 1..<max(1, files.count) { base[f] = base[f - 1] + sizes[f - 1] }
            for f in fileOrder { firstPositions.append(position); indexBases.append(base[f]); position += sizes[f] }
            let cache = FileCache(files: files, options: options, seed: opts.seed)
            let starts = firstPositions, offsets = indexBases
            let sb = schema.sampleBytes
            try writer.write(split: split, count: position, progress: progress, shuffled: true) { positions, data, labels, indices in
                for (k, p) in positions.enumerated() {
                    let slot = (starts.lastIndex { $0 <= p })!
                    let f = fileOrder[slot]
                    let (samples, order) = try cache.get(f)
                    let i = Int(order[p - starts[slot]])
                    samples.data.withUnsafeBytes { (data.baseAddress! + k * sb).copyMemory(from: $0.baseAddress! + i * sb, byteCount: sb) }
                    labels[k] = samples.labels[i].littleEndian
                    indices[k] = UInt64(offsets[slot] + i).littleEndian
                }
            }
            if split == "train" { writer.setStatistics(cache.statistics) }
        }
        let manifest = try writer.finish()
        progress.finish()
        return Converter.summary(manifest, request: request, checks: [], warnings: [], reused: writer.reusedShards, already: false, seconds: Clock.now() - start)
    }
}

/// The last few decoded files, shared by the writer's threads (memory: a few files' worth).
final class FileCache: @unchecked Sendable {
    let files: [String]
    let options: NPZ.Options
    let seed: UInt64
    private let lock = NSLock()
    private var entries: [(Int, LabeledSamples, [UInt32])] = []
    private var histogram: ChannelHistogram?
    private var seen = Set<Int>()

    init(files: [String], options: NPZ.Options, seed: UInt64) {
        self.files = files
        self.options = options
        self.seed = seed
    }

    func get(_ f: Int) throws -> (LabeledSamples, [UInt32]) {
        lock.lock(); defer { lock.unlock() }
        if let hit = entries.first(where: { $0.0 == f }) { return (hit.1, hit.2) }
        let samples = try NPZ.load(path: files[f], options: options)
        let order = CounterRNG(seed: seed, stream: .shuffle).derived(UInt64(1 << 40 | f)).permutation(count: samples.count)
        if !seen.contains(f) {
            seen.insert(f)
            if histogram == nil { histogram = ChannelHistogram(channels: samples.schema.channels) }
            histogram!.add(samples.data)
        }
        entries.append((f, samples, order))
        if entries.count > 3 { entries.removeFirst() }
        return (samples, order)
    }

    /// Statistics of every file decoded so far (each file once).
    var statistics: ChannelStatistics {
        lock.lock(); defer { lock.unlock() }
        return histogram?.statistics ?? ChannelStatistics(mean: [], std: [])
    }
}
