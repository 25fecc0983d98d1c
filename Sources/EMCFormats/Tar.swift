import EMCCore

/// Reads a tar archive (POSIX ustar and GNU) front to back, member by member, from any
/// `SequentialReader`, so a `.tar.gz` streams with no temporary files.
public final class TarReader {
    public struct Member: Sendable {
        public var name: String
        public var size: Int
        public var isFile: Bool
        /// Offset of the member's header within the (decompressed) archive.
        public var headerOffset: Int
    }

    public let source: SequentialReader
    private var remainingInMember = 0
    private var paddingAfterMember = 0
    private var finished = false

    public init(source: SequentialReader) { self.source = source }

    /// The next member's header, or nil at the end of the archive. Skips what is left of the current member.
    public func next() throws -> Member? {
        guard !finished else { return nil }
        try source.skip(remainingInMember + paddingAfterMember)
        remainingInMember = 0
        paddingAfterMember = 0
        var longName: String?
        while true {
            let offset = source.position
            var block = [UInt8](repeating: 0, count: 512)
            let n = try block.withUnsafeMutableBytes { buffer -> Int in
                var done = 0
                while done < 512 {
                    let k = try source.readSome(into: UnsafeMutableRawBufferPointer(rebasing: buffer[done...]))
                    if k == 0 { break }
                    done += k
                }
                return done
            }
            if n == 0 {
                throw EMCError(.truncated, "tar archive ends without its end-of-archive marker (cut short?)", file: source.path, place: .offset(offset))
            }
            guard n == 512 else {
                throw EMCError(.truncated, "tar archive ends inside a member header", file: source.path, place: .offset(offset))
            }
            if block.allSatisfy({ $0 == 0 }) {
                finished = true
                // Read the source to its end: a gzip stream's CRC and length are checked only there, so a
                // flipped bit in a .tar.gz is caught even though the archive's own end came first.
                try source.skipToEnd()
                return nil
            }
            let stored = try octal(block[148..<156], field: "checksum", offset: offset)
            var sum = 0
            for (i, b) in block.enumerated() { sum += (148..<156).contains(i) ? 32 : Int(b) }
            guard stored == sum else {
                throw EMCError(.checksum, "tar header checksum does not match (corrupt archive, or not a tar file)",
                               file: source.path, place: .offset(offset), expected: "\(stored)", found: "\(sum)")
            }
            let size = try octal(block[124..<136], field: "size", offset: offset)
            let type = block[156]
            var name = cString(block[0..<100])
            if Array(block[257..<262]) == Array("ustar".utf8) {
                let prefix = cString(block[345..<500])
                if !prefix.isEmpty { name = prefix + "/" + name }
            }
            if type == UInt8(ascii: "L") {  // GNU long name: the member's data is the next header's name
                let data = try source.readExactly(count: size)
                try source.skip((512 - size % 512) % 512)
                longName = cString(data[...])
                continue
            }
            if type == UInt8(ascii: "x") || type == UInt8(ascii: "g") {  // pax headers: skip
                try source.skip(size + (512 - size % 512) % 512)
                continue
            }
            remainingInMember = size
            paddingAfterMember = (512 - size % 512) % 512
            return Member(name: longName ?? name, size: size, isFile: type == 0 || type == UInt8(ascii: "0"), headerOffset: offset)
        }
    }

    /// Reads up to `buffer.count` bytes of the current member; 0 at its end.
    public func readMember(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = min(buffer.count, remainingInMember)
        guard n > 0 else { return 0 }
        let got = try source.readSome(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n]))
        if got == 0 {
            throw EMCError(.truncated, "tar archive ends inside a member", file: source.path, place: .offset(source.position))
        }
        remainingInMember -= got
        return got
    }

    /// The current member as a `SequentialReader` named `archive:member`.
    public func memberReader(_ member: Member) -> SequentialReader { TarMemberReader(tar: self, name: source.path + ":" + member.name) }

    private func octal(_ field: ArraySlice<UInt8>, field name: String, offset: Int) throws -> Int {
        var value = 0
        var seen = false
        for b in field {
            if b == 0 || b == 32 { if seen { break } else { continue } }
            guard b >= 48 && b <= 55 else {
                throw EMCError(.format, "tar header \(name) field is not an octal number", file: source.path, place: .offset(offset))
            }
            value = value * 8 + Int(b - 48)
            seen = true
        }
        return value
    }

    private func cString(_ bytes: ArraySlice<UInt8>) -> String {
        String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
    }
}

final class TarMemberReader: SequentialReader {
    let tar: TarReader
    let path: String
    private(set) var position = 0

    init(tar: TarReader, name: String) {
        self.tar = tar
        self.path = name
    }

    func readSome(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = try tar.readMember(into: buffer)
        position += n
        return n
    }
}

/// Builds a ustar archive in memory (for tests and fixtures).
public func makeTar(_ members: [(name: String, bytes: [UInt8])]) -> [UInt8] {
    var out: [UInt8] = []
    for (name, bytes) in members {
        var header = [UInt8](repeating: 0, count: 512)
        func put(_ s: String, _ at: Int) { for (i, b) in s.utf8.enumerated() { header[at + i] = b } }
        put(name, 0)
        put("0000644", 100); put("0000000", 108); put("0000000", 116)
        let size = String(bytes.count, radix: 8)
        put(String(repeating: "0", count: 11 - size.count) + size, 124)
        put("00000000000", 136)
        header[156] = UInt8(ascii: "0")
        put("ustar", 257); put("00", 263)
        for i in 148..<156 { header[i] = 32 }
        let sum = header.reduce(0) { $0 + Int($1) }
        let s = String(sum, radix: 8)
        put(String(repeating: "0", count: 6 - s.count) + s, 148)
        header[154] = 0
        out += header + bytes + [UInt8](repeating: 0, count: (512 - bytes.count % 512) % 512)
    }
    return out + [UInt8](repeating: 0, count: 1024)
}
