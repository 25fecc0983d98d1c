import EMCCore
import EMCTestSupport
import Foundation
import Testing

/// Failed writes, hostile logs, flags and inputs that would hang: each an error that says what happened, exit 1,
/// never a trap, a hang or a silent success.
@Suite("Failures the command line reports")
struct FailureTests {
    func shell(_ script: String, _ arguments: [String] = []) throws -> (status: Int32, stdout: String, stderr: String) {
        try runProcess("/bin/bash", ["-c", script, emcExecutable] + arguments)
    }

    func tinyLog(_ dir: TemporaryDirectory) throws -> (set: String, log: String) {
        let set = try makeBase(dir)
        let r = try emc(["run", "--data", set, "--model", "mlp:width=4", "--optimizer", "adam:lr=0.01", "--steps", "20", "--seeds", "1",
                         "--start", "50", "--no-test", "--log", dir.file("log.jsonl"), "-q"])
        #expect(r.status == 0, "\(r.stderr)")
        return (set, dir.file("log.jsonl"))
    }

    @Test("output that cannot be written is a failure: stdout on a full disk, a log past the file-size limit, a log that is a device")
    func failedWrites() throws {
        let dir = TemporaryDirectory()
        let (set, log) = try tinyLog(dir)
        let full = try shell("\"$0\" report \"$1\" --json > /dev/full", [log])
        #expect(full.status == 1 && full.stderr.contains("disk full"), "\(full.status) \(full.stderr)")
        let limited = try shell("ulimit -f 1; \"$0\" run --data \"$1\" --model mlp:width=4 --steps 20 --seeds 1 --start 50 --no-test --log \"$2\" -q",
                                [set, dir.file("limited.jsonl")])
        #expect(limited.status == 1 && limited.stderr.contains("file size limit"), "\(limited.status) \(limited.stderr)")
        let device = try emc(["run", "--data", set, "--model", "mlp:width=4", "--steps", "20", "--seeds", "1", "--log", "/dev/null", "-q"])
        #expect(device.status == 1 && device.stderr.contains("not a regular file"), "\(device.status) \(device.stderr)")
        // An error that cannot be written to stderr still ends with status 1, not a signal.
        let silent = try shell("\"$0\" verify /nonexistent-emc-set 2> /dev/full")
        #expect(silent.status == 1)
    }

    @Test("a FIFO in place of dataset.json or a shard is refused at once")
    func fifos() throws {
        let dir = TemporaryDirectory()
        let set = try makeBase(dir)
        let shard = try #require(try FileSystem.list(set).first { $0.hasSuffix(".emcs") })
        FileSystem.remove(FileSystem.join(set, shard))
        #expect(mkfifo(FileSystem.join(set, shard), 0o600) == 0)
        let start = Clock.now()
        let verify = try emc(["verify", set])
        #expect(verify.status != 0 && (verify.stdout + verify.stderr).contains("not a regular file"), "\(verify.stdout) \(verify.stderr)")
        FileSystem.remove(FileSystem.join(set, "dataset.json"))
        #expect(mkfifo(FileSystem.join(set, "dataset.json"), 0o600) == 0)
        let inspect = try emc(["inspect", set])
        #expect(inspect.status == 1 && inspect.stderr.contains("not a regular file"), "\(inspect.stderr)")
        #expect(Clock.now() - start < 30)
    }

    @Test("budgets near Int.max are refused by name, even with --dry-run", arguments: [["--steps", "9223372036854775807"], ["--min-steps", "9223372036854775000"],
                                                                                         ["--epochs", "9223372036854775807"]])
    func hugeBudgets(flags: [String]) throws {
        let dir = TemporaryDirectory()
        let set = try makeBase(dir)
        let r = try emc(["run", "--data", set, "--model", "mlp:width=4", "--dry-run"] + flags)
        #expect(r.status != 0 && r.stderr.contains("between"), "\(r.status) \(r.stderr)")
    }

    @Test("impossible records are named by line and field; a report of final lines only, or of a shallow boundary, does not trap",
          arguments: [("\"n\":50,", "\"n\":-9223372036854775808,", "`n`"), ("\"epochs\":", "\"epochs\":9223372036854775807,\"x\":", "`epochs`"),
                      ("\"epochBudget\":", "\"epochBudget\":9223372036854775807,\"y\":", "`epochBudget`"),
                      ("\"optimizer\":\"adam:lr=0.01\"", "\"optimizer\":\"\"", "`optimizer`")])
    func impossibleRecords(find: String, replace: String, field: String) throws {
        let dir = TemporaryDirectory()
        let (_, log) = try tinyLog(dir)
        let text = String(decoding: try ReadableFile.contents(of: log), as: UTF8.self)
        let edited = text.replacingOccurrences(of: find, with: replace)
        #expect(edited != text, "\(find)")
        try AtomicFileWriter.write(Array(edited.utf8), to: dir.file("bad.jsonl"))
        let r = try emc(["report", dir.file("bad.jsonl")])
        #expect(r.status == 1 && r.stderr.contains(field) && r.stderr.contains("line"), "\(r.status) \(r.stderr)")
    }

    @Test("a log whose only line is cut short, a device as a log, and a split name that is not one are errors that say so")
    func oddInputs() throws {
        let dir = TemporaryDirectory()
        try AtomicFileWriter.write(Array("{\"kind\":\"tri".utf8), to: dir.file("torn.jsonl"))
        let torn = try emc(["report", dir.file("torn.jsonl")])
        #expect(torn.status == 1 && torn.stderr.contains("no complete trial record"), "\(torn.stderr)")
        let device = try emc(["report", "/dev/zero"])
        #expect(device.status == 1 && device.stderr.contains("device"), "\(device.stderr)")
        let set = try makeBase(dir)
        let path = FileSystem.join(set, "dataset.json")
        let text = String(decoding: try ReadableFile.contents(of: path), as: UTF8.self)
        try AtomicFileWriter.write(Array(text.replacingOccurrences(of: "\"test\" :", with: "\"../x\" :").utf8), to: path)
        let inspect = try emc(["inspect", set])
        #expect(inspect.status == 1 && inspect.stderr.contains("split name"), "\(inspect.stderr)")
    }

    @Test("--lr-grid with an empty entry is an error naming it")
    func emptyGridEntry() throws {
        let r = try emc(["run", "--data", "/nonexistent", "--model", "mlp:width=4", "--lr-grid", "0.1,,0.2", "--dry-run"])
        #expect(r.status != 0 && r.stderr.contains("empty entry"), "\(r.stderr)")
    }
}

@Suite("Resuming a materialized variant")
struct MaterializeResumeTests {
    @Test("perturb --materialize stopped by a file-size limit resumes without --force, and ends as an uninterrupted one")
    func resumesAfterLimit() throws {
        let dir = TemporaryDirectory()
        let set = try makeBase(dir)
        let args = ["perturb", set, "--labels", "random", "--materialize", "-q"]
        // Each file may hold 40 KB: the 256-sample shard (about 50 KB) cannot be written, the others can.
        let stopped = try runProcess("/bin/bash", ["-c", "ulimit -f 40; \"$0\" \"$@\"", emcExecutable] + args + ["--out", dir.file("v")])
        #expect(stopped.status == 1 && stopped.stderr.contains("file size limit"), "\(stopped.status) \(stopped.stderr)")
        #expect(!FileSystem.exists(dir.file("v/dataset.json")))
        let resumed = try emc(args + ["--out", dir.file("v")])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        let whole = try emc(args + ["--out", dir.file("w")])
        #expect(whole.status == 0, "\(whole.stderr)")
        for name in try FileSystem.list(dir.file("w")) where name.hasSuffix(".emcs") {
            #expect(try ReadableFile.contents(of: dir.file("v/\(name)")) == ReadableFile.contents(of: dir.file("w/\(name)")), "\(name)")
        }
    }
}
