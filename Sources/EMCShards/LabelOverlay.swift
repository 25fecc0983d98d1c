import EMCCore

/// A label overlay file (`.emcl`): one split's labels in position order, zstd-compressed, checksummed.
///
/// Layout (little-endian): magic `EMCLABEL` (8 bytes), u32 version 1, u32 reserved 0, u64 sample count,
/// u32 CRC32C of the raw labels (count × u32), u32 stored size, then one zstd frame of the raw labels.
public enum LabelOverlay {
    static let magic = Array("EMCLABEL".utf8)
    static let headerSize = 32

    /// Writes `labels` to `path` atomically; returns what the manifest lists.
    public static func write(_ labels: [UInt32], to path: String) throws -> LabelFileInfo {
        let raw = labels.withUnsafeBytes { Array($0) }
        let packed = try Zstd().compress(raw, level: 3)
        var w = ByteWriter(capacity: headerSize + packed.count)
        w.raw(magic)
        w.u32(1)
        w.u32(0)
        w.u64(UInt64(labels.count))
        w.u32(CRC32C.checksum(raw))
        w.u32(UInt32(packed.count))
        w.raw(packed)
        try AtomicFileWriter.write(w.bytes, to: path)
        return LabelFileInfo(file: FileSystem.baseName(path), samples: labels.count, bytes: w.bytes.count, crc32c: hex32(CRC32C.checksum(w.bytes)))
    }

    /// Reads and checks a label file against its manifest entry.
    public static func read(path: String, expected: LabelFileInfo) throws -> [UInt32] {
        let bytes = try ReadableFile.contents(of: path)
        let crc = hex32(CRC32C.checksum(bytes))
        guard crc == expected.crc32c else {
            throw EMCError(.checksum, "label overlay does not match its manifest entry (damaged or replaced)", file: path,
                           expected: expected.crc32c, found: crc)
        }
        guard bytes.count >= headerSize, Array(bytes[0..<8]) == magic else {
            throw EMCError(.format, "not an emc label overlay (bad magic)", file: path, place: .offset(0))
        }
        var r = ByteReader(bytes, offset: 8)
        let version = try r.u32()
        guard version == 1 else { throw EMCError(.unsupported, "label overlay version \(version)", file: path) }
        try r.skip(4)
        let count = try r.u64Int(), rawCRC = try r.u32(), stored = Int(try r.u32())
        guard count == expected.samples, headerSize + stored == bytes.count else {
            throw EMCError(.format, "label overlay sizes do not add up", file: path, expected: "\(expected.samples) labels", found: "\(count)")
        }
        var labels = [UInt32](repeating: 0, count: count)
        try EMCError.locating(file: path) {
            try labels.withUnsafeMutableBytes { out in
                try bytes.withUnsafeBytes { try Zstd().decompress(UnsafeRawBufferPointer(rebasing: $0[headerSize...]), into: out) }
            }
        }
        guard labels.withUnsafeBytes({ CRC32C.checksum($0) }) == rawCRC else {
            throw EMCError(.checksum, "label overlay content does not match its checksum", file: path)
        }
        return labels.map { UInt32(littleEndian: $0) }
    }
}
