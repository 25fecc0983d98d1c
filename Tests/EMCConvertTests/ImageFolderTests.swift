import EMCConvert
import EMCCore
import EMCFormats
import EMCVariants
import EMCShards
import EMCTestSupport
import Testing

/// A solid-colour picture with a little texture.
func solid(_ w: Int, _ h: Int, _ rgb: [UInt8]) -> RasterImage {
    var image = RasterImage(width: w, height: h, channels: 3)
    for y in 0..<h { for x in 0..<w { for c in 0..<3 { image[x, y, c] = rgb[c] } } }
    return image
}

@Suite("Image folders (JPEG and PNG)")
struct ImageFolderTests {
    let colours: [String: [UInt8]] = ["cats": [200, 40, 40], "dogs": [40, 200, 40], "owls": [40, 40, 200]]

    func makeTree(_ dir: TemporaryDirectory) throws -> String {
        let root = dir.file("raw")
        for (k, (name, rgb)) in colours.sorted(by: { $0.key < $1.key }).enumerated() {
            try FileSystem.createDirectory(root + "/train/" + name)
            for i in 0..<6 {
                let image = solid(120 + 10 * i, 90 + 7 * k, rgb)
                let bytes = i % 2 == 0 ? try JPEG.encode(image, quality: 92) : try PNG.encode(image)
                try AtomicFileWriter.write(bytes, to: root + "/train/\(name)/img\(i).\(i % 2 == 0 ? "JPEG" : "png")")
            }
        }
        try FileSystem.createDirectory(root + "/val")
        var csv = "ImageId,PredictionString\n"
        for (i, name) in ["owls", "cats"].enumerated() {
            try AtomicFileWriter.write(try JPEG.encode(solid(100, 80, colours[name]!)), to: root + "/val/v\(i).JPEG")
            csv += "v\(i),\(name) 1 2 3 4\n"
        }
        try AtomicFileWriter.write(Array(csv.utf8), to: root + "/val.csv")
        try AtomicFileWriter.write(Array("cats Felis catus\ndogs Canis familiaris\nowls Strigiformes\n".utf8), to: root + "/names.txt")
        return root
    }

    func definition() throws -> DatasetDefinition {
        var def = try DatasetDefinition.load("image-folder", manifests: repositoryManifests)
        def.imageFolder = .init(train: "train", test: "val", testLabels: "val.csv", classNames: "names.txt", size: 16)
        return def
    }

    @Test("class folders and a labelled flat folder convert: labels, 16×16 shapes, colours within the resize tolerance")
    func convert() throws {
        let dir = TemporaryDirectory()
        let raw = try makeTree(dir)
        let result = try Converter.run(ConvertRequest(dataset: try definition(), raw: raw, out: dir.file("out"), options: ShardSetOptions()), quiet: true)
        #expect(result.splits.map(\.samples) == [18, 2])
        let view = try DatasetView(directory: dir.file("out"))
        #expect(view.classes.names == ["Felis catus", "Canis familiaris", "Strigiformes"])
        #expect(view.schema == .image(height: 16, width: 16, channels: 3))
        let train = try view.split("train")
        let expected: [[UInt8]] = [colours["cats"]!, colours["dogs"]!, colours["owls"]!]
        var sample = [UInt8](repeating: 0, count: 16 * 16 * 3)
        for p in 0..<train.count {
            let label = try sample.withUnsafeMutableBytes { try train.read(p, into: $0) }
            for i in stride(from: 0, to: sample.count, by: 3) {
                for c in 0..<3 { #expect(abs(Int(sample[i + c]) - Int(expected[Int(label)][c])) <= 6, "sample \(p) channel \(c)") }
            }
        }
        #expect(try view.split("test").allLabels() == [2, 0] || view.split("test").allLabels() == [0, 2])
        #expect(ShardSetVerifier.verify(directory: dir.file("out")).ok)
    }

    @Test("a truncated JPEG, a PNG with a bad CRC and a zero-byte file: an error naming the file, or skipped with --skip-bad")
    func badFiles() throws {
        for (name, damage) in [("cut.JPEG", { (b: [UInt8]) in Array(b[..<(b.count / 2)]) }),
                               ("crc.png", { (b: [UInt8]) in var c = b; c[29] ^= 1; return c }),
                               ("empty.jpg", { (_: [UInt8]) in [UInt8]() })] {
            let dir = TemporaryDirectory()
            let raw = try makeTree(dir)
            let good = name.hasSuffix("png") ? try PNG.encode(solid(64, 64, [1, 2, 3])) : try JPEG.encode(solid(64, 64, [1, 2, 3]))
            try AtomicFileWriter.write(damage(good), to: raw + "/train/dogs/" + name)
            var request = ConvertRequest(dataset: try definition(), raw: raw, out: dir.file("out"), options: ShardSetOptions())
            do {
                _ = try Converter.run(request, quiet: true)
                Issue.record("\(name) was accepted")
            } catch let e as EMCError {
                #expect(e.file?.hasSuffix(name) == true, "\(e)")
            }
            #expect(!FileSystem.exists(dir.file("out/dataset.json")))
            request.skipBad = true
            let result = try Converter.run(request, quiet: true)
            #expect(result.splits[0].samples == 18)
            #expect(try DatasetManifest.load(directory: dir.file("out")).provenance.skipped.map { FileSystem.baseName($0) } == [name])
        }
    }

    @Test("a folder with no images, and a CSV naming an unknown class, are clear errors")
    func emptyAndUnknown() throws {
        let dir = TemporaryDirectory()
        try FileSystem.createDirectory(dir.file("raw/train/cats"))
        do { let e = try #require(#expect(throws: EMCError.self) { _ = try ImageFolder.scanClassFolders(dir.file("raw/train")) }); #expect(e.description.contains("no images")) }
        try FileSystem.createDirectory(dir.file("flat"))
        try AtomicFileWriter.write(Array("ImageId,PredictionString\nx,n999 1 2\n".utf8), to: dir.file("l.csv"))
        do { let e = try #require(#expect(throws: EMCError.self) { _ = try ImageFolder.scanLabelledFolder(dir.file("flat"), labels: dir.file("l.csv"), classes: ["cats"]) })
            #expect(e.place == .line(2))
        }
    }

    @Test("area resizing averages: a 2×2 checkerboard of 0 and 200 shrinks to 100; centre crop keeps the middle")
    func resize() {
        var board = RasterImage(width: 4, height: 4, channels: 3)
        for y in 0..<4 { for x in 0..<4 { for c in 0..<3 { board[x, y, c] = (x + y) % 2 == 0 ? 0 : 200 } } }
        let small = Resize.area(board, width: 2, height: 2)
        #expect(small.pixels.allSatisfy { $0 == 100 })
        var wide = RasterImage(width: 6, height: 2, channels: 3)
        for x in 0..<6 { for y in 0..<2 { for c in 0..<3 { wide[x, y, c] = UInt8(x * 40) } } }
        let square = Resize.square(wide, size: 2, mode: .centerCrop)
        #expect(square.width == 2 && square.height == 2)
        #expect(square[0, 0, 0] == 80 && square[1, 0, 0] == 120)
        #expect(Resize.square(wide, size: 3, mode: .stretch).width == 3)
    }

    @Test("DCT scaling decodes large photos at a reduced size still ≥ the target; CMYK-free colour survives")
    func dctScaling() throws {
        let big = try JPEG.encode(solid(500, 375, [10, 120, 240]), quality: 90)
        let scaled = try JPEG.decode(big, minimumSize: (64, 64))
        #expect(scaled.width >= 64 && scaled.height >= 64 && scaled.width < 250)
        let full = try JPEG.decode(big)
        #expect(full.width == 500 && full.height == 375)
    }
}
