import ArgumentParser
import EMCCore
import EMCSearch
import Foundation

struct Sweep: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run an experiment manifest's grid of EMC searches, J at a time, resumably, then report.",
        discussion: """
        Each cell (data × model × optimizer) is an `emc run` in its own process with one BLAS thread, appending to the \
        experiment's results log; rerunning skips finished trials. Variants listed under "prepare" are made first if missing.

        Example: emc sweep manifests/experiments/fmnist-mlp-width.json --jobs 2
        """)

    @Argument(help: "The experiment manifest (JSON).")
    var experiment: String

    @Option(help: "Searches run at once (separate processes).")
    var jobs = 1

    @Option(help: "Write the report's SVG plot here.")
    var svg: String?

    @Flag(help: "Print machine-readable JSON on stdout.")
    var json = false

    func run() throws {
        let exp = try Experiment.load(experiment)
        guard jobs > 0 else { throw ValidationError("--jobs must be positive") }
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().path
        for prep in exp.prepare ?? [] where !FileSystem.exists(FileSystem.join(prep.out, "dataset.json")) {
            try runChild(exe, ["perturb"] + prep.arguments + ["--quiet"], label: "prepare \(prep.out)")
        }
        let cells = exp.cells
        let say: (String) -> Void = { if !json { print($0) } }
        say("sweep \(exp.name): \(cells.count) searches, \(jobs) at a time, log \(exp.logPath)")
        let progress = ProgressReporter("sweep", total: cells.count, unit: "searches", quiet: json)
        final class State: @unchecked Sendable { let lock = NSLock(); var failures: [String] = [] }
        let state = State()
        try parallelFor(cells.count, threads: jobs) { i in
            let cell = cells[i]
            do {
                try runChild(exe, exp.runArguments(cell), label: "\(cell.model) on \(cell.data) with \(cell.optimizer)")
            } catch {
                state.lock.lock(); state.failures.append("\(cell.model) on \(cell.data): \(error)"); state.lock.unlock()
            }
            progress.advance()
        }
        progress.finish()
        let report = Report.from(try ResultsLog(path: exp.logPath).records)
        if let svg { try AtomicFileWriter.write(Array(EMCPlot.svg(report, title: exp.name).utf8), to: svg) }
        if json { try printJSON(report) } else { print(ReportTable.text(report)) }
        if !state.failures.isEmpty {
            for f in state.failures { FileHandle.standardError.write(Data(("failed: " + f + "\n").utf8)) }
            throw ExitCode(1)
        }
    }

    /// Runs `emc ARGS` with one BLAS thread; its output goes to our stderr; a failure names the cell.
    func runChild(_ exe: String, _ arguments: [String], label: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: exe)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["EMC_THREADS"] = "1"
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.standardError
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw EMCError(.library, "\(label): emc \(arguments.first ?? "") exited with status \(process.terminationStatus)")
        }
    }
}
