import EMCCore
import EMCTestSupport
import Foundation
import Testing

/// Outputs never land on inputs, nothing is replaced without --force, a reader never edits what it reads, and no
/// removal reaches outside the files the command made.
@Suite("Outputs and inputs")
struct OutputSafetyTests {
    /// A small shard set and a results log of one short search on it.
    func setAndLog(_ dir: TemporaryDirectory) throws -> (set: String, log: String) {
        let data = TemporaryDirectory()
        let set = try makeBase(data)
        try FileSystem.createDirectory(dir.file("set"))
        for name in try FileSystem.list(set) {
            try AtomicFileWriter.write(try ReadableFile.contents(of: FileSystem.join(set, name)), to: dir.file("set/\(name)"))
        }
        let run = try emc(["run", "--data", dir.file("set"), "--model", "mlp:width=4", "--optimizer", "adam:lr=0.01", "--steps", "30",
                           "--seeds", "1", "--start", "50", "--no-test", "--log", dir.file("log.jsonl"), "-q"])
        #expect(run.status == 0, "\(run.stderr)")
        return (dir.file("set"), dir.file("log.jsonl"))
    }

    @Test("HTML reports: emc report, emc run and a manifest's html key write one and say where; a non-empty folder is refused without --force; a sweep replaces its own report, never a folder with other files")
    func htmlReports() throws {
        let dir = TemporaryDirectory()
        let (set, log) = try setAndLog(dir)
        let first = try emc(["report", log, "--html", dir.file("r")])
        #expect(first.status == 0 && first.stdout.contains("wrote the HTML report \(dir.file("r"))/index.html"), "\(first.stderr)")
        let again = try emc(["report", log, "--html", dir.file("r")])
        #expect(again.status != 0 && again.stderr.contains("not empty") && again.stderr.contains("--force") && again.stderr.contains("--html"), "\(again.stderr)")
        #expect(try emc(["report", log, "--html", dir.file("r"), "--force", "-q"]).status == 0)
        // emc run: the search is already in the log (nothing trains); the report of the log is written when it ends.
        let run = try emc(["run", "--data", set, "--model", "mlp:width=4", "--optimizer", "adam:lr=0.01", "--steps", "30",
                           "--seeds", "1", "--start", "50", "--no-test", "--log", log, "--html", dir.file("run-report")])
        #expect(run.status == 0 && run.stdout.contains("wrote the HTML report \(dir.file("run-report"))/index.html"), "\(run.stderr)")
        // A manifest's report: written by the sweep, replaced by the next, refused once the folder holds a file of the user's.
        let manifest = #"{"name": "m", "data": ["\#(set)"], "models": ["mlp:width=4"], "optimizers": ["adam:lr=0.01"], "seeds": 1, "steps": 10, "#
            + #""log": "sweep.jsonl", "html": "sweep-report"}"#
        try AtomicFileWriter.write(Array(manifest.utf8), to: dir.file("m.json"))
        let sweep = try emc(["sweep", dir.file("m.json")])
        #expect(sweep.status == 0 && sweep.stdout.contains("wrote the HTML report"), "\(sweep.stderr)")
        #expect(FileSystem.exists(dir.file("sweep-report/index.html")) && FileSystem.exists(dir.file("sweep-report/detail/0.js")))
        #expect(try emc(["sweep", dir.file("m.json"), "-q"]).status == 0, "a rerun replaces the sweep's own report")
        try AtomicFileWriter.write(Array("mine".utf8), to: dir.file("sweep-report/notes.txt"))
        let refused = try emc(["sweep", dir.file("m.json"), "-q"])
        #expect(refused.status != 0 && refused.stderr.contains("not empty"), "\(refused.stderr)")
        #expect(String(decoding: try ReadableFile.contents(of: dir.file("sweep-report/notes.txt")), as: UTF8.self) == "mine")
    }

    @Test("every report output refuses the log it reads, even with --force, and an existing file without --force")
    func reportOutputs() throws {
        let dir = TemporaryDirectory()
        let (_, log) = try setAndLog(dir)
        let before = try ReadableFile.contents(of: log)
        for option in ["--csv", "--seeds-csv", "--svg", "--boundary-svg"] {
            for force in [[], ["--force"]] {
                let r = try emc(["report", log, option, log] + force)
                #expect(r.status != 0 && r.stderr.contains("one of the command's inputs"), "\(option) \(force): \(r.stderr)")
            }
            // The same log under another name (a link) is still the input.
            try? FileManager.default.removeItem(atPath: dir.file("alias.jsonl"))
            try FileManager.default.createSymbolicLink(atPath: dir.file("alias.jsonl"), withDestinationPath: log)
            let alias = try emc(["report", log, option, dir.file("alias.jsonl"), "--force"])
            #expect(alias.status != 0, "\(option) through a link: \(alias.stderr)")
        }
        #expect(try ReadableFile.contents(of: log) == before, "the log was changed")
        // A file that is not an input: refused without --force, replaced with it.
        try AtomicFileWriter.write(Array("keep me".utf8), to: dir.file("table.csv"))
        let refused = try emc(["report", log, "--csv", dir.file("table.csv")])
        #expect(refused.status != 0 && refused.stderr.contains("--force"), "\(refused.stderr)")
        #expect(try ReadableFile.contents(of: dir.file("table.csv")) == Array("keep me".utf8))
        let replaced = try emc(["report", log, "--csv", dir.file("table.csv"), "--force", "-q"])
        #expect(replaced.status == 0, "\(replaced.stderr)")
        #expect(try String(decoding: ReadableFile.contents(of: dir.file("table.csv")), as: UTF8.self).contains("mlp"))
        // Two outputs onto one file.
        let twice = try emc(["report", log, "--csv", dir.file("table.csv"), "--seeds-csv", dir.file("table.csv"), "--force"])
        #expect(twice.status != 0 && twice.stderr.contains("same file"), "\(twice.stderr)")
    }

    @Test("outputs that do not exist yet are checked too: onto a log a sweep will write, two outputs onto one new file, a set reached through a link")
    func outputsNotYetThere() throws {
        let dir = TemporaryDirectory()
        let (set, log) = try setAndLog(dir)
        let twice = try emc(["report", log, "--csv", dir.file("new.csv"), "--seeds-csv", dir.file("./new.csv")])
        #expect(twice.status != 0 && twice.stderr.contains("same file"), "\(twice.stderr)")
        #expect(!FileSystem.exists(dir.file("new.csv")))
        // A manifest whose log does not exist yet: --svg onto it is refused before anything runs.
        let manifest = #"{"name": "m", "data": ["\#(set)"], "models": ["mlp:width=4"], "optimizers": ["adam:lr=0.01"], "seeds": 1, "steps": 10, "log": "fresh.jsonl"}"#
        try AtomicFileWriter.write(Array(manifest.utf8), to: dir.file("m.json"))
        let sweep = try emc(["sweep", dir.file("m.json"), "--svg", dir.file("fresh.jsonl"), "-q"])
        #expect(sweep.status != 0 && sweep.stderr.contains("inputs"), "\(sweep.stderr)")
        #expect(!FileSystem.exists(dir.file("fresh.jsonl")))
        let onData = try emc(["sweep", dir.file("m.json"), "--svg", FileSystem.join(set, "plot.svg"), "-q"])
        #expect(onData.status != 0 && onData.stderr.contains("inside"), "\(onData.stderr)")
        // The set through a symbolic link: its shard is still one of the set's files.
        try FileManager.default.createSymbolicLink(atPath: dir.file("link"), withDestinationPath: set)
        let shard = try #require(try FileSystem.list(set).first { $0.hasSuffix(".emcs") })
        let before = try ReadableFile.contents(of: FileSystem.join(set, shard))
        let linked = try emc(["inspect", dir.file("link"), "--sheet", dir.file("link/\(shard)"), "--force"])
        #expect(linked.status != 0, "\(linked.stderr)")
        #expect(try ReadableFile.contents(of: FileSystem.join(set, shard)) == before)
        // A folder as an output says so at once.
        try FileSystem.createDirectory(dir.file("folder"))
        let folder = try emc(["report", log, "--csv", dir.file("folder")])
        #expect(folder.status != 0 && folder.stderr.contains("not a regular file"), "\(folder.stderr)")
    }

    @Test("inspect --sheet refuses a file of the set it shows, even with --force")
    func sheetOntoShard() throws {
        let dir = TemporaryDirectory()
        let (set, _) = try setAndLog(dir)
        let shard = try FileSystem.list(set).first { $0.hasSuffix(".emcs") }!
        let before = try ReadableFile.contents(of: FileSystem.join(set, shard))
        let r = try emc(["inspect", set, "--sheet", FileSystem.join(set, shard), "--force"])
        #expect(r.status != 0 && r.stderr.contains("inside"), "\(r.stderr)")
        #expect(try ReadableFile.contents(of: FileSystem.join(set, shard)) == before)
        let manifest = try emc(["inspect", set, "--sheet", FileSystem.join(set, "dataset.json"), "--force"])
        #expect(manifest.status != 0)
        let fresh = try emc(["inspect", set, "--sheet", dir.file("sheet.png"), "-q"])
        #expect(fresh.status == 0 && FileSystem.exists(dir.file("sheet.png")), "\(fresh.stderr)")
    }

    @Test("report reads a log as it is: a complete unterminated last record counts, a torn one is left out, neither is edited; a pipe works")
    func reportNeverWrites() throws {
        let dir = TemporaryDirectory()
        let (_, log) = try setAndLog(dir)
        let full = try ReadableFile.contents(of: log)
        let lines = full.split(separator: 0x0A)
        func trials(_ text: String) -> Int? {
            guard let data = text.data(using: .utf8), let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let rows = (json["report"] as? [String: Any])?["rows"] as? [[String: Any]] else { return nil }
            return rows.reduce(0) { $0 + (($1["trials"] as? Int) ?? 0) }
        }
        let whole = try emc(["report", log, "--json"])
        let total = try #require(trials(whole.stdout), "\(whole.stdout.prefix(400))")
        // The last record without its newline: still a record, and the file is left as it was.
        let unterminated = Array(full.dropLast())
        try AtomicFileWriter.write(unterminated, to: dir.file("unterminated.jsonl"))
        chmod(dir.file("unterminated.jsonl"), 0o444)
        let u = try emc(["report", dir.file("unterminated.jsonl"), "--json"])
        #expect(u.status == 0 && trials(u.stdout) == total, "\(u.stderr)")
        #expect(try ReadableFile.contents(of: dir.file("unterminated.jsonl")) == unterminated)
        // A torn last line (half a record): left out, left alone.
        let torn = Array(lines.dropLast().joined(separator: [0x0A])) + [0x0A] + Array(lines.last!.prefix(40))
        try AtomicFileWriter.write(torn, to: dir.file("torn.jsonl"))
        let t = try emc(["report", dir.file("torn.jsonl"), "--json"])
        #expect(t.status == 0, "\(t.stderr)")
        #expect(try ReadableFile.contents(of: dir.file("torn.jsonl")) == torn)
        // From a pipe.
        let piped = try runProcess("/bin/bash", ["-c", "\"$0\" report <(cat \"$1\") --json", emcExecutable, log])
        #expect(piped.status == 0 && trials(piped.stdout) == total, "\(piped.stderr)")
    }

    @Test("perturb --force and convert --force never delete a file a manifest names outside its folder")
    func forceStaysInside() throws {
        let dir = TemporaryDirectory()
        let (set, _) = try setAndLog(dir)
        let made = try emc(["perturb", set, "--out", dir.file("variant"), "--labels", "random", "-q"])
        #expect(made.status == 0, "\(made.stderr)")
        try AtomicFileWriter.write(Array("precious".utf8), to: dir.file("victim.txt"))
        // The variant's label file renamed to ../victim.txt in its manifest.
        let manifestPath = dir.file("variant/dataset.json")
        var json = try #require(try JSONSerialization.jsonObject(with: Data(ReadableFile.contents(of: manifestPath))) as? [String: Any])
        var variant = try #require(json["variant"] as? [String: Any])
        var files = try #require(variant["labelFiles"] as? [String: [String: Any]])
        for key in files.keys { files[key]!["file"] = "../victim.txt" }
        variant["labelFiles"] = files
        json["variant"] = variant
        try AtomicFileWriter.write(Array(try JSONSerialization.data(withJSONObject: json)), to: manifestPath)
        let verify = try emc(["verify", dir.file("variant")])
        #expect(verify.status != 0 && (verify.stdout + verify.stderr).contains("plain file name"), "\(verify.stdout) \(verify.stderr)")
        _ = try emc(["perturb", set, "--out", dir.file("variant"), "--labels", "random", "--seed", "2", "--force", "-q"])
        #expect(try ReadableFile.contents(of: dir.file("victim.txt")) == Array("precious".utf8), "perturb --force deleted a file outside --out")
        // The same through a shard entry of a converted set.
        let setManifest = FileSystem.join(set, "dataset.json")
        var setJSON = try #require(try JSONSerialization.jsonObject(with: Data(ReadableFile.contents(of: setManifest))) as? [String: Any])
        var splits = try #require(setJSON["splits"] as? [String: [String: Any]])
        var shards = try #require(splits["train"]?["shards"] as? [[String: Any]])
        shards[0]["file"] = "../victim.txt"
        splits["train"]!["shards"] = shards
        setJSON["splits"] = splits
        try AtomicFileWriter.write(Array(try JSONSerialization.data(withJSONObject: setJSON)), to: setManifest)
        let inspect = try emc(["inspect", set])
        #expect(inspect.status != 0 && inspect.stderr.contains("plain file name"), "\(inspect.stderr)")
        _ = try emc(["convert", "fashion-mnist", "--raw", "/usr/share/datasets/fashion-mnist", "--out", set, "--force", "-q"])
        #expect(try ReadableFile.contents(of: dir.file("victim.txt")) == Array("precious".utf8), "convert --force deleted a file outside --out")
    }

    @Test("bench --scratch DIR works in a fresh folder inside DIR: the user's files and a link's target survive")
    func benchScratch() throws {
        let dir = TemporaryDirectory(), other = TemporaryDirectory()
        try FileSystem.createDirectory(dir.file("scratch"))
        try AtomicFileWriter.write(Array("mine".utf8), to: dir.file("scratch/notes.txt"))
        try AtomicFileWriter.write(Array("theirs".utf8), to: other.file("data.txt"))
        try FileManager.default.createSymbolicLink(atPath: dir.file("scratch/link"), withDestinationPath: other.path)
        let r = try emc(["bench", "jpeg", "--images", "12", "--size", "16", "--scratch", dir.file("scratch"), "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try FileSystem.list(dir.file("scratch")) == ["link", "notes.txt"])
        #expect(try ReadableFile.contents(of: dir.file("scratch/notes.txt")) == Array("mine".utf8))
        #expect(try ReadableFile.contents(of: other.file("data.txt")) == Array("theirs".utf8))
    }

    @Test("bench threads --torch reads PyTorch's alternating run (FILE, whatever its name holds) or one count's (N=FILE), and refuses a one-count FILE without N, naming it, and a count out of range")
    func benchThreadsTorch() throws {
        let dir = TemporaryDirectory()
        let row = #"{"model": "mlp:width=8", "input": "28x28x1", "parameters": 6442, "samplesPerSecond": 1000"#
        try AtomicFileWriter.write(Array((#"{"torch": "2", "threads": [1, 2], "batch": 128, "results": ["# + row
            + #", "samplesPerSecondByThreads": {"1": 1000, "2": 1500}}]}"#).utf8), to: dir.file("both.json"))
        try AtomicFileWriter.write(Array((#"{"torch": "2", "threads": 1, "batch": 128, "results": ["# + row + "}]}").utf8),
                                   to: dir.file("one.json"))
        let common = ["bench", "threads", "--only", "mlp:width=8", "--seconds", "0.02", "--repeats", "1"]
        for torch in [["--torch", dir.file("both.json")], ["--torch", "1=" + dir.file("one.json"), "--torch", "2=" + dir.file("both.json")]] {
            let r = try emc(common + torch)
            #expect(r.status == 0, "\(r.stderr)")
            // PyTorch's two counts, its speed-up, and emc against each.
            #expect(r.stdout.contains("| 1000 ") && r.stdout.contains("| 1500 ") && r.stdout.contains("torch 2T / 1T") && r.stdout.contains("| 1.50× "), "\(r.stdout)")
        }
        let refused = try emc(common + ["--torch", dir.file("one.json")])
        #expect(refused.status != 0 && refused.stderr.contains("one.json") && refused.stderr.contains("N=FILE"), "\(refused.stderr)")
        let badCount = try emc(common + ["--torch", "0=" + dir.file("one.json")])
        #expect(badCount.status != 0 && badCount.stderr.contains("--torch takes N=FILE with N from 1 to 256"), "\(badCount.stderr)")
        try AtomicFileWriter.write(Array((#"{"torch": "2", "threads": [1, 2], "batch": 128, "results": ["# + row
            + #", "samplesPerSecondByThreads": {"one": 1000}}]}"#).utf8), to: dir.file("words.json"))
        let words = try emc(common + ["--torch", dir.file("words.json")])
        #expect(words.status != 0 && words.stderr.contains("words.json") && words.stderr.contains("thread count one is not a number"),
                "\(words.stderr)")
        // A file whose name holds "=" after something other than a count is a file.
        try AtomicFileWriter.write(try ReadableFile.contents(of: dir.file("both.json")), to: dir.file("run=mlp.json"))
        let named = try emc(common + ["--torch", dir.file("run=mlp.json")])
        #expect(named.status == 0 && named.stdout.contains("| 1.50× "), "\(named.stderr)")
    }

    @Test("bench threads --round-trips S prints the team's core round trip over S seconds, and refuses S outside (0, 3600]")
    func benchRoundTrips() throws {
        let r = try emc(["bench", "threads", "--round-trips", "0.5", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("roundTripNanoseconds"), "\(r.stdout)")
        for bad in ["0", "-1", "4000"] {
            let refused = try emc(["bench", "threads", "--round-trips=\(bad)"])
            #expect(refused.status != 0 && refused.stderr.contains("--round-trips takes seconds"), "\(bad): \(refused.stderr)")
        }
    }

    @Test("bench threads --sums times batch norm's backward sums whole and by micro-batches on 1 and 2 threads, in cache and from memory; refuses 0 repetitions")
    func benchChannelSums() throws {
        let r = try emc(["bench", "threads", "--sums", "--repeats", "1", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        struct Row: Decodable {
            var shape: String, rows: Int, channels: Int, input: String
            var wholeMilliseconds: Double, byChannelsMilliseconds: Double, microBatchesOneThreadMilliseconds: Double, microBatchesMilliseconds: Double
        }
        struct Output: Decodable { var results: [Row] }
        let rows = try JSONDecoder().decode(Output.self, from: Data(r.stdout.utf8)).results
        #expect(rows.map(\.shape) == ["16×16×96", "16×16×96", "16×16×32", "16×16×32", "8×8×144", "8×8×144", "4×4×240", "4×4×240"])
        #expect(rows.map(\.input) == Array(repeating: ["in cache", "from memory"], count: 4).flatMap { $0 })
        for row in rows {
            #expect(row.rows == 128 * (row.shape.hasPrefix("16") ? 256 : row.shape.hasPrefix("8") ? 64 : 16), "\(row.shape)")
            let times = [row.wholeMilliseconds, row.byChannelsMilliseconds, row.microBatchesOneThreadMilliseconds, row.microBatchesMilliseconds]
            #expect(times.allSatisfy { $0 > 0 }, "\(row.shape) \(row.input)")
        }
        let refused = try emc(["bench", "threads", "--sums", "--repeats", "0"])
        #expect(refused.status != 0 && refused.stderr.contains("--repeats takes a count"), "\(refused.stderr)")
        for other in [["--round-trips", "3"], ["--only", "mlp"], ["--torch", "t.json"]] {
            let mixed = try emc(["bench", "threads", "--sums"] + other)
            #expect(mixed.status != 0 && mixed.stderr.contains(other[0]), "\(other): \(mixed.stderr)")
        }
    }

    @Test("each benchmark refuses a count or a time it cannot measure with, by name, before any work",
          arguments: [["crc", "--repeats", "0"], ["crc", "--mebibytes", "0"], ["shards", "--samples=-1"], ["train", "--seconds", "0"],
                      ["train", "--batch", "0"], ["threads", "--repeats", "0"], ["threads", "--seconds=-1"], ["threads", "--threads", "1,x"],
                      ["threads", "--threads", "1,,2"], ["threads", "--threads", "0"], ["gradients", "--repeats", "0"],
                      ["conv", "--batch", "0"], ["loader", "--repeats", "0"], ["jpeg", "--images", "0"], ["jpeg", "--size", "0"],
                      ["shampoo", "--seconds", "0"], ["hessian", "--steps", "0"], ["hessian", "--samples", "0"], ["report", "--seeds", "0"],
                      ["report", "--repeats", "2000"], ["search", "--data", "none", "--low", "0"],
                      ["search", "--data", "none", "--low", "100", "--high", "10"], ["search", "--data", "none", "--points", "0"]])
    func benchCountsRefused(_ arguments: [String]) throws {
        let r = try emc(["bench"] + arguments)
        // The option refused: the last one named (the others set up the case).
        let option = arguments.last(where: { $0.hasPrefix("--") })!.split(separator: "=")[0]
        #expect(r.status != 0 && r.stderr.contains("\(option) takes"), "\(arguments): \(r.stderr)")
        #expect(r.stderr.contains("emc bench \(arguments[0])"), "the usage names the subcommand: \(r.stderr)")
    }
}
