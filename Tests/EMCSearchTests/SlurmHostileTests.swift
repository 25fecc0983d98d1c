import EMCCore
import EMCSearch
import EMCSweeps
import EMCTestSupport
import Foundation
import Testing

/// A Slurm sweep fed hostile names and paths, and Slurm commands that misbehave (fake sbatch and squeue on a search
/// path of the test's own). The real submission runs against a real Slurm in scripts/slurm-test.
@Suite("Slurm sweeps under attack")
struct SlurmHostileTests {
    func experiment(_ dir: TemporaryDirectory, name: String = "tiny", log: String = "runs/tiny.jsonl") throws -> Experiment {
        let data = dir.file("data")
        try FileSystem.createDirectory(data)
        let json: [String: Any] = ["name": name, "data": [data], "models": ["mlp:width=4"], "optimizers": ["adam:lr=0.01"],
                                   "seeds": 1, "epochs": 5, "minSteps": 10, "log": log]
        try AtomicFileWriter.write(Array(try JSONSerialization.data(withJSONObject: json)), to: dir.file("exp.json"))
        return try Experiment.load(dir.file("exp.json"))
    }

    /// A folder holding fake `squeue` (lists nothing) and `sbatch` (each call runs `sbatchBody` with $n its call count).
    func fakeSlurm(_ dir: TemporaryDirectory, sbatchBody: String, squeueBody: String = "exit 0") throws -> String {
        let bin = dir.file("bin")
        try FileSystem.createDirectory(bin)
        let sbatch = """
        #!/bin/bash
        n=$(( $(cat "\(bin)/calls" 2>/dev/null || echo 0) + 1 )); echo $n > "\(bin)/calls"
        for a in "$@"; do case "$a" in *.sh) cp "$a" "\(bin)/script-$n.sh";; esac; done
        \(sbatchBody)
        """
        for (name, body) in [("sbatch", sbatch), ("squeue", "#!/bin/bash\n" + squeueBody + "\n")] {
            try AtomicFileWriter.write(Array(body.utf8), to: FileSystem.join(bin, name))
            chmod(FileSystem.join(bin, name), 0o755)
        }
        return bin
    }

    func options(_ bin: String, task: [String] = ["/bin/echo"]) -> SlurmOptions {
        var o = SlurmOptions(taskCommand: task, collectCommand: ["/bin/true"])
        o.searchPath = bin + ":/usr/bin:/bin"
        return o
    }

    func jobsLines(_ folder: SweepFolder) throws -> [[String: Any]] {
        try String(decoding: ReadableFile.contents(of: folder.jobs), as: UTF8.self).split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    @Test("names and paths with newlines or other control characters are refused before anything is written",
          arguments: [("name", "x\nrm -rf ~"), ("log", "runs/a\n touch pwned.jsonl"), ("sweep-dir", "/tmp/a\n$(touch pwned)"), ("sweep-dir", "/tmp/a\u{1b}[2J")])
    func controlCharacters(field: String, value: String) throws {
        let dir = TemporaryDirectory()
        let exp = try experiment(dir, name: field == "name" ? value : "tiny", log: field == "log" ? value : "runs/tiny.jsonl")
        let e = #expect(throws: EMCError.self) { _ = try SweepFolder(experiment: exp, override: field == "sweep-dir" ? value : nil) }
        #expect(e?.message.contains("control character") == true, "\(String(describing: e))")
    }

    @Test("a sweep folder with % (a pattern in Slurm's output file names) is refused")
    func percent() throws {
        let dir = TemporaryDirectory()
        let exp = try experiment(dir)
        let e = #expect(throws: EMCError.self) { _ = try SweepFolder(experiment: exp, override: dir.file("runs%a")) }
        #expect(e?.message.contains("%") == true)
    }

    @Test("an sbatch whose wrapper never returns is stopped with everything it started, within the limit, and recorded")
    func stuckWrapper() throws {
        let dir = TemporaryDirectory()
        let exp = try experiment(dir)
        let folder = try SweepFolder(experiment: exp)
        // A site wrapper that waits on a child holding its output open (a client stuck on a dead controller).
        let bin = try fakeSlurm(dir, sbatchBody: "sleep 300; echo 12")
        var o = options(bin)
        o.commandTimeout = 1
        let start = Clock.now()
        let e = #expect(throws: EMCError.self) { _ = try SlurmExecutor(folder: folder, options: o).submit(try SweepRunner.tasks(exp)) }
        #expect(Clock.now() - start < 20, "emc waited \(Clock.now() - start) s")
        #expect(e?.message.contains("may be queued") == true && e?.message.contains("did not answer") == true, "\(String(describing: e))")
        #expect(try jobsLines(folder).count == 1)
    }

    @Test("a sweep folder full of shell syntax reaches the generated script only quoted: bash -n passes and running it runs no injected command")
    func scriptQuoting() throws {
        let dir = TemporaryDirectory()
        let exp = try experiment(dir)
        let hostile = dir.file("sweep $(touch INJECTED) `touch INJECTED2` 'q' \"d\" ; touch INJECTED3 #")
        let folder = try SweepFolder(experiment: exp, override: hostile)
        let bin = try fakeSlurm(dir, sbatchBody: "echo $(( 1000 + n ))")
        let submission = try SlurmExecutor(folder: folder, options: options(bin)).submit(try SweepRunner.tasks(exp))
        #expect(submission.arrayJob == "1001" && submission.collectJob == "1002")
        let script = FileSystem.join(bin, "script-1.sh")
        #expect(try runProcess("/bin/bash", ["-n", script]).status == 0)
        let ran = try runProcess("/bin/sh", [script], environment: ["SLURM_ARRAY_TASK_ID": "0"], directory: dir.path)
        #expect(ran.status == 0 && ran.stdout == hostile + " 0\n", "\(ran.stdout) \(ran.stderr)")
        #expect(try FileSystem.list(dir.path).filter { $0.hasPrefix("INJECTED") }.isEmpty)
        #expect(try FileSystem.list(FileSystem.splitDirectory(hostile)).filter { $0.hasPrefix("INJECTED") }.isEmpty)
    }

    @Test("sbatch that exits 0 with garbage: the attempt is recorded and the error says the job may be queued")
    func garbageJobId() throws {
        let dir = TemporaryDirectory()
        let exp = try experiment(dir)
        let folder = try SweepFolder(experiment: exp)
        let bin = try fakeSlurm(dir, sbatchBody: "echo 'Submitted batch job 77 (cluster says hello)'")
        let e = #expect(throws: EMCError.self) { _ = try SlurmExecutor(folder: folder, options: options(bin)).submit(try SweepRunner.tasks(exp)) }
        #expect(e?.message.contains("may be queued") == true && e?.message.contains(folder.jobName) == true, "\(String(describing: e))")
        #expect(e?.message.contains("refused") == false)
        let lines = try jobsLines(folder)
        #expect(lines.count == 1 && (lines[0]["problem"] as? String)?.contains("unconfirmed") == true && lines[0]["arrayJob"] == nil)
    }

    @Test("sbatch that fails on the collect job: the array job is recorded, and the error names it and the collect command")
    func collectRefused() throws {
        let dir = TemporaryDirectory()
        let exp = try experiment(dir)
        let folder = try SweepFolder(experiment: exp)
        let bin = try fakeSlurm(dir, sbatchBody: "if [ $n -ge 2 ]; then echo 'sbatch: error: QOSMaxSubmitJobPerUserLimit' >&2; exit 1; fi; echo 4242")
        let e = #expect(throws: EMCError.self) { _ = try SlurmExecutor(folder: folder, options: options(bin)).submit(try SweepRunner.tasks(exp)) }
        #expect(e?.message.contains("4242 was submitted") == true && e?.message.contains("QOSMaxSubmitJobPerUserLimit") == true, "\(String(describing: e))")
        let lines = try jobsLines(folder)
        #expect(lines.allSatisfy { $0["arrayJob"] as? String == "4242" } && lines.count == 2)
        #expect((lines.last?["problem"] as? String)?.contains("collect job was not submitted") == true)
    }

    @Test("squeue or sbatch that never answers: a clear error after the timeout, no hang")
    func hangingCommands() throws {
        let dir = TemporaryDirectory()
        let exp = try experiment(dir)
        let folder = try SweepFolder(experiment: exp)
        let bin = try fakeSlurm(dir, sbatchBody: "exec sleep 600", squeueBody: "exec sleep 600")
        var o = options(bin)
        o.commandTimeout = 1
        let start = Clock.now()
        let e = #expect(throws: EMCError.self) { _ = try SlurmExecutor(folder: folder, options: o).submit(try SweepRunner.tasks(exp)) }
        #expect(e?.message.contains("squeue did not answer") == true, "\(String(describing: e))")
        try AtomicFileWriter.write(Array("#!/bin/bash\nexit 0\n".utf8), to: FileSystem.join(bin, "squeue"))
        chmod(FileSystem.join(bin, "squeue"), 0o755)
        let s = #expect(throws: EMCError.self) { _ = try SlurmExecutor(folder: folder, options: o).submit(try SweepRunner.tasks(exp)) }
        #expect(s?.message.contains("sbatch did not answer") == true, "\(String(describing: s))")
        #expect(Clock.now() - start < 30)
    }

    @Test("the local sweep's scratch folder is new and private: a link planted at the old fixed name is not followed or emptied")
    func localScratchIgnoresPlantedLink() throws {
        let dir = TemporaryDirectory(), victim = TemporaryDirectory()
        try AtomicFileWriter.write(Array("precious".utf8), to: victim.file("data.txt"))
        let planted = "/tmp/emc-sweep-\(getpid())"
        try? FileManager.default.removeItem(atPath: planted)
        try FileManager.default.createSymbolicLink(atPath: planted, withDestinationPath: victim.path)
        defer { try? FileManager.default.removeItem(atPath: planted) }
        let exp = try experiment(dir)
        let local = LocalExecutor(jobs: 1, executable: "/bin/true") { _ in [] }
        _ = try local.run(try SweepRunner.tasks(exp)) { _ in }
        #expect(try FileSystem.list(victim.path) == ["data.txt"])
    }
}

