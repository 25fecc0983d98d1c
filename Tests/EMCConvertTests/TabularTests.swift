import EMCConvert
import EMCCore
import EMCFormats
import EMCVariants
import EMCShards
import EMCTestSupport
import Foundation
import Testing

@Suite("Tabular CSVs with the real datasets' quirks")
struct TabularTests {
    func convert(_ name: String, raw: String, out: String) throws -> ConvertResult {
        try Converter.run(ConvertRequest(dataset: try DatasetDefinition.load(name, manifests: repositoryManifests), raw: raw, out: out,
                                         options: ShardSetOptions()), quiet: true)
    }

    /// Every sample of a split: features and labels.
    func rows(_ dir: String, _ split: String) throws -> [([Float], UInt32)] {
        let view = try DatasetView(directory: dir).split(split)
        var out: [([Float], UInt32)] = []
        var bytes = [UInt8](repeating: 0, count: view.schema.sampleBytes)
        for p in 0..<view.count {
            let label = try bytes.withUnsafeMutableBytes { try view.read(p, into: $0) }
            out.append((bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }, label))
        }
        return out
    }

    @Test("Adult: comma+space, '?' missing, the test file's first line and its labels' periods")
    func adult() throws {
        let dir = TemporaryDirectory()
        let train = """
        39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, Male, 2174, 0, 40, United-States, <=50K
        50, Self-emp-not-inc, 83311, Bachelors, 13, Married-civ-spouse, Exec-managerial, Husband, White, Male, 0, 0, 13, United-States, <=50K
        38, Private, 215646, HS-grad, 9, Divorced, Handlers-cleaners, Not-in-family, White, Male, 0, 0, 40, ?, >50K
        """
        let test = """
        |1x3 Cross validator
        25, Private, 226802, 11th, 7, Never-married, Machine-op-inspct, Own-child, Black, Male, 0, 0, 40, United-States, <=50K.
        38, ?, 89814, HS-grad, 9, Married-civ-spouse, Farming-fishing, Husband, White, Male, 0, 0, 50, Peru, >50K.
        """
        try AtomicFileWriter.write(Array((train + "\n").utf8), to: dir.file("adult.data"))
        try AtomicFileWriter.write(Array((test + "\n").utf8), to: dir.file("adult.test"))
        let result = try convert("adult", raw: dir.path, out: dir.file("out"))
        #expect(result.splits.map(\.samples) == [3, 2])
        let manifest = try DatasetManifest.load(directory: dir.file("out"))
        let features = manifest.provenance.options["features"]!.split(separator: "|").map(String.init)
        #expect(manifest.schema.features == features.count)
        #expect(features.contains("native-country=?") && features.contains("native-country=other"))
        let testRows = try rows(dir.file("out"), "test")
        #expect(Set(testRows.map(\.1)) == [0, 1])
        // Peru never occurs in train: it lands in the "other" slot.
        let peru = testRows.first { $0.1 == 1 }!.0
        #expect(peru[features.firstIndex(of: "native-country=other")!] == 1)
        // Numeric columns are standardised with train statistics: age in train is 39, 50, 38.
        let trainRows = try rows(dir.file("out"), "train")
        let ages = trainRows.map { $0.0[0] }
        #expect(abs(ages.reduce(0, +)) < 1e-5)
    }

    @Test("a UTF-8 byte-order mark before the first row is not part of its first field")
    func byteOrderMark() throws {
        let schema = try #require(try DatasetDefinition.load("adult", manifests: repositoryManifests).table)
        let row = "47, Private, 51835, Prof-school, 15, Married-civ-spouse, Prof-specialty, Wife, White, Female, 0, 1902, 60, Honduras, >50K\n"
        let plain = try Tabular.parse(Array(row.utf8), file: "a.csv", schema: schema)
        let marked = try Tabular.parse([0xEF, 0xBB, 0xBF] + Array(row.utf8), file: "a.csv", schema: schema)
        #expect(marked.numeric == plain.numeric && marked.labels == plain.labels && plain.numeric[0] == [47])
    }

    @Test("Credit: the extra X1, X2, ... header row, an ignored ID, categoricals and a seeded split")
    func credit() throws {
        let dir = TemporaryDirectory()
        var csv = ",X1,X2,X3,X4,X5,X6,X7,X8,X9,X10,X11,X12,X13,X14,X15,X16,X17,X18,X19,X20,X21,X22,X23,Y\n"
        csv += "ID,LIMIT_BAL,SEX,EDUCATION,MARRIAGE,AGE,PAY_0,PAY_2,PAY_3,PAY_4,PAY_5,PAY_6,BILL_AMT1,BILL_AMT2,BILL_AMT3,BILL_AMT4,BILL_AMT5,BILL_AMT6,PAY_AMT1,PAY_AMT2,PAY_AMT3,PAY_AMT4,PAY_AMT5,PAY_AMT6,default payment next month\n"
        for i in 0..<50 {
            let cells = ["\(i + 1)", "\(20000 + 1000 * i)", "\(1 + i % 2)", "\(1 + i % 4)", "\(1 + i % 3)", "\(24 + i % 30)"]
                + (0..<6).map { "\(($0 + i) % 3 - 1)" } + (0..<12).map { "\(($0 + 1) * 100 + i)" } + ["\(i % 5 == 0 ? 1 : 0)"]
            csv += cells.joined(separator: ",") + "\n"
        }
        try AtomicFileWriter.write(Array(csv.utf8), to: dir.file("default of credit card clients.csv"))
        let result = try convert("credit", raw: dir.path, out: dir.file("out"))
        #expect(result.splits.map(\.samples) == [40, 10])
        let again = try convert("credit", raw: dir.path, out: dir.file("again"))
        #expect(again.contentId == result.contentId)
        let features = try DatasetManifest.load(directory: dir.file("out")).provenance.options["features"]!.split(separator: "|")
        #expect(!features.contains("ID") && features.contains("SEX=1") && features.contains("SEX=2"))
    }

    @Test("CoverType: no header, gzip, 54 features, binary columns kept as 0/1")
    func covtype() throws {
        let dir = TemporaryDirectory()
        var csv = ""
        for i in 0..<30 {
            let numeric = (0..<10).map { "\(2000 + 37 * i + $0)" }
            let wilderness = (0..<4).map { $0 == i % 4 ? "1" : "0" }, soil = (0..<40).map { $0 == i % 40 ? "1" : "0" }
            csv += (numeric + wilderness + soil + ["\(1 + i % 7)"]).joined(separator: ",") + "\n"
        }
        try AtomicFileWriter.write(try Zlib.gzip(Array(csv.utf8)), to: dir.file("covtype.data.gz"))
        _ = try convert("covtype", raw: dir.path, out: dir.file("out"))
        let all = try rows(dir.file("out"), "train") + rows(dir.file("out"), "test")
        #expect(all.count == 30 && all[0].0.count == 54)
        #expect(all.allSatisfy { r in r.0[10..<14].reduce(0, +) == 1 && r.0[14...].reduce(0, +) == 1 })
        #expect(Set(all.map(\.1)) == Set(0..<7))
    }

    @Test("bad rows: a wrong column count, an unparsable number, an unknown label, an unseen category — each names file and line")
    func badRows() throws {
        let schema = try DatasetDefinition.load("adult", manifests: repositoryManifests).table!
        let good = "39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, Male, 2174, 0, 40, United-States, <=50K\n"
        let cases: [(String, String, Int)] = [
            ("short row", good + "39, State-gov, 77516\n", 2),
            ("not a number", good + good.replacingOccurrences(of: "77516", with: "7x516"), 2),
            ("unknown label", good + good.replacingOccurrences(of: "<=50K", with: "maybe"), 2),
        ]
        for (what, text, line) in cases {
            do {
                _ = try Tabular.parse(Array(text.utf8), file: "adult.data", schema: schema)
                Issue.record("\(what) accepted")
            } catch let e as EMCError {
                #expect(e.file == "adult.data" && e.place == .line(line), "\(what): \(e)")
            }
        }
        #expect(throws: EMCError.self) { _ = try Tabular.parse([], file: "empty.csv", schema: schema) }
        var strict = schema
        strict.unknownCategory = nil
        let train = try Tabular.parse(Array(good.utf8), file: "adult.data", schema: strict)
        let test = try Tabular.parse(Array(good.replacingOccurrences(of: "State-gov", with: "Never-worked").utf8), file: "adult.test", schema: strict)
        do { _ = try Tabular.Encoding(fitting: train, schema: strict).encode(test); Issue.record("unseen category accepted") } catch let e as EMCError {
            #expect(e.description.contains("Never-worked") && e.place == .line(1))
        }
    }
}

@Suite("NPZ folders into shards")
struct NPZConversionTests {
    @Test("several files form one dataset; global and streaming orders both verify and keep every sample", arguments: [Int.max, 0])
    func folder(budget: Int) throws {
        let dir = TemporaryDirectory()
        try FileSystem.createDirectory(dir.file("raw"))
        var all: [UInt8: Int] = [:]
        for f in 0..<3 {
            let n = 40 + f
            let images = (0..<(n * 16 * 3)).map { UInt8(truncatingIfNeeded: ($0 / 48) * 3 + f * 100) }
            let labels = (0..<n).map { Int64(($0 + f) % 4) }
            for i in 0..<n { all[images[i * 48], default: 0] += 1 }
            let labelBytes = labels.flatMap { v in (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * Int64($0))) } }
            let zip = try makeZip([("images.npy", NPY.encode(descr: "|u1", shape: [n, 4, 4, 3], data: images), f % 2 == 0),
                                   ("labels.npy", NPY.encode(descr: "<i8", shape: [n], data: labelBytes), true)])
            try AtomicFileWriter.write(zip, to: dir.file("raw/batch\(f).npz"))
        }
        var request = ConvertRequest(dataset: try DatasetDefinition.load("npz", manifests: repositoryManifests), raw: dir.file("raw"), out: dir.file("out"),
                                     options: ShardSetOptions())
        request.memoryBudget = budget
        let result = try Converter.run(request, quiet: true)
        #expect(result.splits.map(\.samples) == [123])
        #expect(ShardSetVerifier.verify(directory: dir.file("out")).ok)
        let view = try DatasetView(directory: dir.file("out")).split("train")
        var seen: [UInt8: Int] = [:]
        var sample = [UInt8](repeating: 0, count: 48)
        for p in 0..<view.count {
            _ = try sample.withUnsafeMutableBytes { try view.read(p, into: $0) }
            seen[sample[0], default: 0] += 1
        }
        #expect(seen == all)
        #expect(try DatasetManifest.load(directory: dir.file("out")).classes.count == 4)
    }
}
