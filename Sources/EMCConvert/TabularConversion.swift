import EMCCore
import EMCFormats
import EMCShards
import Foundation

/// Tabular CSVs into shards of float32 feature vectors, driven by the definition's table schema.
struct TabularSource: ConversionSource {
    let schema: SampleSchema
    let classes: ClassInfo
    let checks: [SourceCheck]
    let recordedOptions: [String: String]
    let splits: [SplitSource]
    var unit: String { "rows" }

    init(_ request: ConvertRequest) throws {
        let def = request.dataset
        guard let table = def.table else { throw EMCError(.format, "a csv definition needs a \"table\" schema") }
        let needed = Set(def.splits.values.flatMap { $0 })
        func locate(_ name: String) throws -> String {
            // --raw may name the file itself, under any name, when the data set is one file.
            if !FileSystem.isDirectory(request.raw) && (FileSystem.baseName(request.raw) == name || needed.count == 1) {
                guard FileSystem.exists(request.raw) else { throw EMCError(.missing, "no such file", file: request.raw) }
                return request.raw
            }
            for candidate in [name, name + ".gz", name.hasSuffix(".gz") ? String(name.dropLast(3)) : name] {
                let path = FileSystem.join(request.raw, candidate)
                if FileSystem.exists(path) { return path }
            }
            throw EMCError(.missing, "\(def.name) needs \(name), which is not here", file: request.raw)
        }
        func readAll(_ names: [String]) throws -> Tabular.RawTable {
            var tables = try names.map { try Tabular.read(path: try locate($0), schema: table) }
            var merged = tables.removeFirst()
            for t in tables {
                for k in merged.numeric.indices { merged.numeric[k] += t.numeric[k] }
                for k in merged.categorical.indices { merged.categorical[k] += t.categorical[k] }
                merged.labels += t.labels
                merged.lines += t.lines
            }
            return merged
        }
        checks = try needed.sorted().map { name in
            let path = try locate(name)
            return SourceChecks.check(path: path, md5: try MD5.hex(file: path), published: def.published(name), contentMD5: nil)
        }
        let train: Tabular.RawTable, test: Tabular.RawTable
        if let trainFiles = def.splits["train"], let testFiles = def.splits["test"] {
            train = try readAll(trainFiles)
            test = try readAll(testFiles)
        } else if let all = def.splits["all"] {
            let rows = try readAll(all)
            let (a, b) = Tabular.split(count: rows.count, testFraction: def.testFraction ?? 0.2, seed: def.splitSeed ?? 0)
            train = Tabular.subset(rows, rows: a)
            test = Tabular.subset(rows, rows: b)
        } else {
            throw EMCError(.format, "a tabular definition needs splits 'train' and 'test', or 'all' with testFraction")
        }
        let encoding = Tabular.Encoding(fitting: train, schema: table)
        schema = SampleSchema.tabular(features: encoding.features)
        classes = ClassInfo(count: table.labels.count, names: table.labels)
        splits = [.inMemory("train", LabeledSamples(schema: schema, data: try encoding.encode(train), labels: train.labels)),
                  .inMemory("test", LabeledSamples(schema: schema, data: try encoding.encode(test), labels: test.labels))]
        recordedOptions = ["features": encoding.featureNames.joined(separator: "|"),
                           "testFraction": def.splits["all"] == nil ? "" : "\(def.testFraction ?? 0.2)", "splitSeed": "\(def.splitSeed ?? 0)"]
    }
}
