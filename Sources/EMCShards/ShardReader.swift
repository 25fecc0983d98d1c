import EMCCore

/// Reads one shard file. Opening checks the header, trailer and every index invariant of
/// docs/shard-format.md; reading a chunk checks its CRC32C. Every error names the file, and the
/// chunk with its sample range where there is one. Safe to share between threads (reads are
/// positioned); each thread brings its own `ChunkDecoder`.
public final class ShardReader: @unchecked Sendable {
    public let path: String
    public let header: ShardHeader
    public let entries: [ChunkEntry]
    public let fileSize: Int
    private let file: ReadableFile

    public init(path: String) throws {
        self.path = path
        do {
            file = try ReadableFile(path: path)
            fileSize = file.size
            let minimum = ShardLayout.headerSize + 8 + ShardLayout.trailerSize
            guard fileSize >= minimum else {
                throw EMCError(.truncated, "file is too short to be a shard (an interrupted write?)", expected: "at least \(minimum) bytes", found: "\(fileSize)")
            }
            header = try ShardHeader.decode(try file.read(count: ShardLayout.headerSize, at: 0))
            let trailer = try ShardTrailer.decode(try file.read(count: ShardLayout.trailerSize, at: fileSize - ShardLayout.trailerSize), fileSize: fileSize)
            entries = try decodeIndex(try file.read(count: trailer.indexSize, at: trailer.indexOffset), header: header, trailer: trailer)
        } catch let error as EMCError {
            throw error.at(file: path)
        }
    }

    public var sampleCount: Int { header.sampleCount }
    public var schema: SampleSchema { header.schema }

    /// The chunk holding sample `i` of this shard: a division.
    @inline(__always)
    public func chunkIndex(ofSample i: Int) -> Int { i / header.chunkSamples }

    /// The chunk's bytes as stored, unchecked.
    public func readStored(chunk k: Int) throws -> [UInt8] {
        let e = entries[k]
        do {
            return try file.read(count: e.storedSize, at: e.offset)
        } catch let error as EMCError {
            throw error.at(file: path, place: .chunk(k, samples: e.samples))
        }
    }

    /// Reads chunk `k`'s stored bytes into `buffer` (resized as needed).
    public func readStored(chunk k: Int, into buffer: inout [UInt8]) throws {
        let e = entries[k]
        if buffer.count != e.storedSize { buffer = [UInt8](repeating: 0, count: e.storedSize) }
        do {
            try buffer.withUnsafeMutableBytes { try file.read(into: $0, at: e.offset) }
        } catch let error as EMCError {
            throw error.at(file: path, place: .chunk(k, samples: e.samples))
        }
    }

    /// Decodes chunk `k` into caller buffers (any may be nil), checking its CRC32C.
    public func decode(chunk k: Int, stored: [UInt8], decoder: ChunkDecoder,
                       data: UnsafeMutableRawBufferPointer?, labels: UnsafeMutableRawBufferPointer?,
                       indices: UnsafeMutableRawBufferPointer?) throws {
        let e = entries[k]
        do {
            try stored.withUnsafeBytes {
                try decoder.decode(stored: $0, entry: e, channels: header.schema.channels, data: data, labels: labels, indices: indices)
            }
        } catch let error as EMCError {
            throw error.at(file: path, place: .chunk(k, samples: e.samples))
        }
    }

    /// One decoded chunk in new arrays (convenient; hot paths use `decode(chunk:...)` with reused buffers).
    public func readChunk(_ k: Int, decoder: ChunkDecoder) throws -> DecodedChunk {
        let e = entries[k]
        let stored = try readStored(chunk: k)
        var chunk = DecodedChunk(data: [UInt8](repeating: 0, count: e.count * header.schema.sampleBytes),
                                 labels: [UInt32](repeating: 0, count: e.count), originalIndices: [UInt64](repeating: 0, count: e.count))
        try chunk.data.withUnsafeMutableBytes { d in
            try chunk.labels.withUnsafeMutableBytes { l in
                try chunk.originalIndices.withUnsafeMutableBytes { i in
                    try decode(chunk: k, stored: stored, decoder: decoder, data: d, labels: l, indices: i)
                }
            }
        }
        #if _endian(big)
        chunk.labels = chunk.labels.map { UInt32(littleEndian: $0) }
        chunk.originalIndices = chunk.originalIndices.map { UInt64(littleEndian: $0) }
        #endif
        return chunk
    }

    /// Only the labels of chunk `k` (the pixels are not decompressed).
    public func readLabels(chunk k: Int, decoder: ChunkDecoder) throws -> [UInt32] {
        let e = entries[k]
        let stored = try readStored(chunk: k)
        var labels = [UInt32](repeating: 0, count: e.count)
        try labels.withUnsafeMutableBytes { try decode(chunk: k, stored: stored, decoder: decoder, data: nil, labels: $0, indices: nil) }
        return labels
    }

    /// The CRC32C of the whole file, read in 4 MiB pieces.
    public func wholeFileCRC() throws -> UInt32 {
        var crc = CRC32C()
        var buffer = [UInt8](repeating: 0, count: 4 << 20)
        var offset = 0
        while offset < fileSize {
            let n = min(buffer.count, fileSize - offset)
            try buffer.withUnsafeMutableBytes { try file.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<n]), at: offset) }
            buffer.withUnsafeBytes { crc.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            offset += n
        }
        return crc.value
    }
}

/// A chunk's three columns, decoded.
public struct DecodedChunk: Sendable, Equatable {
    public var data: [UInt8]
    public var labels: [UInt32]
    public var originalIndices: [UInt64]
}
