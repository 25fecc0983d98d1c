import ArgumentParser
import EMCCore
import Foundation

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure emc's speed against baselines measured in the same run.",
        discussion: "Each benchmark prints a table of medians and ratios with the machine it ran on. Build with -c release first.",
        subcommands: [BenchCRC.self, BenchShards.self])
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
        defer { TemporaryTree.remove(scratch) }
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
