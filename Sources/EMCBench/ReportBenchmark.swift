import EMCCore
import EMCSearch
import EMCSweeps
import EMCReports
import EMCTrainer
import Foundation

/// How fast `emc report` reads and summarises a results log, and how fast a sweep manifest expands into its searches,
/// on logs and manifests made here (no training: the records follow the search's shape with a known boundary).
public enum ReportBenchmark {
    public struct Row: Codable, Sendable {
        public var task: String
        public var configurations: Int
        public var records: Int
        public var megabytes: Double
        /// Reading and checking the log (`ResultsLog.records(at:)`).
        public var readSeconds: Double
        /// The report: rows, boundaries, budget and threshold curves, findings, text, CSVs and JSON.
        public var reportSeconds: Double
        /// `emc report --html`: the seconds to write it (from the report), the index's size, the detail files' and the
        /// findings' evidence's.
        public var htmlSeconds: Double = 0
        public var htmlIndexMegabytes: Double = 0
        public var htmlDetailMegabytes: Double = 0
        public var htmlFindingsMegabytes: Double = 0
    }

    /// The records of `configurations` configurations of `seeds` seeds, as `emc run` writes them: per seed, doubling
    /// from 100 to a confirmed failure and a few bisection steps; then 4 refinement trials near n50 and a gap trial per
    /// seed. Boundaries spread over 300–30,000; a fitted trial uses more of its budget near the boundary.
    public static func syntheticLog(configurations: Int, seeds: Int) -> [TrialRecord] {
        let rng = CounterRNG(seed: 11, stream: .test)
        var out: [TrialRecord] = []
        for c in 0..<configurations {
            let draw = rng.derived(UInt64(c))
            let n50 = 300 * pow(100, Double(draw.uniform(0)))
            let config = String(format: "%016llx", UInt64(c) &* 0x9E37_79B9_7F4A_7C15)
            let random = c % 2 == 1
            func record(seed: Int, n: Int, replicate: Int, role: TrialRole) -> TrialRecord {
                let p = 1 / (1 + exp(6 * (log(Double(n)) - log(n50 * (1 + 0.05 * Double(seed))))))
                let fitted = Double(draw.uniform(UInt64(seed) << 40 | UInt64(replicate) << 32 | UInt64(n))) < p
                let share = min(0.97, 0.25 + 0.72 * Double(n) / n50)
                let epochs = fitted ? max(1, Int(share * 300)) : 300
                var r = TrialRecord(kind: .trial, key: "\(config)/\(seed)", config: config, seed: seed, n: n, result: fitted ? .fitted : .budgetExhausted,
                                    fitted: fitted, reason: "synthetic", epochs: epochs, steps: epochs * max(1, n / 128), loss: fitted ? 0.01 : 0.2,
                                    trainAccuracy: fitted ? 1 : 0.99, wrong: fitted ? 0 : max(1, n / 100), gradientNorm: nil, seconds: Double(n) * 1e-3,
                                    testAccuracy: random ? 0.1 : 0.8, data: random ? "synthetic+random" : "synthetic", variant: random ? "labels=random,classes=10,seed=0" : nil,
                                    model: "mlp:width=\(4 + c / 2),depth=2,act=relu", optimizer: "sgd:lr=0.01,momentum=0.9", parameters: 100 * (4 + c / 2),
                                    lossHistory: (0..<20).map { 1 / Double($0 + 1) })
                r.dataContentId = random ? "random" : "true"
                r.rootContentId = "true"
                r.schema = TrialRecord.currentSchema
                r.replicate = replicate
                r.role = role
                r.budget = "300 epochs"
                r.batch = 128
                r.epochBudget = 300
                r.fitThreshold = 1
                if fitted { r.fitEpoch = epochs; r.fitStep = r.steps }
                r.thresholdEpochs = Dictionary(uniqueKeysWithValues: FitOutcome.thresholds.enumerated().map { (FitOutcome.key($1), max(1, epochs - 20 + 5 * $0)) })
                return r
            }
            for seed in 0..<seeds {
                var n = 100, lastFit = 0
                while true {
                    let r = record(seed: seed, n: n, replicate: 0, role: .search)
                    out.append(r)
                    if !r.fitted { break }
                    lastFit = n
                    n *= 2
                }
                for _ in 0..<3 where n - lastFit > 1 {
                    let mid = lastFit + (n - lastFit) / 2
                    let r = record(seed: seed, n: mid, replicate: 0, role: .search)
                    out.append(r)
                    if r.fitted { lastFit = mid } else { n = mid }
                }
                out.append(record(seed: seed, n: n, replicate: 1, role: .confirm))
            }
            for k in 0..<4 { out.append(record(seed: k % seeds, n: Int(n50 * (k % 2 == 0 ? 0.98 : 1.02)), replicate: EMCSearch.refinementReplicateBase + k, role: .refine)) }
            for seed in 0..<seeds { out.append(record(seed: seed, n: 400, replicate: EMCSearch.gapReplicate, role: .gap)) }
        }
        return out
    }

    /// The log's lines, as the results log writes them.
    static func encode(_ records: [TrialRecord]) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = TrialRecord.nonFiniteEncoding
        var bytes: [UInt8] = []
        for r in records { bytes += try encoder.encode(r); bytes.append(0x0A) }
        return bytes
    }

    public static func run(configurations: [Int], seeds: Int, repeats: Int, scratch: String, progress: (String) -> Void) throws -> [Row] {
        var rows: [Row] = []
        for count in configurations {
            progress("  report over \(count) configurations…")
            let path = FileSystem.join(scratch, "log-\(count).jsonl")
            let records = syntheticLog(configurations: count, seeds: seeds)
            let bytes = try encode(records)
            try AtomicFileWriter.write(bytes, to: path)
            let read = try medianSeconds(repeats: repeats) { _ = try ResultsLog.records(at: path) }
            let loaded = try ResultsLog.records(at: path)
            let report = try medianSeconds(repeats: repeats) {
                let r = Report.from(loaded)
                let encoder = JSONEncoder()
                encoder.nonConformingFloatEncodingStrategy = TrialRecord.nonFiniteEncoding
                _ = try encoder.encode(r)
                _ = r.text + r.csv + r.seedsCSV
                _ = Findings.text(Findings.evaluate(r))
            }
            var row = Row(task: "emc report LOG (read, then rows, text, CSVs, JSON, findings)", configurations: count, records: records.count,
                          megabytes: Double(bytes.count) / 1e6, readSeconds: read, reportSeconds: report)
            let built = Report.from(loaded)
            let document = ReportDocument(report: built, findings: Findings.evaluate(built))
            let html = FileSystem.join(scratch, "html-\(count)")
            row.htmlSeconds = try medianSeconds(repeats: repeats) {
                FileSystem.removeTree(html)
                try HTMLReport.write(document, records: loaded, sources: [path], to: html)
            }
            row.htmlIndexMegabytes = Double(FileSystem.fileSize(FileSystem.join(html, HTMLReport.indexName)) ?? 0) / 1e6
            row.htmlFindingsMegabytes = Double(FileSystem.fileSize(FileSystem.join(html, HTMLReport.findingsName)) ?? 0) / 1e6
            let detail = FileSystem.join(html, HTMLReport.detailFolder)
            row.htmlDetailMegabytes = Double(try FileSystem.list(detail).reduce(0) { $0 + (FileSystem.fileSize(FileSystem.join(detail, $1)) ?? 0) }) / 1e6
            FileSystem.removeTree(html)
            rows.append(row)
            FileSystem.remove(path)
        }
        return rows
    }

    /// A manifest of `cells` searches (`parts` parts, each a grid of data × models × one optimizer), loaded and expanded
    /// into its tasks as `emc sweep --dry-run` does; the seconds it took, or the refusal's message.
    public static func manifest(cells: Int, parts: Int, scratch: String) throws -> (seconds: Double, outcome: String) {
        let perPart = cells / parts
        let side = Int(Double(perPart).squareRoot())
        let list = { (items: [String]) in "[" + items.map { "\"\($0)\"" }.joined(separator: ",") + "]" }
        let partsJSON = (0..<parts).map { p in
            "{\"data\": \(list((0..<side).map { "d\($0)" })), \"models\": \(list((1...(perPart / side)).map { "mlp:width=\($0)" })), \"optimizers\": [\"sgd:lr=0.\(p + 1)\"]}"
        }
        let json = "{\"name\": \"bench\", \"data\": [\"d\"], \"models\": [\"mlp\"], \"optimizers\": [\"sgd\"], \"parts\": [\(partsJSON.joined(separator: ","))]}"
        let path = FileSystem.join(scratch, "manifest-\(cells).json")
        try AtomicFileWriter.write(Array(json.utf8), to: path)
        defer { FileSystem.remove(path) }
        let start = Clock.now()
        do {
            let experiment = try Experiment.load(path)
            let tasks = try SweepRunner.tasks(experiment)
            return (Clock.now() - start, "\(tasks.count) searches")
        } catch let e as EMCError {
            return (Clock.now() - start, "refused: " + e.message)
        }
    }
}
