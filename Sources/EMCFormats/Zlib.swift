import CZlib
import EMCCore

/// zlib, for `.gz` files (IDX, CIFAR tarballs, CoverType) and deflated NPZ members.
public enum Zlib {
    /// The library's version as it reports it at run time.
    /// The corresponding C function is `zlibVersion`.
    public static var version: String { String(cString: zlibVersion()) }

    /// Compresses `bytes` as a gzip stream (for tests and fixtures).
    /// The corresponding C functions are `deflateInit2_`, `deflate` and `deflateEnd`.
    public static func gzip(_ bytes: [UInt8], level: Int32 = 6) throws -> [UInt8] {
        try deflate(bytes, level: level, windowBits: 15 + 16)
    }

    /// Compresses `bytes` as raw deflate data (no header), as zip members store it.
    public static func rawDeflate(_ bytes: [UInt8], level: Int32 = 6) throws -> [UInt8] {
        try deflate(bytes, level: level, windowBits: -15)
    }

    static func deflate(_ bytes: [UInt8], level: Int32, windowBits: Int32) throws -> [UInt8] {
        var stream = z_stream()
        var code = deflateInit2_(&stream, level, Z_DEFLATED, windowBits, 8, Z_DEFAULT_STRATEGY,
                                 zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        guard code == Z_OK else { throw EMCError(.library, "deflateInit2 failed with code \(code)") }
        defer { deflateEnd(&stream) }
        var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, uLong(bytes.count))) + 64)
        var input = bytes
        code = input.withUnsafeMutableBufferPointer { inp in
            output.withUnsafeMutableBufferPointer { out in
                stream.next_in = inp.baseAddress
                stream.avail_in = uInt(inp.count)
                stream.next_out = out.baseAddress
                stream.avail_out = uInt(out.count)
                return CZlib.deflate(&stream, Z_FINISH)
            }
        }
        guard code == Z_STREAM_END else { throw EMCError(.library, "deflate failed with code \(code)") }
        output.removeLast(output.count - Int(stream.total_out))
        return output
    }

    /// Inflates a complete in-memory deflate stream (`raw`: no header, as in zip) whose size is known.
    public static func inflate(_ bytes: [UInt8], expectedCount: Int, raw: Bool = true, file: String = "") throws -> [UInt8] {
        let reader = InflateReader(source: MemoryReader(bytes: bytes, path: file), format: raw ? .raw : .zlib)
        let out = try reader.readExactly(count: expectedCount)
        guard try reader.atEnd() else {
            throw EMCError(.format, "deflate data expands to more than the \(expectedCount) bytes its header says", file: file)
        }
        return out
    }
}

/// Decompresses a gzip, zlib or raw deflate stream read from another `SequentialReader`.
/// Concatenated gzip members (as `cat a.gz b.gz` makes) read as one stream.
/// The corresponding C functions are `inflateInit2_`, `inflate` and `inflateEnd`.
public final class InflateReader: SequentialReader {
    public enum Format: Sendable { case gzip, zlib, raw, auto }

    public let source: SequentialReader
    public var path: String { source.path }
    public private(set) var position = 0
    private var stream = z_stream()
    private var input: UnsafeMutableRawBufferPointer
    private var inputStart = 0
    private var inputEnd = 0
    private var ended = false
    private var initialized = false
    private let format: Format
    private var sourceExhausted = false

    public init(source: SequentialReader, format: Format = .auto, inputBufferSize: Int = 1 << 20) {
        self.source = source
        self.format = format
        input = UnsafeMutableRawBufferPointer.allocate(byteCount: inputBufferSize, alignment: 16)
    }

    /// A gzip file on disk.
    public convenience init(gzipFile path: String) throws {
        self.init(source: try FileSequentialReader(path: path), format: .gzip)
    }

    deinit {
        if initialized { inflateEnd(&stream) }
        input.deallocate()
    }

    private func windowBits() -> Int32 {
        switch format {
        case .gzip: return 15 + 16
        case .zlib: return 15
        case .raw: return -15
        case .auto: return 15 + 32
        }
    }

    private func start() throws {
        stream = z_stream()
        let code = inflateInit2_(&stream, windowBits(), zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        guard code == Z_OK else { throw EMCError(.library, "inflateInit2 failed with code \(code)", file: path) }
        initialized = true
    }

    private func refill() throws {
        if inputStart == inputEnd && !sourceExhausted {
            let n = try source.readSome(into: input)
            inputStart = 0
            inputEnd = n
            if n == 0 { sourceExhausted = true }
        }
    }

    public func readSome(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard buffer.count > 0, !ended else { return 0 }
        if !initialized { try start() }
        while true {
            try refill()
            if inputStart == inputEnd && sourceExhausted {
                throw EMCError(.truncated, "compressed stream ends early (the file is cut short)", file: path,
                               place: .offset(source.position), expected: "more compressed data", found: "end of file")
            }
            stream.next_in = (input.baseAddress! + inputStart).assumingMemoryBound(to: Bytef.self)
            stream.avail_in = uInt(inputEnd - inputStart)
            stream.next_out = buffer.baseAddress!.assumingMemoryBound(to: Bytef.self)
            // zlib counts in 32 bits: a larger buffer is filled a piece at a time.
            let room = min(buffer.count, Int(UInt32.max))
            stream.avail_out = uInt(room)
            let code = CZlib.inflate(&stream, Z_NO_FLUSH)
            let consumed = (inputEnd - inputStart) - Int(stream.avail_in)
            inputStart += consumed
            let produced = room - Int(stream.avail_out)
            position += produced
            switch code {
            case Z_OK, Z_BUF_ERROR:
                if produced > 0 { return produced }
                if code == Z_BUF_ERROR && consumed == 0 && inputStart < inputEnd {
                    throw EMCError(.format, "inflate made no progress", file: path, place: .offset(source.position))
                }
            case Z_STREAM_END:
                // zlib has checked the stream's CRC and length. Another gzip member may follow (`cat a.gz b.gz`);
                // anything else after a gzip stream is damage, not data to ignore.
                try refill()
                if format != .raw && format != .zlib && inputStart < inputEnd {
                    guard input.load(fromByteOffset: inputStart, as: UInt8.self) == 0x1f else {
                        throw EMCError(.format, "unexpected bytes after the end of the gzip stream (a damaged or concatenated file)",
                                       file: path, place: .offset(source.position - (inputEnd - inputStart)))
                    }
                    inflateReset(&stream)
                } else {
                    ended = true
                }
                if produced > 0 || ended { return produced }
            default:
                let message = stream.msg.map { String(cString: $0) } ?? "code \(code)"
                throw EMCError(.format, "compressed data is corrupt: \(message)", file: path,
                               place: .offset(source.position - (inputEnd - inputStart)))
            }
        }
    }
}

/// Opens `path` for sequential reading, inflating it when it is gzip-compressed (by its magic
/// bytes, not its name, so a mis-named file still reads).
public func openMaybeGzip(_ path: String) throws -> SequentialReader {
    let file = try ReadableFile(path: path)
    var magic: [UInt8] = [0, 0]
    if file.size >= 2 { magic = try file.read(count: 2, at: 0) }
    let plain = FileSequentialReader(file: file)
    if magic == [0x1f, 0x8b] { return InflateReader(source: plain, format: .gzip) }
    return plain
}
