import ArgumentParser
import EMCCore

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure emc's speed against baselines measured in the same run.",
        discussion: "Each benchmark prints a table of medians and ratios with the machine it ran on. Build with -c release first.",
        subcommands: [BenchCRC.self])
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
