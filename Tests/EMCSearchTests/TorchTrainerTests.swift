import EMCCore
import EMCReports
import EMCSearch
import EMCTestSupport
import EMCTrainer
import Foundation
import Testing

/// The torch trainer as the search uses it, with a real PyTorch worker: EMC_PYTHON (scripts/test sets it from
/// scripts/torch-env), else the cached environment at ~/.cache/emc/venv. Without either these tests fail, saying so.
enum TorchTesting {
    static let python: String = {
        if let p = ProcessInfo.processInfo.environment["EMC_PYTHON"], !p.isEmpty { return p }
        return FileSystem.join(ProcessInfo.processInfo.environment["HOME"] ?? "/root", ".cache/emc/venv/bin/python")
    }()

    /// The repository's python/ folder (the emcshards package, for an interpreter that has no install of it).
    static let packageFolder = repositoryManifests.replacingOccurrences(of: "/manifests/datasets", with: "/python")

    static func settings(_ data: String, log: String, model: String = "mlp:width=4,depth=1") throws -> SearchSettings {
        var s = try SearchSettings(data: data, model: model)
        s.trainer = .torch
        s.python = python
        s.log = log
        s.seeds = 1
        s.start = 20
        s.training.batch = 32
        s.training.budget = Budget(epochs: 30, minSteps: 0)
        s.optimizer = try Written("adam:lr=0.01")
        return s
    }

    static func fitter(_ dir: TemporaryDirectory, environment: [String: String] = [:], python: String = python, timeout: Double = 120) throws -> TorchFitter {
        let run = try SearchRun(settings(try makeBase(dir), log: dir.file("log.jsonl")))
        var options = TorchWorkerOptions(python: python, timeout: timeout)
        options.environment = environment
        let fitter = try TorchFitter(view: run.view, config: run.config, options: options)
        fitter.evaluateTest = false
        return fitter
    }

    /// The outcome without its timing (what must not depend on how the trial got there).
    static func decided(_ o: FitOutcome) -> FitOutcome {
        var o = o
        o.seconds = 0
        return o
    }

    static func alive(_ pid: Int32) -> Bool {
        guard kill(pid, 0) == 0 else { return false }
        // A zombie (exited, not yet reaped by a dead parent's reaper) is gone for our purpose.
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        return !stat.contains(") Z ")
    }
}

@Suite("The torch trainer's worker, its failures and its records", .serialized)
struct TorchTrainerTests {
    @Test("a trial through the worker is decided, names the torch trainer and its guarantees, and repeats exactly")
    func trial() throws {
        let dir = TemporaryDirectory()
        let fitter = try TorchTesting.fitter(dir)
        defer { fitter.close() }
        let a = try fitter.fit(n: 40, seed: 0, replicate: 0)
        #expect(a.samples == 40 && a.epochs > 0)
        #expect(a.trainer?.kind == .torch && a.trainer?.precision == "float32" && a.trainer?.deterministic == true && a.trainer?.tf32 == false)
        #expect(a.trainer?.parameters == fitter.config.parameters, "the torch build has the native model's parameter count")
        let b = try fitter.fit(n: 40, seed: 0, replicate: 0)
        #expect(TorchTesting.decided(a) == TorchTesting.decided(b), "the same trial twice on one worker: the same outcome")
        let c = try fitter.fit(n: 40, seed: 0, replicate: 1)
        #expect(c.lossHistory != a.lossHistory, "another replicate is another initialisation")
    }

    @Test("no Python at the path given: a clear error naming it and the remedy")
    func noPython() throws {
        let dir = TemporaryDirectory()
        let fitter = try TorchTesting.fitter(dir, python: dir.file("no-such-python"))
        let e = #expect(throws: EMCError.self) { _ = try fitter.fit(n: 20, seed: 0, replicate: 0) }
        #expect(e?.message.contains("no Python interpreter at \(dir.file("no-such-python"))") == true)
        #expect(e?.message.contains("--python") == true)
    }

    @Test("a Python without the emcshards package, and one without torch: each a clear error with the remedy, never a trial")
    func missingPackages() throws {
        let dir = TemporaryDirectory()
        let plain = try TorchWorkerOptions.locate("python3")
        let bare = try TorchTesting.fitter(dir, environment: ["PYTHONPATH": ""], python: plain)
        let e1 = #expect(throws: EMCError.self) { _ = try bare.fit(n: 20, seed: 0, replicate: 0) }
        #expect(e1?.message.contains("has no emcshards package") == true, "\(e1?.message ?? "")")
        #expect(e1?.message.contains("pip install") == true)
        // The package importable, torch not: the handshake says so.
        let other = TemporaryDirectory()
        let noTorch = try TorchTesting.fitter(other, environment: ["PYTHONPATH": TorchTesting.packageFolder], python: plain)
        let e2 = #expect(throws: EMCError.self) { _ = try noTorch.fit(n: 20, seed: 0, replicate: 0) }
        #expect(e2?.message.contains("cannot import torch") == true, "\(e2?.message ?? "")")
        #expect(!FileSystem.exists(dir.file("log.jsonl")), "nothing was recorded")
    }

    @Test("a worker that exits at once is an error naming the interpreter, not a SIGPIPE that ends emc")
    func exitsAtOnce() throws {
        let dir = TemporaryDirectory()
        let fitter = try TorchTesting.fitter(dir, python: "/bin/true")
        let e = #expect(throws: EMCError.self) { _ = try fitter.fit(n: 20, seed: 0, replicate: 0) }
        #expect(e?.message.contains("/bin/true cannot run the torch worker") == true, "\(e?.message ?? "")")
    }

    /// A worker that speaks the protocol but answers every trial with `result` (a JSON object's text).
    static func fakeWorker(_ dir: TemporaryDirectory, result: String) throws -> String {
        try AtomicFileWriter.write(Array(result.utf8), to: dir.file("result.json"))
        let script = """
        import json, sys
        answer = json.load(open(sys.argv[1]))
        for line in sys.stdin:
            r = json.loads(line)
            if r["method"] == "hello":
                print(json.dumps({"id": r["id"], "result": {"protocol": 1, "worker": "fake", "torch": "0", "cuda": False, "devices": 0}}), flush=True)
            elif r["method"] == "fit":
                out = dict(answer, samples=r["params"]["n"])
                print(json.dumps({"id": r["id"], "result": out}), flush=True)
            else:
                print(json.dumps({"id": r["id"], "result": {}}), flush=True)
                break
        """
        try AtomicFileWriter.write(Array(script.utf8), to: dir.file("fake.py"))
        try AtomicFileWriter.write(Array("#!/bin/sh\nexec python3 \(dir.file("fake.py")) \(dir.file("result.json"))\n".utf8), to: dir.file("fake"))
        chmod(dir.file("fake"), 0o755)
        return dir.file("fake")
    }

    @Test("an impossible result from a worker is an error, never a record", arguments: [
        (#"{"result": "fitted", "reason": "", "epochs": 3, "steps": 6, "finalLoss": 0.1, "trainAccuracy": 7, "wrong": -5, "gradientNorm": null, "lossHistory": [], "seconds": 1, "thresholdEpochs": {}, "learningRateDrops": [], "trainer": {"kind": "torch", "precision": "float32", "parameters": 0}}"#, "samples wrong"),
        (#"{"result": "fitted", "reason": "", "epochs": 3, "steps": 3, "finalLoss": 0.1, "trainAccuracy": 0, "wrong": 20, "gradientNorm": null, "lossHistory": [], "seconds": 1, "thresholdEpochs": {}, "learningRateDrops": [], "trainer": {"kind": "torch", "precision": "float32", "parameters": 0}}"#, "fitted with 20 wrong"),
        (#"{"result": "fitted", "reason": "", "epochs": 3, "steps": 3, "finalLoss": 0.1, "trainAccuracy": 1, "wrong": 0, "gradientNorm": null, "lossHistory": [], "seconds": 1, "thresholdEpochs": {}, "learningRateDrops": []}"#, "does not say what trained it"),
        (#"{"result": "budget-exhausted", "reason": "", "epochs": 99999, "steps": 6, "finalLoss": 0.1, "trainAccuracy": 0.5, "wrong": 10, "gradientNorm": null, "lossHistory": [], "seconds": 1, "thresholdEpochs": {}, "learningRateDrops": [], "trainer": {"kind": "torch", "precision": "float32", "parameters": 0}}"#, "99999 epochs"),
    ])
    func impossibleResults(result: String, words: String) throws {
        let dir = TemporaryDirectory()
        let fitter = try TorchTesting.fitter(dir, python: try Self.fakeWorker(dir, result: result))
        defer { fitter.close() }
        let e = #expect(throws: EMCError.self) { _ = try fitter.fit(n: 20, seed: 0, replicate: 0) }
        #expect(e?.message.contains("impossible") == true && e?.message.contains(words) == true, "\(e?.message ?? "")")
    }

    @Test("a worker of another protocol version is refused at the handshake")
    func protocolVersion() throws {
        let dir = TemporaryDirectory()
        let fitter = try TorchTesting.fitter(dir, environment: ["EMC_WORKER_FAULT": "protocol=9"])
        let e = #expect(throws: EMCError.self) { _ = try fitter.fit(n: 20, seed: 0, replicate: 0) }
        #expect(e?.kind == .unsupported && e?.message.contains("speaks another protocol") == true, "\(e?.message ?? "")")
        #expect(e?.message.contains("protocol 9") == true)
    }

    @Test("a worker killed during a trial fails that attempt only: the retry on a fresh worker gives the uninterrupted outcome")
    func killedWorker() throws {
        let dir = TemporaryDirectory()
        let clean = try TorchTesting.fitter(dir)
        let expected = try clean.fit(n: 60, seed: 0, replicate: 0)
        clean.close()
        let fitter = try TorchTesting.fitter(dir)
        defer { fitter.close() }
        var killed: [Int32] = [], retries: [String] = []
        fitter.onEpoch = { _, report in
            // Kill the worker (SIGKILL, from outside, as the OOM killer or a node would) at its first epoch, once.
            if killed.isEmpty, report.epoch == 1, let pid = fitter.workerProcesses.first { killed.append(pid); kill(pid, SIGKILL) }
        }
        fitter.onRetry = { retries.append($0) }
        let outcome = try fitter.fit(n: 60, seed: 0, replicate: 0)
        #expect(killed.count == 1 && retries.count == 1, "one kill, one retry: \(retries)")
        #expect(retries.first?.contains("killed by signal 9") == true, "\(retries)")
        #expect(TorchTesting.decided(outcome) == TorchTesting.decided(expected))
        #expect(!fitter.workerProcesses.contains(killed[0]))
    }

    @Test("a worker that dies on every attempt stops the search with the error after one retry, leaving no process")
    func workerDiesTwice() throws {
        let dir = TemporaryDirectory()
        let fitter = try TorchTesting.fitter(dir, environment: ["EMC_WORKER_FAULT": "exit-in-fit"])
        var retries = 0
        fitter.onRetry = { _ in retries += 1 }
        let e = #expect(throws: EMCError.self) { _ = try fitter.fit(n: 60, seed: 0, replicate: 0) }
        #expect(retries == 1)
        #expect(e?.message.contains("failed twice") == true && e?.message.contains("exited with status 17") == true, "\(e?.message ?? "")")
        #expect(e?.message.contains("rerun to resume") == true)
        #expect(fitter.workerProcesses.isEmpty)
    }

    @Test("a worker that dies once (exit-in-fit-once) is retried and the trial completes")
    func workerDiesOnce() throws {
        let dir = TemporaryDirectory()
        let fitter = try TorchTesting.fitter(dir, environment: ["EMC_WORKER_FAULT": "exit-in-fit-once=\(dir.file("died"))"])
        defer { fitter.close() }
        var retries = 0
        fitter.onRetry = { _ in retries += 1 }
        let outcome = try fitter.fit(n: 60, seed: 0, replicate: 0)
        #expect(retries == 1 && FileSystem.exists(dir.file("died")) && outcome.samples == 60)
    }

    @Test("a worker that hangs is killed after the timeout, retried once, then the error says it hangs")
    func hangingWorker() throws {
        let dir = TemporaryDirectory()
        let fitter = try TorchTesting.fitter(dir, environment: ["EMC_WORKER_FAULT": "hang-in-fit"], timeout: 4)
        let start = Date()
        let e = #expect(throws: EMCError.self) { _ = try fitter.fit(n: 60, seed: 0, replicate: 0) }
        #expect(e?.message.contains("sent nothing for 4 s") == true && e?.message.contains("--worker-timeout") == true, "\(e?.message ?? "")")
        #expect(Date().timeIntervalSince(start) < 60)
        #expect(fitter.workerProcesses.isEmpty)
    }

    @Test("the trainer is part of a configuration's identity: torch and native never pool, and native keys are unchanged")
    func identity() throws {
        let dir = TemporaryDirectory()
        let data = try makeBase(dir)
        var native = try TorchTesting.settings(data, log: dir.file("log.jsonl"))
        native.trainer = .native
        let torch = try TorchTesting.settings(data, log: dir.file("log.jsonl"))
        let a = try SearchRun(native).config, b = try SearchRun(torch).config
        #expect(a.configHash != b.configHash)
        #expect(!a.canonical.contains("trainer"), "a native configuration's text is what it always was")
        #expect(b.canonical.hasSuffix("\ntrainer:torch,float32-deterministic"))
        // Settings: the trainer is written only when it is not native (a native sweep task's hash does not move).
        let encoded = String(decoding: try JSONEncoder().encode(native), as: UTF8.self)
        #expect(!encoded.contains("trainer"))
        let decoded = try JSONDecoder().decode(SearchSettings.self, from: JSONEncoder().encode(torch))
        #expect(decoded.trainer == .torch)
        // bf16 autocast is another configuration; the native trainer has none.
        var bf16 = torch
        bf16.precision = .bf16
        let c = try SearchRun(bf16).config
        #expect(c.canonical.hasSuffix("\ntrainer:torch,bf16-autocast-deterministic") && c.configHash != b.configHash)
        let fitter = try TorchFitter(view: try SearchRun(bf16).view, config: c, options: TorchWorkerOptions(python: TorchTesting.python))
        defer { fitter.close() }
        let outcome = try fitter.fit(n: 30, seed: 0, replicate: 0)
        #expect(outcome.trainer?.precision == "bf16-autocast")
        bf16.trainer = .native
        #expect(throws: EMCError.self) { try bf16.check() }
    }

    @Test("a device that is not there is an error at the handshake, before any trial; a device that is no device is a usage error")
    func devices() throws {
        let dir = TemporaryDirectory()
        let data = try makeBase(dir)
        var s = try TorchTesting.settings(data, log: dir.file("log.jsonl"))
        s.device = "cuda:1023"
        let run = try SearchRun(s)
        let fitter = try run.makeTorchFitter()
        let e = #expect(throws: EMCError.self) { _ = try fitter.fit(n: 20, seed: 0, replicate: 0) }
        #expect(e?.message.contains("device cuda:1023 was asked for") == true, "\(e?.message ?? "")")
        #expect(!FileSystem.exists(dir.file("log.jsonl")))
        s.device = "gpu"
        let bad = #expect(throws: EMCError.self) { try s.check() }
        #expect(bad?.message.contains("give cpu, cuda, cuda:N or mps") == true)
        s.device = "cuda"
        s.trainer = .native
        #expect(throws: EMCError.self) { try s.check() }
    }

    @Test("a long torch trial killed midway resumes from the worker's checkpoint with the uninterrupted record")
    func checkpointResume() throws {
        let dir = TemporaryDirectory()
        let clean = try TorchTesting.fitter(dir)
        let expected = try clean.fit(n: 200, seed: 0, replicate: 0)
        clean.close()
        #expect(expected.epochs > 6, "the trial runs past the kill: \(expected.reason)")
        let fitter = try TorchTesting.fitter(dir, environment: ["EMC_WORKER_FAULT": "exit-at-epoch-once=5:\(dir.file("killed"))"])
        defer { fitter.close() }
        try FileSystem.createDirectory(dir.file("ckpt"))
        fitter.checkpoints = (dir.file("ckpt"), 0)
        var retries = 0
        fitter.onRetry = { _ in retries += 1 }
        var resumed = try fitter.fit(n: 200, seed: 0, replicate: 0)
        #expect(retries == 1 && FileSystem.exists(dir.file("killed")))
        #expect(resumed.resumedFromEpoch == 5)
        resumed.resumedFromEpoch = nil
        #expect(TorchTesting.decided(resumed) == TorchTesting.decided(expected), "every loss to the bit, the same decision")
        #expect(try FileSystem.list(dir.file("ckpt")).isEmpty, "a decided trial's checkpoint is removed")
    }

    @Test("the Hessian check through the worker: recorded with its Lanczos evidence, as the native check records it")
    func hessianCheck() throws {
        let dir = TemporaryDirectory()
        var s = try TorchTesting.settings(try makeBase(dir), log: dir.file("log.jsonl"))
        s.training.hessianCheck = .final
        s.training.hessian.steps = 12
        let run = try SearchRun(s)
        let fitter = try run.makeTorchFitter()
        defer { fitter.close() }
        let outcome = try fitter.fit(n: 40, seed: 0, replicate: 0)
        let h = try #require(outcome.hessian)
        #expect(h.steps == 12 && h.products == 12 && h.ritzValues.count == 12 && h.samples == 40)
        #expect(h.lambdaMax > 0 && h.lambdaMin <= h.lambdaMax)
        #expect(h.verdict == HessianCheck.verdict(lambdaMin: h.lambdaMin, lambdaMax: h.lambdaMax, tolerance: 1e-3))
    }

    @Test("what the torch trainer cannot do is refused before any trial: Shampoo")
    func refusals() throws {
        let dir = TemporaryDirectory()
        let data = try makeBase(dir)
        var s = try TorchTesting.settings(data, log: dir.file("log.jsonl"))
        s.optimizer = try Written("shampoo:lr=0.001")
        #expect(throws: EMCError.self) { try s.check() }
    }

    @Test("a search through torch: records name the trainer; a killed emc leaves no worker; the rerun resumes from the log")
    func killEMC() throws {
        let dir = TemporaryDirectory()
        let data = try makeBase(dir)
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("emc").path
        let args = ["run", "--data", data, "--model", "mlp:width=4,depth=1", "--optimizer", "adam:lr=0.01", "--batch", "32", "--epochs", "200",
                    "--min-steps", "0", "--start", "20", "--seeds", "1", "--trainer", "torch", "--python", TorchTesting.python,
                    "--log", dir.file("log.jsonl"), "--quiet", "--json"]
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        // Wait for the worker and the first record, then kill emc as a scheduler would.
        var workers: [Int32] = []
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline {
            workers = EndToEndTests.children(of: p.processIdentifier)
            let lines = (try? String(contentsOfFile: dir.file("log.jsonl"), encoding: .utf8))?.split(separator: "\n").count ?? 0
            if !workers.isEmpty && lines >= 1 { break }
            usleep(20_000)
        }
        #expect(workers.count == 1, "one worker for one job")
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        let gone = Date().addingTimeInterval(10)
        while workers.contains(where: TorchTesting.alive) && Date() < gone { usleep(50_000) }
        for w in workers { #expect(!TorchTesting.alive(w), "worker \(w) outlived the emc that started it") }
        let before = try ResultsLog.records(at: dir.file("log.jsonl"))
        #expect(!before.isEmpty)
        let rerun = try runProcess(exe, args)
        #expect(rerun.status == 0, "\(rerun.stderr)")
        let after = try ResultsLog.records(at: dir.file("log.jsonl"))
        #expect(Array(after.prefix(before.count)) == before, "the rerun kept every record and repeated none")
        #expect(after.allSatisfy { $0.trainer?.kind == .torch && $0.trainer?.torch != nil })
        let report = Report.from(after)
        #expect(report.rows.count == 1 && report.rows[0].trainer == "torch")
    }

    static let lenet = """
    import torch
    import torch.nn as nn

    class SkipLeNet(nn.Module):
        def __init__(self, shape, classes, width, hidden):
            super().__init__()
            c, h, w = shape
            self.conv1 = nn.Conv2d(c, width, 3, padding=1)
            self.conv2 = nn.Conv2d(width, width, 3, padding=1)
            self.fc1 = nn.Linear(width * (h // 2) * (w // 2), hidden)
            self.drop = nn.Dropout(0.1)
            self.fc2 = nn.Linear(hidden, classes)

        def forward(self, x):
            x = torch.relu(self.conv1(x))
            x = nn.functional.max_pool2d(torch.relu(x + self.conv2(x)), 2)
            return self.fc2(self.drop(torch.relu(self.fc1(x.flatten(1)))))

    def make(shape, classes, width=4, hidden=8):
        return SkipLeNet(shape, classes, width, hidden)
    """

    @Test("a researcher's own model (py:): the worker builds it, its parameter count and source enter the configuration, it trains; an edited file is another configuration")
    func pythonModel() throws {
        let dir = TemporaryDirectory()
        let data = try makeBase(dir)
        try AtomicFileWriter.write(Array(Self.lenet.utf8), to: dir.file("lenet.py"))
        let settings = try TorchTesting.settings(data, log: dir.file("log.jsonl"), model: "py:\(dir.file("lenet.py")):make,width=3,hidden=5")
        let run = try SearchRun(settings)
        // conv1 3·3·3·3 + 3, conv2 3·3·3·3 + 3, fc1 3·4·4·5 + 5, fc2 5·10 + 10 (8×8×3 images, 10 classes)
        #expect(run.config.parameters == 84 + 84 + 245 + 60)
        #expect(run.config.canonical.contains("\nmodelsource:"))
        #expect(run.config.model.description == "py:\(dir.file("lenet.py")):make,hidden=5,width=3", "keys sorted in the canonical spec")
        let fitter = try TorchFitter(view: run.view, config: run.config, options: TorchWorkerOptions(python: TorchTesting.python))
        defer { fitter.close() }
        let outcome = try fitter.fit(n: 30, seed: 0, replicate: 0)
        #expect(outcome.trainer?.parameters == run.config.parameters && outcome.samples == 30)
        try AtomicFileWriter.write(Array((Self.lenet + "\n# edited\n").utf8), to: dir.file("lenet.py"))
        #expect(try SearchRun(settings).config.configHash != run.config.configHash, "an edited model never pools with the old one")
        // The running search's workers notice the edit rather than train another model under the old identity.
        let e = #expect(throws: EMCError.self) { _ = try fitter.fit(n: 31, seed: 0, replicate: 0) }
        #expect(e?.message.contains("changed since the search began") == true, "\(e?.message ?? "")")
    }

    @Test("a model file that does not import, has no such function, returns no module, or outputs the wrong size: each a clear error before any trial",
          arguments: [
              ("import torch\ndef make(shape, classes):\n    return (\n", "does not import: SyntaxError"),
              ("import torch\n", "has no function make"),
              ("def make(shape, classes):\n    return 42\n", "returned int, not a torch.nn.Module"),
              ("import torch.nn as nn\ndef make(shape, classes):\n    return nn.Sequential(nn.Flatten(), nn.Linear(192, 7))\n",
               "outputs (2, 7) for 2 samples; emc needs [2, 10]"),
              ("import torch.nn as nn\ndef make(shape, classes):\n    return nn.Linear(5, classes)\n", "fails on a batch of shape (2, 3, 8, 8)"),
          ])
    func badModelFiles(source: String, words: String) throws {
        let dir = TemporaryDirectory()
        let data = try makeBase(dir)
        try AtomicFileWriter.write(Array(source.utf8), to: dir.file("bad.py"))
        let settings = try TorchTesting.settings(data, log: dir.file("log.jsonl"), model: "py:\(dir.file("bad.py")):make")
        let e = #expect(throws: EMCError.self) { _ = try SearchRun(settings) }
        #expect(e?.message.contains(words) == true, "\(e?.message ?? "")")
        #expect(e?.message.contains(dir.file("bad.py")) == true, "the error names the file")
        #expect(!FileSystem.exists(dir.file("log.jsonl")))
    }

    @Test("a py: model that is missing, or asked of the native trainer, is refused with the remedy")
    func pythonModelRefusals() throws {
        let dir = TemporaryDirectory()
        let data = try makeBase(dir)
        let missing = try TorchTesting.settings(data, log: dir.file("log.jsonl"), model: "py:\(dir.file("nowhere.py")):make")
        let e = #expect(throws: EMCError.self) { _ = try SearchRun(missing) }
        #expect(e?.message.contains("cannot be read") == true, "\(e?.message ?? "")")
        var native = missing
        native.trainer = .native
        let n = #expect(throws: EMCError.self) { try native.check() }
        #expect(n?.message.contains("--trainer torch") == true)
        #expect(throws: EMCError.self) { _ = try ModelSpec(parsing: "py:models.py") }
        #expect(throws: EMCError.self) { _ = try ModelSpec(parsing: "py:models.py:make,shape=3") }
        #expect(throws: EMCError.self) { _ = try ModelSpec(parsing: "py:models.py:1make") }
    }
}
