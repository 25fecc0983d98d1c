import EMCCore
import EMCConvert
import EMCPipeline
import EMCVariants
import EMCSearch
import EMCSweeps
import EMCReports
import EMCShards
import EMCTestSupport
import EMCTrainer
import Foundation
import Testing

/// Fits exactly the n at or below a threshold (optionally with seeded noise near it).
final class ThresholdFitter: Fitter {
    let threshold: Int
    let noise: Double
    var calls: [Int] = []
    var trials: [String] = []
    init(threshold: Int, noise: Double = 0) { self.threshold = threshold; self.noise = noise }

    func fit(n: Int, seed: Int, replicate: Int) throws -> FitOutcome {
        calls.append(n)
        trials.append("\(seed)/\(n)/\(replicate)")
        var fitted = n <= threshold
        if noise > 0 {
            // Near the threshold, a seeded coin decides: a non-monotone fitter.
            let distance = abs(Double(n - threshold)) / Double(threshold)
            if distance < noise { fitted = CounterRNG(seed: UInt64(seed), stream: .test).derived(UInt64(replicate)).uniform(UInt64(n)) < 0.5 }
        }
        return FitOutcome(result: fitted ? .fitted : .convergedUnfit, reason: "rule", samples: n, epochs: 10, steps: 10, finalLoss: 0,
                          trainAccuracy: fitted ? 1 : 0.9, wrong: fitted ? 0 : 1, gradientNorm: nil, lossHistory: [], seconds: 0)
    }
}

func config(start: Int = 100, resolution: Double = 0.02, seeds: Int = 1, maxSamples: Int = 1_000_000) throws -> SearchConfig {
    SearchConfig(dataDirectory: "/fake", dataName: "fake", dataContentId: "c0ffee", variant: nil, model: try ModelSpec(parsing: "mlp:width=4"),
                 optimizer: try OptimizerSpec(parsing: "sgd:lr=0.1"), fit: FitOptions(), normalize: "standard", start: start,
                 resolution: resolution, seeds: seeds, maxSamples: maxSamples, parameters: 1000)
}

@Suite("The EMC search")
struct SearchTests {
    @Test("a model's arithmetic revision is part of a configuration's identity from revision 2 on: vit's, resnet's and efficientnet's keys moved, mlp's and cnn's did not")
    func arithmeticRevision() throws {
        var mlp = try config()
        #expect(!mlp.canonical.contains("arithmetic"), "an mlp configuration's text is what it always was")
        let mlpHash = mlp.configHash
        var other = mlp
        other.model = try ModelSpec(parsing: "cnn:channels=8")
        #expect(!other.canonical.contains("arithmetic"))
        for family in ["resnet", "efficientnet"] {
            other.model = try ModelSpec(parsing: family)
            #expect(other.canonical.hasSuffix("\narithmetic:\(family)/2"), "\(family)'s sums over a batch go by micro-batches")
            #expect(other.model.microBatchSamples == 16)
        }
        #expect(mlp.model.microBatchSamples == nil)
        // A native trial's record names the revision and its micro-batch; an mlp's names neither.
        for (spec, arithmetic, microBatch) in [("resnet:width=0.25", 2, 16), ("mlp:width=4", nil, nil)] as [(String, Int?, Int?)] {
            let dir = TemporaryDirectory()
            var cfg = try config()
            cfg.model = try ModelSpec(parsing: spec)
            let log = try ResultsLog(path: dir.file("log.jsonl"))
            _ = try EMCSearch(config: cfg, log: log, fitter: ThresholdFitter(threshold: 150)).search(seed: 0)
            let records = try ResultsLog(path: dir.file("log.jsonl")).records
            #expect(!records.isEmpty && records.allSatisfy { $0.trainer?.arithmetic == arithmetic && $0.trainer?.microBatch == microBatch }, "\(spec)")
        }
        mlp.model = try ModelSpec(parsing: "vit:dim=16,depth=1,heads=2,patch=4,pool=mean")
        #expect(mlp.canonical.hasSuffix("\narithmetic:vit/2"))
        mlp.model = try ModelSpec(parsing: "vit:dim=16,depth=1,heads=2,patch=4")
        #expect(mlp.canonical.hasSuffix("\narithmetic:vit/3"), "a class-token ViT's last block computes the class token alone")
        mlp.trainer = .torch
        #expect(!mlp.canonical.contains("arithmetic"), "the torch trainer's arithmetic is PyTorch's, keyed by its own line")
        #expect(mlp.configHash != mlpHash)
    }

    @Test("a log with trials of the same model at another arithmetic revision draws a warning naming both revisions; the run's own trials, another model's and the torch trainer's do not")
    func otherArithmeticWarning() throws {
        let dir = TemporaryDirectory()
        var cfg = try config()
        cfg.model = try ModelSpec(parsing: "resnet:width=0.25")
        _ = try EMCSearch(config: cfg, log: try ResultsLog(path: dir.file("log.jsonl")), fitter: ThresholdFitter(threshold: 150)).search(seed: 0)
        let own = try ResultsLog(path: dir.file("log.jsonl")).records
        #expect(SearchRun.otherArithmetic(own, config: cfg) == nil)
        // The same trials as revision 1 wrote them: another configuration hash, no arithmetic in the record.
        let older = own.map { record -> TrialRecord in
            var r = record
            r.config = "revision-1"
            r.trainer?.arithmetic = nil
            r.trainer?.microBatch = nil
            return r
        }
        #expect(SearchRun.otherArithmetic(older + own, config: cfg) == .otherArithmetic(trials: older.count, revisions: [1], current: 2))
        var mlp = cfg
        mlp.model = try ModelSpec(parsing: "mlp:width=4")
        #expect(SearchRun.otherArithmetic(older, config: mlp) == nil)
        var torch = cfg
        torch.trainer = .torch
        #expect(SearchRun.otherArithmetic(older, config: torch) == nil)
    }

    @Test("finds a known threshold within the resolution, within the trial bound, under each confirmation rule",
          arguments: [150, 1_000, 4_321, 19_700, 77_777, 500_000], [FailureConfirmation.final, .each])
    func threshold(t: Int, rule: FailureConfirmation) throws {
        let dir = TemporaryDirectory()
        let fitter = ThresholdFitter(threshold: t)
        let cfg = try config()
        let search = EMCSearch(config: cfg, log: try ResultsLog(path: dir.file("log.jsonl")), fitter: fitter)
        search.rules.confirmation = rule
        let result = try search.search(seed: 0)
        #expect(result.emc <= t)
        #expect(Double(t - result.emc) <= 0.02 * Double(result.emc) + 1, "EMC \(result.emc) for threshold \(t)")
        #expect(result.firstUnfitted! > t)
        // `each` confirms every failure (a second initialisation); `final` only the one that ends the search.
        let failures = Set(fitter.calls.filter { $0 > t }).count
        let confirmations = rule == .each ? failures : 1
        let bound = Int(ceil(log2(Double(t) / 100))) + Int(ceil(log2(1 / 0.02))) + 2 + confirmations
        #expect(result.trials <= bound, "\(result.trials) trials > bound \(bound) for threshold \(t): \(fitter.calls)")
        #expect(Set(fitter.trials).count == fitter.trials.count, "no trial (seed, n, replicate) is run twice")
        #expect(fitter.calls.filter { $0 > t }.count == failures + confirmations)
        #expect(fitter.trials.contains("0/\(result.firstUnfitted!)/1"), "the failure above the EMC is confirmed")
    }

    @Test("a start that does not fit searches downwards; a model that fits everything reports the data size")
    func edges() throws {
        let dir = TemporaryDirectory()
        let low = try EMCSearch(config: try config(start: 1000), log: try ResultsLog(path: dir.file("a.jsonl")), fitter: ThresholdFitter(threshold: 37)).search(seed: 0)
        #expect(low.emc <= 37 && low.emc >= 36)
        let all = try EMCSearch(config: try config(maxSamples: 5000), log: try ResultsLog(path: dir.file("b.jsonl")), fitter: ThresholdFitter(threshold: 1 << 30)).search(seed: 0)
        #expect(all.emc == 5000 && all.firstUnfitted == nil)
        let none = try EMCSearch(config: try config(), log: try ResultsLog(path: dir.file("c.jsonl")), fitter: ThresholdFitter(threshold: 0)).search(seed: 0)
        #expect(none.emc == 0)
    }

    @Test("saddle trials count as not fitted, are listed per seed and flagged, and the report tallies the Hessian checks")
    func saddles() throws {
        final class SaddleFitter: Fitter {
            func fit(n: Int, seed: Int, replicate: Int) throws -> FitOutcome {
                let fitted = n <= 1_000
                var o = FitOutcome(result: fitted ? .fitted : (n < 3_000 ? .saddle : .convergedUnfit), reason: "rule", samples: n, epochs: 10, steps: 10,
                                   finalLoss: 0, trainAccuracy: fitted ? 1 : 0.9, wrong: fitted ? 0 : 1, gradientNorm: nil, lossHistory: [], seconds: 0)
                if !fitted {
                    o.hessian = HessianCheck(verdict: n < 3_000 ? .saddle : .minimum, lambdaMin: n < 3_000 ? -0.5 : 0, lambdaMax: 10, tolerance: 1e-3,
                                             steps: 40, ritzValues: [-0.5, 10], residuals: [0, 0], samples: n, products: 40, seconds: 1,
                                             fullPasses: 45, singleBatch: true)
                }
                return o
            }
        }
        let dir = TemporaryDirectory()
        let log = try ResultsLog(path: dir.file("log.jsonl"))
        let search = EMCSearch(config: try config(), log: log, fitter: SaddleFitter())
        let result = try search.search(seed: 0)
        #expect(result.emc <= 1_000 && result.emc >= 980)
        let saddles = try #require(result.saddles)
        #expect(!saddles.isEmpty && saddles.allSatisfy { $0 > 1_000 && $0 < 3_000 })
        let records = try ResultsLog(path: dir.file("log.jsonl")).records
        #expect(records.contains { $0.result == .saddle && !$0.fitted && $0.hessian?.verdict == .saddle })
        let tally = try #require(HessianTally(records))
        #expect(tally.saddles == records.filter { $0.result == .saddle }.count && tally.minima == records.filter { $0.result == .convergedUnfit }.count)
        #expect(tally.text.contains("saddle"))
    }

    @Test("a noisy fitter still ends within the bound and brackets the noisy zone", arguments: [1, 2, 3, 4, 5])
    func noisy(seed: Int) throws {
        let dir = TemporaryDirectory()
        let fitter = ThresholdFitter(threshold: 10_000, noise: 0.1)
        let result = try EMCSearch(config: try config(), log: try ResultsLog(path: dir.file("log.jsonl")), fitter: fitter).search(seed: seed)
        #expect(result.emc >= 8_000 && result.emc <= 11_000, "seed \(seed): EMC \(result.emc)")
        #expect(result.trials <= 2 * (Int(ceil(log2(100.0))) + Int(ceil(log2(50.0))) + 2))
        #expect(Set(fitter.trials).count == fitter.trials.count)
    }

    @Test("a rerun reuses every logged trial and gives the same result; a torn last line is repaired")
    func resume() throws {
        let dir = TemporaryDirectory()
        let path = dir.file("log.jsonl")
        let first = try EMCSearch(config: try config(seeds: 2), log: try ResultsLog(path: path), fitter: ThresholdFitter(threshold: 3000)).run()
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        let fitter = ThresholdFitter(threshold: 3000)
        let again = try EMCSearch(config: try config(seeds: 2), log: try ResultsLog(path: path), fitter: fitter).run()
        #expect(fitter.calls.isEmpty)
        #expect(again.seeds.map(\.emc) == first.seeds.map(\.emc) && again.boundary == first.boundary)
        #expect(try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").count == lines.count)
        // Cut the log in the middle of a line, as a kill during a write would.
        let bytes = try ReadableFile.contents(of: path)
        try AtomicFileWriter.write(Array(bytes[..<(bytes.count - 40)]), to: path)
        let third = ThresholdFitter(threshold: 3000)
        let repaired = try EMCSearch(config: try config(seeds: 2), log: try ResultsLog(path: path), fitter: third).run()
        #expect(repaired.seeds.map(\.emc) == first.seeds.map(\.emc))
        #expect(third.calls.count == 1)  // only the torn trial is redone
        #expect(try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").count == lines.count)
        // A damaged line in the middle is an error that names it.
        var text = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
        text[2] = "{ not a record"
        try AtomicFileWriter.write(Array((text.joined(separator: "\n") + "\n").utf8), to: path)
        do { _ = try ResultsLog(path: path); Issue.record("accepted a damaged log") } catch let e as EMCError {
            #expect(e.place == .line(3))
        }
    }

    @Test("a diverged trial (loss NaN or infinite) is logged and read back, not an encoding error that aborts the run")
    func divergedRecord() throws {
        let dir = TemporaryDirectory()
        let log = try ResultsLog(path: dir.file("log.jsonl"))
        for (n, loss) in [(100, Double.nan), (200, Double.infinity)] {
            try log.append(TrialRecord(kind: .trial, key: "k", config: "c", seed: 0, n: n, result: .diverged, fitted: false, reason: "loss became \(loss)",
                                       epochs: 3, steps: 30, loss: loss, trainAccuracy: 0.1, wrong: 90, gradientNorm: nil, seconds: 1, testAccuracy: nil,
                                       data: "d", variant: nil, model: "mlp:width=8", optimizer: "sgd:lr=1000", parameters: 10, lossHistory: [1, loss]))
        }
        let again = try ResultsLog(path: dir.file("log.jsonl"))
        #expect(again.trial(key: "k", n: 100)?.loss.isNaN == true && again.trial(key: "k", n: 200)?.loss == .infinity)
        #expect(again.trial(key: "k", n: 100)?.result == .diverged)
    }

    @Test("report: EMC per configuration, CSV and SVG; no gain/gap pairs without gaps at a common n")
    func report() throws {
        func record(_ data: String, _ model: String, params: Int, n: Int, fitted: Bool, kind: TrialRecord.Kind = .trial, test: Double? = nil) -> TrialRecord {
            TrialRecord(kind: kind, key: "\(data)\(model)0", config: "\(data)\(model)", seed: 0, n: n, result: fitted ? .fitted : .convergedUnfit,
                        fitted: fitted, reason: "", epochs: 1, steps: 1, loss: 0, trainAccuracy: fitted ? 1 : 0.5, wrong: 0, gradientNorm: nil,
                        seconds: 1, testAccuracy: test, data: data, variant: data.contains("+") ? "labels=random,classes=10,seed=0" : nil, model: model,
                        optimizer: "sgd:lr=0.01", parameters: params, lossHistory: nil)
        }
        var records: [TrialRecord] = []
        for (i, w) in [4, 8, 16, 32].enumerated() {
            let real = 1000 * (i + 1), random = 300 + 100 * i
            records += [record("fm", "mlp:width=\(w)", params: 3000 * w, n: real, fitted: true), record("fm", "mlp:width=\(w)", params: 3000 * w, n: real * 2, fitted: false),
                        record("fm", "mlp:width=\(w)", params: 3000 * w, n: real, fitted: true, kind: .final, test: 0.9 - 0.05 * Double(i)),
                        record("fm+random-labels", "mlp:width=\(w)", params: 3000 * w, n: random, fitted: true)]
        }
        let report = Report.from(records)
        #expect(report.rows.count == 8)
        #expect(report.rows.first { $0.data == "fm" && $0.model == "mlp:width=16" }?.emcMedian == 3000)
        // No gap trials at a common n: no pairs for the gain/gap correlation (gaps at each model's own EMC are not one measure).
        #expect(report.gainGapPairs == 0 && report.gainGapCorrelation == nil)
        #expect(report.csv.split(separator: "\n").count == 9)
        let svg = EMCPlot.svg(report)
        #expect(svg.hasPrefix("<svg") && svg.contains("EMC = parameters") && svg.contains("fm+random-labels"))
    }
}

@Suite("End to end on real data", .serialized)
struct EndToEndTests {
    /// The first `n` Fashion-MNIST training images as a small shard set.
    static func smallFashionMNIST(_ dir: TemporaryDirectory) throws -> String {
        var options = ShardSetOptions(codec: .lz4, seed: 0)
        options.threads = 2
        let definition = try DatasetDefinition.load("fashion-mnist", manifests: repositoryManifests)
        _ = try Converter.run(ConvertRequest(dataset: definition, raw: "/usr/share/datasets/fashion-mnist", out: dir.file("fm"), options: options), quiet: true)
        return dir.file("fm")
    }

    @Test("a small real search on Fashion-MNIST with a tiny MLP")
    func realSearch() throws {
        let dir = TemporaryDirectory()
        let data = try Self.smallFashionMNIST(dir)
        let view = try DatasetView(directory: data)
        var fit = FitOptions()
        fit.batch = 8
        fit.budget.epochs = 150
        fit.evalBatch = 512
        let cfg = SearchConfig(dataDirectory: data, dataName: "fashion-mnist", dataContentId: view.manifest.contentId, variant: nil,
                               model: try ModelSpec(parsing: "mlp:width=16,depth=1"), optimizer: try OptimizerSpec(parsing: "adam:lr=0.01"),
                               fit: fit, normalize: "standard", start: 20, resolution: 0.1, seeds: 1, maxSamples: 2000, parameters: 12_730)
        var subset = SubsetOptions()
        subset.threads = 2
        let search = EMCSearch(config: cfg, log: try ResultsLog(path: dir.file("log.jsonl")), fitter: TrainingFitter(view: view, config: cfg, subsetOptions: subset))
        search.rules.confirmation = .off  // the pipeline end to end; confirmations have tests of their own
        let result = try search.search(seed: 0)
        #expect(result.emc >= 40, "a 12,730-parameter MLP fits at least 40 Fashion-MNIST images: \(result)")
        #expect(result.firstUnfitted != nil, "and not all 2,000 within 150 epochs")
        #expect(result.testAccuracy != nil && result.testAccuracy! > 0.3, "test accuracy \(String(describing: result.testAccuracy)) above chance")
    }

    /// The processes whose parent is `pid` (Linux: /proc/PID/task/*/children).
    static func children(of pid: Int32) -> [Int32] {
        let tasks = (try? FileSystem.list("/proc/\(pid)/task")) ?? []
        return tasks.flatMap { task in
            ((try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/children", encoding: .utf8)) ?? "").split(separator: " ").compactMap { Int32($0) }
        }
    }

    @Test("SIGTERM to a sweep reaches its running searches; it waits for them and leaves no process behind")
    func sweepSignals() throws {
        let dir = TemporaryDirectory()
        let data = try Self.smallFashionMNIST(dir)
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("emc").path
        let manifest = #"{"name": "signals", "data": ["\#(data)"], "models": ["mlp:width=4,depth=1", "mlp:width=6,depth=1"], "#
            + #""optimizers": ["adam:lr=0.001"], "epochs": 100000, "batch": 8, "log": "log.jsonl"}"#
        try AtomicFileWriter.write(Array(manifest.utf8), to: dir.file("exp.json"))
        let sweep = Process()
        sweep.executableURL = URL(fileURLWithPath: exe)
        sweep.arguments = ["sweep", dir.file("exp.json"), "--jobs", "2", "--quiet"]
        sweep.standardOutput = FileHandle.nullDevice
        sweep.standardError = FileHandle.nullDevice
        try sweep.run()
        var searches: [Int32] = []
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline && searches.count < 2 { usleep(50_000); searches = Self.children(of: sweep.processIdentifier) }
        #expect(searches.count == 2, "the sweep started its two searches")
        kill(sweep.processIdentifier, SIGTERM)
        let stop = Date().addingTimeInterval(60)
        while sweep.isRunning && Date() < stop { usleep(50_000) }
        #expect(!sweep.isRunning, "the sweep ended after SIGTERM")
        if sweep.isRunning { kill(sweep.processIdentifier, SIGKILL) }
        sweep.waitUntilExit()
        #expect(sweep.terminationStatus != 0)
        for pid in searches { #expect(kill(pid, 0) != 0, "search \(pid) outlived the sweep") }
    }

    @Test("kill a search midway (a separate emc process), rerun: same trials, same result, no duplicated lines")
    func killAndResume() throws {
        let dir = TemporaryDirectory()
        let data = try Self.smallFashionMNIST(dir)
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("emc").path
        #expect(FileSystem.exists(exe), "the emc executable is built beside the tests: \(exe)")
        let args = ["run", "--data", data, "--model", "mlp:width=4,depth=1", "--optimizer", "adam:lr=0.01", "--batch", "32",
                    "--epochs", "40", "--start", "20", "--resolution", "0.1", "--jobs", "1", "--quiet", "--json"]
        func run(log: String, killAfterLines: Int? = nil) throws -> Int32 {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: exe)
            p.arguments = args + ["--log", log]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            if let k = killAfterLines {
                let deadline = Date().addingTimeInterval(120)
                while p.isRunning && Date() < deadline {
                    let lines = (try? String(contentsOfFile: log, encoding: .utf8))?.split(separator: "\n").count ?? 0
                    if lines >= k { kill(p.processIdentifier, SIGKILL); break }
                    usleep(5_000)
                }
            }
            p.waitUntilExit()
            return p.terminationStatus
        }
        #expect(try run(log: dir.file("whole.jsonl")) == 0)
        let whole = try ResultsLog.records(at: dir.file("whole.jsonl"))
        // Killed early (doubling) and late (refinement): the resumed log is the uninterrupted one, field for field but
        // timing and provenance, every loss to the bit, and in the same order (one trial at a time: --jobs 1).
        for (i, lines) in [3, max(4, whole.count - 2)].enumerated() {
            let path = dir.file("cut-\(i).jsonl")
            _ = try run(log: path, killAfterLines: lines)
            #expect(try ResultsLog.records(at: path).count >= min(lines, whole.count))
            #expect(try run(log: path) == 0)
            let cut = try ResultsLog.records(at: path)
            #expect(cut.map(decided) == whole.map(decided), "killed after \(lines) lines")
            let identities = cut.filter { $0.kind == .trial }.map { "\($0.seed)/\($0.n)/\($0.replicateIndex)" }
            #expect(Set(identities).count == identities.count, "no trial (seed, n, replicate) is repeated")
        }
    }
}

@Suite("Experiment manifests")
struct ExperimentManifestTests {
    @Test("every manifest in manifests/experiments parses, and its models and optimizers are valid specs")
    func manifests() throws {
        let dir = repositoryManifests.replacingOccurrences(of: "/datasets", with: "/experiments")
        let files = try FileSystem.list(dir).filter { $0.hasSuffix(".json") }
        #expect(files.count >= 5)
        for file in files {
            let exp = try Experiment.load(FileSystem.join(dir, file))
            for m in exp.models { _ = try ModelSpec(parsing: m) }
            for o in exp.optimizers { _ = try OptimizerSpec(parsing: o) }
            #expect(!exp.cells.isEmpty)
            // Paths are relative to the manifest's folder: the shipped ones point at the repository's datasets/ and runs/.
            let settings = try exp.settings(exp.cells[0])
            #expect(settings.log.hasPrefix(dir + "/../../runs/") && settings.data.hasPrefix(dir + "/../../datasets/"))
        }
    }

    func write(_ json: String, _ dir: TemporaryDirectory) throws -> String {
        try FileSystem.createDirectory(dir.file("exp"))
        try AtomicFileWriter.write(Array(json.utf8), to: dir.file("exp/e.json"))
        return dir.file("exp/e.json")
    }

    @Test("an unknown key, a misspelt spec or a bad value is an error naming it before anything runs", arguments: [
        (#"{"name": "e", "data": ["d"], "models": ["mlp:width=8"], "optimizers": ["sgd"], "epoch": 3}"#, "epoch", "did you mean \"epochs\""),
        (#"{"name": "e", "data": ["d"], "models": ["mlp:widht=8"], "optimizers": ["sgd"]}"#, "models", "widht"),
        (#"{"name": "e", "data": ["d"], "models": ["mlp:width=8"], "optimizers": ["sgd:lr=2,lr=3"]}"#, "optimizers", "twice"),
        (#"{"name": "e", "data": ["d"], "models": ["mlp"], "optimizers": ["sgd"], "batch": 0}"#, nil, "batch size"),
        (#"{"name": "e", "data": ["d"], "models": ["mlp"], "optimizers": ["sgd"], "firstSeed": -1}"#, nil, "first seed"),
        (#"{"name": "e", "data": ["d"], "models": ["mlp"], "optimizers": ["sgd"], "prepare": [{"base": "d", "out": "v", "label": "random"}]}"#, "prepare[0].label", "labels"),
        (#"{"name": "e", "models": ["mlp"], "optimizers": ["sgd"]}"#, "data", "needs"),
        (#"{"name": "e", "data": ["d"], "models": ["mlp"], "optimizers": ["sgd"], "seeds": NaN}"#, nil, "not valid JSON"),
        (#"{"name": "e", "data": ["d"], "models": ["mlp"], "optimizers": ["sgd"], "epochs": 1e999}"#, nil, "out of range"),
        (#"{"name": "e", "data": ["d"], "models": ["mlp"], "optimizers": ["sgd"], "seeds": 2, "seeds": 3}"#, nil, "duplicate key \"seeds\""),
        (#"{"name": "e", "data": ["d"], "models": ["mlp"], "optimizers": ["sgd"], "parts": [{"models": ["mlp"]}, {"data": [], "seeds": 2}]}"#, "parts[1].data", "empty"),
        (#"{"name": "e", "data": ["d"], "models": ["mlp"], "optimizers": ["sgd"], "parts": [{"models": []}]}"#, "parts[0].models", "empty"),
        ("[" + String(repeating: "[", count: 100_000), nil, "nested deeper"),
    ])
    func strict(json: String, field: String?, words: String) throws {
        let dir = TemporaryDirectory()
        let path = try write(json, dir)
        let e = #expect(throws: EMCError.self) { _ = try Experiment.load(path) }
        #expect(e?.file == path && e?.place == field.map { .field($0) })
        #expect(e?.description.contains(words) == true, "\(String(describing: e))")
    }

    @Test("a manifest of more searches than a sweep may hold is refused by its count, before any cell is built")
    func cellCap() throws {
        let dir = TemporaryDirectory()
        let list = { (prefix: String) in "[" + (0..<100).map { "\"\(prefix)\($0)\"" }.joined(separator: ",") + "]" }
        let models = "[" + (1...100).map { "\"mlp:width=\($0)\"" }.joined(separator: ",") + "]"
        let optimizers = "[" + (1...100).map { "\"sgd:lr=0.\($0)\"" }.joined(separator: ",") + "]"
        let path = try write(#"{"name": "e", "data": \#(list("d")), "models": \#(models), "optimizers": \#(optimizers)}"#, dir)
        let e = #expect(throws: EMCError.self) { _ = try Experiment.load(path) }
        #expect(e?.message.contains("1,000,000 searches") == true && e?.message.contains("\(Experiment.maxCells)") == true, "\(String(describing: e))")
    }

    @Test("a model that cannot take the data's shape stops the sweep before any search runs, naming the search")
    func shapeChecked() throws {
        let dir = TemporaryDirectory()
        let base = try makeBase(dir)
        let path = try write(#"{"name": "e", "data": ["\#(base)", "not-made-yet"], "models": ["mlp:width=4", "vit:dim=8,heads=2,patch=5"], "optimizers": ["sgd"]}"#, dir)
        let tasks = try SweepRunner.tasks(try Experiment.load(path))
        let e = #expect(throws: EMCError.self) { _ = try SweepRunner.plans(tasks) }
        #expect(e?.description.contains("search vit:dim=8,heads=2,patch=5 on \(base)") == true, "\(String(describing: e))")
        #expect(e?.description.contains("does not tile") == true)
        // Without the ViT, the searches on existing data are planned and those whose data a prepare step makes are not.
        let fine = try SweepRunner.plans(tasks.filter { $0.settings.model.value.family == .mlp })
        #expect(fine.map { $0 != nil } == [true, false])
    }

    @Test("a search asking for the Hessian check of a model without R-operators is refused before it trains")
    func hessianRefusedUpFront() throws {
        let dir = TemporaryDirectory()
        var settings = try SearchSettings(data: try makeBase(dir), model: "vit:dim=8,heads=2,patch=4")
        _ = try SearchRun(settings)  // without the check it is a valid search
        settings.training.hessianCheck = .converged
        let e = #expect(throws: EMCError.self) { _ = try SearchRun(settings) }
        // A class-token ViT's last block has its own attention and q/k/v projection: every such layer is named.
        #expect(e?.description.contains("attention, class-attention, class-query-qkv, layernorm, tokens") == true, "\(String(describing: e))")
    }

    @Test("relative paths resolve against the manifest's folder, absolute ones stay")
    func paths() throws {
        let dir = TemporaryDirectory()
        let path = try write(#"{"name": "e", "data": ["sets/a", "/abs/b"], "models": ["mlp"], "optimizers": ["sgd"], "log": "out.jsonl", "seeds": 3, "firstSeed": 4}"#, dir)
        let exp = try Experiment.load(path)
        let tasks = try SweepRunner.tasks(exp)
        #expect(tasks.map(\.settings.data) == [dir.file("exp/sets/a"), "/abs/b"])
        #expect(tasks.allSatisfy { $0.settings.log == dir.file("exp/out.jsonl") && $0.settings.seeds == 3 && $0.settings.firstSeed == 4 })
    }
}
