import ArgumentParser
import EMCCore
import EMCSearch
import Foundation

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Summarise a results log: EMC per configuration, generalization gaps, a CSV and an SVG plot.",
        discussion: "Example: emc report runs/emc.jsonl --svg emc.svg --csv emc.csv")

    @Argument(help: "The results log (JSON lines) written by emc run or emc sweep.")
    var log: String

    @Option(help: "Write the table as CSV here.")
    var csv: String?

    @Option(help: "Write an SVG plot of EMC against parameter count here.")
    var svg: String?

    @Flag(help: "Print machine-readable JSON on stdout.")
    var json = false

    func run() throws {
        guard FileSystem.exists(log) else { throw EMCError(.missing, "no results log here (run emc run or emc sweep first)", file: log) }
        let report = Report.from(try ResultsLog(path: log).records)
        if let csv { try AtomicFileWriter.write(Array(report.csv.utf8), to: csv) }
        if let svg { try AtomicFileWriter.write(Array(EMCPlot.svg(report).utf8), to: svg) }
        if json { return try printJSON(report) }
        print(report.text)
        if let csv { print("wrote \(csv)") }
        if let svg { print("wrote \(svg)") }
    }
}

