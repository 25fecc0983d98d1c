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

    /// Decodes chunk `k` into `chunk` (its storage reused when the size fits), checking its CRC32C.
    /// A stored (codec none) chunk is read straight into place: its stored layout is the raw layout.
    public func decode(chunk k: Int, into chunk: inout DecodedChunk, scratch: inout [UInt8], decoder: ChunkDecoder) throws {
        let e = entries[k]
        let sb = header.schema.sampleBytes
        chunk.reshape(count: e.count, sampleBytes: sb)
        if e.codec == .none {
            do {
                try chunk.raw.withUnsafeMutableBytes { raw in
                    try file.read(into: raw, at: e.offset)
                    let crc = CRC32C.checksum(UnsafeRawBufferPointer(raw))
                    guard crc == e.crc else {
                        throw EMCError(.checksum, "chunk CRC32C does not match: its bytes were damaged", expected: hex32(e.crc), found: hex32(crc))
                    }
                }
            } catch let error as EMCError {
                throw error.at(file: path, place: .chunk(k, samples: e.samples))
            }
            return
        }
        try readStored(chunk: k, into: &scratch)
        let n = e.count
        try chunk.raw.withUnsafeMutableBytes { raw in
            try decode(chunk: k, stored: scratch, decoder: decoder,
                       data: UnsafeMutableRawBufferPointer(rebasing: raw[0..<(n * sb)]),
                       labels: UnsafeMutableRawBufferPointer(rebasing: raw[(n * sb)..<(n * sb + 4 * n)]),
                       indices: UnsafeMutableRawBufferPointer(rebasing: raw[(n * sb + 4 * n)...]))
        }
    }

    /// One decoded chunk in new storage (convenient; hot paths reuse storage with `decode(chunk:into:...)`).
    public func readChunk(_ k: Int, decoder: ChunkDecoder) throws -> DecodedChunk {
        var chunk = DecodedChunk()
        var scratch: [UInt8] = []
        try decode(chunk: k, into: &chunk, scratch: &scratch, decoder: decoder)
        return chunk
    }

    /// Only the labels of chunk `k` (the pixels are not decompressed).
    public func readLabels(chunk k: Int, decoder: ChunkDecoder) throws -> [UInt32] {
        let e = entries[k]
        let stored = try readStored(chunk: k)
        var labels = [UInt32](repeating: 0, count: e.count)
        try labels.withUnsafeMutableBytes { try decode(chunk: k, stored: stored, decoder: decoder, data: nil, labels: $0, indices: nil) }
        return labels.map { UInt32(littleEndian: $0) }
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

/// A chunk's three columns, decoded, in their raw layout: n samples' bytes, then n u32 labels, then
/// n u64 original indices (little-endian), exactly as a stored chunk with codec none.
public struct DecodedChunk: Sendable {
    public internal(set) var raw: [UInt8] = []
    public private(set) var count = 0
    public private(set) var sampleBytes = 0

    public init() {}

    mutating func reshape(count: Int, sampleBytes: Int) {
        let size = count * (sampleBytes + ShardLayout.perSampleOverhead)
        // Every byte is overwritten by the decode, so skip zero-filling fresh storage.
        if raw.count != size { raw = [UInt8](unsafeUninitializedCapacity: size) { _, n in n = size } }
        self.count = count
        self.sampleBytes = sampleBytes
    }

    /// The samples' bytes.
    public var data: ArraySlice<UInt8> { raw[0..<(count * sampleBytes)] }

    @inline(__always)
    public func label(_ i: Int) -> UInt32 {
        raw.withUnsafeBytes { $0.le(UInt32.self, at: count * sampleBytes + 4 * i) }
    }

    @inline(__always)
    public func originalIndex(_ i: Int) -> UInt64 {
        raw.withUnsafeBytes { $0.le(UInt64.self, at: count * (sampleBytes + 4) + 8 * i) }
    }

    public var labels: [UInt32] { (0..<count).map(label) }
    public var originalIndices: [UInt64] { (0..<count).map(originalIndex) }

    /// Copies samples `range` into `destination` and their labels into `labels` starting at `at`.
    @inline(__always)
    public func copy(_ range: Range<Int>, to destination: UnsafeMutableRawPointer, labels: UnsafeMutableBufferPointer<UInt32>, at: Int) {
        raw.withUnsafeBytes { src in
            destination.copyMemory(from: src.baseAddress! + range.lowerBound * sampleBytes, byteCount: range.count * sampleBytes)
            for (j, i) in range.enumerated() { labels[at + j] = src.le(UInt32.self, at: count * sampleBytes + 4 * i) }
        }
    }
}
