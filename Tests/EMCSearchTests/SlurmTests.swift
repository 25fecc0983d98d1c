import EMCCore
import EMCSearch
import EMCSweeps
import EMCTestSupport
import Foundation
import Testing

/// The parts of a Slurm sweep that need no Slurm: the folder, a task's run and marker, collect's merge. The submission
/// itself runs against a real Slurm in scripts/slurm-test.
@Suite("Slurm sweeps without Slurm")
struct SlurmTests {
    func experiment(_ dir: TemporaryDirectory, data: TemporaryDirectory = TemporaryDirectory()) throws -> Experiment {
        _ = try makeBase(data, count: 200, testCount: 50)
        let json = """
        {"name": "tiny sweep", "data": ["\(data.path)"], "models": ["mlp:width=4", "mlp:width=8"], "optimizers": ["adam:lr=0.01"],
         "seeds": 2, "epochs": 20, "minSteps": 50, "log": "runs/tiny.jsonl"}
        """
        try AtomicFileWriter.write(Array(json.utf8), to: dir.file("tiny.json"))
        return try Experiment.load(dir.file("tiny.json"))
    }

    @Test("the folder's layout and job name; array ranges; sh quoting")
    func layout() throws {
        let dir = TemporaryDirectory()
        let exp = try experiment(dir)
        let folder = try SweepFolder(experiment: exp)
        #expect(folder.path == dir.file("runs/tiny.sweep"))
        #expect(folder.log(3) == dir.file("runs/tiny.sweep/logs/task-0003.jsonl") && folder.done(12).hasSuffix("done/task-0012.json"))
        #expect(folder.jobName.hasPrefix("emc-tiny-sweep-") && !folder.jobName.contains(" "))
        #expect(try SweepFolder(experiment: exp, override: "/shared/x").path == "/shared/x")
        #expect(try SweepFolder(experiment: exp, override: "/shared/x").jobName != folder.jobName, "two folders never share a job name")
        #expect(SlurmCommands.ranges([7, 0, 1, 2, 5, 8, 3]) == "0-3,5,7-8" && SlurmCommands.ranges([4]) == "4")
        #expect(SlurmCommands.quote("/a/b-c.d") == "/a/b-c.d" && SlurmCommands.quote("it's here") == #"'it'\''s here'"#)
    }

    @Test("a task runs its search into its own log and marks itself done; collect merges each record once; a missing sbatch says what to do")
    func taskAndCollect() throws {
        let dir = TemporaryDirectory(), data = TemporaryDirectory()
        let exp = try experiment(dir, data: data)
        let folder = try SweepFolder(experiment: exp)
        // What `submit` writes for each task, without sbatch: the placed task files.
        for sub in ["tasks", "logs", "checkpoints", "done", "out"] { try FileSystem.createDirectory(FileSystem.join(folder.path, sub)) }
        for task in try SweepRunner.tasks(exp) {
            try AtomicFileWriter.write(try SweepFolder.encode(folder.placed(task, checkpointInterval: 300)), to: folder.task(task.index))
        }
        // One core per task unless a task trains on more threads; the array asks for the most any task needs.
        var tasks = try SweepRunner.tasks(exp)
        #expect(SlurmExecutor.cpusPerTask(tasks) == 1)
        tasks[1].settings.threads = 4
        #expect(SlurmExecutor.cpusPerTask(tasks) == 4)
        let summary = try SlurmSweep.runTask(folder: folder.path, index: 1)
        #expect(summary.model.hasPrefix("mlp:width=8") && FileSystem.exists(folder.done(1)) && !FileSystem.exists(folder.done(0)))
        let logged = try ResultsLog.records(at: folder.log(1))
        #expect(!logged.isEmpty && logged.allSatisfy { $0.model.hasPrefix("mlp:width=8") })
        // Collect: task 1's records, once, however often it runs; task 0 is reported unfinished.
        let first = try SlurmSweep.collect(exp, folder: folder)
        #expect(first.added == logged.count && first.unfinished == [0] && first.tasks == 2)
        let again = try SlurmSweep.collect(exp, folder: folder)
        #expect(again.added == 0)
        #expect(try ResultsLog.records(at: exp.logPath).count == logged.count)
        // A torn last line (a task still writing) is left out and left alone.
        try FileSystem.append(Array("{\"kind\":\"tri".utf8), to: folder.log(1))
        #expect(try SlurmSweep.collect(exp, folder: folder).added == 0)
        #expect(try ReadableFile.contents(of: folder.log(1)).last == UInt8(ascii: "i"))
        // Rerunning the finished task repeats no trial: it reads them back from its log.
        FileSystem.remove(folder.log(1))
        let relog = try ResultsLog(path: folder.log(1))
        for r in logged { try relog.append(r) }
        let rerun = try SlurmSweep.runTask(folder: folder.path, index: 1)
        #expect(rerun.seeds.allSatisfy { $0.newTrials == 0 })
        #expect(try ResultsLog.records(at: folder.log(1)).count == logged.count)
        // Without sbatch on PATH the submission says how to run here instead.
        var options = SlurmOptions(taskCommand: ["/bin/true"], collectCommand: ["/bin/true"])
        options.searchPath = "/nonexistent"
        let e = #expect(throws: EMCError.self) {
            _ = try SlurmExecutor(folder: try SweepFolder(experiment: exp, override: dir.file("other")), options: options).submit(SweepRunner.tasks(exp))
        }
        #expect(e?.description.contains("--executor local") == true, "\(String(describing: e))")
    }

    @Test("emc hessian's trial: an n beyond the train split is an error naming the split's size, before any training")
    func checkedTrialRange() throws {
        let data = TemporaryDirectory()
        _ = try makeBase(data, count: 200, testCount: 50)
        let run = try SearchRun(try SearchSettings(data: data.path, model: "mlp:width=4"))
        for n in [0, 201] {
            let e = #expect(throws: EMCError.self) { _ = try run.checkedTrial(n: n, seed: 0) }
            #expect(e?.description.contains("200 samples") == true, "\(String(describing: e))")
        }
        let outcome = try run.checkedTrial(n: 40, seed: 0)
        #expect(outcome.hessian != nil && outcome.samples == 40)
    }
}
