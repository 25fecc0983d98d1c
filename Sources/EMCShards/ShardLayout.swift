import EMCCore

/// The fixed parts of a shard file, exactly as docs/shard-format.md lays them out.
public enum ShardLayout {
    public static let headerMagic = Array("EMCSHARD".utf8)
    public static let trailerMagic = Array("EMCSEND1".utf8)
    public static let version: UInt16 = 1
    public static let headerSize = 64
    public static let entrySize = 48
    public static let trailerSize = 32
    /// Raw bytes per sample besides its data: a u32 label and a u64 original index.
    public static let perSampleOverhead = 12
}

/// Codec of a chunk (index field `codec`).
public enum ChunkCodec: UInt8, Sendable, Codable, CaseIterable {
    case none = 0, lz4 = 1, zstd = 2
}

/// Filter on a chunk's data column (index field `filter`).
public enum ChunkFilter: UInt8, Sendable, Codable {
    case none = 0, delta = 1
}

/// The 64-byte header.
public struct ShardHeader: Equatable, Sendable {
    public var schema: SampleSchema
    public var sampleCount: Int
    public var firstPosition: Int
    public var chunkSamples: Int

    public init(schema: SampleSchema, sampleCount: Int, firstPosition: Int, chunkSamples: Int) {
        self.schema = schema
        self.sampleCount = sampleCount
        self.firstPosition = firstPosition
        self.chunkSamples = chunkSamples
    }

    public func encode() -> [UInt8] {
        var w = ByteWriter(capacity: ShardLayout.headerSize)
        w.raw(ShardLayout.headerMagic)
        w.u16(ShardLayout.version)
        w.u16(UInt16(ShardLayout.headerSize))
        w.u8(schema.kind == .image ? 0 : 1)
        w.u8(0)
        w.u16(0)
        w.u32(UInt32(schema.height))
        w.u32(UInt32(schema.width))
        w.u32(UInt32(schema.channels))
        w.u32(UInt32(schema.sampleBytes))
        w.u64(UInt64(sampleCount))
        w.u64(UInt64(firstPosition))
        w.u32(UInt32(chunkSamples))
        w.u32(0)
        w.u32(0)
        w.u32(CRC32C.checksum(w.bytes))
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws -> ShardHeader {
        guard bytes.count >= ShardLayout.headerSize else {
            throw EMCError(.truncated, "shard header is cut short", place: .offset(0), expected: "64 bytes", found: "\(bytes.count)")
        }
        guard Array(bytes[0..<8]) == ShardLayout.headerMagic else {
            throw EMCError(.format, "not an emc shard (bad header magic)", place: .offset(0), expected: "EMCSHARD",
                           found: printable(bytes[0..<8]))
        }
        var r = ByteReader(bytes, offset: 8)
        let version = try r.u16(), size = try r.u16()
        guard version == ShardLayout.version else {
            throw EMCError(.unsupported, "shard format version \(version) (this emc reads version 1)", place: .offset(8))
        }
        guard Int(size) == ShardLayout.headerSize else {
            throw EMCError(.format, "header size field is wrong", place: .offset(10), expected: "64", found: "\(size)")
        }
        let stored = UInt32(bytes[60]) | UInt32(bytes[61]) << 8 | UInt32(bytes[62]) << 16 | UInt32(bytes[63]) << 24
        let actual = CRC32C.checksum(Array(bytes[0..<60]))
        guard stored == actual else {
            throw EMCError(.checksum, "shard header CRC32C does not match: the header is damaged", place: .offset(60),
                           expected: hex32(stored), found: hex32(actual))
        }
        let kind = try r.u8()
        try r.skip(3)
        let height = Int(try r.u32()), width = Int(try r.u32()), channels = Int(try r.u32())
        let sampleBytes = Int(try r.u32())
        let count = try r.u64Int(), first = try r.u64Int(), chunkSamples = Int(try r.u32())
        let schema: SampleSchema
        switch kind {
        case 0: schema = .image(height: height, width: width, channels: channels)
        case 1: schema = .tabular(features: width)
        default: throw EMCError(.format, "unknown sample kind \(kind)", place: .offset(12))
        }
        try schema.validate()
        guard schema.sampleBytes == sampleBytes else {
            throw EMCError(.format, "sample size does not match the shape", place: .offset(28),
                           expected: "\(schema.sampleBytes)", found: "\(sampleBytes)")
        }
        guard chunkSamples > 0 || count == 0 else { throw EMCError(.format, "chunk size of 0 samples", place: .offset(48)) }
        guard chunkSamples * (schema.sampleBytes + ShardLayout.perSampleOverhead) <= 1 << 30 else {
            throw EMCError(.format, "chunks of \(chunkSamples) samples would exceed 1 GiB", place: .offset(48))
        }
        return ShardHeader(schema: schema, sampleCount: count, firstPosition: first, chunkSamples: chunkSamples)
    }
}

/// One index entry: where a chunk is and how to decode it.
public struct ChunkEntry: Equatable, Sendable {
    public var offset: Int
    public var firstSample: Int
    public var count: Int
    public var codec: ChunkCodec
    public var filter: ChunkFilter
    public var dataStored: Int
    public var labelsStored: Int
    public var indicesStored: Int
    public var rawSize: Int
    public var crc: UInt32

    public var storedSize: Int { dataStored + labelsStored + indicesStored }
    public var samples: Range<Int> { firstSample..<(firstSample + count) }

    func encode(into w: inout ByteWriter) {
        w.u64(UInt64(offset))
        w.u64(UInt64(firstSample))
        w.u32(UInt32(count))
        w.u8(codec.rawValue)
        w.u8(filter.rawValue)
        w.u16(0)
        w.u32(UInt32(dataStored))
        w.u32(UInt32(labelsStored))
        w.u32(UInt32(indicesStored))
        w.u32(UInt32(rawSize))
        w.u32(crc)
        w.u32(0)
    }
}

/// The fixed 32-byte trailer.
public struct ShardTrailer: Equatable, Sendable {
    public var indexOffset: Int
    public var indexSize: Int
    public var indexCRC: UInt32
    public var chunkCount: Int

    public func encode() -> [UInt8] {
        var w = ByteWriter(capacity: ShardLayout.trailerSize)
        w.u64(UInt64(indexOffset))
        w.u64(UInt64(indexSize))
        w.u32(indexCRC)
        w.u32(UInt32(chunkCount))
        w.raw(ShardLayout.trailerMagic)
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8], fileSize: Int) throws -> ShardTrailer {
        let at = fileSize - ShardLayout.trailerSize
        guard Array(bytes[24..<32]) == ShardLayout.trailerMagic else {
            throw EMCError(.truncated, "incomplete shard: the trailer is missing or damaged (was the write interrupted?)",
                           place: .offset(at + 24), expected: "EMCSEND1", found: printable(bytes[24..<32]))
        }
        var r = ByteReader(bytes)
        let t = ShardTrailer(indexOffset: try r.u64Int(), indexSize: try r.u64Int(), indexCRC: try r.u32(),
                             chunkCount: Int(try r.u32()))
        guard t.indexSize == 8 + ShardLayout.entrySize * t.chunkCount,
              t.indexOffset >= ShardLayout.headerSize, t.indexOffset + t.indexSize == at else {
            throw EMCError(.format, "trailer does not describe this file: index at \(t.indexOffset), \(t.indexSize) bytes, \(t.chunkCount) chunks, file \(fileSize) bytes",
                           place: .offset(at))
        }
        return t
    }
}

/// Decodes and checks the index: every invariant of docs/shard-format.md, "Invariants a reader checks on open".
func decodeIndex(_ bytes: [UInt8], header: ShardHeader, trailer: ShardTrailer) throws -> [ChunkEntry] {
    let crc = CRC32C.checksum(bytes)
    guard crc == trailer.indexCRC else {
        throw EMCError(.checksum, "chunk index CRC32C does not match: the index is damaged", place: .offset(trailer.indexOffset),
                       expected: hex32(trailer.indexCRC), found: hex32(crc))
    }
    var r = ByteReader(bytes)
    let count = Int(try r.u32()), entrySize = Int(try r.u32())
    guard count == trailer.chunkCount, entrySize == ShardLayout.entrySize else {
        throw EMCError(.format, "index header disagrees with the trailer", place: .offset(trailer.indexOffset),
                       expected: "\(trailer.chunkCount) chunks of 48 bytes", found: "\(count) of \(entrySize)")
    }
    var entries: [ChunkEntry] = []
    entries.reserveCapacity(count)
    var expectedOffset = ShardLayout.headerSize
    var expectedFirst = 0
    let perSample = header.schema.sampleBytes + ShardLayout.perSampleOverhead
    for k in 0..<count {
        let offset = try r.u64Int(), first = try r.u64Int(), n = Int(try r.u32())
        let codecByte = try r.u8(), filterByte = try r.u8()
        try r.skip(2)
        let data = Int(try r.u32()), labels = Int(try r.u32()), indices = Int(try r.u32())
        let raw = Int(try r.u32()), chunkCRC = try r.u32()
        try r.skip(4)
        let place = Place.chunk(k, samples: first..<(first + max(0, n)))
        guard let codec = ChunkCodec(rawValue: codecByte) else { throw EMCError(.format, "unknown codec \(codecByte)", place: place) }
        guard let filter = ChunkFilter(rawValue: filterByte), filter == .none || header.schema.kind == .image else {
            throw EMCError(.format, "unknown or misplaced filter \(filterByte)", place: place)
        }
        guard offset == expectedOffset else {
            throw EMCError(.format, "chunk offsets are not contiguous", place: place, expected: "\(expectedOffset)", found: "\(offset)")
        }
        guard first == expectedFirst else {
            throw EMCError(.format, "chunk sample ranges are not contiguous", place: place, expected: "first sample \(expectedFirst)", found: "\(first)")
        }
        let isLast = k == count - 1
        guard n > 0, isLast ? n <= header.chunkSamples : n == header.chunkSamples else {
            throw EMCError(.format, "chunk holds the wrong number of samples", place: place,
                           expected: isLast ? "1...\(header.chunkSamples)" : "\(header.chunkSamples)", found: "\(n)")
        }
        guard raw <= 1 << 30 else {
            throw EMCError(.format, "chunk of \(raw) raw bytes is larger than any writer makes (1 GiB)", place: place)
        }
        guard raw == n * perSample else {
            throw EMCError(.format, "chunk raw size does not match its sample count", place: place, expected: "\(n * perSample)", found: "\(raw)")
        }
        if codec == .none {
            guard data == n * header.schema.sampleBytes, labels == 4 * n, indices == 8 * n else {
                throw EMCError(.format, "stored sizes of an uncompressed chunk do not match its sample count", place: place)
            }
        }
        entries.append(ChunkEntry(offset: offset, firstSample: first, count: n, codec: codec, filter: filter,
                                  dataStored: data, labelsStored: labels, indicesStored: indices, rawSize: raw, crc: chunkCRC))
        expectedOffset = offset + data + labels + indices
        expectedFirst = first + n
    }
    guard expectedOffset == trailer.indexOffset else {
        throw EMCError(.format, "chunks do not end where the index starts", place: .offset(expectedOffset),
                       expected: "\(trailer.indexOffset)", found: "\(expectedOffset)")
    }
    guard expectedFirst == header.sampleCount else {
        throw EMCError(.format, "chunk sample counts do not sum to the header's count", expected: "\(header.sampleCount)", found: "\(expectedFirst)")
    }
    return entries
}

func printable<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
    let array = Array(bytes)
    if array.allSatisfy({ $0 >= 0x20 && $0 < 0x7f }) { return "\"" + String(decoding: array, as: UTF8.self) + "\"" }
    return "0x" + hexString(array)
}
