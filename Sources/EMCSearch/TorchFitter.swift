import EMCCore
import EMCTrainer
import EMCVariants
import Foundation

/// The torch trainer: each trial goes to a PyTorch worker (`python -m emcshards.worker`, docs/torch-worker.md), which
/// reads the same nested subset through the Python reader, trains the configuration's model with torch.optim under the
/// same rules (docs/methods.md), and answers with the outcome. Everything around the trial (which n, which seed, the
/// records, the boundary) stays the search's.
///
/// One worker per job slot, started on first use and kept for later trials. A worker that exits, hangs past the
/// timeout or breaks the protocol fails its trial's attempt; the attempt is retried once on a fresh worker, then the
/// search stops with the error (the log keeps every finished trial, so a rerun resumes). An error the worker reports
/// as a value (bad data, an unsupported model, out of memory) is not retried.
public final class TorchFitter: Fitter, @unchecked Sendable {
    public let view: DatasetView
    public let config: SearchConfig
    public let options: TorchWorkerOptions
    public var evaluateTest = true
    public var onEpoch: ((Int, EpochReport) -> Void)?
    /// The folder where trials keep checkpoints (the worker saves every `interval` seconds; a retried or rerun trial
    /// resumes from it with the same record), or nil.
    public var checkpoints: (folder: String, interval: Double)?
    /// Told when a worker failed and its trial runs again on a fresh one.
    public var onRetry: ((String) -> Void)?
    private let lock = NSLock()
    private var idle: [TorchWorker] = []
    private var started: [TorchWorker] = []

    public init(view: DatasetView, config: SearchConfig, options: TorchWorkerOptions) throws {
        guard config.optimizer.kind != .shampoo else {
            throw EMCError(.unsupported, "the torch trainer has no Shampoo (torch.optim has none): use --trainer native for it")
        }
        self.view = view
        self.config = config
        self.options = options
    }

    deinit { close() }

    /// Stops every worker (each is asked to shut down, then killed if it has not).
    public func close() {
        lock.lock()
        let workers = started
        started = []
        idle = []
        lock.unlock()
        for w in workers { w.shutdown() }
    }

    /// The process ids of the running workers (for tests).
    public var workerProcesses: [Int32] {
        lock.lock(); defer { lock.unlock() }
        return started.map(\.pid)
    }

    private func take() throws -> TorchWorker {
        lock.lock()
        if let w = idle.popLast() { lock.unlock(); return w }
        lock.unlock()
        let w = try TorchWorker(options: options)
        lock.lock()
        started.append(w)
        lock.unlock()
        return w
    }

    private func give(_ worker: TorchWorker) {
        lock.lock()
        idle.append(worker)
        lock.unlock()
    }

    private func discard(_ worker: TorchWorker) {
        worker.kill()
        lock.lock()
        started.removeAll { $0 === worker }
        lock.unlock()
    }

    /// The request for the trial at (seed, n, replicate): what the native trainer would be given.
    func request(n: Int, seed: Int, replicate: Int) throws -> [String: Any] {
        var fit = config.fit
        fit.evalBatch = min(fit.evalBatch, max(fit.batch, n))
        let rules = try JSONSerialization.jsonObject(with: JSONEncoder().encode(fit.rules))
        let o = config.optimizer
        let optimizer: [String: Any] = [
            "kind": o.kind.rawValue, "lr": o.lr, "momentum": o.momentum, "nesterov": o.nesterov, "weightDecay": o.weightDecay,
            "beta1": o.beta1, "beta2": o.beta2, "eps": o.eps, "schedule": o.schedule.rawValue, "stepEpochs": o.stepEpochs,
            "gamma": o.gamma, "warmup": o.warmup, "plateauWait": o.plateauWait, "plateauDrops": o.plateauDrops]
        return ["data": config.dataDirectory, "n": n, "seed": seed,
                "trialSeed": NSNumber(value: SearchConfig.trialSeed(seed: seed, n: n, replicate: replicate)),
                "normalize": config.normalize, "model": config.model.description, "classes": view.classes.count,
                "optimizer": optimizer, "rules": rules, "evalBatch": fit.evalBatch, "historyPoints": fit.historyPoints,
                "evaluateTest": evaluateTest, "device": options.device, "threads": options.threads,
                "modelSource": config.modelSource ?? NSNull(), "precision": config.precision.rawValue,
                "checkpoint": checkpoints.map { c -> Any in
                    ["path": FileSystem.join(c.folder, String(config.key(seed: seed).prefix(16)) + "-n\(n)-r\(replicate).pt"), "interval": c.interval]
                } ?? NSNull()]
    }

    /// `EMC_TORCH_TRACE=FILE` appends every fit request to FILE as a JSON line (what `scripts/gpu-check` replays on
    /// another device; the requests name the data by the path emc was given).
    private static let trace: String? = ProcessInfo.processInfo.environment["EMC_TORCH_TRACE"].flatMap { $0.isEmpty ? nil : $0 }

    public func fit(n: Int, seed: Int, replicate: Int) throws -> FitOutcome {
        let params = try request(n: n, seed: seed, replicate: replicate)
        if let trace = Self.trace, let line = try? JSONSerialization.data(withJSONObject: params, options: [.sortedKeys]) {
            lock.lock()
            defer { lock.unlock() }
            if let handle = FileHandle(forWritingAtPath: trace) ?? (FileManager.default.createFile(atPath: trace, contents: nil) ? FileHandle(forWritingAtPath: trace) : nil) {
                handle.seekToEndOfFile()
                handle.write(line + Data([0x0A]))
                try? handle.close()
            }
        }
        var failure: WorkerFailure?
        for _ in 1...2 {
            if let failure { onRetry?("the torch worker failed on the trial at n = \(n), seed \(seed) (\(failure.message)); trying once more on a fresh worker") }
            let worker = try take()
            let answer: [String: Any]
            do {
                answer = try worker.call("fit", params) { [onEpoch] note, _ in
                    guard let epoch = note["epoch"] as? Int, note["running"] == nil, let loss = note["loss"] as? Double ?? (note["loss"] as? String).flatMap(Double.init),
                          let wrong = note["wrong"] as? Int, let lr = note["learningRate"] as? Double else { return }
                    onEpoch?(n, EpochReport(epoch: epoch, loss: loss, wrong: wrong, learningRate: lr))
                }
            } catch let f as WorkerFailure {
                discard(worker)
                failure = f
                continue
            }
            give(worker)
            return try outcome(from: answer, n: n, seed: seed)
        }
        throw EMCError(.library, "the torch worker failed twice on the trial at n = \(n), seed \(seed): \(failure!.message). "
                       + "Every finished trial is in the log: rerun to resume")
    }

    /// The outcome in a worker's answer, or the error it reported as a value.
    private func outcome(from answer: [String: Any], n: Int, seed: Int) throws -> FitOutcome {
        if let error = answer["error"] as? [String: Any] {
            let code = error["code"] as? String ?? "?", text = error["message"] as? String ?? ""
            let kind: EMCError.Kind = code == "data" ? .format : code == "model" ? .invalidArgument
                : code == "unsupported" || code == "device" ? .unsupported : .library
            throw EMCError(kind, "the torch worker could not train the trial at n = \(n), seed \(seed) (\(code)): \(text)")
        }
        guard let result = answer["result"] else { throw EMCError(.library, "the torch worker answered without a result or an error") }
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = TrialRecord.nonFiniteDecoding
        let outcome: FitOutcome
        do {
            outcome = try decoder.decode(FitOutcome.self, from: JSONSerialization.data(withJSONObject: result))
        } catch {
            throw EMCError(.library, "the torch worker's result for n = \(n), seed \(seed) is not an outcome: \(error)")
        }
        try check(outcome, n: n, seed: seed)
        return outcome
    }

    /// A worker's outcome is evidence only when it is one a trial can have: its own trial's size, a wrong count and
    /// accuracy that agree, a decision its numbers support, counts within the budget, and the model it names. Anything
    /// else is an error, never a record.
    private func check(_ o: FitOutcome, n: Int, seed: Int) throws {
        func bad(_ why: String) -> EMCError {
            EMCError(.library, "the torch worker's result for the trial at n = \(n), seed \(seed) is impossible (\(why)): nothing was recorded")
        }
        guard o.samples == n else { throw bad("it trained \(o.samples) samples") }
        guard (0...n).contains(o.wrong) else { throw bad("\(o.wrong) of \(n) samples wrong") }
        guard abs(o.trainAccuracy - Double(n - o.wrong) / Double(n)) < 1e-9 else { throw bad("training accuracy \(o.trainAccuracy) with \(o.wrong) of \(n) wrong") }
        let fullBatch = config.optimizer.kind == .gd
        let epochBudget = config.fit.epochBudget(samples: n, fullBatch: fullBatch)
        guard (0...epochBudget).contains(o.epochs) else { throw bad("\(o.epochs) epochs with a budget of \(epochBudget)") }
        let stepsPerEpoch = config.fit.budget.stepsPerEpoch(samples: n, batch: config.fit.batch, fullBatch: fullBatch)
        guard o.steps >= 0, o.steps <= (o.epochs + 1) * stepsPerEpoch else { throw bad("\(o.steps) steps in \(o.epochs) epochs") }
        if o.result == .fitted { guard o.wrong <= config.fit.allowedWrong(n) else { throw bad("fitted with \(o.wrong) wrong, \(config.fit.allowedWrong(n)) allowed") } }
        if o.result == .budgetExhausted { guard o.wrong > config.fit.allowedWrong(n) else { throw bad("out of budget with only \(o.wrong) wrong") } }
        guard let trainer = o.trainer, trainer.kind == .torch, let p = trainer.parameters else { throw bad("it does not say what trained it") }
        guard p == config.parameters else {
            throw EMCError(.library, "the torch build of \(config.model) has \(p) parameters, the configuration \(config.parameters): the two trainers would measure different models")
        }
    }
}
