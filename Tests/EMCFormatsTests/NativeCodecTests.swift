import EMCCore
import EMCFormats
import Testing

/// A smooth test picture: gradients plus a little seeded texture, so codecs see realistic data.
func testPicture(width: Int, height: Int, channels: Int, seed: UInt64 = 1) -> RasterImage {
    let rng = CounterRNG(seed: seed, stream: .test)
    var image = RasterImage(width: width, height: height, channels: channels)
    for y in 0..<height {
        for x in 0..<width {
            for c in 0..<channels {
                let base = x * 160 / max(1, width - 1) + y * 60 / max(1, height - 1) + c * 15
                let noise = Int(rng.word(UInt64((y * width + x) * channels + c)) % 5)
                image[x, y, c] = UInt8(min(255, base + noise))
            }
        }
    }
    return image
}

@Suite("zlib, libpng and libjpeg-turbo wrappers")
struct NativeCodecTests {
    @Test("gzip round trip, also across concatenated members and tiny reads")
    func gzipRoundTrip() throws {
        let data = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 * 7 / 13) }
        let packed = try Zlib.gzip(data)
        let reader = InflateReader(source: MemoryReader(bytes: packed), format: .gzip, inputBufferSize: 333)
        #expect(try reader.readExactly(count: data.count) == data)
        #expect(try reader.atEnd())
        let twice = try Zlib.gzip(Array(data[..<500])) + Zlib.gzip(Array(data[500...]))
        #expect(try InflateReader(source: MemoryReader(bytes: twice), format: .auto).readExactly(count: data.count) == data)
        #expect(try Zlib.inflate(Zlib.rawDeflate(data), expectedCount: data.count) == data)
    }

    @Test("a truncated gzip stream is a truncation error naming the file")
    func gzipTruncated() throws {
        let packed = try Zlib.gzip((0..<50_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        let cut = Array(packed[..<(packed.count / 2)])
        let reader = InflateReader(source: MemoryReader(bytes: cut, path: "cut.gz"), format: .gzip)
        do {
            _ = try reader.readExactly(count: 50_000)
            Issue.record("a cut gzip stream read without error")
        } catch let e as EMCError {
            #expect(e.kind == .truncated)
            #expect(e.file == "cut.gz")
        }
    }

    @Test("a corrupted gzip stream is a format error, not garbage")
    func gzipCorrupt() throws {
        var packed = try Zlib.gzip((0..<50_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        for i in 20..<40 { packed[i] ^= 0xFF }
        let reader = InflateReader(source: MemoryReader(bytes: packed, path: "bad.gz"), format: .gzip)
        #expect(throws: EMCError.self) { _ = try reader.readExactly(count: 50_000) }
    }

    @Test("PNG round trip is exact for gray and RGB, odd sizes included")
    func pngRoundTrip() throws {
        for (w, h, c) in [(1, 1, 1), (7, 5, 3), (32, 32, 3), (28, 28, 1)] {
            let image = testPicture(width: w, height: h, channels: c)
            #expect(try PNG.decode(PNG.encode(image), channels: c) == image)
        }
        // Gray decodes to RGB by replicating the channel.
        let gray = testPicture(width: 4, height: 3, channels: 1)
        let rgb = try PNG.decode(PNG.encode(gray), channels: 3)
        #expect(rgb[2, 1, 0] == gray[2, 1, 0] && rgb[2, 1, 2] == gray[2, 1, 0])
    }

    @Test("bad PNGs: empty, not a PNG, bad CRC, truncated — each a clear error")
    func pngBad() throws {
        let good = try PNG.encode(testPicture(width: 16, height: 16, channels: 3))
        #expect(throws: EMCError.self) { _ = try PNG.decode([], file: "empty.png") }
        #expect(throws: EMCError.self) { _ = try PNG.decode(Array("hello".utf8), file: "text.png") }
        var badCRC = good
        badCRC[29] ^= 0x01  // inside the IHDR chunk: its CRC no longer matches
        #expect(throws: EMCError.self) { _ = try PNG.decode(badCRC, file: "crc.png") }
        #expect(throws: EMCError.self) { _ = try PNG.decode(Array(good[..<(good.count - 20)]), file: "cut.png") }
        do { let e = try #require(#expect(throws: EMCError.self) { _ = try PNG.decode([], file: "empty.png") }); #expect(e.file == "empty.png") }
    }

    @Test("JPEG round trip stays close; DCT scaling picks the smallest scale still ≥ the target")
    func jpegRoundTrip() throws {
        let image = testPicture(width: 64, height: 48, channels: 3)
        let encoded = try JPEG.encode(image, quality: 95)
        let decoded = try JPEG.decode(encoded)
        #expect(decoded.width == 64 && decoded.height == 48)
        let meanError = zip(decoded.pixels, image.pixels).reduce(0) { $0 + abs(Int($1.0) - Int($1.1)) } / image.pixels.count
        #expect(meanError < 6)
        let half = try JPEG.decode(encoded, minimumSize: (30, 20))
        #expect(half.width == 32 && half.height == 24)
        let eighth = try JPEG.decode(encoded, minimumSize: (8, 6))
        #expect(eighth.width == 8 && eighth.height == 6)
        let gray = try JPEG.decode(JPEG.encode(testPicture(width: 16, height: 16, channels: 1)))
        #expect(gray.channels == 3)
    }

    @Test("a CMYK JPEG (inverted, as Adobe writes them) decodes to the right RGB")
    func cmyk() throws {
        // Stored C = 255·(1−c): pure red is c=0, m=1, y=1, k=0 → stored (255, 0, 0, 255).
        var pixels: [UInt8] = []
        for _ in 0..<(16 * 16) { pixels += [255, 0, 0, 255] }
        let decoded = try JPEG.decode(JPEG.encodeCMYK(pixels, width: 16, height: 16))
        #expect(decoded.channels == 3)
        for i in stride(from: 0, to: decoded.pixels.count, by: 3) {
            #expect(decoded.pixels[i] > 240 && decoded.pixels[i + 1] < 15 && decoded.pixels[i + 2] < 15)
        }
    }

    @Test("bad JPEGs: empty, truncated, garbage — each a clear error")
    func jpegBad() throws {
        let encoded = try JPEG.encode(testPicture(width: 64, height: 64, channels: 3))
        #expect(throws: EMCError.self) { _ = try JPEG.decode([], file: "empty.jpg") }
        #expect(throws: EMCError.self) { _ = try JPEG.decode(Array(encoded[..<(encoded.count / 2)]), file: "cut.jpg") }
        #expect(throws: EMCError.self) { _ = try JPEG.decode(Array(repeating: 0x42, count: 1000), file: "junk.jpg") }
    }
}
