import CZstd
import EMCCore

/// Zstandard compression with reusable contexts, the default codec for natural images.
///
/// A `Zstd` value owns one compression and one decompression context; it is not thread-safe,
/// so each worker thread makes its own.
public final class Zstd {
    /// The library's version as it reports it at run time.
    /// The corresponding C function is `ZSTD_versionString`.
    public static var version: String { String(cString: ZSTD_versionString()) }

    private let cctx: OpaquePointer
    private let dctx: OpaquePointer

    public init() throws {
        guard let c = ZSTD_createCCtx() else { throw EMCError(.library, "ZSTD_createCCtx failed (out of memory?)") }
        guard let d = ZSTD_createDCtx() else {
            ZSTD_freeCCtx(c)
            throw EMCError(.library, "ZSTD_createDCtx failed (out of memory?)")
        }
        cctx = c
        dctx = d
    }

    deinit {
        ZSTD_freeCCtx(cctx)
        ZSTD_freeDCtx(dctx)
    }

    /// The largest compressed size of `count` input bytes.
    /// The corresponding C function is `ZSTD_compressBound`.
    public static func bound(_ count: Int) -> Int { ZSTD_compressBound(count) }

    private static func check(_ code: Int, _ what: String) throws -> Int {
        if ZSTD_isError(code) != 0 {
            throw EMCError(.library, "\(what) failed: \(String(cString: ZSTD_getErrorName(code)))")
        }
        return code
    }

    /// Compresses `source` into `destination` at `level`; returns the compressed size.
    /// The corresponding C function is `ZSTD_compressCCtx`.
    public func compress(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer, level: Int32) throws -> Int {
        try Zstd.check(ZSTD_compressCCtx(cctx, destination.baseAddress, destination.count,
                                         source.baseAddress, source.count, level), "ZSTD_compressCCtx")
    }

    /// Decompresses `source`, which must expand to exactly `destination.count` bytes.
    /// The corresponding C function is `ZSTD_decompressDCtx`.
    public func decompress(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) throws {
        let code = ZSTD_decompressDCtx(dctx, destination.baseAddress, destination.count, source.baseAddress, source.count)
        if ZSTD_isError(code) != 0 {
            throw EMCError(.format, "zstd data is malformed: \(String(cString: ZSTD_getErrorName(code)))")
        }
        guard code == destination.count else {
            throw EMCError(.format, "zstd data expands to the wrong size", expected: "\(destination.count) bytes", found: "\(code)")
        }
    }

    public func compress(_ source: [UInt8], level: Int32 = 1) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Zstd.bound(source.count))
        let n = try source.withUnsafeBytes { s in try out.withUnsafeMutableBytes { try compress(s, into: $0, level: level) } }
        out.removeLast(out.count - n)
        return out
    }

    public func decompress(_ source: [UInt8], count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        try source.withUnsafeBytes { s in try out.withUnsafeMutableBytes { try decompress(s, into: $0) } }
        return out
    }
}
