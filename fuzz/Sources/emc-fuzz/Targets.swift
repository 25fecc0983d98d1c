import EMCConvert
import EMCCore
import EMCFormats
import EMCReports
import EMCSearch
import EMCShards
import EMCTrainer
import Foundation

/// One fuzz target: feeds arbitrary bytes to one of emc's readers. Any EMCError is the expected answer to
/// bad bytes; a crash, trap, sanitizer report, hang or huge allocation is a bug libFuzzer reports.
struct FuzzTarget: Sendable {
    let name: String
    /// What the bytes are: a whole file of this kind.
    let summary: String
    /// Feeds one input; throws the reader's error (ignored by the driver).
    let run: @Sendable ([UInt8]) throws -> Void
    /// Small valid inputs to start from (scripts/fuzz --make-corpus writes them to fuzz/corpus/<name>/).
    let seeds: @Sendable () throws -> [[UInt8]]
}

/// A scratch folder for targets whose readers take a path (one per process, new and private, reused for every input).
let scratch: String = {
    do { return try FileSystem.makeTemporaryDirectory(prefix: "emc-fuzz") } catch { fatalError("fuzz setup: \(error)") }
}()

func scratchFile(_ name: String, _ bytes: [UInt8]) throws -> String {
    let path = scratch + "/" + name
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    return path
}

/// A small valid shard set (written once per process), whose shard and manifest the shard targets vary.
let baseSet: String = {
    let dir = scratch + "/base"
    if FileSystem.exists(dir + "/" + DatasetManifest.fileName) { return dir }
    var options = ShardSetOptions(codec: nil, seed: 1, shuffle: true)
    options.chunkBytes = 256
    options.threads = 1
    var data = [UInt8](repeating: 0, count: 24 * 12)
    for i in data.indices { data[i] = UInt8(truncatingIfNeeded: i * 7 + i / 12) }
    let samples = LabeledSamples(schema: .image(height: 2, width: 2, channels: 3), data: data, labels: (0..<24).map { UInt32($0 % 3) })
    do {
        let writer = try ShardSetWriter(directory: dir, name: "fuzz", schema: samples.schema, classes: ClassInfo(count: 3, names: ["a", "b", "c"]),
                                        options: options, decoder: "test", sources: [])
        try writer.write(split: "train", samples: samples)
        _ = try writer.finish()
    } catch {
        fatalError("fuzz setup: cannot write the base shard set: \(error)")
    }
    return dir
}()

/// Reads every sample of every split of the set in `dir`.
func readWholeSet(_ dir: String) throws {
    let set = try ShardSet(directory: dir)
    for name in set.manifest.splitNames {
        let split = try set.split(name)
        var buffer = [UInt8](repeating: 0, count: max(1, set.schema.sampleBytes))
        for p in 0..<min(split.count, 10_000) { _ = try buffer.withUnsafeMutableBytes { try split.read(p, into: $0) } }
    }
}

let targets: [FuzzTarget] = [
    FuzzTarget(name: "idx", summary: "an IDX images file, plain or gzip", run: { bytes in
        _ = try IDX.read(path: try scratchFile("input.idx", bytes), dimensions: 3)
    }, seeds: {
        let images = IDX.encode(shape: [3, 4, 3], values: (0..<36).map { UInt8($0) })
        return [images, try Zlib.gzip(images), IDX.encode(shape: [5], values: [0, 1, 2, 3, 9])]
    }),
    FuzzTarget(name: "cifar", summary: "a CIFAR-10 .tar or .tar.gz archive", run: { bytes in
        _ = try CIFAR.decode(source: try scratchFile("input.tar.gz", bytes), variant: .cifar10,
                             files: ["train": ["data_batch_1.bin"]], nameFiles: ["batches.meta.txt"])
    }, seeds: {
        let record = [UInt8(3)] + (0..<3072).map { UInt8(truncatingIfNeeded: $0 / 3) }
        let tar = makeTar([("cifar-10-batches-bin/batches.meta.txt", Array("a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n".utf8)),
                           ("cifar-10-batches-bin/data_batch_1.bin", record)])
        return [try Zlib.gzip(tar), tar]
    }),
    FuzzTarget(name: "png", summary: "a PNG file", run: { bytes in
        _ = Resize.square(try PNG.decode(bytes, maxPixels: 1 << 22), size: 8, mode: .centerCrop)
    }, seeds: {
        var image = RasterImage(width: 6, height: 5, channels: 3)
        for i in image.pixels.indices { image.pixels[i] = UInt8(truncatingIfNeeded: i * 11) }
        return [try PNG.encode(image), try PNG.encode(RasterImage(width: 3, height: 3, channels: 1, fill: 7))]
    }),
    FuzzTarget(name: "jpeg", summary: "a JPEG file", run: { bytes in
        _ = Resize.square(try JPEG.decode(bytes, minimumSize: (8, 8), maxPixels: 1 << 22), size: 8, mode: .stretch)
    }, seeds: {
        var image = RasterImage(width: 16, height: 12, channels: 3)
        for i in image.pixels.indices { image.pixels[i] = UInt8(truncatingIfNeeded: i * 5) }
        return [try JPEG.encode(image, quality: 50)]
    }),
    FuzzTarget(name: "npy", summary: "a .npy array", run: { bytes in
        let reader = MemoryReader(bytes: bytes, path: "input.npy")
        let header = try NPY.readHeader(reader)
        if header.descr.hasSuffix("u1") { _ = try NPY.readBytes(reader, header: header) } else { _ = try NPY.readLabels(reader, header: header) }
    }, seeds: {
        [NPY.encode(descr: "|u1", shape: [2, 2, 2, 1], data: [1, 2, 3, 4, 5, 6, 7, 8]),
         NPY.encode(descr: "<i8", shape: [2], data: [1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0], version: 2)]
    }),
    FuzzTarget(name: "npz", summary: "an .npz (zip) archive of images and labels", run: { bytes in
        _ = try NPZ.load(path: try scratchFile("input.npz", bytes), options: .init())
    }, seeds: {
        let x = NPY.encode(descr: "|u1", shape: [2, 2, 2, 1], data: [1, 2, 3, 4, 5, 6, 7, 8])
        let y = NPY.encode(descr: "|u1", shape: [2], data: [0, 1])
        return [try makeZip([("x.npy", x, false), ("y.npy", y, false)]), try makeZip([("x.npy", x, true), ("y.npy", y, true)])]
    }),
    FuzzTarget(name: "csv", summary: "a CSV with the Adult data set's schema", run: { bytes in
        _ = try Tabular.parse(bytes, file: "input.csv", schema: adultSchema)
    }, seeds: {
        [Array("39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, Male, 2174, 0, 40, United-States, <=50K\n38, Private, 215646, HS-grad, 9, Divorced, Handlers-cleaners, Not-in-family, White, Male, 0, 0, 40, ?, >50K\n".utf8)]
    }),
    FuzzTarget(name: "csvimage", summary: "images as CSV rows of pixel values (the digits definition), converted", run: { bytes in
        let out = scratch + "/csvimage-out"
        FileSystem.removeTree(out)
        let request = ConvertRequest(dataset: try digitsDefinition(), raw: try scratchFile("digits.csv", bytes), out: out,
                                     options: ShardSetOptions(codec: nil, seed: 0))
        _ = try Converter.run(request, quiet: true)
    }, seeds: {
        let row = { (label: Int) in (0..<64).map { String(($0 * 7 + label) % 17) }.joined(separator: ",") + ",\(label)\n" }
        return [Array((0..<20).map { row($0 % 10) }.joined().utf8)]
    }),
    FuzzTarget(name: "shard", summary: "a shard file (.emcs), read chunk by chunk", run: { bytes in
        let reader = try ShardReader(path: try scratchFile("input.emcs", bytes))
        let decoder = try ChunkDecoder()
        for k in reader.entries.indices.prefix(64) { _ = try reader.readChunk(k, decoder: decoder) }
    }, seeds: {
        let manifest = try DatasetManifest.load(directory: baseSet)
        return try manifest.splits["train"]!.shards.map { try ReadableFile.contents(of: baseSet + "/" + $0.file) }
    }),
    FuzzTarget(name: "manifest", summary: "a dataset.json beside a valid shard, verified and read", run: { bytes in
        let dir = scratch + "/set"
        if !FileSystem.exists(dir) {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            for file in try FileSystem.list(baseSet) where file.hasSuffix(".emcs") {
                try FileManager.default.copyItem(atPath: baseSet + "/" + file, toPath: dir + "/" + file)
            }
        }
        try Data(bytes).write(to: URL(fileURLWithPath: dir + "/" + DatasetManifest.fileName))
        _ = ShardSetVerifier.verify(directory: dir)
        try readWholeSet(dir)
    }, seeds: { [try ReadableFile.contents(of: baseSet + "/" + DatasetManifest.fileName)] }),
    FuzzTarget(name: "log", summary: "a results log (JSON lines of trial records), read and reported as emc report does", run: { bytes in
        let records = try ResultsLog.records(at: try scratchFile("input.jsonl", bytes))
        let report = Report.from(records)
        _ = report.text
        _ = report.csv
        _ = report.seedsCSV
        _ = Findings.text(Findings.evaluate(report))
        _ = BoundaryPlot.svg(report, records: records)
        _ = EMCPlot.svg(report, x: .parameters, by: .condition)
    }, seeds: {
        // Logs of short simulated searches (a known boundary), as emc run writes them.
        try (0..<3).map { i -> [UInt8] in
            let path = scratch + "/seed-\(i).jsonl"
            FileSystem.remove(path)
            let fitter = SimulatedFitter(n50: [300, 1_500, 9_000][i], slope: 6, exhaustion: 0.05, simulation: UInt64(i))
            let fit = FitOptions(TrainingRules(budget: Budget(epochs: fitter.budget)))
            let config = SearchConfig(dataDirectory: "/simulated", dataName: "simulated", dataContentId: "sim\(i)", variant: nil,
                                      model: try ModelSpec(parsing: "mlp:width=\(4 << i)"), optimizer: try OptimizerSpec(parsing: "sgd:lr=0.1"),
                                      fit: fit, normalize: "none", start: 100, resolution: 0.25, seeds: 2, maxSamples: 100_000, parameters: 100 << i)
            _ = try EMCSearch(config: config, log: try ResultsLog(path: path), fitter: fitter).run()
            return try ReadableFile.contents(of: path)
        }
    }),
    FuzzTarget(name: "checkpoint", summary: "a trial checkpoint, read by a trial about to start (resumed from only when it is intact)", run: { bytes in
        let path = try scratchFile("trial.ckpt", bytes)
        _ = try checkpointTrial(CheckpointOptions(path: path, interval: 1e9))
    }, seeds: {
        // A real checkpoint: a trial stopped after its third epoch, saving every epoch.
        let path = scratch + "/seed.ckpt"
        FileSystem.remove(path)
        _ = try? checkpointTrial(CheckpointOptions(path: path, interval: 0), stopAfterEpoch: 3)
        return [try ReadableFile.contents(of: path)]
    }),
    FuzzTarget(name: "definition", summary: "a dataset definition (manifests/datasets/*.json)", run: { bytes in
        _ = try DatasetDefinition.load(try scratchFile("input.json", bytes))
    }, seeds: {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../../manifests/datasets").standardized.path
        return try FileSystem.list(folder).filter { $0.hasSuffix(".json") }.sorted().prefix(4).map { try ReadableFile.contents(of: folder + "/" + $0) }
    }),
]

/// A six-epoch trial of a tiny MLP on 16 fixed random points, with `checkpoint` (stopped after `stopAfterEpoch`, as
/// a kill would stop it, when given).
func checkpointTrial(_ checkpoint: CheckpointOptions, stopAfterEpoch: Int? = nil) throws -> FitOutcome {
    let rng = CounterRNG(seed: 3, stream: .test)
    let data = try InMemoryTrainingData(inputs: (0..<48).map { Float(rng.normal(UInt64($0))) }, labels: (0..<16).map { Int32($0 % 2) },
                                        shape: .vector(3), classes: 2)
    var options = FitOptions(TrainingRules(budget: Budget(epochs: 6)))
    options.batch = 8
    options.evalBatch = 16
    options.seed = 1
    options.checkpoint = checkpoint
    let model = try ModelSpec(parsing: "mlp:width=2").build(input: data.shape, classes: data.classes, maxBatch: 16)
    model.initialize(seed: 1)
    let trainer = try Trainer(model: model, data: data, optimizer: try OptimizerSpec(parsing: "adam:lr=0.01"), options: options)
    trainer.stopAfterEpoch = stopAfterEpoch
    return try trainer.fit()
}

/// The Adult schema, as the shipped definition gives it (a fixed copy keeps the target independent of the checkout).
let adultSchema: TableSchema = {
    let names = ["age:numeric", "workclass:categorical", "fnlwgt:numeric", "education:categorical", "education-num:numeric",
                 "marital-status:categorical", "occupation:categorical", "relationship:categorical", "race:categorical", "sex:categorical",
                 "capital-gain:numeric", "capital-loss:numeric", "hours-per-week:numeric", "native-country:categorical", "income:label"]
    let columns = names.map { c -> String in
        let parts = c.split(separator: ":")
        return "{\"name\": \"\(parts[0])\", \"type\": \"\(parts[1])\"}"
    }
    let json = "{\"separator\": \",\", \"headerRows\": 0, \"labels\": [\"<=50K\", \">50K\"], \"missing\": [\"?\"], "
        + "\"unknownCategory\": \"other\", \"columns\": [\(columns.joined(separator: ", "))]}"
    do { return try JSONDecoder().decode(TableSchema.self, from: Data(json.utf8)) } catch { fatalError("fuzz setup: the Adult schema: \(error)") }
}()

/// The shipped digits definition (manifests/datasets/digits.json), read once.
nonisolated(unsafe) private var digitsCache: DatasetDefinition?
func digitsDefinition() throws -> DatasetDefinition {
    if let digitsCache { return digitsCache }
    let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../../manifests/datasets").standardized.path
    let d = try DatasetDefinition.load(folder + "/digits.json")
    digitsCache = d
    return d
}
