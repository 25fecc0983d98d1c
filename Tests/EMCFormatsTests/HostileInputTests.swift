import EMCCore
import EMCFormats
import EMCTestSupport
import Testing

/// Bytes of a little-endian integer.
private func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }

/// Rewrites a ustar header's size field and fixes its checksum, as a hostile archive would.
private func setTarSize(_ tar: inout [UInt8], header: Int, octal: String) {
    for i in 0..<12 { tar[header + 124 + i] = 0 }
    for (i, b) in octal.utf8.enumerated() { tar[header + 124 + i] = b }
    for i in 148..<156 { tar[header + i] = 32 }
    let sum = tar[header..<(header + 512)].reduce(0) { $0 + Int($1) }
    let s = Array(String(sum, radix: 8).utf8)
    for i in 0..<6 { tar[header + 148 + i] = i < 6 - s.count ? 48 : s[i - (6 - s.count)] }
    tar[header + 154] = 0
}

@Suite("Hostile and damaged files: errors, never traps or huge allocations")
struct HostileInputTests {
    @Test("a ZIP64 directory whose offset plus size overflows is an error naming the file")
    func zip64Overflow() throws {
        let dir = TemporaryDirectory()
        var bytes: [UInt8] = le(UInt32(0x0606_4b50)) + le(UInt64(44)) + le(UInt16(45)) + le(UInt16(45)) + le(UInt32(0)) + le(UInt32(0))
        bytes += le(UInt64(1)) + le(UInt64(1)) + le(UInt64(0x100)) + le(UInt64(0x7FFF_FFFF_FFFF_FFF0))  // count, total, size, offset
        bytes += le(UInt32(0x0706_4b50)) + le(UInt32(0)) + le(UInt64(0)) + le(UInt32(1))                  // locator → record at 0
        bytes += le(UInt32(0x0605_4b50)) + le(UInt16(0)) + le(UInt16(0)) + le(UInt16(0xFFFF)) + le(UInt16(0xFFFF))
        bytes += le(UInt32(0xFFFF_FFFF)) + le(UInt32(0xFFFF_FFFF)) + le(UInt16(0))
        try AtomicFileWriter.write(bytes, to: dir.file("evil.npz"))
        let e = #expect(throws: EMCError.self) { _ = try ZipArchive(path: dir.file("evil.npz")) }
        #expect(e?.kind == .truncated && e?.file == dir.file("evil.npz"))
    }

    @Test("zip members lying past the end of the file, and two members with one name, are errors")
    func zipMembers() throws {
        let dir = TemporaryDirectory()
        let twice = try makeZip([("x.npy", [1, 2, 3], false), ("x.npy", [4, 5], true)])
        try AtomicFileWriter.write(twice, to: dir.file("twice.npz"))
        let e = #expect(throws: EMCError.self) { _ = try ZipArchive(path: dir.file("twice.npz")) }
        #expect(e?.place == .member("x.npy") && e?.description.contains("two members") == true)
        // A directory entry whose member offset points far beyond the file.
        var far = try makeZip([("x.npy", [1, 2, 3], false)])
        let cd = far.count - 22 - (46 + 5)
        for i in 0..<4 { far[cd + 42 + i] = 0x7F }
        try AtomicFileWriter.write(far, to: dir.file("far.npz"))
        let f = #expect(throws: EMCError.self) { _ = try ZipArchive(path: dir.file("far.npz")) }
        #expect(f?.kind == .truncated && f?.place == .member("x.npy"))
    }

    @Test("an NPY header declaring far more than its NPZ member holds is refused before reading", arguments: [false, true])
    func npzDeclaresTooMuch(deflate: Bool) throws {
        let dir = TemporaryDirectory()
        let images = NPY.encode(descr: "|u1", shape: [67_108_864, 8, 8, 1], data: [UInt8](repeating: 7, count: 4096))
        let labels = NPY.encode(descr: "|u1", shape: [67_108_864], data: [0, 1, 2])
        try AtomicFileWriter.write(try makeZip([("x.npy", images, deflate), ("y.npy", labels, deflate)]), to: dir.file("a.npz"))
        let e = #expect(throws: EMCError.self) { _ = try NPZ.load(path: dir.file("a.npz"), options: .init()) }
        #expect(e?.kind == .format && e?.place == .member("x.npy"))
    }

    @Test("inflate fills a buffer of 4 GiB or more in pieces instead of trapping")
    func inflateIntoHugeBuffer() throws {
        let data = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let reader = InflateReader(source: MemoryReader(bytes: try Zlib.gzip(data)), format: .gzip)
        // Untouched pages cost nothing: only the bytes inflate writes are ever committed.
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: (1 << 32) + 4096, alignment: 16)
        defer { buffer.deallocate() }
        var got = 0
        while true {
            let n = try reader.readSome(into: UnsafeMutableRawBufferPointer(rebasing: buffer[got...]))
            if n == 0 { break }
            got += n
        }
        #expect(got == data.count)
        #expect(Array(buffer[0..<16]) == Array(data[0..<16]))
    }

    @Test("a tar member declaring 8 GiB in a small .tar.gz ends as 'truncated', without allocating it")
    func tarHugeMember() throws {
        let dir = TemporaryDirectory()
        var tar = makeTar([("data_batch_1.bin", cifar10Record(label: 1, seed: 1))])
        setTarSize(&tar, header: 0, octal: "77777777777")
        try AtomicFileWriter.write(try Zlib.gzip(tar), to: dir.file("evil.tar.gz"))
        let e = #expect(throws: EMCError.self) {
            _ = try CIFAR.decode(source: dir.file("evil.tar.gz"), variant: .cifar10, files: ["train": ["data_batch_1.bin"]], nameFiles: [])
        }
        #expect(e?.kind == .truncated)
    }

    @Test("a .tar.gz whose gzip CRC does not match, or with bytes after the gzip stream, is refused")
    func gzipTrailer() throws {
        let dir = TemporaryDirectory()
        let files = ["train": ["data_batch_1.bin"]]
        let tar = makeTar([("data_batch_1.bin", cifar10Record(label: 1, seed: 1))])
        let good = try Zlib.gzip(tar)
        try AtomicFileWriter.write(good, to: dir.file("good.tar.gz"))
        #expect(try CIFAR.decode(source: dir.file("good.tar.gz"), variant: .cifar10, files: files, nameFiles: []).splits["train"]?.count == 1)
        var flipped = good
        flipped[flipped.count - 6] ^= 0x10  // in the CRC-32 of the trailer
        try AtomicFileWriter.write(flipped, to: dir.file("crc.tar.gz"))
        let e = #expect(throws: EMCError.self) { _ = try CIFAR.decode(source: dir.file("crc.tar.gz"), variant: .cifar10, files: files, nameFiles: []) }
        #expect(e?.kind == .format && e?.file == dir.file("crc.tar.gz"))
        try AtomicFileWriter.write(good + Array("junk".utf8), to: dir.file("junk.tar.gz"))
        let j = #expect(throws: EMCError.self) { _ = try CIFAR.decode(source: dir.file("junk.tar.gz"), variant: .cifar10, files: files, nameFiles: []) }
        #expect(j?.description.contains("after the end of the gzip stream") == true)
        // Two gzip members back to back are one stream, as gzip itself reads them.
        let half = tar.count / 2
        try AtomicFileWriter.write(try Zlib.gzip(Array(tar[..<half])) + Zlib.gzip(Array(tar[half...])), to: dir.file("two.tar.gz"))
        #expect(try CIFAR.decode(source: dir.file("two.tar.gz"), variant: .cifar10, files: files, nameFiles: []).splits["train"]?.count == 1)
    }

    @Test("a tar holding two members with a wanted name is an error, not a silent choice")
    func tarDuplicate() throws {
        let dir = TemporaryDirectory()
        let tar = makeTar([("a/data_batch_1.bin", cifar10Record(label: 1, seed: 1)), ("b/data_batch_1.bin", cifar10Record(label: 2, seed: 2))])
        try AtomicFileWriter.write(tar, to: dir.file("dup.tar"))
        let e = #expect(throws: EMCError.self) {
            _ = try CIFAR.decode(source: dir.file("dup.tar"), variant: .cifar10, files: ["train": ["data_batch_1.bin"]], nameFiles: [])
        }
        #expect(e?.place == .member("b/data_batch_1.bin"))
    }

    @Test("an IDX header declaring gigabytes over a short file or gzip stream fails fast as truncated", arguments: [false, true])
    func idxDeclaresGigabytes(gzip: Bool) throws {
        let dir = TemporaryDirectory()
        // 16,384 × 1,024 × 1,024 = 16 GiB declared, 100 bytes present.
        let bytes = IDX.encode(shape: [16_384, 1_024, 1_024], values: [UInt8](repeating: 1, count: 100))
        try AtomicFileWriter.write(gzip ? try Zlib.gzip(bytes) : bytes, to: dir.file("img"))
        let e = #expect(throws: EMCError.self) { _ = try IDX.read(path: dir.file("img"), dimensions: 3) }
        #expect(e?.kind == .truncated && e?.file == dir.file("img") && e?.place == .record(0))
    }

    @Test("images above the pixel limit are refused from their header, saying the limit can be raised")
    func pixelLimit() throws {
        let image = RasterImage(width: 20, height: 10, channels: 3, fill: 9)
        let png = try PNG.encode(image)
        let e = #expect(throws: EMCError.self) { _ = try PNG.decode(png, maxPixels: 199, file: "big.png") }
        #expect(e?.file == "big.png" && e?.remedy == .raisePixelLimit)
        #expect(try PNG.decode(png, maxPixels: 200) == image)
        let jpeg = try JPEG.encode(image)
        #expect(throws: EMCError.self) { _ = try JPEG.decode(jpeg, maxPixels: 199) }
    }

    @Test("a 1×900,000 PNG centre-crops to 64×64 without a gigapixel intermediate; stretch keeps one row in memory")
    func extremeAspect() throws {
        let image = RasterImage(width: 1, height: 900_000, channels: 3, fill: 200)
        let decoded = try PNG.decode(try PNG.encode(image))
        // Stretch reads every source row (900,000 × 64 taps): a shorter image keeps the debug suite quick.
        let tall = RasterImage(width: 1, height: 50_000, channels: 3, fill: 200)
        for (source, mode) in [(decoded, Resize.Mode.centerCrop), (tall, .stretch)] {
            let out = Resize.square(source, size: 64, mode: mode)
            #expect(out.width == 64 && out.height == 64)
            #expect(out.pixels.allSatisfy { $0 == 200 }, "\(mode)")
        }
    }

    @Test("centre-crop computes exactly the window of the full resize", arguments: [(37, 23, 16), (23, 37, 16), (300, 200, 64), (5, 7, 12)])
    func cropWindow(width: Int, height: Int, size: Int) throws {
        var image = RasterImage(width: width, height: height, channels: 3)
        for i in 0..<image.pixels.count { image.pixels[i] = UInt8(truncatingIfNeeded: i * 31 + i / 7) }
        let scale = Double(size) / Double(min(width, height))
        let w = max(size, Int((Double(width) * scale).rounded())), h = max(size, Int((Double(height) * scale).rounded()))
        let full = Resize.area(image, width: w, height: h)
        let expected = Resize.crop(full, x: (w - size) / 2, y: (h - size) / 2, width: size, height: size)
        #expect(Resize.square(image, size: size, mode: .centerCrop) == expected)
    }
}
