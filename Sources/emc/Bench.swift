import ArgumentParser
import EMCConvert
import EMCCore
import EMCFormats
import EMCPipeline
import EMCVariants
import EMCShards
import EMCTrainer
import Foundation

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure emc's speed against baselines measured in the same run.",
        discussion: "Each benchmark prints a table of medians and ratios with the machine it ran on. Build with -c release first.",
        subcommands: [BenchCRC.self, BenchShards.self, BenchTrain.self, BenchLoader.self, BenchRead.self, BenchSearch.self, BenchJPEG.self])
}

struct BenchCRC: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crc", abstract: "CRC32C throughput: hardware path, software path, and memory-read ceiling.")

    @Option(help: "Buffer size in MiB.")
    var mebibytes = 64

    @Option(help: "Repetitions; the median is reported.")
    var repeats = 9

    @Flag(help: "Print machine-readable JSON on stdout.")
    var json = false

    func run() throws {
        let rows = CRCBenchmark.run(bytes: mebibytes << 20, repeats: repeats)
        BenchTable.print(title: "CRC32C over \(mebibytes) MiB (median of \(repeats))",
                         header: ["path", "GB/s", "of memory ceiling"], rows: rows.map {
                             [$0.name, String(format: "%.2f", $0.gbPerSecond), String(format: "%.0f%%", $0.ratio * 100)]
                         }, json: json, records: rows)
    }
}

struct BenchShards: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shards",
        abstract: "Shard codecs: size ratio, write MB/s, sequential and random-order reads, beside the raw-file ceiling.")

    @Option(help: "Samples per dataset.")
    var samples = 200_000

    @Option(help: "Repetitions of each read; the median is reported.")
    var repeats = 3

    @Option(help: "Codecs to measure, comma-separated.")
    var codecs = "none,lz4,lz4-delta,zstd,zstd-delta"

    @Option(help: "Scratch folder (needs about 2 GB).")
    var scratch = "/tmp/emc-bench-shards"

    @Flag(help: "Print machine-readable JSON on stdout.")
    var json = false

    func run() throws {
        try FileSystem.createDirectory(scratch)
        defer { FileSystem.removeTree(scratch) }
        let rows = try ShardBenchmark.run(samples: samples, repeats: repeats, codecs: codecs.split(separator: ",").map(String.init),
                                          directory: scratch) { line in if !json { FileHandle.standardError.write(Data((line + "\n").utf8)) } }
        func f(_ v: Double, _ digits: Int = 0) -> String { String(format: "%.\(digits)f", v) }
        func cells(_ r: ShardBenchmark.Row) -> [String] {
            let write: String = r.writeMBps > 0 ? f(r.writeMBps) : "-"
            let seqShare: String = f(r.sequentialOfCeiling * 100) + "%"
            let randomShare: String = f(r.randomOfCeiling * 100) + "%"
            return [r.dataset, r.codec, f(r.ratio, 2), write, f(r.sequentialSamplesPerSecond), f(r.sequentialMBps), seqShare,
                    f(r.randomSamplesPerSecond), randomShare]
        }
        BenchTable.print(title: "Shard read/write, \(samples) samples per dataset (reads: median of \(repeats), 1 thread; writes: \(EMCEnvironment.cpuCount) threads)",
                         header: ["data", "codec", "ratio", "write MB/s", "seq samples/s", "seq MB/s", "seq / ceiling", "random samples/s", "random / ceiling"],
                         rows: rows.map(cells), json: json, records: rows)
    }
}

struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Training speed (forward + backward + SGD step) of MLPs and CNNs at 1 thread, and GEMM efficiency.",
        discussion: "Pass --torch with the JSON of scripts/bench/torch_train.py --json to print PyTorch's figures beside emc's.")

    @Option(help: "Batch size.")
    var batch = 128

    @Option(help: "Seconds per measurement.")
    var seconds = 0.5

    @Option(help: "Repetitions; the median is reported.")
    var repeats = 5

    @Option(help: "JSON from scripts/bench/torch_train.py --json, for a side-by-side table.")
    var torch: String?

    @Flag(help: "Print machine-readable JSON on stdout.")
    var json = false

    func run() throws {
        BLAS.configureThreads()
        var torchRates: [String: Double] = [:]
        var torchVersion = ""
        if let torch {
            struct TorchFile: Decodable { var torch: String; var results: [Result]; struct Result: Decodable { var model: String; var input: String; var samplesPerSecond: Double } }
            let file = try JSONDecoder().decode(TorchFile.self, from: Data(try ReadableFile.contents(of: torch)))
            torchVersion = " vs PyTorch \(file.torch)"
            for r in file.results { torchRates["\(r.model)@\(r.input)"] = r.samplesPerSecond }
        }
        let rows = try TrainBenchmark.run(batch: batch, seconds: seconds, repeats: repeats, torch: torchRates)
        func f(_ v: Double, _ d: Int = 0) -> String { String(format: "%.\(d)f", v) }
        func cells(_ r: TrainBenchmark.Row) -> [String] {
            let torchCell: String = r.torchSamplesPerSecond.map { f($0) } ?? "-"
            let ratio: String = r.torchSamplesPerSecond.map { f(r.samplesPerSecond / $0, 2) + "×" } ?? "-"
            let share: String = f(r.gemmGFLOPs / r.rawSgemmGFLOPs * 100) + "%"
            return [r.model, r.input, "\(r.parameters)", f(r.samplesPerSecond), torchCell, ratio, f(r.gemmGFLOPs, 1),
                    r.largestGemm, f(r.rawSgemmGFLOPs, 1), share]
        }
        BenchTable.print(title: "Training step (forward + backward + SGD momentum), batch \(batch), \(BLAS.threads) BLAS thread, median of \(repeats)\(torchVersion)",
                         header: ["model", "input", "params", "emc samples/s", "torch samples/s", "emc / torch", "GEMM GFLOP/s",
                                  "largest GEMM", "raw sgemm GFLOP/s", "model / raw"],
                         rows: rows.map(cells), json: json, records: rows)
    }
}

struct BenchLoader: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loader",
        abstract: "Pipeline throughput (float batches of 128), cached and streaming, beside the raw-file ceiling.")

    @Option(help: "Repetitions (epochs); the median is reported.")
    var repeats = 3

    @Option(help: "Scratch folder.")
    var scratch = "/tmp/emc-bench-loader"

    @Flag(help: "Print machine-readable JSON on stdout.")
    var json = false

    func run() throws {
        try FileSystem.createDirectory(scratch)
        defer { FileSystem.removeTree(scratch) }
        let rows = try LoaderBenchmark.run(directory: scratch, repeats: repeats) { line in if !json { FileHandle.standardError.write(Data((line + "\n").utf8)) } }
        func cells(_ r: LoaderBenchmark.Row) -> [String] {
            [r.data, r.path, String(format: "%.0f", r.samplesPerSecond), String(format: "%.0f", r.megabytesPerSecond), String(format: "%.0f%%", r.ofCeiling * 100)]
        }
        BenchTable.print(title: "Pipeline: uint8 samples → normalised float batches of 128, one epoch (median of \(repeats)); consumer on 1 thread",
                         header: ["data", "path", "samples/s", "MB/s (uint8)", "of ceiling"], rows: rows.map(cells), json: json, records: rows)
    }
}

struct BenchRead: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "read", abstract: "Stream one split of a shard set once: throughput and peak memory.")

    @Argument(help: "The shard set.")
    var directory: String

    @Option(help: "Split.")
    var split = "train"

    func run() throws {
        let r = try ReadBenchmark.run(directory: directory, split: split)
        try printJSON(r)
    }
}

struct BenchJPEG: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jpeg",
        abstract: "Converting a folder of ImageNet-size JPEGs (about 500×375, q90, made with libturbojpeg) to 64×64 shards, with and without DCT scaling.")

    @Option(help: "Images.")
    var images = 600

    @Option(help: "Target side.")
    var size = 64

    @Option(help: "Scratch folder.")
    var scratch = "/tmp/emc-bench-jpeg"

    @Flag(help: "Print machine-readable JSON on stdout.")
    var json = false

    func run() throws {
        struct Row: Encodable { var path: String; var threads: Int; var imagesPerSecond: Double; var perCore: Double }
        try FileSystem.createDirectory(scratch)
        defer { FileSystem.removeTree(scratch) }
        // Photo-like content: smooth gradients, shapes and noise, so the JPEGs have realistic sizes.
        let generator = try SyntheticImages(size: 500, classes: 10, seed: 3)
        for i in 0..<images {
            var pixels = [UInt8](repeating: 0, count: 500 * 500 * 3)
            pixels.withUnsafeMutableBytes { generator.render(UInt64(i), into: $0) }
            let photo = Resize.crop(RasterImage(width: 500, height: 500, channels: 3, pixels: pixels), x: 0, y: 62, width: 500, height: 375)
            let dir = FileSystem.join(scratch, "raw/class\(i % 10)")
            try FileSystem.createDirectory(dir)
            try AtomicFileWriter.write(try JPEG.encode(photo, quality: 90), to: FileSystem.join(dir, "img\(i).JPEG"))
        }
        let (_, items) = try ImageFolder.scanClassFolders(FileSystem.join(scratch, "raw"))
        var rows: [Row] = []
        for scaling in [true, false] {
            for threads in [1, EMCEnvironment.cpuCount] where threads == 1 || EMCEnvironment.cpuCount > 1 {
                let time = try medianSeconds(repeats: 3) {
                    try parallelFor(items.count, threads: threads) { k in
                        _ = try ImageFolder.load(items[k].path, size: size, mode: .centerCrop, dctScaling: scaling)
                    }
                }
                let rate = Double(items.count) / time
                rows.append(Row(path: scaling ? "decode with DCT scaling + area resize" : "full decode + area resize", threads: threads,
                                imagesPerSecond: rate, perCore: rate / Double(threads)))
            }
        }
        // The whole conversion, as emc convert runs it (all cores, zstd-delta shards).
        var options = ShardSetOptions()
        options.threads = EMCEnvironment.cpuCount
        var definition = try DatasetDefinition.load("image-folder")
        definition.imageFolder?.size = size
        let start = Clock.now()
        _ = try Converter.run(ConvertRequest(dataset: definition, raw: FileSystem.join(scratch, "raw"), out: FileSystem.join(scratch, "out"), options: options), quiet: true)
        let convert = Double(items.count) / (Clock.now() - start)
        rows.append(Row(path: "emc convert image-folder (shards written)", threads: EMCEnvironment.cpuCount, imagesPerSecond: convert,
                        perCore: convert / Double(EMCEnvironment.cpuCount)))
        BenchTable.print(title: "\(items.count) JPEGs of 500×375 (q90) to \(size)×\(size) (median of 3)", header: ["path", "threads", "images/s", "per core"],
                         rows: rows.map { [$0.path, "\($0.threads)", String(format: "%.0f", $0.imagesPerSecond), String(format: "%.0f", $0.perCore)] },
                         json: json, records: rows)
    }
}
