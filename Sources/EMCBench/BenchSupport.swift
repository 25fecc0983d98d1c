import EMCCore
import Foundation

/// A benchmark's result: a titled table (Markdown, ready for docs/benchmarks.md) with the machine it ran on,
/// and the typed rows behind it for `--json`.
public struct BenchReport {
    public var title: String
    public var header: [String]
    public var rows: [[String]]
    private let records: @Sendable () throws -> Data

    public init<R: Encodable & Sendable>(title: String, header: [String], rows: [[String]], records: R) {
        self.title = title
        self.header = header
        self.rows = rows
        self.records = {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            return try encoder.encode(BenchOutput(title: title, machine: BenchReport.machine, results: records))
        }
    }

    /// The machine line every benchmark prints, so a table is never read without its context.
    public static var machine: String {
        let cpu = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("model name") }?
            .split(separator: ":").last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown CPU"
        return "\(cpu), \(EMCEnvironment.cpuCount) cores, \(formatBytes(EMCEnvironment.physicalMemory)) RAM, 1 BLAS thread"
    }

    /// Title, machine and the Markdown table.
    public var text: String { "\(title)\nmachine: \(BenchReport.machine)\n\n" + MarkdownTable.render(header: header, rows: rows) }

    /// Title, machine and the typed rows as pretty JSON.
    public func json() throws -> String { String(decoding: try records(), as: UTF8.self) }
}

struct BenchOutput<T: Encodable>: Encodable { var title: String; var machine: String; var results: T }

func medianSeconds(repeats: Int, _ body: () throws -> Void) rethrows -> Double {
    var times: [Double] = []
    for _ in 0..<max(1, repeats) {
        let start = Clock.now()
        try body()
        times.append(Clock.now() - start)
    }
    times.sort()
    return times[times.count / 2]
}

/// Keeps a value alive so the optimiser cannot drop the work that made it.
/// As above, with a fresh `setup()` value per repetition whose making is not timed.
func medianSeconds<S>(repeats: Int, setup: () throws -> S, _ body: (S) throws -> Void) rethrows -> Double {
    var times: [Double] = []
    for _ in 0..<max(1, repeats) {
        let value = try setup()
        let start = Clock.now()
        try body(value)
        times.append(Clock.now() - start)
    }
    times.sort()
    return times[times.count / 2]
}

nonisolated(unsafe) var benchSink: UInt64 = 0

@inline(never)
func blackHole(_ value: UInt64) { benchSink ^= value }
@inline(never)
func blackHole(_ value: UInt32) { benchSink ^= UInt64(value) }

public enum CRCBenchmark {
    public struct Row: Encodable, Sendable { var name: String; var gbPerSecond: Double; var ratio: Double }

    public static func run(bytes: Int, repeats: Int) -> [Row] {
        let rng = CounterRNG(seed: 1, stream: .test)
        let words = (0..<(bytes / 8)).map { rng.word64(UInt64($0)) }
        return words.withUnsafeBytes { buffer in
            // The ceiling: the cheapest full pass over the same memory (a 64-bit sum).
            let memory = medianSeconds(repeats: repeats) {
                var sum: UInt64 = 0
                for w in buffer.bindMemory(to: UInt64.self) { sum &+= w }
                blackHole(sum)
            }
            let hardware = medianSeconds(repeats: repeats) { blackHole(CRC32C.checksum(buffer)) }
            let software = medianSeconds(repeats: repeats) { blackHole(CRC32C.softwareChecksum(buffer)) }
            // The same over one 1 MiB chunk that stays in cache, as a shard reader sees it.
            let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<(1 << 20)])
            let inCache = medianSeconds(repeats: repeats) { for _ in 0..<(buffer.count >> 20) { blackHole(CRC32C.checksum(chunk)) } }
            let gb = Double(buffer.count) / 1e9
            return [
                Row(name: CRC32C.usesHardware ? "CRC32C (SSE4.2, 3 streams)" : "CRC32C (no SSE4.2: software)", gbPerSecond: gb / hardware, ratio: memory / hardware),
                Row(name: "CRC32C over a cached 1 MiB chunk", gbPerSecond: gb / inCache, ratio: memory / inCache),
                Row(name: "CRC32C software (slicing-by-8)", gbPerSecond: gb / software, ratio: memory / software),
                Row(name: "memory read ceiling (64-bit sum)", gbPerSecond: gb / memory, ratio: 1),
            ]
        }
    }
}
