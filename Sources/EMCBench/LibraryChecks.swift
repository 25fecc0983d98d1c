import Foundation
import EMCCore
import EMCFormats
import EMCShards
import EMCTrainer

/// One native library as `emc doctor` reports it: its version and a tiny real call that proves it works.
public struct LibraryCheck: Encodable, Sendable {
    public var library: String
    public var version: String
    public var detail: String?
    public var ok: Bool
    public var error: String?
}

/// The checks behind `emc doctor`, one per linked native library.
public enum LibraryChecks {
    public static func run() -> [LibraryCheck] {
        [
            check("liblz4", LZ4.version) {
                let input = sampleBytes()
                let packed = try LZ4.compress(input)
                guard try LZ4.decompress(packed, count: input.count) == input else { throw mismatch("LZ4 round trip") }
                return "round trip \(input.count) → \(packed.count) bytes"
            },
            check("libzstd", Zstd.version) {
                let input = sampleBytes()
                let zstd = try Zstd()
                let packed = try zstd.compress(input, level: 1)
                guard try zstd.decompress(packed, count: input.count) == input else { throw mismatch("zstd round trip") }
                return "round trip \(input.count) → \(packed.count) bytes"
            },
            check("zlib", Zlib.version) {
                let input = sampleBytes()
                let packed = try Zlib.gzip(input)
                let back = try InflateReader(source: MemoryReader(bytes: packed), format: .gzip).readExactly(count: input.count)
                guard back == input else { throw mismatch("gzip round trip") }
                return "gzip round trip \(input.count) → \(packed.count) bytes"
            },
            check("libpng", PNG.version) {
                let image = RasterImage(width: 2, height: 2, channels: 3, pixels: [255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9])
                let encoded = try PNG.encode(image)
                guard try PNG.decode(encoded) == image else { throw mismatch("PNG round trip") }
                return "2×2 RGB encoded (\(encoded.count) bytes) and decoded exactly"
            },
            check("libturbojpeg", JPEG.buildVersion + " (built against; no run-time version call)") {
                let image = RasterImage(width: 2, height: 2, channels: 3, fill: 128)
                let encoded = try JPEG.encode(image, quality: 95)
                let decoded = try JPEG.decode(encoded)
                guard decoded.width == 2, decoded.height == 2,
                      decoded.pixels.allSatisfy({ abs(Int($0) - 128) <= 2 }) else { throw mismatch("JPEG round trip") }
                return "2×2 RGB encoded (\(encoded.count) bytes) and decoded"
            },
            check("OpenBLAS", BLAS.configuration, detail: "core \(BLAS.coreName)"
                  + (getenv("EMC_BLAS_CORE_CHOSEN") != nil ? " (chosen by emc: OpenBLAS did not recognise this CPU and fell back to its generic Prescott kernels)" : "")
                  + ", \(BLAS.threads) thread(s); emc's own kernels: "
                  + ["none (this CPU has neither AVX2 nor AVX-512: OpenBLAS and im2row for everything)", "AVX2", "AVX-512"][Int(BLAS.hardwareLevel)]
                  + (BLAS.hardwareLevel > 0 && BLAS.tallLevel == 0 ? " (weight-gradient products sent to OpenBLAS by EMC_TALL_GEMM=0)" : "")) {
                let c = try BLAS.multiply([1, 2, 3, 4], [5, 6, 7, 8], m: 2, n: 2, k: 2)
                guard c == [19, 22, 43, 50] else { throw mismatch("sgemm gave \(c)") }
                return "2×2 sgemm = [19, 22; 43, 50]"
            },
            check("LAPACKE", "LAPACK " + LAPACK.version + " (run time, via ilaver)") {
                let x = try LAPACK.solve([2, 1, 1, 3], [3, 5], n: 2)
                guard abs(x[0] - 0.8) < 1e-12, abs(x[1] - 1.4) < 1e-12 else { throw mismatch("dgesv gave \(x)") }
                return "2×2 dgesv solve x = [0.8, 1.4]"
            },
        ]
    }

    private static func sampleBytes() -> [UInt8] {
        (0..<4096).map { UInt8(truncatingIfNeeded: $0 / 16) }
    }

    private static func mismatch(_ what: String) -> EMCError { EMCError(.library, "\(what) did not give back its input") }

    private static func check(_ name: String, _ version: @autoclosure () -> String, detail: String? = nil,
                              _ probe: () throws -> String) -> LibraryCheck {
        do {
            let proof = try probe()
            return LibraryCheck(library: name, version: version(), detail: [detail, proof].compactMap { $0 }.joined(separator: "; "), ok: true)
        } catch {
            return LibraryCheck(library: name, version: version(), detail: detail, ok: false, error: "\(error)")
        }
    }
}
