import EMCCore
import Foundation
import Testing

/// The repository root, found from this file.
private let root: String = {
    var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(3)
    return parts.joined(separator: "/")
}()

@Suite("The module walls of docs/architecture.md")
struct ArchitectureTests {
    /// target → the modules its row allows, read from the table in docs/architecture.md.
    static func allowed() throws -> [String: Set<String>] {
        let text = try String(contentsOfFile: root + "/docs/architecture.md", encoding: .utf8)
        var rows: [String: Set<String>] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix("| `") {
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 4 else { continue }
            let targets = cells[1].split(separator: ",").map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "` ")) }
            let imports = Set(cells[3].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })
            for t in targets { rows[t] = imports }
        }
        return rows
    }

    @Test("every target has a row, and no source file imports a module its row does not allow")
    func imports() throws {
        let rows = try Self.allowed()
        let everywhere: Set<String> = ["Foundation", "Glibc", "Darwin"]
        let targets = try FileSystem.list(root + "/Sources").filter { FileSystem.isDirectory(root + "/Sources/" + $0) }
        #expect(targets.count >= 20)
        for target in targets {
            guard let allowed = rows[target] else { Issue.record("docs/architecture.md has no row for \(target)"); continue }
            for file in try FileSystem.list(root + "/Sources/" + target) where file.hasSuffix(".swift") {
                let text = try String(contentsOfFile: root + "/Sources/\(target)/\(file)", encoding: .utf8)
                for line in text.split(separator: "\n") where line.hasPrefix("import ") {
                    let module = String(line.dropFirst(7)).trimmingCharacters(in: .whitespaces)
                    #expect(allowed.contains(module) || everywhere.contains(module), "Sources/\(target)/\(file) imports \(module), which its row does not allow")
                }
            }
        }
    }

    @Test("libraries name no command-line flag in their code paths that build arguments (the wall: only Sources/emc parses flags)")
    func noArgumentLists() throws {
        for target in try FileSystem.list(root + "/Sources") where target.hasPrefix("EMC") {
            for file in try FileSystem.list(root + "/Sources/" + target) where file.hasSuffix(".swift") {
                let text = try String(contentsOfFile: root + "/Sources/\(target)/\(file)", encoding: .utf8)
                if target == "EMCSweeps" && file == "Slurm.swift" {
                    // Slurm's own commands (sbatch, squeue, sacct) are spoken here; emc's command lines come from Sources/emc.
                    for flag in ["--collect", "--sweep-dir", "--settings-file", "--quiet", "--json", "--data", "--model"] {
                        #expect(!text.contains("\"\(flag)"), "Sources/EMCSweeps/Slurm.swift builds an emc command line (\(flag))")
                    }
                    continue
                }
                #expect(!text.contains("\"--"), "Sources/\(target)/\(file) builds a command line (a \"--flag\" string literal)")
            }
        }
    }
}

@Suite("The product speaks of itself")
struct ProductTextTests {
    /// Words that belong to a tracker or a work log, not to a description of emc. Spelled in pieces so that this file
    /// does not match itself.
    static let history = try! NSRegularExpression(pattern: "\\b(sess" + "ion|wa" + "ve|iss" + "ue [0-9]+)\\b", options: [.caseInsensitive])

    /// Every text file under `path` (a file or a folder), recursively.
    static func files(_ path: String) throws -> [String] {
        guard FileSystem.isDirectory(path) else { return [path] }
        return try FileSystem.list(path).flatMap { try files(path + "/" + $0) }
    }

    @Test("README.md, docs/, Sources/ and Tests/ describe emc in its own terms: no tracker numbers or work-log words")
    func noHistory() throws {
        var found: [String] = []
        for top in ["README.md", "docs", "Sources", "Tests"] {
            for file in try Self.files(root + "/" + top) where [".md", ".swift", ".c", ".h", ".py", ".json", ".jsonl", ".txt"].contains(where: file.hasSuffix) {
                guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { continue }
                for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                    let line = String(line)
                    if Self.history.firstMatch(in: line, range: NSRange(line.startIndex..., in: line)) != nil {
                        found.append("\(file.dropFirst(root.count + 1)):\(number + 1): \(line.prefix(120))")
                    }
                }
            }
        }
        #expect(found.isEmpty, "history words found:\n\(found.joined(separator: "\n"))")
    }
}
