import ArgumentParser
import EMCCore
import EMCTrainer
import Foundation

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure emc's speed against baselines measured in the same run.",
        discussion: "Each benchmark prints a table of medians and ratios with the machine it ran on. Build with -c release first.",
        subcommands: [BenchCRC.self, BenchShards.self, BenchTrain.self, BenchLoader.self, BenchRead.self, BenchSearch.self])
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
