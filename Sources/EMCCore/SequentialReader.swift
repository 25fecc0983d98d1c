/// A stream of bytes read front to back: a plain file, a gzip stream, a tar member.
///
/// Decoders take one of these so that `.gz`, `.tar.gz` and plain files share one code path.
public protocol SequentialReader: AnyObject {
    /// The file it reads, for error messages.
    var path: String { get }
    /// Bytes of decoded output delivered so far.
    var position: Int { get }
    /// Reads up to `buffer.count` bytes; returns 0 only at the end of the stream.
    func readSome(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
}

extension SequentialReader {
    /// Reads exactly `buffer.count` bytes, or throws `.truncated` naming the file and offset.
    public func readExactly(into buffer: UnsafeMutableRawBufferPointer) throws {
        var done = 0
        while done < buffer.count {
            let n = try readSome(into: UnsafeMutableRawBufferPointer(rebasing: buffer[done...]))
            if n == 0 {
                throw EMCError(.truncated, "data ends early", file: path, place: .offset(position),
                               expected: "\(buffer.count - done) more bytes", found: "end of data")
            }
            done += n
        }
    }

    /// Reads exactly `count` bytes into a new array. The array grows with the data that actually arrives
    /// (doubling from 16 MiB), so a header that declares gigabytes over a short or hostile stream ends in
    /// `.truncated` after allocating about twice what the stream held, never the declared size up front.
    public func readExactly(count: Int) throws -> [UInt8] {
        guard count > 0 else { return [] }
        let firstPiece = 1 << 24
        guard count > firstPiece else {
            return try [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
                try readExactly(into: UnsafeMutableRawBufferPointer(buffer))
                initialized = count
            }
        }
        var out: [UInt8] = []
        while out.count < count {
            let start = out.count
            let piece = min(count - start, max(firstPiece, start))
            out = try [UInt8](unsafeUninitializedCapacity: start + piece) { buffer, initialized in
                let raw = UnsafeMutableRawBufferPointer(buffer)
                out.withUnsafeBytes { raw.copyMemory(from: $0) }
                initialized = start
                try readExactly(into: UnsafeMutableRawBufferPointer(rebasing: raw[start...]))
                initialized = start + piece
            }
        }
        return out
    }

    /// Reads and discards `count` bytes.
    public func skip(_ count: Int) throws {
        var left = count
        var scratch = [UInt8](repeating: 0, count: min(count, 1 << 16))
        try scratch.withUnsafeMutableBytes { buffer in
            while left > 0 {
                let piece = UnsafeMutableRawBufferPointer(rebasing: buffer[..<min(left, buffer.count)])
                try readExactly(into: piece)
                left -= piece.count
            }
        }
    }

    /// Reads and discards everything left.
    public func skipToEnd() throws {
        var scratch = [UInt8](repeating: 0, count: 1 << 16)
        try scratch.withUnsafeMutableBytes { buffer in
            while try readSome(into: buffer) > 0 {}
        }
    }

    /// True when no byte is left (reads one byte ahead only if asked; use after the last record).
    public func atEnd() throws -> Bool {
        var byte: UInt8 = 0
        return try withUnsafeMutableBytes(of: &byte) { try readSome(into: $0) } == 0
    }
}

/// A plain file read front to back.
public final class FileSequentialReader: SequentialReader {
    public let file: ReadableFile
    public private(set) var position = 0
    public var path: String { file.path }

    public init(path: String) throws { file = try ReadableFile(path: path) }
    public init(file: ReadableFile) { self.file = file }

    public func readSome(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard buffer.count > 0 else { return 0 }
        let n = try file.readSome(into: buffer, at: position)
        position += n
        return n
    }
}

/// Bytes already in memory, read front to back.
public final class MemoryReader: SequentialReader {
    public let bytes: [UInt8]
    public let path: String
    public private(set) var position = 0

    public init(bytes: [UInt8], path: String = "<memory>") {
        self.bytes = bytes
        self.path = path
    }

    public func readSome(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = min(buffer.count, bytes.count - position)
        guard n > 0 else { return 0 }
        bytes.withUnsafeBytes { src in
            buffer.baseAddress!.copyMemory(from: src.baseAddress! + position, byteCount: n)
        }
        position += n
        return n
    }
}

/// Passes bytes through from another reader and keeps the MD5 of everything read, so a decoder can
/// check a file's content against a published checksum without a second pass.
public final class MD5HashingReader: SequentialReader {
    public let source: SequentialReader
    private var md5 = MD5()
    public var path: String { source.path }
    public var position: Int { source.position }

    public init(_ source: SequentialReader) { self.source = source }

    public func readSome(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = try source.readSome(into: buffer)
        md5.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        return n
    }

    /// Hex MD5 of all bytes read so far.
    public var hex: String { hexString(md5.finalize()) }
}
