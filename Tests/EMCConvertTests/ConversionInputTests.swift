import EMCConvert
import EMCCore
import EMCFormats
import EMCShards
import EMCTestSupport
import EMCVariants
import Foundation
import Testing

/// A class-folder tree of tiny PNGs: class name → image count.
func imageTree(_ root: String, _ classes: [(String, Int)]) throws {
    for (k, (name, count)) in classes.enumerated() {
        try FileSystem.createDirectory(root + "/" + name)
        for i in 0..<count {
            try AtomicFileWriter.write(try PNG.encode(solid(12, 10, [UInt8(40 * k), 90, UInt8(10 * i)])), to: "\(root)/\(name)/i\(i).png")
        }
    }
}

@Suite("The conversion driver: folders, labels and definitions that would mislead are refused or handled")
struct ConversionInputTests {
    func request(_ def: DatasetDefinition, raw: String, out: String) -> ConvertRequest {
        ConvertRequest(dataset: def, raw: raw, out: out, options: ShardSetOptions())
    }

    func folderDefinition(size: Int = 8) throws -> DatasetDefinition {
        var def = try DatasetDefinition.load("image-folder", manifests: repositoryManifests)
        def.imageFolder = .init(train: ".", test: nil, testLabels: nil, classNames: nil, size: size)
        return def
    }

    @Test("hidden folders and files are not classes or images; labels stay those of the visible folders")
    func hiddenFolders() throws {
        let dir = TemporaryDirectory()
        try imageTree(dir.file("raw"), [(".ipynb_checkpoints", 2), ("ants", 2), ("bees", 3)])
        try AtomicFileWriter.write(try PNG.encode(solid(4, 4, [1, 2, 3])), to: dir.file("raw/ants/._i0.png"))
        let result = try Converter.run(request(try folderDefinition(), raw: dir.file("raw"), out: dir.file("out")), quiet: true)
        #expect(result.splits.map(\.samples) == [5])
        #expect(try DatasetView(directory: dir.file("out")).classes.names == ["ants", "bees"])
    }

    @Test("an empty class folder is an error naming it")
    func emptyClass() throws {
        let dir = TemporaryDirectory()
        try imageTree(dir.file("raw"), [("ants", 2), ("bees", 0), ("cats", 1)])
        let e = #expect(throws: EMCError.self) { _ = try Converter.run(request(try folderDefinition(), raw: dir.file("raw"), out: dir.file("out")), quiet: true) }
        #expect(e?.place == .member("bees"))
    }

    @Test("--skip-bad with every image bad is an error, not an empty set")
    func allBad() throws {
        let dir = TemporaryDirectory()
        try FileSystem.createDirectory(dir.file("raw/ants"))
        try AtomicFileWriter.write(Array("not a png".utf8), to: dir.file("raw/ants/a.png"))
        var r = request(try folderDefinition(), raw: dir.file("raw"), out: dir.file("out"))
        r.skipBad = true
        let e = #expect(throws: EMCError.self) { _ = try Converter.run(r, quiet: true) }
        #expect(e?.description.contains("none of the 1 images") == true)
        #expect(!FileSystem.exists(dir.file("out/dataset.json")))
    }

    @Test("ImageNet in the ILSVRC2012/torchvision layout (train/<wnid>/, val/<wnid>/) converts too")
    func torchvisionLayout() throws {
        let dir = TemporaryDirectory()
        try imageTree(dir.file("raw/train"), [("n01440764", 3), ("n01443537", 2)])
        try imageTree(dir.file("raw/val"), [("n01440764", 1), ("n01443537", 2)])
        var r = request(try DatasetDefinition.load("imagenet", manifests: repositoryManifests), raw: dir.file("raw"), out: dir.file("out"))
        r.imageSize = 8
        let result = try Converter.run(r, quiet: true)
        #expect(result.splits.map(\.samples) == [5, 3])
        let test = try DatasetView(directory: dir.file("out")).split("test")
        #expect(try test.allLabels().sorted() == [0, 1, 1])
        // A val class that train does not have is an error.
        try imageTree(dir.file("raw/val"), [("n99999999", 1)])
        let e = #expect(throws: EMCError.self) { _ = try Converter.run(r, quiet: true) }
        #expect(e?.place == .member("n99999999"))
    }

    @Test("one stray NPZ label does not make millions of classes unless the class count is given")
    func outlierLabel() throws {
        let dir = TemporaryDirectory()
        let labels: [Int64] = [0, 1, 2, 16_777_215]
        let bytes = labels.flatMap { v in (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * Int64($0))) } }
        let zip = try makeZip([("images.npy", NPY.encode(descr: "|u1", shape: [4, 2, 2, 1], data: [UInt8](repeating: 9, count: 16)), false),
                               ("labels.npy", NPY.encode(descr: "<i8", shape: [4], data: bytes), false)])
        try FileSystem.createDirectory(dir.file("raw"))
        try AtomicFileWriter.write(zip, to: dir.file("raw/a.npz"))
        var r = request(try DatasetDefinition.load("npz", manifests: repositoryManifests), raw: dir.file("raw"), out: dir.file("out"))
        let e = #expect(throws: EMCError.self) { _ = try Converter.run(r, quiet: true) }
        #expect(e?.remedy == .giveClassCount(16_777_216))
        r.classes = 3
        #expect(throws: EMCError.self) { _ = try Converter.run(r, quiet: true) }
    }

    @Test("a single-file data set converts from --raw naming the file under another name")
    func rawNamesTheFile() throws {
        let dir = TemporaryDirectory()
        var csv = "X1,X2,X3,X4,X5,X6,X7,X8,X9,X10,X11,X12,X13,X14,X15,X16,X17,X18,X19,X20,X21,X22,X23,Y\n"
        csv += "ID,LIMIT_BAL,SEX,EDUCATION,MARRIAGE,AGE,PAY_0,PAY_2,PAY_3,PAY_4,PAY_5,PAY_6,BILL_AMT1,BILL_AMT2,BILL_AMT3,BILL_AMT4,BILL_AMT5,BILL_AMT6,PAY_AMT1,PAY_AMT2,PAY_AMT3,PAY_AMT4,PAY_AMT5,PAY_AMT6,default payment next month\n"
        for i in 0..<20 {
            csv += "\(i),\(20000 + 1000 * i),\(1 + i % 2),2,1,\(24 + i),2,2,-1,-1,-2,-2,3913,3102,689,0,0,0,0,689,0,0,0,0,\(i % 2)\n"
        }
        try AtomicFileWriter.write(Array(csv.utf8), to: dir.file("my-credit-export.csv"))
        let r = request(try DatasetDefinition.load("credit", manifests: repositoryManifests), raw: dir.file("my-credit-export.csv"), out: dir.file("out"))
        let result = try Converter.run(r, quiet: true)
        #expect(result.splits.map(\.samples).reduce(0, +) == 20)
    }

    @Test("definitions are validated when loaded: each bad field is an error naming it", arguments: [
        ("\"decoder\": \"idx\"", "\"decoder\": \"jpeg2000\"", "decoder"),
        ("\"size\": 64", "\"size\": 0", "imageFolder.size"),
        ("\"testFraction\": 0.2", "\"testFraction\": 1.5", "testFraction"),
    ])
    func definitions(from: String, to: String, field: String) throws {
        let dir = TemporaryDirectory()
        let source = ["decoder": "fashion-mnist", "imageFolder.size": "imagenet", "testFraction": "credit"][field]!
        let text = try String(contentsOfFile: repositoryManifests + "/\(source).json", encoding: .utf8)
        #expect(text.contains(from), "fixture: \(source).json has no \(from)")
        try AtomicFileWriter.write(Array(text.replacingOccurrences(of: from, with: to).utf8), to: dir.file("bad.json"))
        let e = #expect(throws: EMCError.self) { _ = try DatasetDefinition.load(dir.file("bad.json")) }
        #expect(e?.place == .field(field) && e?.file == dir.file("bad.json"))
    }
}

@Suite("IDX labels past the class count")
struct IDXLabelTests {
    @Test("an IDX label beyond the definition's classes names the labels file and the record")
    func labelOutOfRange() throws {
        let dir = TemporaryDirectory()
        try FileSystem.createDirectory(dir.file("raw"))
        let images = IDX.encode(shape: [3, 28, 28], values: [UInt8](repeating: 5, count: 3 * 784))
        for (name, labels) in [("train", [1, 12, 3]), ("t10k", [0, 1, 2])] {
            try AtomicFileWriter.write(try Zlib.gzip(images), to: dir.file("raw/\(name)-images-idx3-ubyte.gz"))
            try AtomicFileWriter.write(try Zlib.gzip(IDX.encode(shape: [3], values: labels.map(UInt8.init))), to: dir.file("raw/\(name)-labels-idx1-ubyte.gz"))
        }
        let request = ConvertRequest(dataset: try DatasetDefinition.load("fashion-mnist", manifests: repositoryManifests), raw: dir.file("raw"),
                                     out: dir.file("out"), options: ShardSetOptions())
        let e = #expect(throws: EMCError.self) { _ = try Converter.run(request, quiet: true) }
        #expect(e?.file?.hasSuffix("train-labels-idx1-ubyte.gz") == true && e?.place == .record(1), "\(String(describing: e))")
    }
}
