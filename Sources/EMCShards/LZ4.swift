import CLZ4
import EMCCore

/// LZ4 block compression, the fast codec for sparse images (MNIST-like).
public enum LZ4 {
    /// The library's version as it reports it at run time.
    /// The corresponding C function is `LZ4_versionString`.
    public static var version: String { String(cString: LZ4_versionString()) }

    /// The largest compressed size of `count` input bytes.
    /// The corresponding C function is `LZ4_compressBound`.
    public static func bound(_ count: Int) -> Int { Int(LZ4_compressBound(Int32(count))) }

    /// Compresses `source` into `destination` (at least `bound(source.count)` bytes); returns the size.
    /// The corresponding C function is `LZ4_compress_default`.
    public static func compress(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) throws -> Int {
        guard source.count <= Int(Int32.max) else {
            throw EMCError(.invalidArgument, "LZ4 input of \(source.count) bytes is over the 2 GiB block limit")
        }
        let n = LZ4_compress_default(source.baseAddress?.assumingMemoryBound(to: CChar.self),
                                     destination.baseAddress?.assumingMemoryBound(to: CChar.self),
                                     Int32(source.count), Int32(clamping: destination.count))
        guard n > 0 || source.isEmpty else {
            throw EMCError(.library, "LZ4_compress_default failed (output buffer of \(destination.count) bytes too small?)")
        }
        return Int(n)
    }

    /// Decompresses `source`, which must expand to exactly `destination.count` bytes.
    /// The corresponding C function is `LZ4_decompress_safe`, which never reads or writes out of bounds.
    public static func decompress(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) throws {
        let n = LZ4_decompress_safe(source.baseAddress?.assumingMemoryBound(to: CChar.self),
                                    destination.baseAddress?.assumingMemoryBound(to: CChar.self),
                                    Int32(clamping: source.count), Int32(clamping: destination.count))
        guard n >= 0 else { throw EMCError(.format, "LZ4 data is malformed (LZ4_decompress_safe returned \(n))") }
        guard Int(n) == destination.count else {
            throw EMCError(.format, "LZ4 data expands to the wrong size", expected: "\(destination.count) bytes", found: "\(n)")
        }
    }

    public static func compress(_ source: [UInt8]) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: bound(source.count))
        let n = try source.withUnsafeBytes { s in try out.withUnsafeMutableBytes { try compress(s, into: $0) } }
        out.removeLast(out.count - n)
        return out
    }

    public static func decompress(_ source: [UInt8], count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        try source.withUnsafeBytes { s in try out.withUnsafeMutableBytes { try decompress(s, into: $0) } }
        return out
    }
}
