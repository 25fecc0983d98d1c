import EMCCore
import EMCFormats
import EMCShards
import Foundation

/// Tabular CSVs into shards of float32 feature vectors, driven by the definition's table schema.
enum TabularConversion {
    static func run(_ request: ConvertRequest, schema: TableSchema, quiet: Bool, log: (String) -> Void) throws -> ConvertResult {
        let start = Clock.now()
        let def = request.dataset
        func locate(_ name: String) throws -> String {
            if !FileSystem.isDirectory(request.raw) && FileSystem.baseName(request.raw) == name { return request.raw }
            for candidate in [name, name + ".gz", name.hasSuffix(".gz") ? String(name.dropLast(3)) : name] {
                let path = FileSystem.join(request.raw, candidate)
                if FileSystem.exists(path) { return path }
            }
            throw EMCError(.missing, "\(def.name) needs \(name), which is not here", file: request.raw)
        }
        func readAll(_ names: [String]) throws -> Tabular.RawTable {
            var tables = try names.map { try Tabular.read(path: try locate($0), schema: schema) }
            var merged = tables.removeFirst()
            for t in tables {
                for k in merged.numeric.indices { merged.numeric[k] += t.numeric[k] }
                for k in merged.categorical.indices { merged.categorical[k] += t.categorical[k] }
                merged.labels += t.labels
                merged.lines += t.lines
            }
            return merged
        }
        var checks: [SourceCheck] = []
        var warnings: [String] = []
        for name in def.splits.values.flatMap({ $0 }).sorted() {
            let path = try locate(name)
            let check = SourceChecks.check(path: path, md5: try MD5.hex(file: path), published: def.published(name), contentMD5: nil)
            checks.append(check)
            if check.status == .mismatch {
                if request.strict { throw EMCError(.checksum, "MD5 does not match the published checksum", file: path, expected: check.expected, found: check.md5) }
                warnings.append("\(path): MD5 \(check.md5) does not match the published \(check.expected ?? "?")")
                log("warning: " + warnings.last!)
            }
        }
        let train: Tabular.RawTable, test: Tabular.RawTable
        if let trainFiles = def.splits["train"], let testFiles = def.splits["test"] {
            train = try readAll(trainFiles)
            test = try readAll(testFiles)
        } else if let all = def.splits["all"] {
            let table = try readAll(all)
            let (a, b) = Tabular.split(count: table.count, testFraction: def.testFraction ?? 0.2, seed: def.splitSeed ?? 0)
            train = Tabular.subset(table, rows: a)
            test = Tabular.subset(table, rows: b)
        } else {
            throw EMCError(.format, "a tabular definition needs splits 'train' and 'test', or 'all' with testFraction")
        }
        let encoding = Tabular.Encoding(fitting: train, schema: schema)
        let sampleSchema = SampleSchema.tabular(features: encoding.features)
        let trainSamples = LabeledSamples(schema: sampleSchema, data: try encoding.encode(train), labels: train.labels)
        let testSamples = LabeledSamples(schema: sampleSchema, data: try encoding.encode(test), labels: test.labels)
        var options = request.options
        if options.codec == nil { options.codec = CodecSpec(codec: .zstd) }
        let writer = try ShardSetWriter(directory: request.out, name: def.name, schema: sampleSchema,
                                        classes: ClassInfo(count: schema.labels.count, names: schema.labels), options: options,
                                        decoder: "csv", sources: checks.map(\.source),
                                        extraOptions: ["features": encoding.featureNames.joined(separator: "|"),
                                                       "testFraction": def.splits["all"] == nil ? "" : "\(def.testFraction ?? 0.2)",
                                                       "splitSeed": "\(def.splitSeed ?? 0)"])
        if let done = try Converter.finishedEarlier(request, writer: writer) {
            return Converter.summary(done, request: request, checks: checks, warnings: warnings, reused: 0, already: true, seconds: Clock.now() - start)
        }
        let progress = ProgressReporter("convert \(def.name)", total: train.count + test.count, unit: "rows", quiet: quiet)
        try writer.write(split: "train", samples: trainSamples, progress: progress)
        try writer.write(split: "test", samples: testSamples, progress: progress)
        let manifest = try writer.finish()
        progress.finish()
        return Converter.summary(manifest, request: request, checks: checks, warnings: warnings, reused: writer.reusedShards, already: false,
                                 seconds: Clock.now() - start)
    }
}
