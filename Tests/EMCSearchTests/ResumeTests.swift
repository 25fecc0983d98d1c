import EMCCore
import EMCSearch
import EMCSweeps
import EMCReports
import EMCShards
import EMCTestSupport
import EMCTrainer
import EMCVariants
import Foundation
import Testing

/// A fitter that stops the process's work after `budget` new trials, as a kill would: the log keeps every trial
/// finished before it, nothing else.
final class KilledAfter: Fitter, @unchecked Sendable {
    struct Killed: Error {}
    let inner: Fitter
    private var left: Int
    private let lock = NSLock()

    init(_ inner: Fitter, trials: Int) {
        self.inner = inner
        left = trials
    }

    func fit(n: Int, seed: Int, replicate: Int) throws -> FitOutcome {
        lock.lock()
        guard left > 0 else { lock.unlock(); throw Killed() }
        left -= 1
        lock.unlock()
        return try inner.fit(n: n, seed: seed, replicate: replicate)
    }
}

/// The fields of a record that the search decides (docs/methods.md lists what is left out: timing and provenance).
func decided(_ r: TrialRecord) -> TrialRecord {
    var r = r
    r.seconds = 0
    r.provenance = nil
    r.resumedFromEpoch = nil
    return r
}

@Suite("Resuming a search")
struct ResumeTests {
    /// A configuration whose search goes through every phase: doubling, bisection, confirmation and refinement.
    func search(_ log: ResultsLog, fitter: Fitter) throws -> EMCSearch {
        let s = EMCSearch(config: try config(start: 100, resolution: 0.1, seeds: 3), log: log, fitter: fitter)
        s.rules.refinementCap = 8
        s.rules.targetHalfWidth = 0.01
        s.gapN = 400
        return s
    }

    @Test("killed after any number of trials (every phase), the resumed log equals the uninterrupted one, and a rerun trains nothing")
    func killAnywhere() throws {
        let dir = TemporaryDirectory(inMemory: true)
        let truth = SimulatedFitter(n50: 2_300, slope: 7, exhaustion: 0.1, simulation: 4)
        let whole = try ResultsLog(path: dir.file("whole.jsonl"))
        let outcome = try search(whole, fitter: truth).run()
        let reference = whole.records.map(decided)
        let roles = Set(reference.compactMap(\.role))
        #expect(roles == [.search, .confirm, .refine, .gap], "the configuration reaches every phase: \(roles)")
        #expect(outcome.refinementTrials > 0)
        // Every third trial, and every trial of the confirmation, refinement and gap phases.
        let cuts = (1..<reference.count).filter { $0 % 3 == 0 || reference[$0 - 1].role != .search }
        for cut in cuts {
            let path = dir.file("cut-\(cut).jsonl")
            let first = try ResultsLog(path: path)
            #expect(throws: KilledAfter.Killed.self) { _ = try search(first, fitter: KilledAfter(truth, trials: cut)).run() }
            #expect(first.records.count == cut)
            let resumed = try search(try ResultsLog(path: path), fitter: truth).run()
            let records = try ResultsLog.records(at: path).map(decided)
            #expect(records == reference, "killed after \(cut) trials (\(reference[cut - 1].role?.rawValue ?? "")): the records differ")
            #expect(resumed.boundary == outcome.boundary && resumed.seeds.map(\.emc) == outcome.seeds.map(\.emc))
            FileSystem.remove(path)
        }
        // Rerunning the finished search trains nothing and reports the same.
        let again = try search(try ResultsLog(path: dir.file("whole.jsonl")), fitter: KilledAfter(truth, trials: 0)).run()
        #expect(again.boundary == outcome.boundary && again.seeds.allSatisfy { $0.newTrials == 0 })
        #expect(try ResultsLog.records(at: dir.file("whole.jsonl")).count == reference.count)
    }

    @Test("a seed's EMC is the same from the search and from the log (report, CSV, JSON), refinement and gap trials below it included")
    func oneDefinition() throws {
        let dir = TemporaryDirectory(inMemory: true)
        for simulation in 0..<16 {
            let log = try ResultsLog(path: dir.file("sim-\(simulation).jsonl"))
            let fitter = SimulatedFitter(n50: 500 + 300 * Double(simulation), slope: 4, exhaustion: 0.2, simulation: UInt64(simulation))
            let outcome = try search(log, fitter: fitter).run()
            let report = Report.from(log.records)
            let row = try #require(report.rows.first)
            #expect(row.seeds.map(\.emc) == outcome.seeds.map(\.emc), "simulation \(simulation)")
            #expect(row.seeds.map(\.firstUnfitted) == outcome.seeds.map(\.firstUnfitted), "simulation \(simulation)")
            #expect(row.boundary == outcome.boundary, "simulation \(simulation): run and report fit the same trials")
            let csv = report.seedsCSV.split(separator: "\n").dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false) }
            // seed, emc, first_unfitted, finished, trials end each line (the model's spec before them is quoted).
            #expect(csv.map { Int($0[$0.count - 4]) } == outcome.seeds.map { Optional($0.emc) })
        }
    }
}

@Suite("Writers of one log")
struct SharedLogTests {
    @Test("two writers that opened a log with a torn last line lose nothing: only the first to append mends it")
    func tornTailTwoWriters() throws {
        let dir = TemporaryDirectory()
        let path = dir.file("log.jsonl")
        let records = configurationRecords(model: "mlp:width=4", parameters: 100, boundary: 400)
        try ResultsLog(path: path).append(records[0])
        try FileSystem.append(Array("{\"kind\":\"tri".utf8), to: path)
        let a = try ResultsLog(path: path), b = try ResultsLog(path: path)
        try a.append(records[1])
        try b.append(records[2])
        try a.append(records[3])
        #expect(try ResultsLog.records(at: path) == Array(records[0..<4]))
        #expect(try ReadableFile.contents(of: path).last == 0x0A)
    }
}

@Suite("Logs written before")
struct LogCompatibilityTests {
    /// A log `emc run` wrote before trial roles were typed (Fashion-MNIST, mlp:width=4, 2 seeds, with confirmations,
    /// refinement and gap trials): `Fixtures/log-format-2.jsonl`.
    static let fixture: String = {
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast()
        return parts.joined(separator: "/") + "/Fixtures/log-format-2.jsonl"
    }()

    @Test("every line reads back and writes out byte for byte; its seed EMCs are the ones that run printed (12 and 4)")
    func readsTheSame() throws {
        let lines = try ReadableFile.contents(of: Self.fixture).split(separator: 0x0A)
        let records = try ResultsLog.records(at: Self.fixture, finished: true)
        #expect(records.count == lines.count && records.count == 19)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = TrialRecord.nonFiniteEncoding
        for (record, line) in zip(records, lines) { #expect(Array(try encoder.encode(record)) == Array(line)) }
        #expect(Set(records.compactMap(\.role)) == Set(TrialRole.allCases).subtracting([.pilot]))
        let row = try #require(Report.from(records).rows.first)
        #expect(row.seeds.map(\.emc) == [12, 4] && row.seeds.map(\.firstUnfitted) == [15, 5])
    }
}

@Suite("Sweep folders written before")
struct SweepCompatibilityTests {
    /// A Slurm sweep folder `emc sweep --executor slurm` and `emc sweep-task` wrote before the settings were typed: two
    /// tasks (an MLP and a CNN, two seeds each) on a synthetic 8-pixel set, `Fixtures/sweep-format-1`, with the manifest.
    static let fixture: String = {
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast()
        return parts.joined(separator: "/") + "/Fixtures/sweep-format-1"
    }()
    /// Where the fixture's folder and data were when it was written (its task files name them).
    static let writtenAt = "/tmp/fx/sweep"

    @Test("each task file decodes to typed settings and encodes back byte for byte, so its finished marker still matches")
    func taskFilesKeepTheirHash() throws {
        for index in 0..<2 {
            let bytes = try ReadableFile.contents(of: FileSystem.join(Self.fixture, "tasks/task-000\(index).json"))
            let task = try JSONDecoder().decode(SweepTask.self, from: Data(bytes))
            #expect(task.settings.model.value.family == (index == 0 ? .mlp : .cnn) && task.settings.training.budget == Budget(epochs: 30, minSteps: 40))
            #expect(try SweepFolder.encode(task) == bytes, "task \(index) re-encodes to other bytes: its settings hash would change")
            let marker = try JSONDecoder().decode(TaskDone.self, from: Data(try ReadableFile.contents(of: FileSystem.join(Self.fixture, "done/task-000\(index).json"))))
            #expect(marker.settingsHash == SHA256.hex(bytes))
        }
    }

    /// The boundary is fitted by today's estimator (subsets as random effects), so its n50 and the refinement trials it
    /// places may differ from what the folder's summary says; the seeds' searches are records and must not change.
    @Test("a finished task reruns from its log without retraining any seed's search: the same seed EMCs and trials; the logs report the same seeds")
    func rerunsWithoutTraining() throws {
        let dir = TemporaryDirectory()
        let data = dir.file("data"), folder = dir.file("sweep")
        var options = ShardSetOptions(codec: .zstdDelta, seed: 1)
        options.threads = 1
        _ = try SyntheticImages(size: 8, classes: 3, seed: 1).write(to: data, train: 300, test: 60, options: options, progress: nil)
        for sub in ["tasks", "done", "logs"] {
            try FileSystem.createDirectory(FileSystem.join(folder, sub))
            for name in try FileSystem.list(FileSystem.join(Self.fixture, sub)) {
                var text = String(decoding: try ReadableFile.contents(of: FileSystem.join(FileSystem.join(Self.fixture, sub), name)), as: UTF8.self)
                // The task files name the folder and the data where they were written; here they are elsewhere.
                if sub == "tasks" { text = text.replacingOccurrences(of: Self.writtenAt, with: folder).replacingOccurrences(of: #""data":"data""#, with: "\"data\":\"\(data)\"") }
                try AtomicFileWriter.write(Array(text.utf8), to: FileSystem.join(FileSystem.join(folder, sub), name))
            }
        }
        for index in 0..<2 {
            let marker = try JSONDecoder().decode(TaskDone.self, from: Data(try ReadableFile.contents(of: FileSystem.join(folder, "done/task-000\(index).json"))))
            var retrained: [TrialRecord] = []
            let summary = try SlurmSweep.runTask(folder: folder, index: index) { event in
                if case .trial(let record, let new) = event, new { retrained.append(record) }
            }
            #expect(retrained.allSatisfy { $0.role == .refine }, "task \(index) trained a seed's search trial again: \(retrained.map(\.n))")
            // The seeds' results but for the time and the trials trained by this run (none of theirs).
            var a = summary.seeds, b = marker.summary.seeds
            #expect(a.allSatisfy { $0.newTrials == 0 })
            for i in a.indices { a[i].seconds = 0; a[i].newTrials = 0 }
            for i in b.indices { b[i].seconds = 0; b[i].newTrials = 0 }
            let (encodedA, encodedB) = (String(decoding: try SweepFolder.encode(a), as: UTF8.self), String(decoding: try SweepFolder.encode(b), as: UTF8.self))
            #expect(encodedA == encodedB, "task \(index)'s seeds changed: \(encodedA) vs \(encodedB)")
        }
        let before = Report.from(try (0..<2).flatMap { try ResultsLog.records(at: FileSystem.join(Self.fixture, "logs/task-000\($0).jsonl")) })
        let after = Report.from(try (0..<2).flatMap { try ResultsLog.records(at: FileSystem.join(folder, "logs/task-000\($0).jsonl")) })
        func seeds(_ r: Report) -> [String] { r.rows.flatMap { $0.seeds.map { "\($0.seed) \($0.emc) \($0.firstUnfitted ?? -1) \($0.finished)" } } }
        #expect(before.rows.count == 2 && seeds(before) == seeds(after) && seeds(before).count == 4)
    }
}
