import CPipelineKernels
import EMCCore
import EMCShards
import EMCVariants
import Foundation

/// How samples become floats for the trainer.
public enum Normalization: String, Sendable, CaseIterable, Codable {
    /// Raw values (0...255 for images).
    case none
    /// Images divided by 255.
    case unit
    /// (value − mean) / std with the train split's per-channel (per-feature) statistics from the manifest.
    case standard
}

public struct SubsetOptions: Sendable {
    public var seed: UInt64 = 0
    public var normalize: Normalization = .standard
    /// Decoded subsets up to this size are cached in memory; larger ones stream from the shards.
    public var memoryBudget = EMCEnvironment.physicalMemory / 4
    /// Threads that decode (the cache fill, and prefetching).
    public var threads = 1
    /// Streaming: chunks shuffled together in one window.
    public var windowChunks = 16
    /// Batches prefetched ahead of the trainer.
    public var prefetchBatches = 4

    public init(seed: UInt64 = 0) { self.seed = seed }
}

/// The first n samples of a split, in a seed-dependent order of whole chunks, as training data.
///
/// The shard set was shuffled at write, so the chunks are random samples; permuting whole chunks by the
/// seed gives each seed its own subset while keeping reads contiguous, and the n-subset is a prefix of the
/// m-subset for m > n (nested subsets make the EMC search's question monotone). Subsets that fit the memory
/// budget are decoded once (in parallel) and cached as bytes; larger ones stream, each epoch visiting
/// windows of chunks in a shuffled order, with batches prepared ahead on worker threads.
public final class Subset: TrainingData, @unchecked Sendable {
    public let view: DatasetView
    public let split: String
    public let count: Int
    public let shape: FeatureShape
    public var source: String { view.directory }
    public let classes: Int
    public let options: SubsetOptions
    /// Subset position → split position.
    public let positions: [Int]
    /// Whether the decoded subset is held in memory.
    public let cached: Bool
    private var bytes: [UInt8] = []
    private var labels: [Int32] = []
    private let converter: FloatConverter
    private let views: ObjectPool<SplitView>
    /// Streaming: decoded chunks shared by the loading threads (nil when cached).
    private var shared: SharedChunks?
    /// The split's labels as the chain overlays them (nil: the shards' own).
    private let overlayLabels: [UInt32]?
    private let samplesPerShard: Int
    private let chunkSamples: Int
    private var prefetcher: Prefetcher?
    private var slots: Prefetcher.Slots?
    /// Chunk boundaries in subset positions (streaming windows).
    private let chunkStarts: [Int]

    public init(view: DatasetView, split: String = "train", count n: Int, options: SubsetOptions = SubsetOptions()) throws {
        let first = try view.split(split, cacheChunks: max(2, options.windowChunks * 2))
        guard n > 0 && n <= first.count else {
            throw EMCError(.invalidArgument, "a subset of \(n) samples does not fit split '\(split)' of \(first.count) samples", file: view.directory)
        }
        self.view = view
        self.split = split
        self.count = n
        self.options = options
        let schema = view.schema
        shape = schema.kind == .image ? FeatureShape(height: schema.height, width: schema.width, channels: schema.channels) : .vector(schema.features)
        classes = view.classes.count
        // Whole chunks in a seeded order, then the first n samples.
        var chunks: [(start: Int, count: Int)] = []
        for (s, shard) in first.reader.shards.enumerated() {
            let base = s * first.reader.manifest.samplesPerShard
            for e in shard.entries { chunks.append((base + e.firstSample, e.count)) }
        }
        let order = CounterRNG(seed: options.seed, stream: .subset).permutation(count: chunks.count)
        var positions: [Int] = []
        positions.reserveCapacity(n)
        var starts: [Int] = []
        for c in order where positions.count < n {
            starts.append(positions.count)
            let chunk = chunks[Int(c)]
            for p in chunk.start..<(chunk.start + min(chunk.count, n - positions.count)) { positions.append(p) }
        }
        self.positions = positions
        chunkStarts = starts
        converter = try EMCError.locating(file: FileSystem.join(view.directory, DatasetManifest.fileName)) {
            try FloatConverter(schema: schema, statistics: view.manifest.statistics, mode: options.normalize)
        }
        views = ObjectPool { try view.split(split, cacheChunks: max(2, options.windowChunks * 2)) }
        cached = n * schema.sampleBytes <= options.memoryBudget
        overlayLabels = first.labels
        samplesPerShard = first.reader.manifest.samplesPerShard
        chunkSamples = first.reader.manifest.chunkSamples
        if cached {
            try fillCache()
        } else {
            shared = SharedChunks(reader: first.reader, capacity: 2 * options.windowChunks + 2 * max(1, options.threads))
        }
    }

    deinit {
        prefetcher?.stop()
        shared?.stopReadAhead()
    }

    /// Decodes the whole subset into memory, chunk-contiguous runs on worker threads.
    private func fillCache() throws {
        let sb = view.schema.sampleBytes
        bytes = [UInt8](repeating: 0, count: count * sb)
        labels = [Int32](repeating: 0, count: count)
        let runs = chunkStarts.indices.map { i in chunkStarts[i]..<(i + 1 < chunkStarts.count ? chunkStarts[i + 1] : count) }
        let positions = self.positions
        let views = self.views
        try bytes.withUnsafeMutableBytes { out in
            try labels.withUnsafeMutableBufferPointer { outLabels in
                nonisolated(unsafe) let data = out, labelsOut = outLabels
                try parallelFor(runs.count, threads: options.threads) { r in
                    try views.with { view in
                        for q in runs[r] {
                            let label = try view.read(positions[q], into: UnsafeMutableRawBufferPointer(rebasing: data[(q * sb)..<((q + 1) * sb)]))
                            labelsOut[q] = Int32(label)
                        }
                    }
                }
            }
        }
    }

    public func load(_ indices: UnsafeBufferPointer<UInt32>, inputs: UnsafeMutableBufferPointer<Float>, labels out: UnsafeMutableBufferPointer<Int32>) throws {
        if let prefetcher, try prefetcher.take(indices, inputs: inputs.baseAddress!, labels: out.baseAddress!) { return }
        try fill(indices, inputs: inputs.baseAddress!, labels: out.baseAddress!)
    }

    /// Converts samples `indices` to floats: from the cache, or decoded from the shards.
    func fill(_ indices: UnsafeBufferPointer<UInt32>, inputs: UnsafeMutablePointer<Float>, labels out: UnsafeMutablePointer<Int32>) throws {
        let d = shape.count, sb = view.schema.sampleBytes
        if cached {
            bytes.withUnsafeBytes { src in
                labels.withUnsafeBufferPointer { lab in
                    if !converter.gather(src, indices: indices, sampleBytes: sb, into: inputs) {
                        for (k, q) in indices.enumerated() {
                            converter.convert(UnsafeRawBufferPointer(start: src.baseAddress! + Int(q) * sb, count: sb), into: inputs + k * d)
                        }
                    }
                    for (k, q) in indices.enumerated() { out[k] = lab[Int(q)] }
                }
            }
            return
        }
        // Streaming (a subset that is not cached always has shared chunks): chunks decoded once for all loading
        // threads. A batch touches a window's few chunks, so its samples are grouped by chunk, each chunk is
        // fetched once and its samples converted under one pointer; input transforms, when there are any,
        // rewrite a per-sample copy first.
        guard let shared else { preconditionFailure("a streaming subset always has shared chunks") }
        let transforms = view.inputTransforms
        var scratch = transforms.isEmpty ? [] : [UInt8](repeating: 0, count: 2 * sb)
        var slotKeys: [Int] = []
        var members: [[(k: Int, o: Int, p: Int)]] = []
        for (k, q) in indices.enumerated() {
            let p = positions[Int(q)]
            let within = p % samplesPerShard
            let key = (p / samplesPerShard) << 32 | within / chunkSamples
            let o = within % chunkSamples
            if let slot = slotKeys.lastIndex(of: key) { members[slot].append((k, o, p)) } else {
                slotKeys.append(key)
                members.append([(k, o, p)])
            }
        }
        for (slot, key) in slotKeys.enumerated() {
            let chunk = try shared.get(shard: key >> 32, chunk: key & 0xFFFF_FFFF)
            let labelsAt = chunk.count * sb
            chunk.raw.withUnsafeBytes { raw in
                for (k, o, p) in members[slot] {
                    let sample = UnsafeRawBufferPointer(start: raw.baseAddress! + o * sb, count: sb)
                    if transforms.isEmpty {
                        converter.convert(sample, into: inputs + k * d)
                    } else {
                        scratch.withUnsafeMutableBytes { buffer in
                            let copy = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<sb])
                            copy.copyMemory(from: sample)
                            let work = UnsafeMutableRawBufferPointer(rebasing: buffer[sb...])
                            for t in transforms { t.apply(copy, index: chunk.originalIndex(o), scratch: work) }
                            converter.convert(UnsafeRawBufferPointer(copy), into: inputs + k * d)
                        }
                    }
                    out[k] = Int32(overlayLabels?[p] ?? raw.le(UInt32.self, at: labelsAt + 4 * o))
                }
            }
        }
    }

    /// Converts one sample's bytes to normalised floats, exactly as batches are made (for benchmarks).
    public func convert(_ sample: UnsafeRawBufferPointer, into out: UnsafeMutablePointer<Float>) {
        converter.convert(sample, into: out)
    }

    /// Cached: a full shuffle. Streaming: the subset's chunks in a shuffled order, grouped into windows
    /// of `windowChunks` chunks, samples shuffled within each window, so reads stay within a few chunks.
    public func order(epoch: Int, seed: UInt64) -> [UInt32] {
        if cached { return epochOrder(seed: seed, epoch: epoch, count: count) }
        let rng = CounterRNG(seed: seed, stream: .epochOrder).derived(UInt64(epoch))
        let chunkOrder = rng.permutation(count: chunkStarts.count)
        var order: [UInt32] = []
        order.reserveCapacity(count)
        var w = 0
        while w < chunkOrder.count {
            var window: [UInt32] = []
            for c in chunkOrder[w..<min(chunkOrder.count, w + options.windowChunks)] {
                let start = chunkStarts[Int(c)], end = Int(c) + 1 < chunkStarts.count ? chunkStarts[Int(c) + 1] : count
                window += (start..<end).map { UInt32($0) }
            }
            let shuffle = rng.derived(UInt64(1 << 32 | w)).permutation(count: window.count)
            order += shuffle.map { window[Int($0)] }
            w += options.windowChunks
        }
        return order
    }

    public func beginEpoch(_ epoch: Int, order: [UInt32], batchSize: Int) {
        prefetcher?.stop()
        if let shared {
            // Decode the epoch's chunks ahead of the readers, in the order it will first touch them.
            var seen = Set<Int>(), keys: [Int] = []
            for q in order {
                let p = positions[Int(q)]
                let key = (p / samplesPerShard) << 32 | (p % samplesPerShard) / chunkSamples
                if seen.insert(key).inserted { keys.append(key) }
            }
            // One core reads ahead; prefetch workers, when there are any, take the rest.
            let busy = options.prefetchBatches > 0 ? options.threads : 0
            shared.readAhead(keys, threads: max(1, EMCEnvironment.cpuCount - 1 - busy), lookahead: options.windowChunks)
        }
        guard options.prefetchBatches > 0 else { prefetcher = nil; return }
        if slots?.batchSize != batchSize {
            slots = Prefetcher.Slots(depth: options.prefetchBatches, batchSize: batchSize, sampleFloats: shape.count)
        }
        prefetcher = Prefetcher(subset: self, order: order, slots: slots!, workers: options.threads)
    }
}

/// uint8 or float32 samples to normalised float32, by per-channel lookup tables for images.
struct FloatConverter: Sendable {
    let schema: SampleSchema
    /// Images: table[c * 256 + v]. Tabular: scale and offset per feature.
    let table: [Float]
    let scale: [Float]
    let offset: [Float]

    init(schema: SampleSchema, statistics: ChannelStatistics, mode: Normalization) throws {
        self.schema = schema
        let width = schema.statisticsWidth
        var a = [Float](repeating: 1, count: width), b = [Float](repeating: 0, count: width)
        switch mode {
        case .none: break
        case .unit:
            if schema.kind == .image { a = [Float](repeating: 1 / 255, count: width) }
        case .standard:
            guard statistics.mean.count == width, statistics.std.count == width else {
                throw EMCError(.format, "the manifest has no per-channel statistics to standardise with", remedy: .otherNormalization)
            }
            if let c = (0..<width).first(where: { k in !statistics.mean[k].isFinite || !statistics.std[k].isFinite || statistics.std[k] < 0 }) {
                throw EMCError(.format, "the manifest's statistics are damaged: channel \(c) has mean \(statistics.mean[c]) and std \(statistics.std[c]) "
                               + "(a std must be a finite number ≥ 0); reconvert the set", place: .field("statistics"), remedy: .otherNormalization)
            }
            for c in 0..<width {
                // A constant channel (std 0) is only shifted: there is nothing to scale.
                let s = statistics.std[c] > 0 ? statistics.std[c] : 1
                a[c] = Float(1 / s)
                b[c] = Float(-statistics.mean[c] / s)
            }
        }
        scale = a
        offset = b
        if schema.kind == .image {
            var t = [Float](repeating: 0, count: 256 * width)
            for c in 0..<width { for v in 0..<256 { t[c * 256 + v] = Float(v) * a[c] + b[c] } }
            table = t
        } else {
            table = []
        }
    }

    @inline(__always)
    func convert(_ sample: UnsafeRawBufferPointer, into out: UnsafeMutablePointer<Float>) {
        if schema.kind == .image && schema.channels <= 4 {
            // Vectorised v·a_c + b_c (the same values as the table, computed with one FMA).
            scale.withUnsafeBufferPointer { a in
                offset.withUnsafeBufferPointer { b in
                    emc_u8_to_f32_affine(out, sample.baseAddress!.assumingMemoryBound(to: UInt8.self), sample.count,
                                         a.baseAddress!, b.baseAddress!, Int32(schema.channels))
                }
            }
        } else if schema.kind == .image {
            let c = schema.channels
            table.withUnsafeBufferPointer { t in
                let bytes = sample.bindMemory(to: UInt8.self)
                var i = 0
                while i < bytes.count {
                    for ch in 0..<c { out[i + ch] = t[ch * 256 + Int(bytes[i + ch])] }
                    i += c
                }
            }
        } else {
            let f = sample.bindMemory(to: Float.self)
            for j in 0..<f.count { out[j] = Float(littleEndianBits: f[j]) * scale[j] + offset[j] }
        }
    }
}

extension FloatConverter {
    /// Gathers and converts samples `indices` of a cached byte buffer in one vectorised, prefetching pass.
    /// Returns false for layouts it does not handle (tabular data, more than 4 channels).
    func gather(_ src: UnsafeRawBufferPointer, indices: UnsafeBufferPointer<UInt32>, sampleBytes: Int, into out: UnsafeMutablePointer<Float>) -> Bool {
        guard schema.kind == .image && schema.channels <= 4, let base = src.baseAddress, let idx = indices.baseAddress else { return false }
        scale.withUnsafeBufferPointer { a in
            offset.withUnsafeBufferPointer { b in
                emc_gather_u8_to_f32(out, base.assumingMemoryBound(to: UInt8.self), idx, indices.count, sampleBytes,
                                     a.baseAddress!, b.baseAddress!, Int32(schema.channels))
            }
        }
        return true
    }
}

extension Float {
    /// A float read from little-endian storage.
    @inline(__always) init(littleEndianBits value: Float) { self = Float(bitPattern: UInt32(littleEndian: value.bitPattern)) }
}
