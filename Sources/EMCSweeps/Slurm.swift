import EMCSearch
import EMCCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A sweep's folder on the shared filesystem, what a Slurm sweep reads and writes (docs/cluster.md):
///
///     SWEEP/tasks/task-0003.json    the task: its search settings, self-contained (log and checkpoints inside SWEEP)
///     SWEEP/logs/task-0003.jsonl    its results log: one writer per file, so nothing is torn or lost on NFS
///     SWEEP/checkpoints/task-0003/  its trials' checkpoints while they run
///     SWEEP/done/task-0003.json     written last, atomically, when its search finished: the summary
///     SWEEP/out/task-0003.out|.err  Slurm's stdout and stderr of the task
///     SWEEP/submit.sh               the array job's script;  SWEEP/jobs.jsonl  every submission
public struct SweepFolder: Sendable {
    public let path: String
    /// The Slurm job name of the sweep's tasks (the collect job adds "-collect"): the experiment's name and a hash of
    /// the folder, so that two sweeps never see each other's jobs.
    public let jobName: String

    /// `override`, or beside the experiment's log: runs/NAME.jsonl → runs/NAME.sweep.
    /// Paths and names with control characters (a newline, a tab, an escape) are refused: they reach Slurm's options
    /// and the generated script, where a newline would start a line of its own.
    public init(experiment: Experiment, override: String? = nil) throws {
        let base = override ?? (experiment.logPath.hasSuffix(".jsonl") ? String(experiment.logPath.dropLast(6)) : experiment.logPath) + ".sweep"
        try SlurmCommands.refuseControlCharacters(experiment.name, what: "the experiment's name")
        try SlurmCommands.refuseControlCharacters(experiment.logPath, what: "the experiment's log path")
        try SlurmCommands.refuseControlCharacters(base, what: "the sweep folder")
        path = FileSystem.absolute(base)
        try SlurmCommands.refuseControlCharacters(path, what: "the sweep folder")
        guard !path.contains("%") else {
            throw EMCError(.invalidArgument, "the sweep folder's path contains %, which Slurm expands in its output file names (%a, %j): "
                           + "choose a folder without it (--sweep-dir)", file: path)
        }
        let safe = experiment.name.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "-" }
        jobName = "emc-" + String(safe.prefix(40)) + "-" + String(SHA256.hex(path).prefix(8))
    }

    static func name(_ index: Int) -> String { String(format: "task-%04d", index) }
    public func task(_ i: Int) -> String { FileSystem.join(path, "tasks/\(Self.name(i)).json") }
    public func log(_ i: Int) -> String { FileSystem.join(path, "logs/\(Self.name(i)).jsonl") }
    public func checkpoints(_ i: Int) -> String { FileSystem.join(path, "checkpoints/\(Self.name(i))") }
    public func done(_ i: Int) -> String { FileSystem.join(path, "done/\(Self.name(i)).json") }
    public func stderr(_ i: Int) -> String { FileSystem.join(path, "out/\(Self.name(i)).err") }
    public func stdout(_ i: Int) -> String { FileSystem.join(path, "out/\(Self.name(i)).out") }
    public var script: String { FileSystem.join(path, "submit.sh") }
    public var jobs: String { FileSystem.join(path, "jobs.jsonl") }

    /// The task with its log and checkpoints moved into the folder, one search at a time (its `threads` cores per Slurm
    /// task: `--cpus-per-task` follows the largest `threads` of the tasks submitted).
    public func placed(_ task: SweepTask, checkpointInterval: Double) -> SweepTask {
        var t = task
        t.settings.log = log(task.index)
        t.settings.checkpointDirectory = checkpoints(task.index)
        t.settings.checkpointInterval = checkpointInterval
        t.settings.jobs = 1
        return t
    }

    /// JSON with sorted keys: the same value is always the same bytes (a task file's hash names its settings).
    public static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(value))
    }

    /// The finished task's marker, when it is there and was written for these very settings.
    func finished(_ i: Int, settingsHash: String) -> Bool {
        guard let bytes = try? ReadableFile.contents(of: done(i)), let marker = try? JSONDecoder().decode(TaskDone.self, from: Data(bytes)) else { return false }
        return marker.settingsHash == settingsHash
    }
}

/// What a finished task leaves in SWEEP/done.
public struct TaskDone: Codable, Sendable {
    public var index: Int
    public var label: String
    /// SHA-256 of the task file it ran: a changed manifest makes the task run again.
    public var settingsHash: String
    public var summary: SearchSummary
}

/// One `sbatch` of a sweep (or nothing to submit).
public struct SlurmSubmission: Codable, Sendable {
    public var folder: String
    public var jobName: String
    /// The array job's id, and the collect job's (which waits for every task to succeed); nil when nothing was submitted.
    public var arrayJob: String?
    public var collectJob: String?
    /// Task indices submitted now, finished before, and still queued or running from an earlier submission.
    public var submitted: [Int]
    public var finished: [Int]
    public var queued: [Int]
    public var date: String
    /// What went wrong after Slurm may have queued something (an unconfirmed array job, a collect job not submitted).
    public var problem: String?
}

/// What to ask Slurm for.
public struct SlurmOptions: Sendable {
    public var partition: String?
    /// Each task's time limit, as sbatch's --time takes it (e.g. 2:00:00).
    public var time: String?
    /// Tasks running at once (the array's %K throttle; 0: no throttle).
    public var throttle = 0
    /// More sbatch options, passed through as given (e.g. --account=X, --qos=Y).
    public var extraArguments: [String] = []
    /// What each task runs, before its folder and index (the command line's `emc sweep-task`; the binary on the shared
    /// filesystem, or installed at the same path on every node), and what the collect job runs.
    public var taskCommand: [String]
    public var collectCommand: [String]
    public var checkpointInterval = 300.0
    /// Where Slurm's commands are looked for (nil: PATH).
    public var searchPath: String?
    /// Seconds each Slurm command may take before emc stops it and says so.
    public var commandTimeout = SlurmCommands.timeout

    public init(taskCommand: [String], collectCommand: [String]) {
        self.taskCommand = taskCommand
        self.collectCommand = collectCommand
    }
}

/// Submits a sweep as one Slurm job array, one configuration per task, and a collect job after it. Rerunning submits
/// only what is neither finished nor still queued; a task that was killed resumes from its own log (no finished trial
/// repeats) and its running trial from its checkpoint.
public final class SlurmExecutor: SweepExecutor {
    public let folder: SweepFolder
    public let options: SlurmOptions

    public init(folder: SweepFolder, options: SlurmOptions) {
        self.folder = folder
        self.options = options
    }

    public func run(_ tasks: [SweepTask], finished: @escaping @Sendable (SweepTask) -> Void) throws -> SweepExecution {
        .submitted(try submit(tasks))
    }

    /// The array's `--cpus-per-task`: each task trains one trial at a time on its `threads` cores (default 1), so the
    /// array asks for the most any of its tasks needs.
    public static func cpusPerTask(_ tasks: [SweepTask]) -> Int { max(1, tasks.map { $0.settings.threads ?? 1 }.max() ?? 1) }

    public func submit(_ tasks: [SweepTask]) throws -> SlurmSubmission {
        guard SlurmCommands.locate("sbatch", path: options.searchPath) != nil else { throw SlurmCommands.missing("sbatch") }
        for sub in ["tasks", "logs", "checkpoints", "done", "out"] { try FileSystem.createDirectory(FileSystem.join(folder.path, sub)) }
        var done: [Int] = [], pending: [Int] = []
        let cpus = Self.cpusPerTask(tasks)
        for task in tasks {
            let placed = folder.placed(task, checkpointInterval: options.checkpointInterval)
            let bytes = try SweepFolder.encode(placed)
            let existing = try? ReadableFile.contents(of: folder.task(task.index))
            if existing != bytes { try AtomicFileWriter.write(bytes, to: folder.task(task.index)) }
            if folder.finished(task.index, settingsHash: SHA256.hex(bytes)) { done.append(task.index) } else { pending.append(task.index) }
        }
        let queued = Set(try SlurmCommands.queuedTasks(jobName: folder.jobName, path: options.searchPath, timeout: options.commandTimeout).keys)
        let submit = pending.filter { !queued.contains($0) }
        var submission = SlurmSubmission(folder: folder.path, jobName: folder.jobName, arrayJob: nil, collectJob: nil, submitted: submit,
                                         finished: done, queued: pending.filter { queued.contains($0) }, date: ISO8601DateFormatter().string(from: Date()))
        guard !submit.isEmpty else { return submission }
        try AtomicFileWriter.write(Array(script.utf8), to: folder.script)
        chmod(folder.script, 0o755)
        var common: [String] = []
        if let partition = options.partition { common.append("--partition=\(partition)") }
        if let time = options.time { common.append("--time=\(time)") }
        let array = SlurmCommands.ranges(submit) + (options.throttle > 0 ? "%\(options.throttle)" : "")
        // Each sbatch that may have queued something is recorded in jobs.jsonl before anything else can fail: the
        // array job as soon as Slurm took it (or may have taken it), then the line again with the collect job.
        let arrayJob: String
        do {
            arrayJob = try SlurmCommands.sbatch(path: options.searchPath, timeout: options.commandTimeout, ["--parsable", "--array=\(array)", "--job-name=\(folder.jobName)", "--ntasks=1", "--cpus-per-task=\(cpus)",
                                                 "--output=\(FileSystem.join(folder.path, "out/task-%4a.out"))",
                                                 "--error=\(FileSystem.join(folder.path, "out/task-%4a.err"))"] + common + options.extraArguments + [folder.script])
        } catch let unclear as SlurmCommands.UnclearSubmission {
            submission.problem = "the array job's submission is unconfirmed: \(unclear.reason)"
            try record(submission)
            throw EMCError(.io, "the array job's submission is unclear (\(unclear.reason)); it may be queued: "
                           + "look for job name \(folder.jobName) in squeue before submitting again (the attempt is recorded in \(folder.jobs))")
        }
        submission.arrayJob = arrayJob
        try record(submission)
        let collect = options.collectCommand.map(SlurmCommands.quote).joined(separator: " ")
        do {
            submission.collectJob = try SlurmCommands.sbatch(path: options.searchPath, timeout: options.commandTimeout, ["--parsable", "--dependency=afterok:\(arrayJob)", "--kill-on-invalid-dep=yes",
                                                              "--job-name=\(folder.jobName)-collect", "--ntasks=1", "--cpus-per-task=1",
                                                              "--output=\(FileSystem.join(folder.path, "out/collect.out"))",
                                                              "--error=\(FileSystem.join(folder.path, "out/collect.err"))"]
                                                             + common + options.extraArguments + ["--wrap=\(collect)"])
        } catch {
            submission.problem = "the collect job was not submitted: \(error)"
            try record(submission)
            throw EMCError(.io, "the array job \(arrayJob) was submitted (recorded in \(folder.jobs)), but the collect job was not: \(error); "
                           + "the tasks run all the same: when they have finished, merge their logs with: \(collect)")
        }
        try record(submission)
        return submission
    }

    /// Appends the submission's state to SWEEP/jobs.jsonl (a later line for the same array job supersedes an earlier one).
    private func record(_ submission: SlurmSubmission) throws {
        var line = try SweepFolder.encode(submission)
        line.append(0x0A)
        try FileSystem.append(line, to: folder.jobs)
    }

    /// The array job's script: one task on one core (emc runs OpenBLAS on one thread).
    var script: String {
        """
        #!/bin/sh
        # Written by `emc sweep --executor slurm`: one task of a sweep (its folder is the argument below).
        exec \((options.taskCommand + [folder.path]).map(SlurmCommands.quote).joined(separator: " ")) "$SLURM_ARRAY_TASK_ID"

        """
    }
}

/// The parts of a Slurm sweep that run on the cluster (a task, the collect step) or ask it (status).
public enum SlurmSweep {
    /// Runs task `index` of the sweep in `folder` (what each array task does): its search, from its own log, then the
    /// finished marker, written last and atomically.
    @discardableResult
    public static func runTask(folder path: String, index: Int, events: @escaping (SearchEvent) -> Void = { _ in }) throws -> SearchSummary {
        let taskPath = FileSystem.join(path, "tasks/\(SweepFolder.name(index)).json")
        let bytes = try ReadableFile.contents(of: taskPath)
        let task: SweepTask
        do { task = try JSONDecoder().decode(SweepTask.self, from: Data(bytes)) } catch {
            throw EMCError(.format, "not a sweep task (\(error))", file: taskPath)
        }
        let summary = try SearchRun(task.settings).execute(events: events)
        let done = TaskDone(index: index, label: task.label, settingsHash: SHA256.hex(bytes), summary: summary)
        try AtomicFileWriter.write(try SweepFolder.encode(done), to: FileSystem.join(path, "done/\(SweepFolder.name(index)).json"))
        return summary
    }

    public struct Collected: Sendable {
        /// Records added to the experiment's log now (those already there are not added again).
        public var added: Int
        public var tasks: Int
        /// Tasks with no finished marker: the report covers what they logged so far.
        public var unfinished: [Int]
    }

    /// Merges every task's log into the experiment's results log, each record once (by its configuration key, n,
    /// replicate and role), in task order. Safe to rerun, and to run while tasks still run (a line being written is
    /// left for the next collect).
    public static func collect(_ experiment: Experiment, folder: SweepFolder) throws -> Collected {
        let tasks = try SweepRunner.tasks(experiment)
        let log = try ResultsLog(path: experiment.logPath)
        func identity(_ r: TrialRecord) -> String { "\(r.kind.rawValue)|\(r.key)|\(r.n)|\(r.replicateIndex)|\(r.role?.rawValue ?? "")" }
        var seen = Set(log.records.map(identity))
        var added = 0, unfinished: [Int] = []
        for task in tasks {
            for record in try ResultsLog.records(at: folder.log(task.index)) where !seen.contains(identity(record)) {
                try log.append(record)
                seen.insert(identity(record))
                added += 1
            }
            if !FileSystem.exists(folder.done(task.index)) { unfinished.append(task.index) }
        }
        return Collected(added: added, tasks: tasks.count, unfinished: unfinished)
    }

    public struct Status: Codable, Sendable {
        public struct Failed: Codable, Sendable {
            public var index: Int
            public var label: String
            public var state: String
            public var lastLines: [String]
        }
        public var tasks: Int
        public var done: Int
        public var running: Int
        public var pending: Int
        public var failed: [Failed]
        /// Neither finished, queued nor known to have failed: never submitted (run `emc sweep` again to submit them).
        public var notSubmitted: Int
        /// Where the failed states came from: "sacct", or "the task's stderr" when accounting is off.
        public var source: String
    }

    /// Done, running, pending and failed counts (squeue, and sacct when the cluster keeps accounting), and each failed
    /// task's last lines of stderr.
    public static func status(_ experiment: Experiment, folder: SweepFolder) throws -> Status {
        let tasks = try SweepRunner.tasks(experiment)
        let queued = try SlurmCommands.queuedTasks(jobName: folder.jobName)
        let accounting = SlurmCommands.accountedStates(jobName: folder.jobName)
        var done = 0, running = 0, pending = 0, notSubmitted = 0
        var failed: [Status.Failed] = []
        for task in tasks {
            let i = task.index
            if FileSystem.exists(folder.done(i)) { done += 1; continue }
            if let state = queued[i] {
                if state == "RUNNING" || state == "COMPLETING" { running += 1 } else { pending += 1 }
                continue
            }
            let state = accounting?[i]
            if state != nil || FileSystem.exists(folder.stderr(i)) {
                let text = (try? ReadableFile.contents(of: folder.stderr(i))).map { String(decoding: $0, as: UTF8.self) } ?? ""
                let lines = text.split(separator: "\n", omittingEmptySubsequences: true).suffix(5).map(String.init)
                failed.append(.init(index: i, label: task.label, state: state ?? "ended without finishing", lastLines: lines))
            } else {
                notSubmitted += 1
            }
        }
        return Status(tasks: tasks.count, done: done, running: running, pending: pending, failed: failed, notSubmitted: notSubmitted,
                      source: accounting == nil ? "the task's stderr (sacct is not available)" : "sacct")
    }
}

/// Slurm's commands, run as child processes; their own messages reach the user when they refuse.
public enum SlurmCommands {
    /// A word for sh: single-quoted unless it is plainly safe.
    public static func quote(_ word: String) -> String {
        if !word.isEmpty, word.allSatisfy({ $0.isLetter || $0.isNumber || "-_./=:,%@+".contains($0) }) { return word }
        return "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// "0-3,5,7-8" for [0, 1, 2, 3, 5, 7, 8].
    public static func ranges(_ indices: [Int]) -> String {
        var parts: [String] = []
        var i = 0
        let sorted = indices.sorted()
        while i < sorted.count {
            var j = i
            while j + 1 < sorted.count && sorted[j + 1] == sorted[j] + 1 { j += 1 }
            parts.append(i == j ? "\(sorted[i])" : "\(sorted[i])-\(sorted[j])")
            i = j + 1
        }
        return parts.joined(separator: ",")
    }

    /// The full path of `command` on PATH, or nil.
    static func locate(_ command: String, path: String? = nil) -> String? {
        let path = path ?? ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { FileSystem.join(String($0), command) }.first { access($0, X_OK) == 0 }
    }

    static func missing(_ command: String) -> EMCError {
        EMCError(.missing, "\(command) is not on PATH: this machine is not a Slurm submit host (or Slurm's commands are not installed); "
                 + "run the sweep here with --executor local")
    }

    /// How long a Slurm command may take before emc gives up on it (a controller that does not answer).
    public static let timeout = 120.0

    /// Refuses a name or path with control characters (it would reach Slurm's options or a generated script).
    public static func refuseControlCharacters(_ text: String, what: String) throws {
        if let bad = text.unicodeScalars.first(where: { $0.properties.generalCategory == .control }) {
            throw EMCError(.invalidArgument, "\(what) contains a control character (U+\(String(format: "%04X", bad.value))); "
                           + "Slurm sweeps need names and paths without newlines, tabs or escapes: \(text.debugDescription)")
        }
    }

    /// A Slurm command that did not finish within its time limit (it and everything it started were killed).
    struct TimedOut: Error { var command: String; var seconds: Double }

    /// Runs a Slurm command; its exit status and output. It runs in a process group of its own: one that has not
    /// finished after `timeout` seconds is killed with everything it started (a site's wrapper script and the client
    /// it waits on), so emc never waits longer than that.
    static func run(_ command: String, _ arguments: [String], path: String? = nil, timeout: Double = SlurmCommands.timeout)
        throws -> (status: Int32, out: String, err: String) {
        guard let executable = locate(command, path: path) else { throw missing(command) }
        let r = try spawn(executable, arguments, timeout: timeout)
        guard let status = r.status else {
            throw TimedOut(command: command, seconds: timeout)
        }
        return (status, String(decoding: r.out, as: UTF8.self), String(decoding: r.err, as: UTF8.self))
    }

    /// posix_spawn in a new process group, stdin from /dev/null, both outputs read until they close or the deadline;
    /// nil status when the deadline passed (the group was killed).
    static func spawn(_ executable: String, _ arguments: [String], timeout: Double) throws -> (status: Int32?, out: [UInt8], err: [UInt8]) {
        var outPipe: [Int32] = [0, 0], errPipe: [Int32] = [0, 0]
        guard pipe(&outPipe) == 0 else { throw EMCError(.io, "cannot make a pipe: \(String(cString: strerror(errno)))") }
        guard pipe(&errPipe) == 0 else {
            close(outPipe[0]); close(outPipe[1])
            throw EMCError(.io, "cannot make a pipe: \(String(cString: strerror(errno)))")
        }
        // Not inherited by anything else this process starts (the child gets its copies by dup2, which clears the flag).
        for fd in outPipe + errPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        close(outPipe[1]); close(errPipe[1])
        guard spawned == 0 else {
            close(outPipe[0]); close(errPipe[0])
            throw EMCError(.io, "cannot run: \(String(cString: strerror(spawned)))", file: executable)
        }
        defer { close(outPipe[0]); close(errPipe[0]) }
        var out: [UInt8] = [], err: [UInt8] = []
        var open = [true, true]
        var status: Int32?
        var exitedAt: Double?
        let deadline = Clock.now() + timeout
        var buffer = [UInt8](repeating: 0, count: 65536)
        while Clock.now() < deadline {
            if status == nil {
                var raw: Int32 = 0
                if waitpid(pid, &raw, WNOHANG) == pid {
                    // Exited normally (the low 7 bits 0): its code; killed by a signal: 128 + the signal, as a shell says.
                    status = raw & 0x7f == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
                    exitedAt = Clock.now()
                }
            }
            // Done once it has exited and both outputs closed; a child it left holding them gets 2 s after it exited.
            if status != nil && !open[0] && !open[1] { break }
            if let exitedAt, Clock.now() - exitedAt > 2 { break }
            if !open[0] && !open[1] { usleep(5_000); continue }
            var fds = [pollfd(fd: open[0] ? outPipe[0] : -1, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: open[1] ? errPipe[0] : -1, events: Int16(POLLIN), revents: 0)]
            if poll(&fds, 2, 50) < 0 && errno != EINTR { break }
            for k in 0..<2 where open[k] && fds[k].revents != 0 {
                let n = buffer.withUnsafeMutableBytes { read(k == 0 ? outPipe[0] : errPipe[0], $0.baseAddress!, $0.count) }
                if n > 0 { if k == 0 { out += buffer[..<n] } else { err += buffer[..<n] } } else if n == 0 || errno != EINTR { open[k] = false }
            }
        }
        if status == nil {
            kill(-pid, SIGKILL)
            var raw: Int32 = 0
            _ = waitpid(pid, &raw, 0)
            return (nil, out, err)
        }
        return (status, out, err)
    }

    /// sbatch exited 0 but did not print a job id: something may have been queued.
    struct UnclearSubmission: Error { var reason: String }

    /// Submits with sbatch --parsable; the job id, an error with sbatch's own message when it refused (non-zero exit),
    /// or `UnclearSubmission` when it exited 0 without a job id.
    static func sbatch(path: String? = nil, timeout: Double = SlurmCommands.timeout, _ arguments: [String]) throws -> String {
        let r: (status: Int32, out: String, err: String)
        do { r = try run("sbatch", arguments, path: path, timeout: timeout) } catch let t as TimedOut {
            throw UnclearSubmission(reason: "sbatch did not answer within \(Int(t.seconds)) s and was stopped")
        }
        guard r.status == 0 else {
            let message = r.err.trimmingCharacters(in: .whitespacesAndNewlines)
            throw EMCError(.invalidArgument, "Slurm refused the submission: " + (message.isEmpty ? "sbatch exited with status \(r.status)" : message))
        }
        let first = r.out.split(separator: "\n").first.map(String.init) ?? ""
        let id = String(first.split(separator: ";").first ?? "")
        guard !id.isEmpty, id.allSatisfy(\.isNumber) else {
            throw UnclearSubmission(reason: "sbatch exited 0 and printed \(String(first.prefix(200)).debugDescription) where a job id was expected")
        }
        return id
    }

    /// Array tasks of `jobName` that squeue lists, with their state (PENDING, RUNNING, ...).
    static func queuedTasks(jobName: String, path: String? = nil, timeout: Double = SlurmCommands.timeout) throws -> [Int: String] {
        let r: (status: Int32, out: String, err: String)
        do { r = try run("squeue", ["--noheader", "--array", "--name=\(jobName)", "--format=%K %T"], path: path, timeout: timeout) } catch let t as TimedOut {
            throw EMCError(.io, "squeue did not answer within \(Int(t.seconds)) s and was stopped (is the Slurm controller reachable? `sinfo` tells)")
        }
        guard r.status == 0 else {
            throw EMCError(.io, "squeue failed: " + r.err.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        var out: [Int: String] = [:]
        for line in r.out.split(separator: "\n") {
            let f = line.split(separator: " ")
            if f.count == 2, let i = Int(f[0]) { out[i] = String(f[1]) }
        }
        return out
    }

    /// The last accounted state of each array task of `jobName` (sacct), or nil when the cluster keeps no accounting.
    static func accountedStates(jobName: String) -> [Int: String]? {
        guard let r = try? run("sacct", ["--noheader", "--parsable2", "--allocations", "--name=\(jobName)", "--format=JobID,State"]), r.status == 0 else { return nil }
        var out: [Int: String] = [:]
        for line in r.out.split(separator: "\n") {
            let f = line.split(separator: "|")
            guard f.count == 2, let underscore = f[0].firstIndex(of: "_"), let i = Int(f[0][f[0].index(after: underscore)...]) else { continue }
            out[i] = String(f[1].split(separator: " ").first ?? "")
        }
        return out
    }
}
