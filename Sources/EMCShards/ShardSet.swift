import EMCCore
import Foundation

/// A shard set opened for reading: its manifest and, per split, random access to any sample.
public final class ShardSet: @unchecked Sendable {
    public let directory: String
    public let manifest: DatasetManifest

    public init(directory: String) throws {
        self.directory = directory
        self.manifest = try DatasetManifest.load(directory: directory)
    }

    public var schema: SampleSchema { manifest.schema }

    /// A reader for one split; opening checks each shard against the manifest.
    public func split(_ name: String, cacheChunks: Int = 64) throws -> SplitReader {
        guard let split = manifest.splits[name] else {
            throw EMCError(.missing, "no split named '\(name)' (this set has: \(manifest.splitNames.joined(separator: ", ")))", file: directory)
        }
        return try SplitReader(directory: directory, name: name, manifest: split, schema: manifest.schema, cacheChunks: cacheChunks)
    }
}

/// Random and sequential access to one split's samples, by position in the split.
///
/// Sample p lives in shard p / samplesPerShard, chunk (p % samplesPerShard) / chunkSamples: two
/// divisions and one positioned read. Decoded chunks are kept in a small LRU cache, so random-order
/// reads over a window of chunks decode each chunk once. One reader per thread.
public final class SplitReader {
    public let name: String
    public let manifest: SplitManifest
    public let schema: SampleSchema
    public let shards: [ShardReader]
    private let decoder: ChunkDecoder
    private struct CacheEntry { var chunk: DecodedChunk; var lastUse: UInt64 }
    private var cache: [Int: CacheEntry] = [:]
    private var clock: UInt64 = 0
    private var lastKey = -1
    private let cacheChunks: Int
    private var stored: [UInt8] = []
    public private(set) var chunksDecoded = 0

    init(directory: String, name: String, manifest: SplitManifest, schema: SampleSchema, cacheChunks: Int) throws {
        self.name = name
        self.manifest = manifest
        self.schema = schema
        self.cacheChunks = max(1, cacheChunks)
        decoder = try ChunkDecoder()
        var readers: [ShardReader] = []
        var total = 0
        for (s, info) in manifest.shards.enumerated() {
            let path = FileSystem.join(directory, info.file)
            let reader = try ShardReader(path: path)
            guard reader.fileSize == info.bytes else {
                throw EMCError(.format, "shard size differs from the manifest (replaced or damaged?)", file: path,
                               expected: "\(info.bytes) bytes", found: "\(reader.fileSize)")
            }
            guard reader.sampleCount == info.samples, reader.schema == schema else {
                throw EMCError(.format, "shard holds other samples than the manifest says", file: path,
                               expected: "\(info.samples) samples of \(schema)", found: "\(reader.sampleCount) of \(reader.schema)")
            }
            guard reader.header.firstPosition == total, reader.header.chunkSamples == manifest.chunkSamples else {
                throw EMCError(.format, "shard is out of place in its split (first position \(reader.header.firstPosition), expected \(total))", file: path)
            }
            // Readers locate position p in shard p / samplesPerShard: every shard but the last holds exactly that many,
            // the last at most that many.
            let last = s == manifest.shards.count - 1
            guard last ? info.samples <= manifest.samplesPerShard : info.samples == manifest.samplesPerShard else {
                throw EMCError(.format, "shard holds \(info.samples) samples, but the manifest's samplesPerShard is \(manifest.samplesPerShard) "
                               + (last ? "(the last shard may hold at most that many)" : "(every shard before the last holds exactly that many)"),
                               file: path, place: .field("splits.\(name).samplesPerShard"))
            }
            total += info.samples
            readers.append(reader)
        }
        guard total == manifest.samples else {
            throw EMCError(.format, "split '\(name)' shards hold \(total) samples, the manifest says \(manifest.samples)", file: directory)
        }
        shards = readers
    }

    public var count: Int { manifest.samples }

    /// (shard, chunk, offset within chunk) of split position p.
    @inline(__always)
    public func locate(_ p: Int) -> (shard: Int, chunk: Int, offset: Int) {
        let s = p / manifest.samplesPerShard
        let within = p - s * manifest.samplesPerShard
        let c = within / manifest.chunkSamples
        return (s, c, within - c * manifest.chunkSamples)
    }

    /// The decoded chunk `c` of shard `s`, from the cache or the file. A miss decodes into the
    /// storage of the least recently used chunk it evicts, so steady-state reading allocates nothing.
    public func chunk(shard s: Int, chunk c: Int) throws -> DecodedChunk {
        let key = s << 32 | c
        clock &+= 1
        if key == lastKey, let hit = cache[key] {
            return hit.chunk
        }
        if var hit = cache[key] {
            hit.lastUse = clock
            cache[key] = hit
            lastKey = key
            return hit.chunk
        }
        var recycled = DecodedChunk()
        if cache.count >= cacheChunks, let oldest = cache.min(by: { $0.value.lastUse < $1.value.lastUse })?.key {
            recycled = cache.removeValue(forKey: oldest)!.chunk
        }
        try shards[s].decode(chunk: c, into: &recycled, scratch: &stored, decoder: decoder)
        chunksDecoded += 1
        cache[key] = CacheEntry(chunk: recycled, lastUse: clock)
        lastKey = key
        return recycled
    }

    /// Copies the samples at split positions `positions` (contiguous) into `data` and their labels
    /// into `labels`: the sequential path a loader takes.
    public func readBatch(_ positions: Range<Int>, data: UnsafeMutableRawBufferPointer, labels: UnsafeMutableBufferPointer<UInt32>) throws {
        guard positions.lowerBound >= 0, positions.upperBound <= count else {
            throw EMCError(.invalidArgument, "samples \(positions) are out of range for split '\(name)' of \(count) samples")
        }
        let sb = schema.sampleBytes
        var p = positions.lowerBound
        while p < positions.upperBound {
            let (s, c, o) = locate(p)
            let chunk = try chunk(shard: s, chunk: c)
            let n = min(chunk.count - o, positions.upperBound - p)
            let k = p - positions.lowerBound
            chunk.copy(o..<(o + n), to: data.baseAddress! + k * sb, labels: labels, at: k)
            p += n
        }
    }

    /// Copies the samples at arbitrary split positions into `data` and `labels`, in the order given:
    /// the random-access path (each touched chunk is decoded once while it stays in the cache).
    public func readSamples(_ positions: [Int], data: UnsafeMutableRawBufferPointer, labels: UnsafeMutableBufferPointer<UInt32>) throws {
        let sb = schema.sampleBytes
        for (k, p) in positions.enumerated() {
            guard p >= 0 && p < count else {
                throw EMCError(.invalidArgument, "sample \(p) is out of range for split '\(name)' of \(count) samples")
            }
            let (s, c, o) = locate(p)
            try chunk(shard: s, chunk: c).copy(o..<(o + 1), to: data.baseAddress! + k * sb, labels: labels, at: k)
        }
    }

    /// Copies sample p's bytes into `destination` (sampleBytes long) and returns its label.
    @discardableResult
    public func read(_ p: Int, into destination: UnsafeMutableRawBufferPointer) throws -> UInt32 {
        guard p >= 0 && p < count else {
            throw EMCError(.invalidArgument, "sample \(p) is out of range for split '\(name)' of \(count) samples")
        }
        let (s, c, o) = locate(p)
        let chunk = try chunk(shard: s, chunk: c)
        let sb = schema.sampleBytes
        chunk.raw.withUnsafeBytes { destination.baseAddress!.copyMemory(from: $0.baseAddress! + o * sb, byteCount: sb) }
        return chunk.label(o)
    }

    /// Sample p: its bytes, label and original index.
    public func sample(_ p: Int) throws -> (data: [UInt8], label: UInt32, originalIndex: UInt64) {
        var data = [UInt8](repeating: 0, count: schema.sampleBytes)
        let label = try data.withUnsafeMutableBytes { try read(p, into: $0) }
        let (s, c, o) = locate(p)
        return (data, label, try chunk(shard: s, chunk: c).originalIndex(o))
    }

    /// All original indices of the split in position order.
    public func allOriginalIndices() throws -> [UInt64] {
        var out: [UInt64] = []
        out.reserveCapacity(count)
        for s in shards.indices {
            for k in shards[s].entries.indices {
                let c = try chunk(shard: s, chunk: k)
                for i in 0..<c.count { out.append(c.originalIndex(i)) }
            }
        }
        return out
    }

    /// All labels of the split in position order, reading only label columns.
    public func allLabels() throws -> [UInt32] {
        var labels: [UInt32] = []
        labels.reserveCapacity(count)
        for shard in shards {
            for k in shard.entries.indices { labels.append(contentsOf: try shard.readLabels(chunk: k, decoder: decoder)) }
        }
        return labels
    }
}
