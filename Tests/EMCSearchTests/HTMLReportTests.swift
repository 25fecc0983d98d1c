import EMCCore
import EMCReports
import EMCSearch
import EMCSweeps
import EMCTestSupport
import Foundation
import Testing

@Suite("The HTML report: one source of data, escaped names, folders it may and may not write")
struct HTMLReportTests {
    static let hostile = "<script>alert(1)</script>&\u{2028}\"'"

    func report() -> (ReportDocument, [TrialRecord]) {
        let records = configurationRecords(model: "mlp:width=8,depth=2,act=relu", parameters: 6000, boundary: 2000)
            + configurationRecords(data: Self.hostile, model: "cnn:channels=4,layers=2", parameters: 3000, boundary: 5000)
        let report = Report.from(records)
        return (ReportDocument(report: report, findings: Findings.evaluate(report)), records)
    }

    /// The message of the EMCError `body` must throw (the expectation fails, here, when it throws none).
    func refusal(_ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) -> String {
        #expect(throws: EMCError.self, sourceLocation: sourceLocation) { try body() }?.message ?? ""
    }

    /// The JSON inside the page's report element.
    func embedded(_ page: String) throws -> String {
        let open = "<script type=\"application/json\" id=\"emc-report\">"
        let start = try #require(page.range(of: open)).upperBound
        let end = try #require(page.range(of: "</script>", range: start..<page.endIndex)).lowerBound
        return String(page[start..<end])
    }

    @Test("the page embeds exactly the report's JSON (emc report --json --findings), with no character that could end its element")
    func oneSource() throws {
        let (document, _) = report()
        let page = try HTMLReport.page(document, sources: ["runs/<b>log</b>.jsonl"])
        let json = try embedded(page)
        for c in ["<", ">", "&", "\u{2028}"] { #expect(!json.contains(c), "\(c) unescaped in the embedded JSON") }
        let parsed = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? NSDictionary
        let direct = try JSONSerialization.jsonObject(with: Data(try document.json(pretty: true))) as? NSDictionary
        #expect(parsed != nil && parsed == direct)
        #expect(page.contains("runs/&lt;b&gt;log&lt;/b&gt;.jsonl") && !page.contains("<b>log"), "a log's name is text")
        #expect(!page.contains(Self.hostile) && !page.contains("<script>alert"))
    }

    @Test("a detail file per configuration, its names escaped in the JSON and in the SVG; a rewrite drops detail files of a larger report and nothing else")
    func files() throws {
        let dir = TemporaryDirectory()
        let out = dir.file("report")
        let (document, records) = report()
        try HTMLReport.checkOutput(out, force: false, inputs: [])
        let index = try HTMLReport.write(document, records: records, sources: ["log"], to: out)
        #expect(index == out + "/index.html")
        #expect(try FileSystem.list(out + "/detail") == ["0.js", "1.js"])
        // The index without the evidence lines, findings.js with them: together, the document.
        let page = String(decoding: try ReadableFile.contents(of: index), as: UTF8.self)
        let indexed = try #require(try JSONSerialization.jsonObject(with: Data(try embedded(page).utf8)) as? [String: Any])
        let findings = String(decoding: try ReadableFile.contents(of: out + "/findings.js"), as: UTF8.self)
        #expect(findings.hasPrefix("emcFindings(") && findings.hasSuffix(");\n"))
        let evidence = try #require(try JSONSerialization.jsonObject(with: Data(findings.dropFirst(12).dropLast(3).utf8)) as? [[String]])
        var merged = indexed
        merged["findings"] = zip(try #require(indexed["findings"] as? [[String: Any]]), evidence).map { f, lines -> [String: Any] in
            #expect((f["evidence"] as? [String]) == [])
            var f = f
            f["evidence"] = lines
            return f
        }
        let direct = try JSONSerialization.jsonObject(with: Data(try document.json(pretty: false)))
        #expect(NSDictionary(dictionary: merged) == (direct as? NSDictionary))
        for name in ["0.js", "1.js"] {
            let text = String(decoding: try ReadableFile.contents(of: out + "/detail/" + name), as: UTF8.self)
            #expect(text.hasPrefix("emcDetail(") && !text.contains("<script>") && !text.contains(Self.hostile))
            #expect(text.contains("\\u003csvg"), "the panels are SVG, escaped inside the JSON")
        }
        // A non-empty folder is refused without force; with it, stale detail files go and other files stay.
        #expect(throws: EMCError.self) { try HTMLReport.checkOutput(out, force: false, inputs: []) }
        #expect(HTMLReport.holdsOnlyReport(out))
        try AtomicFileWriter.write(Array("x".utf8), to: out + "/detail/7.js")
        try AtomicFileWriter.write(Array("mine".utf8), to: out + "/notes.txt")
        #expect(!HTMLReport.holdsOnlyReport(out), "a folder with the user's own file is not only a report")
        try HTMLReport.checkOutput(out, force: true, inputs: [])
        try HTMLReport.write(document, records: records, sources: ["log"], to: out)
        #expect(try FileSystem.list(out + "/detail") == ["0.js", "1.js"])
        #expect(String(decoding: try ReadableFile.contents(of: out + "/notes.txt"), as: UTF8.self) == "mine")
    }

    @Test("refused: a file where the folder should be, a log where the report writes its files, an index that is an input, a non-empty folder; a log beside its report is no obstacle")
    func refusals() throws {
        let dir = TemporaryDirectory()
        try AtomicFileWriter.write(Array("{}".utf8), to: dir.file("log.jsonl"))
        #expect(refusal { try HTMLReport.checkOutput(dir.file("log.jsonl"), force: true, inputs: []) }.contains("not a folder"))
        #expect(throws: Never.self, "a log beside its report is no obstacle") { try HTMLReport.checkOutput(dir.path, force: false, inputs: [dir.file("log.jsonl")]) }
        #expect(refusal { try HTMLReport.checkOutput(dir.path, force: true, inputs: [dir.file("findings.js")]) }.contains("where the report writes its own files"))
        try FileSystem.createDirectory(dir.file("r"))
        try AtomicFileWriter.write(Array("{}".utf8), to: dir.file("r/index.html"))
        #expect(refusal { try HTMLReport.checkOutput(dir.file("r"), force: true, inputs: [dir.file("r/index.html")]) }.contains("one of the command's inputs"))
        #expect(refusal { try HTMLReport.checkOutput(dir.file("r"), force: false, inputs: []) }.contains("not empty"))
    }

    @Test("refused before anything is written: an empty name, a log or another output where the report writes its own files, a linked detail folder, a folder inside an input; a log beside its report is not in the way")
    func attacks() throws {
        let dir = TemporaryDirectory()
        #expect(refusal { try HTMLReport.checkOutput("", force: true, inputs: []) }.contains("empty"))
        // The folder does not exist yet: a log that would land on the report's own files is still seen.
        for own in ["r/findings.js", "r/index.html", "r/detail/0.js"] {
            let refused = refusal { try HTMLReport.checkOutput(dir.file("r"), force: true, inputs: [dir.file(own)]) }
            #expect(refused.contains("where the report writes its own files") || refused.contains("one of the command's inputs"), "\(own): \(refused)")
            #expect(refusal { try HTMLReport.checkOutput(dir.file("r"), force: true, inputs: [], outputs: [dir.file(own)]) }.contains("its own files"), "\(own)")
        }
        #expect(refusal { try HTMLReport.checkOutput(dir.file("data/report"), force: true, inputs: [dir.file("data")]) }.contains("inside"),
                "a folder a sweep's prepare step has yet to make")
        // A results log beside its report: the folder counts as empty, and an earlier report of emc's is its own.
        try FileSystem.createDirectory(dir.file("r"))
        try AtomicFileWriter.write(Array("{}".utf8), to: dir.file("r/log.jsonl"))
        try HTMLReport.checkOutput(dir.file("r"), force: false, inputs: [dir.file("r/log.jsonl")])
        let (document, records) = report()
        try HTMLReport.write(document, records: records, sources: ["log"], to: dir.file("r"))
        #expect(HTMLReport.holdsOnlyReport(dir.file("r"), inputs: [dir.file("r/log.jsonl")]))
        #expect(!HTMLReport.holdsOnlyReport(dir.file("r")), "the log is not the report's")
        // An index.html of the user's own is not a report to replace.
        try FileSystem.createDirectory(dir.file("site"))
        try AtomicFileWriter.write(Array("<h1>mine</h1>".utf8), to: dir.file("site/index.html"))
        #expect(!HTMLReport.holdsOnlyReport(dir.file("site")))
        // detail/ as a link to another folder: refused even with force, and the other folder untouched.
        try FileSystem.createDirectory(dir.file("victim"))
        try AtomicFileWriter.write(Array("keep".utf8), to: dir.file("victim/7.js"))
        try FileSystem.createDirectory(dir.file("linked"))
        try FileManager.default.createSymbolicLink(atPath: dir.file("linked/detail"), withDestinationPath: dir.file("victim"))
        #expect(refusal { try HTMLReport.checkOutput(dir.file("linked"), force: true, inputs: []) }.contains("not a folder of its own"))
        #expect(throws: EMCError.self) { try HTMLReport.write(document, records: records, sources: ["log"], to: dir.file("linked")) }
        #expect(try FileSystem.list(dir.file("victim")) == ["7.js"])
    }

    @Test("rows that differ only in batch come in the same order every time (detail files and links keep their configuration)")
    func stableOrder() throws {
        let records = (0..<6).flatMap { configurationRecords(model: "mlp:width=8,depth=2,act=relu", parameters: 6000, boundary: 2000, batch: 8 << $0) }
        let first = Report.from(records).rows.map(\.config)
        for _ in 0..<5 { #expect(Report.from(records.shuffled()).rows.map(\.config) == first) }
    }

    @Test("an experiment's html key resolves against the manifest's folder")
    func manifestKey() throws {
        let dir = TemporaryDirectory()
        let manifest = dir.file("exp.json")
        try AtomicFileWriter.write(Array(#"{"name": "x", "data": ["d"], "models": ["mlp"], "optimizers": ["sgd"], "html": "out/report"}"#.utf8), to: manifest)
        let exp = try Experiment.load(manifest)
        #expect(exp.htmlPath == dir.file("out/report"))
    }
}
