import EMCCore
import EMCSearch
import EMCTrainer
import Foundation

/// What `emc report --json` prints and what the HTML report embeds: the report and, when judged, the findings.
public struct ReportDocument: Encodable, Sendable {
    public var report: Report
    public var findings: [Finding]?

    public init(report: Report, findings: [Finding]?) {
        self.report = report
        self.findings = findings
    }

    /// The document as JSON, keys sorted, non-finite numbers as "inf", "-inf" and "nan" (as every emc --json).
    public func json(pretty: Bool) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = TrialRecord.nonFiniteEncoding
        return Array(try encoder.encode(self))
    }
}

/// `emc report --html DIR`: a static report that opens from `file://` with no server and no network.
///
/// `DIR/index.html` holds the whole `ReportDocument` (the same JSON as `emc report --json --findings`) in a
/// `<script type="application/json">` element, and draws from it with the page's own script: the findings, the EMC
/// against parameters per family and label condition, and the configurations' table, filtered, sorted and paged
/// before anything is drawn. Each configuration's detail (its p(fit | n) panel with every trial, the EMC against budget
/// and threshold, the report's lines on it and its trials) is `DIR/detail/I.js`, loaded when the row is opened, so
/// the index stays one line of JSON per configuration however many trials the log holds. The findings' evidence lines
/// are `DIR/findings.js`, loaded once the page has drawn (a rule that compares every pair of configurations gives a
/// line per pair); with them back in place the page's data is the JSON `emc report --json --findings` prints.
///
/// Names, specs and paths are user input: the page puts them into the document as text (never as markup), the JSON is
/// escaped so that no string can close its element, and the detail's SVG is drawn here with every text escaped.
public enum HTMLReport {
    public static let indexName = "index.html"
    public static let detailFolder = "detail"
    public static let findingsName = "findings.js"

    /// Checks `dir` before any work: a named folder (or nothing yet) whose report files (`index.html`, `findings.js`,
    /// anything under `detail/`) are none of the command's `inputs` or other `outputs`, with `detail` a real folder if
    /// it is there, and holding nothing but the command's inputs unless `force` (a results log may sit beside its
    /// report). Inputs are compared by where they land, whether or not the folder exists yet.
    public static func checkOutput(_ dir: String, force: Bool, inputs: [String], outputs: [String] = []) throws {
        guard !dir.isEmpty else {
            throw EMCError(.invalidArgument, "the report folder's name is empty; name a folder (--html DIR)", remedy: .otherReportFolder)
        }
        if FileSystem.exists(dir) && !FileSystem.isDirectory(dir) {
            throw EMCError(.invalidArgument, "not a folder; the HTML report is a folder (index.html, findings.js and detail/)", file: dir, remedy: .otherReportFolder)
        }
        let detail = FileSystem.join(dir, detailFolder)
        if FileSystem.exists(detail) && !FileSystem.isRealDirectory(detail) {
            throw EMCError(.invalidArgument, "\(detail) is not a folder of its own (a link, or a file); emc writes the report's detail files only into a real folder",
                           file: dir, remedy: .otherReportFolder)
        }
        try OutputPaths.check([FileSystem.join(dir, indexName)], force: true, inputs: inputs)
        let folder = OutputPaths.landing(dir)
        func inside(_ path: String, _ parent: String) -> Bool { path == parent || path.hasPrefix(parent.hasSuffix("/") ? parent : parent + "/") }
        for path in inputs + outputs {
            let place = OutputPaths.landing(path)
            if inside(folder, place) {
                throw EMCError(.invalidArgument, "the report folder is inside \(path), which the command reads; write the report elsewhere", file: dir, remedy: .otherReportFolder)
            }
            if [indexName, findingsName].contains(where: { place == FileSystem.join(folder, $0) }) || inside(place, FileSystem.join(folder, detailFolder)) {
                throw EMCError(.invalidArgument, "\(path) is where the report writes its own files; write the report elsewhere", file: dir, remedy: .otherReportFolder)
            }
        }
        guard FileSystem.isDirectory(dir), !force else { return }
        let own = Set(inputs.map(OutputPaths.landing))
        let existing = ((try? FileSystem.list(dir)) ?? []).filter { !own.contains(FileSystem.join(folder, $0)) }
        guard !existing.isEmpty else { return }
        throw EMCError(.invalidArgument, "the report folder is not empty (it holds \(existing.prefix(3).joined(separator: ", "))\(existing.count > 3 ? ", ..." : ""))",
                       file: dir, remedy: .replaceReport)
    }

    /// Whether `dir` holds nothing but an earlier HTML report of emc's (an index that says emc wrote it, the findings'
    /// evidence, detail files) and `inputs` (a results log beside it): a sweep replaces the report its manifest names
    /// without --force, and nothing else.
    public static func holdsOnlyReport(_ dir: String, inputs: [String] = []) -> Bool {
        guard FileSystem.isRealDirectory(dir), let names = try? FileSystem.list(dir) else { return false }
        let own = Set(inputs.map(OutputPaths.landing)), folder = OutputPaths.landing(dir)
        return names.allSatisfy { name in
            if own.contains(FileSystem.join(folder, name)) || name == findingsName { return true }
            if name == indexName {
                guard let index = try? ReadableFile(path: FileSystem.join(dir, name)), let head = try? index.read(count: min(index.size, 1024), at: 0) else { return false }
                return String(decoding: head, as: UTF8.self).contains(generator)
            }
            let detail = FileSystem.join(dir, name)
            guard name == detailFolder, FileSystem.isRealDirectory(detail), let files = try? FileSystem.list(detail) else { return false }
            return files.allSatisfy { detailIndex($0) != nil }
        }
    }

    /// The mark in every index's head that says emc wrote it.
    static let generator = "<meta name=\"generator\" content=\"emc report --html\">"

    /// Writes the report into `dir` (after `checkOutput`): each configuration's detail file, the findings' evidence,
    /// then the index. Files a previous report left there (`index.html`, `findings.js`, `detail/N.js`) are replaced or
    /// removed; nothing else in `dir` is touched. `sources` are the logs, named on the page. Returns the index's path.
    @discardableResult
    public static func write(_ document: ReportDocument, records: [TrialRecord], sources: [String], to dir: String) throws -> String {
        let detailDir = FileSystem.join(dir, detailFolder)
        if FileSystem.exists(detailDir) && !FileSystem.isRealDirectory(detailDir) {
            throw EMCError(.invalidArgument, "\(detailDir) is not a folder of its own (a link, or a file)", file: dir, remedy: .otherReportFolder)
        }
        try FileSystem.createDirectory(detailDir)
        let rows = document.report.rows
        let trialsByConfig = Dictionary(grouping: Report.unique(records).filter { $0.kind == .trial }, by: \.config)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = TrialRecord.nonFiniteEncoding
        for (i, row) in rows.enumerated() {
            var trials = trialsByConfig[row.config] ?? []
            if let set = row.seedSet.flatMap(seedRange) { trials = trials.filter { set.contains($0.seed) } }
            trials.sort { ($0.seed, $0.n, $0.replicateIndex) < ($1.seed, $1.n, $1.replicateIndex) }
            let detail = Detail(index: i, title: row.title, lines: row.detailLines, svg: BoundaryPlot.detailSVG(row, trials: trials),
                                trials: trials.map(Detail.Trial.init))
            let json = String(decoding: try encoder.encode(detail), as: UTF8.self)
            try AtomicFileWriter.write(Array("emcDetail(\(i), \(scriptSafe(json)));\n".utf8), to: FileSystem.join(detailDir, "\(i).js"))
        }
        // Detail files of an earlier, larger report in the same folder go; nothing else does.
        for name in (try? FileSystem.list(detailDir)) ?? [] {
            if let k = detailIndex(name), k >= rows.count { FileSystem.remove(FileSystem.join(detailDir, name)) }
        }
        // The findings' evidence (a line per comparison: it can grow with the square of the configurations) is a file
        // of its own, loaded after the page has drawn; the index keeps each finding's verdict and counts.
        var index = document
        if let findings = document.findings {
            let evidence = String(decoding: try encoder.encode(findings.map(\.evidence)), as: UTF8.self)
            try AtomicFileWriter.write(Array("emcFindings(\(scriptSafe(evidence)));\n".utf8), to: FileSystem.join(dir, findingsName))
            index.findings = findings.map { var f = $0; f.evidence = []; return f }
        } else {
            FileSystem.remove(FileSystem.join(dir, findingsName))
        }
        let path = FileSystem.join(dir, indexName)
        try AtomicFileWriter.write(Array(page(index, sources: sources).utf8), to: path)
        return path
    }

    /// The index page: the document's JSON, escaped for a script element, inside the page's markup and script.
    public static func page(_ document: ReportDocument, sources: [String]) throws -> String {
        let json = scriptSafe(String(decoding: try document.json(pretty: false), as: UTF8.self))
        let rows = document.report.rows.count
        let title = "emc report: \(rows) configuration\(rows == 1 ? "" : "s")"
        return """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        \(generator)
        <link rel="icon" href="data:,">
        <title>\(htmlEscape(title))</title>
        <style>\(HTMLAssets.css)</style>
        </head>
        <body>
        <header>
        <h1>\(htmlEscape(title))</h1>
        <p class="meta">from \(sources.map { "<code>\(htmlEscape($0))</code>" }.joined(separator: ", ")). \
        EMC is each configuration's n50, the n where a freshly initialised model fits its n samples half the time, with its \
        90% interval; "≥" marks a lower bound (the budget decides it, a seed's search is unfinished, or nothing failed yet).</p>
        </header>
        <main>
        <section id="findings"><h2>Findings</h2><p class="note">The paper's five claims, each judged by its stated rule on these \
        configurations; open one for its evidence.</p><div id="findings-body"></div></section>
        <section id="configurations"><h2>Configurations</h2>
        <form id="filters" onsubmit="return false"></form>
        <p id="count" aria-live="polite"></p>
        <div class="scroll"><table id="table"><thead></thead><tbody></tbody></table></div>
        <nav id="pager"></nav>
        </section>
        <section id="detail" hidden></section>
        <section id="plots"><h2>EMC against parameters</h2><p class="note">The configurations the filters keep, one panel per model family and \
        label condition: dots are n50 with its 90% interval, △ a lower bound, the dashed line EMC = parameters. \
        Click a point or a row for its detail.</p><div id="plot-panels"></div></section>
        </main>
        <script type="application/json" id="emc-report">\(json)</script>
        <script>\(HTMLAssets.script)</script>
        </body>
        </html>

        """
    }

    /// A configuration's detail file's content.
    struct Detail: Encodable {
        struct Trial: Encodable {
            var seed, n, replicate, epochs, steps, wrong: Int
            var role: String?
            var result: String
            var trainAccuracy: Double
            var testAccuracy: Double?
            var loss: Double
            var seconds: Double

            init(_ r: TrialRecord) {
                seed = r.seed; n = r.n; replicate = r.replicateIndex; epochs = r.epochs; steps = r.steps; wrong = r.wrong
                role = r.role?.rawValue; result = r.result.rawValue; trainAccuracy = r.trainAccuracy; testAccuracy = r.testAccuracy
                loss = r.loss; seconds = r.seconds
            }
        }
        var index: Int
        var title: String
        var lines: [String]
        var svg: String
        var trials: [Trial]
    }

    /// "A..B" as a range of seeds.
    static func seedRange(_ text: String) -> ClosedRange<Int>? {
        let parts = text.components(separatedBy: "..")
        guard parts.count == 2, let a = Int(parts[0]), let b = Int(parts[1]), a <= b else { return nil }
        return a...b
    }

    /// The index of a detail file's name ("12.js"), nil for any other name.
    static func detailIndex(_ name: String) -> Int? {
        guard name.hasSuffix(".js") else { return nil }
        let stem = name.dropLast(3)
        guard !stem.isEmpty, stem.allSatisfy(\.isASCII), stem.allSatisfy(\.isNumber) else { return nil }
        return Int(stem)
    }

    /// JSON made safe inside a script element and a script file: no "<", ">" or "&" (so no string can end the
    /// element or open a comment), and no line or paragraph separator. Each occurs in JSON only inside strings, where
    /// the escape means the same character.
    static func scriptSafe(_ json: String) -> String { Escapes.script.apply(json) }
}

/// Text as HTML: the five characters that could start markup or end an attribute, escaped.
public func htmlEscape(_ text: String) -> String { Escapes.html.apply(text) }

/// A set of characters and their escapes, applied in one pass: ASCII through a 128-entry table, the rest (few) by
/// lookup only when the set has any.
struct Escapes: Sendable {
    private let ascii: [String?]
    private let wide: [Unicode.Scalar: String]

    init(_ table: [Unicode.Scalar: String]) {
        ascii = (0..<128).map { table[Unicode.Scalar(UInt8($0))] }
        wide = table.filter { !$0.key.isASCII }
    }

    func apply(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for c in text.unicodeScalars {
            if c.isASCII, let escape = ascii[Int(c.value)] { out += escape }
            else if !c.isASCII && !wide.isEmpty, let escape = wide[c] { out += escape }
            else { out.unicodeScalars.append(c) }
        }
        return out
    }

    static let html = Escapes(["&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;"])
    static let svg = Escapes(["&": "&amp;", "<": "&lt;", ">": "&gt;"])
    static let script = Escapes(["<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u{2028}": "\\u2028", "\u{2029}": "\\u2029"])
}
