import EMCCore

/// A codec choice for a whole shard set: the codec, whether images get the byte-delta filter, and the
/// zstd level. Spelled on the command line as `none`, `lz4`, `lz4-delta`, `zstd`, `zstd-delta`, with an
/// optional level (`zstd-delta:3`).
public struct CodecSpec: Sendable, Equatable, Codable, CustomStringConvertible {
    public var codec: ChunkCodec
    public var delta: Bool
    public var level: Int32

    public init(codec: ChunkCodec, delta: Bool = false, level: Int32 = 1) {
        self.codec = codec
        self.delta = delta && codec != .none
        self.level = level
    }

    public static let none = CodecSpec(codec: .none)
    public static let lz4 = CodecSpec(codec: .lz4)
    public static let zstdDelta = CodecSpec(codec: .zstd, delta: true)

    public init(parsing text: String) throws {
        let parts = text.lowercased().split(separator: ":", maxSplits: 1).map(String.init)
        var level: Int32 = 1
        if parts.count == 2 {
            guard let l = Int32(parts[1]), (1...19).contains(l) else {
                throw EMCError(.invalidArgument, "codec level must be 1...19, got '\(parts[1])'")
            }
            level = l
        }
        if parts.count == 2 && !(parts[0].hasPrefix("zstd")) {
            throw EMCError(.invalidArgument, "codec '\(text)': only zstd and zstd-delta take a level (\(parts[0]) has none)")
        }
        switch parts.first ?? "" {
        case "none", "raw", "stored": self.init(codec: .none)
        case "lz4": self.init(codec: .lz4)
        case "lz4-delta": self.init(codec: .lz4, delta: true)
        case "zstd": self.init(codec: .zstd, level: level)
        case "zstd-delta": self.init(codec: .zstd, delta: true, level: level)
        default:
            throw EMCError(.invalidArgument, "unknown codec '\(text)'; use none, lz4, lz4-delta, zstd, zstd-delta (or auto)")
        }
    }

    public var description: String {
        switch codec {
        case .none: return "none"
        case .lz4: return delta ? "lz4-delta" : "lz4"
        case .zstd: return (delta ? "zstd-delta" : "zstd") + (level == 1 ? "" : ":\(level)")
        }
    }

    /// The default for a data set, judged from a sample of its bytes: LZ4 for sparse images (most
    /// bytes zero, as in MNIST), zstd level 1 with delta for natural images, zstd for tabular data.
    /// The one place the default codec is chosen. Without sample bytes an image set gets zstd with delta.
    public static func automatic(for schema: SampleSchema, sample: UnsafeRawBufferPointer?) -> CodecSpec {
        guard schema.kind == .image else { return CodecSpec(codec: .zstd) }
        guard let sample, !sample.isEmpty else { return .zstdDelta }
        let zeros = sample.reduce(0) { $0 + ($1 == 0 ? 1 : 0) }
        return zeros * 2 > sample.count ? .lz4 : .zstdDelta
    }
}

/// Compresses chunks. Owns its scratch buffers and zstd context: one per thread.
public final class ChunkEncoder {
    public let schema: SampleSchema
    public let spec: CodecSpec
    private let zstd: Zstd
    private var scratch: [UInt8] = []
    private var filtered: [UInt8] = []

    public init(schema: SampleSchema, spec: CodecSpec) throws {
        self.schema = schema
        self.spec = spec
        self.zstd = try Zstd()
    }

    /// The stored bytes of one chunk and its index entry (offset and first sample left for the writer).
    public func encode(data: UnsafeRawBufferPointer, labels: UnsafeRawBufferPointer, indices: UnsafeRawBufferPointer,
                       count: Int) throws -> (stored: [UInt8], entry: ChunkEntry) {
        precondition(data.count == count * schema.sampleBytes && labels.count == 4 * count && indices.count == 8 * count)
        let raw = data.count + labels.count + indices.count
        var entry = ChunkEntry(offset: 0, firstSample: 0, count: count, codec: spec.codec,
                               filter: spec.delta && schema.kind == .image ? .delta : .none,
                               dataStored: 0, labelsStored: 0, indicesStored: 0, rawSize: raw, crc: 0)
        var stored: [UInt8] = []
        if spec.codec != .none {
            stored.reserveCapacity(raw / 2)
            if entry.filter == .delta {
                if filtered.count != data.count { filtered = [UInt8](repeating: 0, count: data.count) }
                filtered.withUnsafeMutableBytes { ByteDelta.encode(data, into: $0, stride: schema.channels) }
                entry.dataStored = try filtered.withUnsafeBytes { try compress($0, into: &stored) }
            } else {
                entry.dataStored = try compress(data, into: &stored)
            }
            entry.labelsStored = try compress(labels, into: &stored)
            entry.indicesStored = try compress(indices, into: &stored)
        }
        // Store raw when compression saves under 5%.
        if spec.codec == .none || stored.count * 20 > raw * 19 {
            stored.removeAll(keepingCapacity: true)
            stored.append(contentsOf: data)
            stored.append(contentsOf: labels)
            stored.append(contentsOf: indices)
            entry.codec = .none
            entry.filter = .none
            entry.dataStored = data.count
            entry.labelsStored = labels.count
            entry.indicesStored = indices.count
        }
        entry.crc = CRC32C.checksum(stored)
        return (stored, entry)
    }

    private func compress(_ source: UnsafeRawBufferPointer, into out: inout [UInt8]) throws -> Int {
        let bound = spec.codec == .lz4 ? LZ4.bound(source.count) : Zstd.bound(source.count)
        if scratch.count < bound { scratch = [UInt8](repeating: 0, count: bound) }
        let n = try scratch.withUnsafeMutableBytes { dst -> Int in
            switch spec.codec {
            case .lz4: return try LZ4.compress(source, into: dst)
            case .zstd: return try zstd.compress(source, into: dst, level: spec.level)
            case .none: return 0
            }
        }
        out.append(contentsOf: scratch[0..<n])
        return n
    }
}

/// Decompresses chunks into caller-owned buffers. Owns its zstd context: one per thread.
public final class ChunkDecoder {
    private let zstd: Zstd

    public init() throws { zstd = try Zstd() }

    /// Checks the chunk's CRC32C and decodes its three columns into `data`, `labels` (4 bytes each) and
    /// `indices` (8 bytes each), which must have exactly the raw sizes. Pass nil for a column you do not need.
    public func decode(stored: UnsafeRawBufferPointer, entry: ChunkEntry, channels: Int,
                       data: UnsafeMutableRawBufferPointer?, labels: UnsafeMutableRawBufferPointer?,
                       indices: UnsafeMutableRawBufferPointer?, verifyCRC: Bool = true) throws {
        guard stored.count == entry.storedSize else {
            throw EMCError(.truncated, "chunk is shorter than its index says", expected: "\(entry.storedSize) bytes", found: "\(stored.count)")
        }
        if verifyCRC {
            let crc = CRC32C.checksum(stored)
            guard crc == entry.crc else {
                throw EMCError(.checksum, "chunk CRC32C does not match: its bytes were damaged", expected: hex32(entry.crc), found: hex32(crc))
            }
        }
        var offset = 0
        let columns: [(Int, UnsafeMutableRawBufferPointer?, String)] = [
            (entry.dataStored, data, "data"), (entry.labelsStored, labels, "labels"), (entry.indicesStored, indices, "original indices"),
        ]
        for (size, destination, name) in columns {
            defer { offset += size }
            guard let destination else { continue }
            let source = UnsafeRawBufferPointer(rebasing: stored[offset..<(offset + size)])
            do {
                switch entry.codec {
                case .none:
                    guard source.count == destination.count else {
                        throw EMCError(.format, "stored \(name) column has the wrong size", expected: "\(destination.count)", found: "\(source.count)")
                    }
                    destination.copyMemory(from: source)
                case .lz4: try LZ4.decompress(source, into: destination)
                case .zstd: try zstd.decompress(source, into: destination)
                }
            } catch var error as EMCError {
                error.message = "\(name) column: " + error.message
                throw error
            }
        }
        if entry.filter == .delta, let data { ByteDelta.decode(data, stride: channels) }
    }
}
