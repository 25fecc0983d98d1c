import EMCCore
import EMCSearch
import EMCTestSupport
import EMCTrainer
import Foundation
import Testing

@Suite("A search on several threads")
struct ThreadedSearchTests {
    /// The search's records with what may differ between thread counts cleared (the timings and the provenance's
    /// threads), in the order of (seed, n, replicate): trials running at once append in the order they finish.
    static func records(jobs: Int?, threads: Int?, data: String, dir: TemporaryDirectory) throws -> [TrialRecord] {
        let log = dir.file("log-\(jobs ?? 0)-\(threads ?? 0).jsonl")
        var s = try SearchSettings(data: data, model: "cnn:channels=16,layers=2")
        s.seeds = 2
        s.start = 40
        s.training.batch = 32
        s.training.budget = Budget(epochs: 8, minSteps: 0)
        s.optimizer = try Written("adam:lr=0.01")
        s.log = log
        s.jobs = jobs
        s.threads = threads
        let run = try SearchRun(s)
        _ = try run.execute()
        return try ResultsLog.records(at: log).map { r in
            var r = r
            r.seconds = 0
            #expect(r.provenance?.threads == run.parallelism.threads)
            r.provenance?.threads = 0
            return r
        }.sorted { ($0.seed, $0.n, $0.replicate ?? 0) < ($1.seed, $1.n, $1.replicate ?? 0) }
    }

    @Test("the records are the same on 1, 2 and 3 threads per trial and with 2 trials at once, but for timings and the thread count")
    func sameRecords() throws {
        let dir = TemporaryDirectory()
        let data = try makeBase(dir)
        let one = try Self.records(jobs: 1, threads: 1, data: data, dir: dir)
        #expect(one.count >= 4, "a search of a few trials per seed")
        #expect(try Self.records(jobs: 1, threads: 2, data: data, dir: dir) == one)
        #expect(try Self.records(jobs: 1, threads: 3, data: data, dir: dir) == one)
        #expect(try Self.records(jobs: 2, threads: 1, data: data, dir: dir) == one)
    }

    @Test("jobs and threads: as set; one set, the other fills the cores; neither, seeds first")
    func parallelism() throws {
        var s = try SearchSettings(data: "d", model: "mlp")
        #expect(s.parallelism(cores: 16, seeds: 2) == (2, 8))
        #expect(s.parallelism(cores: 16, seeds: 40) == (16, 1))
        #expect(s.parallelism(cores: 2, seeds: 1) == (1, 2))
        s.threads = 4
        #expect(s.parallelism(cores: 16, seeds: 2) == (4, 4))
        s.threads = nil
        s.jobs = 3
        #expect(s.parallelism(cores: 16, seeds: 2) == (3, 5))
        s.threads = 2
        #expect(s.parallelism(cores: 1, seeds: 2) == (3, 2), "as set, even beyond the cores (emc warns)")
    }
}
