import ArgumentParser
import EMCCore
import EMCSearch
import EMCReports
import Foundation

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Summarise results logs: EMC (n50 with its interval) per configuration, generalization gaps, findings, CSV and SVG plots.",
        discussion: """
        Rows group by the full configuration (data and variant, model, optimizer and schedule, batch, budget, threshold); \
        columns for the settings that differ between rows are shown. "≥" marks an EMC that is only a lower bound \
        (budget-bound, an unfinished search, or no failure yet).

        Examples:
          emc report runs/emc.jsonl --svg emc.svg --csv emc.csv
          emc report runs/a.jsonl runs/b.jsonl --where family=cnn --where budget=300 --findings
          emc report runs/emc.jsonl --plot-by family --x width --boundary-svg boundary.svg
          emc report runs/emc.jsonl --html runs/report    (then open runs/report/index.html)
        """)

    @Argument(help: "Results logs (JSON lines) written by emc run or emc sweep; records repeated across logs count once.")
    var logs: [String]

    @Option(name: .customLong("where"), help: ArgumentHelp("Keep rows whose KEY contains VALUE (repeatable; keys: \(ReportFilter.keys.joined(separator: ", "))).", valueName: "key=value"))
    var filters: [String] = []

    @Option(help: "Split each configuration into a row per set of seeds, side by side (comma-separated ranges A..B: --seed-sets 0..2,3..5): each set its own boundary and interval.")
    var seedSets: String?

    @Option(help: "Write the table (one line per configuration) as CSV here.")
    var csv: String?

    @Option(help: "Write one line per seed of each configuration as CSV here.")
    var seedsCsv: String?

    @Option(help: "Write an SVG plot of EMC against --x here.")
    var svg: String?

    @Option(help: "The plot's x axis: parameters, width, depth or channels.")
    var x: PlotAxis = .parameters

    @Option(help: "One line per: condition (data and variant), family, model, optimizer or budget.")
    var plotBy: PlotSeries = .condition

    @Option(help: "Write an SVG of each configuration's p(fit) against n (trials as ticks) and its EMC against budget here.")
    var boundarySvg: String?

    @Option(help: "Write an HTML report into this folder (index.html, and detail/ per configuration): the table with filters and sorting, the plots, the findings and every configuration's trials; it opens from disk with no server.")
    var html: String?

    @Flag(help: "Judge the paper's five findings on these rows: each with its rule, its numbers and whether this run supports, contradicts or cannot decide it.")
    var findings = false

    @Flag(help: "Print machine-readable JSON on stdout.")
    var json = false

    @Flag(name: .shortAndLong, help: "Print nothing but errors (files are still written).")
    var quiet = false

    @Flag(help: "Replace files already at --csv, --seeds-csv, --svg and --boundary-svg, and the report in a non-empty --html folder (a results log given as input is never replaced).")
    var force = false

    func validate() throws {
        guard !logs.isEmpty else { throw ValidationError("give at least one results log") }
        for f in filters { do { _ = try ReportFilter(parsing: f) } catch let e as EMCError { throw ValidationError(e.message) } }
        if let seedSets { _ = try Self.parseSeedSets(seedSets) }
    }

    /// "0..2,3..5" as ranges (a single seed "4" is 4..4); a usage error names what does not parse.
    static func parseSeedSets(_ text: String) throws -> [ClosedRange<Int>] {
        try text.split(separator: ",", omittingEmptySubsequences: false).map { item in
            let parts = item.trimmingCharacters(in: .whitespaces).components(separatedBy: "..")
            guard let a = Int(parts[0]), a >= 0, parts.count <= 2, let b = parts.count == 2 ? Int(parts[1]) : a, b >= a else {
                throw ValidationError("--seed-sets: '\(item)' is not a seed range A..B (0 ≤ A ≤ B)")
            }
            return a...b
        }
    }

    func run() throws {
        try OutputPaths.check([csv, seedsCsv, svg, boundarySvg].compactMap { $0 }, force: force, inputs: logs)
        if let html { try HTMLReport.checkOutput(html, force: force, inputs: logs, outputs: [csv, seedsCsv, svg, boundarySvg].compactMap { $0 }) }
        var records: [TrialRecord] = []
        for log in logs {
            guard FileSystem.exists(log) else { throw EMCError(.missing, "no results log here (run emc run or emc sweep first)", file: log) }
            records += try ResultsLog.records(at: log, finished: true)
        }
        let report = Report.from(records, filters: try filters.map(ReportFilter.init(parsing:)), seedSets: try seedSets.map(Self.parseSeedSets))
        let judged = findings || html != nil ? Findings.evaluate(report) : nil
        for (path, text) in [(csv, report.csv), (seedsCsv, report.seedsCSV),
                             (svg, svg == nil ? "" : EMCPlot.svg(report, x: x, by: plotBy)),
                             (boundarySvg, boundarySvg == nil ? "" : BoundaryPlot.svg(report, records: records))] {
            if let path { try AtomicFileWriter.write(Array(text.utf8), to: path) }
        }
        let document = ReportDocument(report: report, findings: findings ? judged : nil)
        let page = try html.map { try HTMLReport.write(ReportDocument(report: report, findings: judged), records: records, sources: logs, to: $0) }
        if json { return print(String(decoding: try document.json(pretty: true), as: UTF8.self)) }
        if quiet { return }
        print(report.text)
        if findings, let judged { print("\n" + Findings.text(judged)) }
        for path in [csv, seedsCsv, svg, boundarySvg].compactMap({ $0 }) { print("wrote \(path)") }
        if let page { print("wrote the HTML report \(page) (\(report.rows.count) configurations): open it in a browser") }
    }
}

extension PlotAxis: ExpressibleByArgument {}
extension PlotSeries: ExpressibleByArgument {}
