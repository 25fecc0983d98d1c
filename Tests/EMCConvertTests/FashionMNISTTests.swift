import EMCConvert
import EMCCore
import EMCFormats
import EMCVariants
import EMCShards
import EMCTestSupport
import Testing

/// The repository's manifests/datasets, found from this file's path.
let fashionMNIST = "/usr/share/datasets/fashion-mnist"

@Suite("Real data: Fashion-MNIST from Debian's dataset-fashion-mnist", .serialized)
struct FashionMNISTTests {
    func convert(to dir: String, shuffle: Bool = true, threads: Int = 2) throws -> ConvertResult {
        var options = ShardSetOptions(codec: nil, seed: 0, shuffle: shuffle)
        options.threads = threads
        let definition = try DatasetDefinition.load("fashion-mnist", manifests: repositoryManifests)
        var request = ConvertRequest(dataset: definition, raw: fashionMNIST, out: dir, options: options)
        request.strict = true
        return try Converter.run(request, quiet: true)
    }

    @Test("converts to 60,000 + 10,000 samples, 10 classes of 6,000 / 1,000, checksums matching the published content")
    func counts() throws {
        let dir = TemporaryDirectory()
        let result = try convert(to: dir.path)
        #expect(result.splits.map(\.samples) == [60_000, 10_000])
        #expect(result.checks.count == 4 && result.checks.allSatisfy { $0.status == .match || $0.status == .contentMatch })
        let inspection = try Inspection.of(directory: dir.path)
        #expect(inspection.classes.count == 10)
        #expect(inspection.splits[0].classCounts == [Int](repeating: 6_000, count: 10))
        #expect(inspection.splits[1].classCounts == [Int](repeating: 1_000, count: 10))
        #expect(ShardSetVerifier.verify(directory: dir.path).ok)
        // Fashion-MNIST's train mean is 72.94 and std 90.02 in 0–255 units.
        #expect(abs(inspection.statistics.mean[0] - 72.94) < 0.01)
        #expect(abs(inspection.statistics.std[0] - 90.02) < 0.01)
    }

    @Test("the first decoded train image equals the IDX bytes at offset 16; shuffled samples keep their original index")
    func firstImage() throws {
        let raw = try InflateReader(gzipFile: fashionMNIST + "/train-images-idx3-ubyte.gz").readExactly(count: 16 + 784 * 60_000)
        let plain = TemporaryDirectory()
        _ = try convert(to: plain.path, shuffle: false)
        let reader = try ShardSet(directory: plain.path).split("train")
        #expect(try reader.sample(0).data == Array(raw[16..<(16 + 784)]))
        let shuffled = TemporaryDirectory()
        _ = try convert(to: shuffled.path)
        let r2 = try ShardSet(directory: shuffled.path).split("train")
        for p in [0, 1, 59_999] {
            let s = try r2.sample(p)
            let o = Int(s.originalIndex)
            #expect(s.data == Array(raw[(16 + 784 * o)..<(16 + 784 * (o + 1))]))
        }
        #expect(try r2.sample(0).originalIndex != 0)
    }

    @Test("the same seed gives byte-identical shard sets with 1 or 2 threads; a rerun does nothing")
    func determinism() throws {
        let a = TemporaryDirectory(), b = TemporaryDirectory()
        let first = try convert(to: a.path, threads: 1)
        _ = try convert(to: b.path, threads: 2)
        for name in try FileSystem.list(a.path) {
            #expect(try ReadableFile.contents(of: a.file(name)) == ReadableFile.contents(of: b.file(name)), "\(name)")
        }
        let again = try convert(to: a.path)
        #expect(again.alreadyConverted)
        #expect(again.contentId == first.contentId)
    }

    @Test("a contact sheet has one row per class")
    func sheet() throws {
        let dir = TemporaryDirectory()
        _ = try convert(to: dir.path)
        let image = try ContactSheet.make(directory: dir.path, perClass: 5, scale: 1)
        #expect(image.height == 10 * 30 + 2 && image.width == 5 * 30 + 2)
        let png = try PNG.encode(image)
        #expect(try PNG.decode(png) == image)
    }
}

@Suite("Conversion errors")
struct ConversionErrorTests {
    @Test("unknown dataset, missing folder, missing split file and a mismatched checksum under --strict")
    func errors() throws {
        #expect(throws: EMCError.self) { _ = try DatasetDefinition.load("no-such-set", manifests: repositoryManifests) }
        let definition = try DatasetDefinition.load("mnist", manifests: repositoryManifests)
        let dir = TemporaryDirectory()
        var request = ConvertRequest(dataset: definition, raw: dir.file("absent"), out: dir.file("out"), options: ShardSetOptions())
        #expect(throws: EMCError.self) { _ = try Converter.run(request, quiet: true) }
        let raw = dir.file("raw")
        try FileSystem.createDirectory(raw)
        let (images, labels) = idxPair(count: 30)
        try AtomicFileWriter.write(images, to: raw + "/train-images-idx3-ubyte")
        try AtomicFileWriter.write(labels, to: raw + "/train-labels-idx1-ubyte")
        request.raw = raw
        do { let e = try #require(#expect(throws: EMCError.self) { _ = try Converter.run(request, quiet: true) })
            #expect(e.kind == .missing)
            #expect(e.description.contains("t10k-images-idx3-ubyte"))
        }
        try AtomicFileWriter.write(images, to: raw + "/t10k-images-idx3-ubyte")
        try AtomicFileWriter.write(labels, to: raw + "/t10k-labels-idx1-ubyte")
        request.strict = true
        #expect(throws: EMCError.self) { _ = try Converter.run(request, quiet: true) }
        request.strict = false
        let result = try Converter.run(request, quiet: true)
        #expect(result.warnings.count >= 4)  // four unknown files, and 30 ≠ 60,000 samples
        #expect(result.checks.allSatisfy { $0.status == .mismatch })
        #expect(ShardSetVerifier.verify(directory: request.out).ok)
    }
}

func idxPair(count: Int) -> (images: [UInt8], labels: [UInt8]) {
    (IDX.encode(shape: [count, 28, 28], values: (0..<(count * 784)).map { UInt8(truncatingIfNeeded: $0) }),
     IDX.encode(shape: [count], values: (0..<count).map { UInt8($0 % 10) }))
}
