import EMCCore

/// Writes one shard file: header, chunks, index, trailer, under a temporary name until `finish`.
///
/// The sample count is fixed up front (it is in the header). Chunks arrive already encoded (see
/// `ChunkEncoder`), in order, so callers may encode them on several threads.
public final class ShardWriter {
    public let path: String
    public let header: ShardHeader
    public let file: AtomicFileWriter
    private var entries: [ChunkEntry] = []
    private var samplesWritten = 0
    private var fileCRC = CRC32C()

    public init(path: String, header: ShardHeader) throws {
        self.path = path
        self.header = header
        file = try AtomicFileWriter(path: path)
        try write(header.encode())
    }

    private func write(_ bytes: [UInt8]) throws {
        try file.write(bytes)
        fileCRC.update(bytes)
    }

    /// Appends the next chunk (encoded by a `ChunkEncoder`).
    public func append(stored: [UInt8], entry: ChunkEntry) throws {
        var entry = entry
        entry.offset = file.bytesWritten
        entry.firstSample = samplesWritten
        precondition(samplesWritten + entry.count <= header.sampleCount, "ShardWriter: more samples than the header declares")
        try write(stored)
        entries.append(entry)
        samplesWritten += entry.count
    }

    /// Writes the index and trailer, flushes and renames the file into place.
    public func finish() throws -> ShardFileInfo {
        guard samplesWritten == header.sampleCount else {
            throw EMCError(.invalidArgument, "shard got \(samplesWritten) samples but its header declares \(header.sampleCount)", file: path)
        }
        var index = ByteWriter(capacity: 8 + ShardLayout.entrySize * entries.count)
        index.u32(UInt32(entries.count))
        index.u32(UInt32(ShardLayout.entrySize))
        for e in entries { e.encode(into: &index) }
        let trailer = ShardTrailer(indexOffset: file.bytesWritten, indexSize: index.bytes.count,
                                   indexCRC: CRC32C.checksum(index.bytes), chunkCount: entries.count)
        try write(index.bytes)
        try write(trailer.encode())
        let size = file.bytesWritten
        try file.commit()
        return ShardFileInfo(file: FileSystem.baseName(path), samples: samplesWritten, bytes: size, crc32c: hex32(fileCRC.value))
    }

    /// Abandons the shard; nothing appears under its name.
    public func discard() { file.discard() }
}
