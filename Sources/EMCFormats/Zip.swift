import CZlib
import EMCCore

/// A zip archive's members (as `.npz` files are), read from the central directory; ZIP64 included.
/// Members are stored or deflated; reading one checks its CRC-32 at the end.
public final class ZipArchive {
    public struct Member: Sendable {
        public var name: String
        public var method: UInt16
        public var compressedSize: Int
        public var size: Int
        public var crc32: UInt32
        public var headerOffset: Int
    }

    public let path: String
    public let members: [Member]
    private let file: ReadableFile

    public init(path: String) throws {
        self.path = path
        let file = try ReadableFile(path: path)
        self.file = file
        members = try EMCError.locating(file: path) { try ZipArchive.centralDirectory(file) }
    }

    static func centralDirectory(_ file: ReadableFile) throws -> [Member] {
        let size = file.size
        guard size >= 22 else { throw EMCError(.format, "too short to be a zip archive (.npz)", file: file.path) }
        let tailSize = min(size, 65_557)
        let tail = try file.read(count: tailSize, at: size - tailSize)
        guard let eocd = stride(from: tailSize - 22, through: 0, by: -1).first(where: { tail[$0] == 0x50 && tail[$0 + 1] == 0x4b && tail[$0 + 2] == 5 && tail[$0 + 3] == 6 }) else {
            throw EMCError(.format, "no zip end-of-central-directory record (not a zip/.npz, or cut short)", file: file.path)
        }
        var r = ByteReader(tail, offset: eocd + 10)
        var count = Int(try r.u16())
        var cdSize = Int(try r.u32()), cdOffset = Int(try r.u32())
        if count == 0xFFFF || cdSize == 0xFFFF_FFFF || cdOffset == 0xFFFF_FFFF {
            // ZIP64: the locator sits 20 bytes before the end record.
            let locator = eocd - 20
            guard locator >= 0, Array(tail[locator..<(locator + 4)]) == [0x50, 0x4b, 6, 7] else {
                throw EMCError(.format, "ZIP64 locator missing", file: file.path)
            }
            var l = ByteReader(tail, offset: locator + 8)
            let recordOffset = try l.u64Int()
            var z = ByteReader(try file.read(count: 56, at: recordOffset), offset: 24)
            count = try z.u64Int(); _ = try z.u64()
            cdSize = try z.u64Int(); cdOffset = try z.u64Int()
        }
        // Offsets and sizes come from the file: compare without adding them (a hostile ZIP64 record overflows a sum).
        guard cdOffset <= size, cdSize <= size - cdOffset else {
            throw EMCError(.truncated, "central directory lies past the end of the file", file: file.path,
                           expected: "at most \(size) bytes", found: "offset \(cdOffset) + size \(cdSize)")
        }
        var d = ByteReader(try file.read(count: cdSize, at: cdOffset))
        var members: [Member] = []
        var names = Set<String>()
        for i in 0..<count {
            guard try d.u32() == 0x0201_4b50 else { throw EMCError(.format, "central directory entry \(i) is damaged", file: file.path) }
            try d.skip(6)
            let method = try d.u16()
            try d.skip(4)
            let crc = try d.u32()
            var compressed = Int(try d.u32()), uncompressed = Int(try d.u32())
            let nameLength = Int(try d.u16()), extraLength = Int(try d.u16()), commentLength = Int(try d.u16())
            try d.skip(8)
            var offset = Int(try d.u32())
            let name = String(decoding: try d.raw(nameLength), as: UTF8.self)
            var extra = ByteReader(try d.raw(extraLength))
            while extra.remaining >= 4 {
                let id = try extra.u16(), length = Int(try extra.u16())
                if id == 1 {  // ZIP64 sizes and offset, present for the fields that overflowed
                    if uncompressed == 0xFFFF_FFFF { uncompressed = try extra.u64Int() }
                    if compressed == 0xFFFF_FFFF { compressed = try extra.u64Int() }
                    if offset == 0xFFFF_FFFF { offset = try extra.u64Int() }
                    break
                }
                try extra.skip(length)
            }
            try d.skip(commentLength)
            guard offset < size, compressed <= size - offset else {
                throw EMCError(.truncated, "member \(name) lies past the end of the file", file: file.path, place: .member(name),
                               expected: "at most \(size) bytes", found: "offset \(offset) + \(compressed) bytes")
            }
            // numpy keeps the last of two members with one name, zip tools the first: refuse to guess.
            guard names.insert(name).inserted else {
                throw EMCError(.format, "two members are named \(name); emc will not guess which one is meant", file: file.path, place: .member(name))
            }
            members.append(Member(name: name, method: method, compressedSize: compressed, size: uncompressed, crc32: crc, headerOffset: offset))
        }
        return members
    }

    /// A reader over one member's uncompressed bytes; reaching its end checks the CRC-32.
    public func reader(_ member: Member) throws -> SequentialReader {
        let local = try EMCError.locating(file: path) { try file.read(count: 30, at: member.headerOffset) }
        guard Array(local[0..<4]) == [0x50, 0x4b, 3, 4] else {
            throw EMCError(.format, "local header of \(member.name) is damaged", file: path, place: .offset(member.headerOffset))
        }
        let dataOffset = member.headerOffset + 30 + (Int(local[26]) | Int(local[27]) << 8) + (Int(local[28]) | Int(local[29]) << 8)
        guard dataOffset <= file.size, member.compressedSize <= file.size - dataOffset else {
            throw EMCError(.truncated, "member \(member.name) ends past the end of the file", file: path, place: .member(member.name))
        }
        let region = RegionReader(file: file, offset: dataOffset, length: member.compressedSize, name: "\(path):\(member.name)")
        let source: SequentialReader
        switch member.method {
        case 0: source = region
        case 8: source = InflateReader(source: region, format: .raw)
        default: throw EMCError(.unsupported, "zip compression method \(member.method) for \(member.name) (emc reads stored and deflated)", file: path)
        }
        return CRC32CheckingReader(source: source, expected: member.crc32, size: member.size, name: "\(path):\(member.name)")
    }
}

/// A byte range of a file, read front to back.
final class RegionReader: SequentialReader {
    let file: ReadableFile
    let start: Int
    let length: Int
    let path: String
    private(set) var position = 0

    init(file: ReadableFile, offset: Int, length: Int, name: String) {
        self.file = file
        start = offset
        self.length = length
        path = name
    }

    func readSome(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = min(buffer.count, length - position)
        guard n > 0 else { return 0 }
        let got = try file.readSome(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n]), at: start + position)
        if got == 0 { throw EMCError(.truncated, "zip member ends past the end of the file", file: path, place: .offset(start + position)) }
        position += got
        return got
    }
}

/// Passes bytes through and, at the end, checks their count and zlib CRC-32 against the zip directory.
final class CRC32CheckingReader: SequentialReader {
    let source: SequentialReader
    let expected: UInt32
    let size: Int
    let path: String
    private(set) var position = 0
    private var crc: uLong = crc32(0, nil, 0)

    init(source: SequentialReader, expected: UInt32, size: Int, name: String) {
        self.source = source
        self.expected = expected
        self.size = size
        path = name
    }

    func readSome(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = try source.readSome(into: buffer)
        if n > 0 {
            crc = crc32(crc, buffer.baseAddress!.assumingMemoryBound(to: Bytef.self), uInt(n))
            position += n
        }
        if n == 0 || position == size {
            guard position == size else {
                throw EMCError(.truncated, "zip member is shorter than its directory entry", file: path, expected: "\(size) bytes", found: "\(position)")
            }
            guard UInt32(truncatingIfNeeded: crc) == expected else {
                throw EMCError(.checksum, "zip member's CRC-32 does not match: the member is corrupt", file: path,
                               expected: hex32(expected), found: hex32(UInt32(truncatingIfNeeded: crc)))
            }
        }
        return n
    }
}

/// Builds a zip archive in memory (for tests): members stored or deflated.
public func makeZip(_ members: [(name: String, bytes: [UInt8], deflate: Bool)]) throws -> [UInt8] {
    var out = ByteWriter(), directory = ByteWriter()
    for m in members {
        let data = m.deflate ? try Zlib.rawDeflate(m.bytes) : m.bytes
        let crc = m.bytes.withUnsafeBufferPointer { UInt32(crc32(0, $0.baseAddress, uInt($0.count))) }
        let offset = out.bytes.count
        out.u32(0x0403_4b50); out.u16(20); out.u16(0); out.u16(m.deflate ? 8 : 0); out.u32(0)
        out.u32(crc); out.u32(UInt32(data.count)); out.u32(UInt32(m.bytes.count)); out.u16(UInt16(m.name.utf8.count)); out.u16(0)
        out.ascii(m.name); out.raw(data)
        directory.u32(0x0201_4b50); directory.u16(20); directory.u16(20); directory.u16(0); directory.u16(m.deflate ? 8 : 0); directory.u32(0)
        directory.u32(crc); directory.u32(UInt32(data.count)); directory.u32(UInt32(m.bytes.count)); directory.u16(UInt16(m.name.utf8.count))
        directory.u16(0); directory.u16(0); directory.u16(0); directory.u16(0); directory.u32(0); directory.u32(UInt32(offset)); directory.ascii(m.name)
    }
    let cdOffset = out.bytes.count
    out.raw(directory.bytes)
    out.u32(0x0605_4b50); out.u16(0); out.u16(0); out.u16(UInt16(members.count)); out.u16(UInt16(members.count))
    out.u32(UInt32(directory.bytes.count)); out.u32(UInt32(cdOffset)); out.u16(0)
    return out.bytes
}
