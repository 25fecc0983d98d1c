import EMCCore
import EMCFormats
import EMCTestSupport
import Testing

@Suite("NPY and NPZ")
struct NPZTests {
    @Test("NPY headers of versions 1.0, 2.0 and 3.0; uint8 data and integer labels of every width", arguments: [UInt8(1), 2, 3])
    func npy(version: UInt8) throws {
        let data = (0..<24).map { UInt8($0) }
        let bytes = NPY.encode(descr: "|u1", shape: [2, 3, 4], data: data, version: version)
        let reader = MemoryReader(bytes: bytes, path: "a.npy")
        let header = try NPY.readHeader(reader)
        #expect(header.shape == [2, 3, 4] && !header.fortranOrder)
        #expect(try NPY.readBytes(reader, header: header) == data)
        for descr in ["<i8", "<i4", "<i2", "|i1", "<u2", "<u8"] {
            let size = Int(descr.dropFirst(2))!
            var raw: [UInt8] = []
            for v in [Int64(3), -1, 7] { for b in 0..<size { raw.append(UInt8(truncatingIfNeeded: v >> (8 * Int64(b)))) } }
            let r = MemoryReader(bytes: NPY.encode(descr: descr, shape: [3], data: raw, version: version))
            let labels = try NPY.readLabels(r, header: try NPY.readHeader(r))
            #expect(labels[0] == 3 && labels[2] == 7)
            #expect(labels[1] == (descr.contains("u") ? Int64(bitPattern: size == 8 ? UInt64.max : (1 << (8 * UInt64(size))) - 1) : -1), "\(descr)")
        }
    }

    @Test("big-endian and object dtypes, Fortran order and a bad magic are clear errors")
    func badNPY() throws {
        for (descr, words) in [(">i8", "big-endian"), ("|O", "object")] {
            let r = MemoryReader(bytes: NPY.encode(descr: descr, shape: [1], data: [UInt8](repeating: 0, count: 8)), path: "l.npy")
            do { _ = try NPY.readLabels(r, header: try NPY.readHeader(r)); Issue.record("\(descr) accepted") } catch let e as EMCError {
                #expect(e.description.contains(words) && e.file == "l.npy")
            }
        }
        let text = String(decoding: NPY.encode(descr: "|u1", shape: [1], data: [0]), as: UTF8.self).replacingOccurrences(of: "False", with: "True ")
        let r = MemoryReader(bytes: Array(text.utf8))
        #expect(throws: EMCError.self) { _ = try NPY.readBytes(r, header: try NPY.readHeader(r)) }
        #expect(throws: EMCError.self) { _ = try NPY.readHeader(MemoryReader(bytes: Array("not numpy at all".utf8))) }
        // A shape whose product overflows Int.
        let huge = NPY.encode(descr: "|u1", shape: [1 << 40, 1 << 40], data: [])
        #expect(throws: EMCError.self) { _ = try NPY.readHeader(MemoryReader(bytes: huge)) }
    }

    func npz(_ images: [UInt8], shape: [Int], labels: [Int64], deflate: Bool, imagesName: String = "x", labelsName: String = "y") throws -> [UInt8] {
        let labelBytes = labels.flatMap { v in (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * Int64($0))) } }
        return try makeZip([(imagesName + ".npy", NPY.encode(descr: "|u1", shape: shape, data: images), deflate),
                            (labelsName + ".npy", NPY.encode(descr: "<i8", shape: [labels.count], data: labelBytes), deflate)])
    }

    @Test("NPZ with deflated and stored members, NHWC and NCHW, and planar rows with 1-based labels")
    func layouts() throws {
        let dir = TemporaryDirectory()
        let nhwc = (0..<(2 * 4 * 4 * 3)).map { UInt8($0) }
        try AtomicFileWriter.write(try npz(nhwc, shape: [2, 4, 4, 3], labels: [1, 0], deflate: true), to: dir.file("a.npz"))
        let a = try NPZ.load(path: dir.file("a.npz"), options: .init())
        #expect(a.schema == .image(height: 4, width: 4, channels: 3) && a.data == nhwc && a.labels == [1, 0])
        // The same images stored channel-first.
        var nchw = [UInt8](repeating: 0, count: nhwc.count)
        for s in 0..<2 { for c in 0..<3 { for i in 0..<16 { nchw[s * 48 + c * 16 + i] = nhwc[s * 48 + i * 3 + c] } } }
        try AtomicFileWriter.write(try npz(nchw, shape: [2, 3, 4, 4], labels: [1, 0], deflate: false), to: dir.file("b.npz"))
        #expect(try NPZ.load(path: dir.file("b.npz"), options: .init()).data == nhwc)
        // Imagenet32-style: 'data' N×(3·S·S) planar, 'labels' 1-based.
        try AtomicFileWriter.write(try npz(nchw.map { $0 }, shape: [2, 48], labels: [2, 1], deflate: true, imagesName: "data", labelsName: "labels"), to: dir.file("c.npz"))
        let c = try NPZ.load(path: dir.file("c.npz"), options: .init(imagesKey: "data", labelsKey: "labels", layout: .planar, size: 4, labelOffset: -1))
        #expect(c.data == nhwc && c.labels == [1, 0])
    }

    @Test("a corrupt member, a cut archive, mismatched counts and a missing key are clear errors")
    func badNPZ() throws {
        let dir = TemporaryDirectory()
        var bytes = try npz((0..<(50 * 64)).map { UInt8(truncatingIfNeeded: $0 * 7) }, shape: [50, 8, 8, 1], labels: Array(repeating: 1, count: 50), deflate: true)
        try AtomicFileWriter.write(Array(bytes[..<(bytes.count - 30)]), to: dir.file("cut.npz"))
        #expect(throws: EMCError.self) { _ = try NPZ.load(path: dir.file("cut.npz"), options: .init()) }
        bytes[120] ^= 0xFF  // inside the deflated image data
        try AtomicFileWriter.write(bytes, to: dir.file("bad.npz"))
        do { _ = try NPZ.load(path: dir.file("bad.npz"), options: .init()); Issue.record("corrupt member accepted") } catch let e as EMCError {
            #expect(e.file?.contains("bad.npz") == true, "\(e)")
        }
        try AtomicFileWriter.write(try npz([UInt8](repeating: 0, count: 128), shape: [2, 8, 8, 1], labels: [0, 1, 2], deflate: false), to: dir.file("n.npz"))
        #expect(throws: EMCError.self) { _ = try NPZ.load(path: dir.file("n.npz"), options: .init()) }
        #expect(throws: EMCError.self) { _ = try NPZ.load(path: dir.file("n.npz"), options: .init(imagesKey: "images")) }
        // Arrays named by key must have image and label shapes: labels named as images is an error, not a trap.
        do { _ = try NPZ.load(path: dir.file("n.npz"), options: .init(imagesKey: "y")); Issue.record("accepted 1-d images") } catch let e as EMCError {
            #expect(e.description.contains("must be"))
        }
    }
}
