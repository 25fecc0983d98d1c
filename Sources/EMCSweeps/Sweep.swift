import EMCSearch
import EMCCore
import EMCShards
import EMCVariants
import Foundation

/// One search of a sweep, as an executor runs it: self-contained, so it can run in another process or on
/// another machine (a Slurm task) from its JSON alone.
public struct SweepTask: Codable, Sendable {
    public var index: Int
    public var label: String
    public var settings: SearchSettings
}

/// A task that did not finish, and why.
public struct SweepFailure: Codable, Sendable, Error {
    public var task: SweepTask
    public var reason: String
}

/// What an executor did with a sweep's tasks.
public enum SweepExecution {
    /// They ran here and are over: the ones that failed (a failure does not stop the others).
    case finished(failures: [SweepFailure])
    /// They were handed to a scheduler that runs them later (`SlurmExecutor`); a collect step merges their results.
    case submitted(SlurmSubmission)
}

/// Runs a sweep's tasks somewhere: child processes on this machine (`LocalExecutor`) or a Slurm job array
/// (`SlurmExecutor`). Tasks are independent, one configuration each (all its seeds, so that the pooled boundary over
/// seeds is fitted where the trials are), and resume from their results log when rerun.
public protocol SweepExecutor {
    /// Runs or submits every task; `finished` is called after each task that ran here.
    func run(_ tasks: [SweepTask], finished: @escaping @Sendable (SweepTask) -> Void) throws -> SweepExecution
}

/// A sweep: the experiment's variants prepared, its cells run by an executor, its log reported.
public enum SweepRunner {
    /// The tasks of an experiment, in grid order.
    public static func tasks(_ experiment: Experiment) throws -> [SweepTask] {
        try experiment.cells.enumerated().map { i, cell in
            SweepTask(index: i, label: "\(cell.model) on \(cell.data) with \(cell.optimizer)", settings: try experiment.settings(cell))
        }
    }

    /// Plans every search whose data exists (nil for those whose data a `prepare` step has yet to make): a model that
    /// cannot take the data's shape, or would not fit in memory, is an error naming the search before anything runs.
    public static func plans(_ tasks: [SweepTask]) throws -> [SearchPlan?] {
        try tasks.map { task in try search(task, settings: task.settings)?.plan }
    }

    /// The search of one task with `settings` (its own, or adjusted as a sweep runs it); nil while its data is yet to be
    /// made. An error names the search.
    public static func search(_ task: SweepTask, settings: SearchSettings) throws -> SearchRun? {
        guard FileSystem.isDirectory(settings.data) else { return nil }
        do { return try SearchRun(settings) } catch let error as EMCError {
            throw EMCError(error.kind, "search \(task.label): \(error.message)", remedy: error.remedy)
        }
    }

    /// A task's settings as a local sweep of `jobs` searches at once runs it: one trial at a time on its share of the
    /// cores, unless the task says otherwise (the records do not depend on it).
    public static func childSettings(_ task: SweepTask, jobs: Int) -> SearchSettings {
        var settings = task.settings
        if settings.jobs == nil && settings.threads == nil {
            settings.jobs = 1
            settings.threads = max(1, EMCEnvironment.cpuCount / max(1, jobs))
        }
        return settings
    }

    /// Makes the variants the experiment lists under "prepare" that are not there yet; returns their folders.
    @discardableResult
    public static func prepare(_ experiment: Experiment) throws -> [String] {
        var made: [String] = []
        for preparation in experiment.prepare ?? [] {
            let request = try preparation.request(folder: experiment.folder)
            if FileSystem.exists(FileSystem.join(request.out, DatasetManifest.fileName)) { continue }
            _ = try VariantBuilder.make(request)
            made.append(request.out)
        }
        return made
    }
}

/// The local executor: each task is a child process (`command(taskFile)` gives its arguments, for example
/// `emc run --settings FILE`), `jobs` at a time, each on its share of the cores unless its settings say otherwise.
/// SIGTERM or SIGINT to the sweep reaches every running child; the sweep waits for them, starts no new task, and
/// reports the interruption: nothing is orphaned, and a rerun resumes from the log.
public final class LocalExecutor: SweepExecutor, @unchecked Sendable {
    public let jobs: Int
    public let executable: String
    public let command: (String) -> [String]
    private let lock = NSLock()
    private var running: [Int32: Process] = [:]
    private var interrupted: Int32?

    public init(jobs: Int, executable: String, command: @escaping (String) -> [String]) {
        self.jobs = max(1, jobs)
        self.executable = executable
        self.command = command
    }

    public func run(_ tasks: [SweepTask], finished: @escaping @Sendable (SweepTask) -> Void) throws -> SweepExecution {
        let scratch = try FileSystem.makeTemporaryDirectory(prefix: "emc-sweep")
        defer { FileSystem.removeTree(scratch) }
        let sources = [SIGTERM, SIGINT].map { sig -> DispatchSourceSignal in
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [weak self] in self?.forward(sig) }
            source.resume()
            return source
        }
        defer { for (source, sig) in zip(sources, [SIGTERM, SIGINT]) { source.cancel(); signal(sig, SIG_DFL) } }
        let failures = ResultSlots<SweepFailure>(tasks.count)
        try parallelFor(tasks.count, threads: jobs) { i in
            let task = tasks[i]
            do {
                try self.runChild(task, scratch: scratch)
            } catch {
                failures.set(i, SweepFailure(task: task, reason: "\(error)"))
            }
            finished(task)
        }
        if let sig = interrupted {
            throw EMCError(.io, "the sweep was interrupted by signal \(sig); its running searches were stopped and resume from the log on the next run")
        }
        return .finished(failures: (0..<tasks.count).compactMap { failures.get($0) })
    }

    private func forward(_ sig: Int32) {
        lock.lock(); defer { lock.unlock() }
        interrupted = sig
        for pid in running.keys { kill(pid, sig) }
    }

    private func runChild(_ task: SweepTask, scratch: String) throws {
        let file = FileSystem.join(scratch, "task-\(task.index).json")
        // The sweep's `jobs` children share the cores.
        let settings = SweepRunner.childSettings(task, jobs: jobs)
        try AtomicFileWriter.write(Array(try JSONEncoder().encode(settings)), to: file)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = command(file)
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.standardError
        lock.lock()
        if let sig = interrupted {
            lock.unlock()
            throw EMCError(.io, "not started: the sweep was interrupted by signal \(sig)")
        }
        try process.run()
        running[process.processIdentifier] = process
        lock.unlock()
        // Wait, passing an interruption on for as long as the child runs: a child signalled while it was still starting
        // (before it could restore the default action for an ignored signal) gets the signal again.
        while process.isRunning {
            lock.lock(); let sig = interrupted; lock.unlock()
            if let sig { kill(process.processIdentifier, sig) }
            usleep(100_000)
        }
        process.waitUntilExit()
        lock.lock(); running[process.processIdentifier] = nil; lock.unlock()
        guard process.terminationReason == .exit, process.terminationStatus == 0 else {
            let how = process.terminationReason == .exit ? "exited with status \(process.terminationStatus)" : "was stopped by signal \(process.terminationStatus)"
            throw EMCError(.library, "\(task.label): the search \(how)")
        }
    }
}
