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
        print(ReportTable.text(report))
        if let csv { print("wrote \(csv)") }
        if let svg { print("wrote \(svg)") }
    }
}

enum ReportTable {
    static func text(_ report: Report) -> String {
        func o(_ v: Double?, _ d: Int = 3) -> String { v.map { String(format: "%.\(d)f", $0) } ?? "-" }
        let rows = report.rows.map { r -> [String] in
            let emc = r.emcMedian.rounded() == r.emcMedian ? "\(Int(r.emcMedian))" : String(format: "%.1f", r.emcMedian)
            let range = r.emcMin == r.emcMax ? "-" : "\(r.emcMin)–\(r.emcMax)"
            return [r.condition, r.model, r.optimizer, "\(r.parameters)", emc, o(r.emcPerParameter), range, "\(r.seeds)",
                    o(r.testAccuracy), o(r.generalizationGap), r.budgetExhaustedTrials > 0 ? "\(r.budgetExhaustedTrials)" : "-"]
        }
        var text = BenchTable.markdown(header: ["data", "model", "optimizer", "params", "EMC", "EMC/params", "range", "seeds",
                                                "test acc", "gen. gap", "budget-exhausted"], rows: rows)
        if let r = report.gainGapCorrelation {
            text += String(format: "\n\ncorrelation between the EMC gained from true labels and the generalization gap: %.3f (%d models)", r, report.gainGapPairs)
        } else if report.gainGapPairs > 0 {
            text += "\n\n(\(report.gainGapPairs) true/random-label model pair(s): at least 3 are needed for a correlation)"
        }
        if report.rows.contains(where: { $0.budgetExhaustedTrials > 0 }) {
            text += "\nbudget-exhausted trials count as not fitted: those EMCs are lower bounds for their epoch budget."
        }
        return text
    }
}
