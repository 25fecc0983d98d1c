import EMCCore

/// `emc doctor`'s checks of the decoders' native libraries: a round trip through each.
public enum ImageLibraries {
    public static func checks() -> [LibraryCheck] {
        [
            LibraryCheck.run("zlib", Zlib.version) {
                let input = LibraryCheck.sampleBytes
                let packed = try Zlib.gzip(input)
                let back = try InflateReader(source: MemoryReader(bytes: packed), format: .gzip).readExactly(count: input.count)
                guard back == input else { throw LibraryCheck.mismatch("gzip round trip") }
                return "gzip round trip \(input.count) → \(packed.count) bytes"
            },
            LibraryCheck.run("libpng", PNG.version) {
                let image = RasterImage(width: 2, height: 2, channels: 3, pixels: [255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9])
                let encoded = try PNG.encode(image)
                guard try PNG.decode(encoded) == image else { throw LibraryCheck.mismatch("PNG round trip") }
                return "2×2 RGB encoded (\(encoded.count) bytes) and decoded exactly"
            },
            LibraryCheck.run("libturbojpeg", JPEG.buildVersion + " (built against; no run-time version call)") {
                let image = RasterImage(width: 2, height: 2, channels: 3, fill: 128)
                let encoded = try JPEG.encode(image, quality: 95)
                let decoded = try JPEG.decode(encoded)
                guard decoded.width == 2, decoded.height == 2,
                      decoded.pixels.allSatisfy({ abs(Int($0) - 128) <= 2 }) else { throw LibraryCheck.mismatch("JPEG round trip") }
                return "2×2 RGB encoded (\(encoded.count) bytes) and decoded"
            },
        ]
    }
}
