import Foundation

/// One native library as `emc doctor` reports it: its version and a tiny real call that proves it works. Each module
/// that wraps a native library checks its own (`CodecLibraries`, `ImageLibraries`, `BLAS.libraryChecks`).
public struct LibraryCheck: Encodable, Sendable {
    public var library: String
    public var version: String
    public var detail: String?
    public var ok: Bool
    public var error: String?

    /// Runs `probe` (a tiny real call that returns what it proved) and reports it with the library's version.
    public static func run(_ name: String, _ version: @autoclosure () -> String, detail: String? = nil,
                           _ probe: () throws -> String) -> LibraryCheck {
        do {
            let proof = try probe()
            return LibraryCheck(library: name, version: version(), detail: [detail, proof].compactMap { $0 }.joined(separator: "; "), ok: true)
        } catch {
            return LibraryCheck(library: name, version: version(), detail: detail, ok: false, error: "\(error)")
        }
    }

    /// The error of a round trip that did not give back its input.
    public static func mismatch(_ what: String) -> EMCError { EMCError(.library, "\(what) did not give back its input") }

    /// 4 KiB of compressible bytes for round trips.
    public static let sampleBytes: [UInt8] = (0..<4096).map { UInt8(truncatingIfNeeded: $0 / 16) }
}
