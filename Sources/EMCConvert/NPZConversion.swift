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
struct NPZSource: ConversionSource {
    let schema: SampleSchema
    let classes: ClassInfo
    let checks: [SourceCheck]
    let recordedOptions: [String: String]
    let splits: [SplitSource]

    init(_ request: ConvertRequest) throws {
        let def = request.dataset
        let options = def.npz ?? NPZ.Options()
        let folder = FileSystem.isDirectory(request.raw) ? request.raw : (request.raw as NSString).deletingLastPathComponent
        let all = FileSystem.isDirectory(request.raw) ? try FileSystem.list(request.raw).filter { $0.hasSuffix(".npz") } : [FileSystem.baseName(request.raw)]
        let prefixes = def.splits.isEmpty ? ["train": [""]] : def.splits
        var splitFiles: [(String, [String])] = []
        for split in splitOrder(prefixes.keys) {
            let patterns = prefixes[split]!
            let files = all.filter { f in patterns.contains { f.hasPrefix($0) } }.sorted().map { FileSystem.join(folder, $0) }
            guard !files.isEmpty else { throw EMCError(.missing, "no .npz files for split '\(split)' (names starting with \(patterns))", file: request.raw) }
            splitFiles.append((split, files))
        }
        // Pass 1: counts, shape and classes from the headers and label arrays (small).
        var counts: [String: [Int]] = [:]
        var schema: SampleSchema?
        var seenLabels = Set<UInt32>()
        for (split, files) in splitFiles {
            counts[split] = try files.map { path in
                let samples = try NPZ.load(path: path, options: options)
                if let s = schema, s != samples.schema {
                    throw EMCError(.format, "images are \(samples.schema), earlier files hold \(s)", file: path)
                }
                schema = samples.schema
                seenLabels.formUnion(samples.labels)
                return samples.count
            }
        }
        guard let schema else { throw EMCError(.missing, "no samples", file: request.raw) }
        self.schema = schema
        classes = try NPZSource.classes(def, request: request, seen: seenLabels)
        let total = counts.values.flatMap { $0 }.reduce(0, +)
        let global = total * schema.sampleBytes <= request.memoryBudget
        checks = try splitFiles.flatMap { $0.1 }.map { SourceCheck(file: $0, bytes: FileSystem.fileSize($0) ?? 0, md5: try MD5.hex(file: $0), status: .unknown) }
        recordedOptions = ["order": global ? "global shuffle" : "files in a seeded order, shuffled within each file"]
        let seed = request.options.seed
        splits = try splitFiles.map { split, files in
            if global {
                var merged: LabeledSamples?
                for path in files {
                    let s = try NPZ.load(path: path, options: options)
                    if merged == nil { merged = s } else { merged!.data += s.data; merged!.labels += s.labels }
                }
                return .inMemory(split, merged!)
            }
            return .streamed(NPZSource.streamed(split: split, files: files, sizes: counts[split]!, schema: schema, options: options, seed: seed))
        }
    }

    /// The definition's classes, the explicit `--classes`, or one more than the largest label, which must then be plausible:
    /// one stray label (16,777,215) would otherwise make millions of classes.
    static func classes(_ def: DatasetDefinition, request: ConvertRequest, seen: Set<UInt32>) throws -> ClassInfo {
        let maxLabel = Int(seen.max() ?? 0)
        let count: Int
        if !def.classes.isEmpty {
            count = def.classes.count
        } else if let explicit = request.classes {
            count = explicit
        } else {
            count = maxLabel + 1
            guard count <= 65_536, count <= 10 * max(1, seen.count) else {
                throw EMCError(.format, "the labels run up to \(maxLabel) but only \(seen.count) distinct values occur", file: request.raw,
                               remedy: .giveClassCount(count))
            }
        }
        guard maxLabel < count else {
            throw EMCError(.format, "label \(maxLabel) exceeds the \(count) classes \(def.classes.isEmpty ? "given" : "the definition names")", file: request.raw)
        }
        return ClassInfo(count: count, names: def.classes.isEmpty ? (0..<count).map { "class \($0)" } : def.classes)
    }

    /// A split too large for memory: files in a seeded order, each shuffled within; a prefix is then a uniform random
    /// subset when the files themselves are i.i.d. batches (as sampled sets are), and the manifest says which order was used.
    static func streamed(split: String, files: [String], sizes: [Int], schema: SampleSchema, options: NPZ.Options, seed: UInt64) -> StreamedSplit {
        let fileOrder = CounterRNG(seed: seed, stream: .shuffle).derived(UInt64(CRC32C.checksum(split))).permutation(count: files.count).map(Int.init)
        var starts: [Int] = [], offsets: [Int] = []  // in visiting order: first position and global index base
        var position = 0
        var base = [Int](repeating: 0, count: files.count)
        for f in 1..<max(1, files.count) { base[f] = base[f - 1] + sizes[f - 1] }
        for f in fileOrder { starts.append(position); offsets.append(base[f]); position += sizes[f] }
        let cache = FileCache(files: files, options: options, seed: seed)
        let sb = schema.sampleBytes
        return StreamedSplit(name: split, count: position, shuffled: true, fill: { [starts, offsets] _, positions, data, labels, indices in
            for (k, p) in positions.enumerated() {
                let slot = (starts.lastIndex { $0 <= p })!
                let (samples, order) = try cache.get(fileOrder[slot])
                let i = Int(order[p - starts[slot]])
                samples.data.withUnsafeBytes { (data.baseAddress! + k * sb).copyMemory(from: $0.baseAddress! + i * sb, byteCount: sb) }
                labels[k] = samples.labels[i].littleEndian
                indices[k] = UInt64(offsets[slot] + i).littleEndian
            }
        }, statistics: { cache.statistics })
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
