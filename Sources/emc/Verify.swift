import ArgumentParser
import EMCCore
import EMCShards
import Foundation

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check every chunk, checksum and count of a shard set against its manifest.",
        discussion: "Exits 0 only when everything is intact; otherwise lists each damaged shard, chunk and sample range.")

    @Argument(help: "The shard set folder.")
    var directory: String

    @OptionGroup var output: OutputOptions

    func run() throws {
        let total = (try? DatasetManifest.load(directory: directory)).map { $0.splits.values.reduce(0) { $0 + $1.samples } }
        let progress = ProgressReporter("verify", total: total, unit: "samples", quiet: output.quiet || output.json)
        let report = ShardSetVerifier.verify(directory: directory, progress: progress)
        progress.finish()
        if output.json {
            try printJSON(report)
        } else if report.ok {
            if !output.quiet { print("ok: \(directory): \(report.shardsChecked) shard(s), \(report.chunksChecked) chunks, \(report.samplesChecked) samples, \(formatBytes(report.bytesChecked)) intact") }
        } else {
            print("DAMAGED: \(directory): \(report.problems.count) problem(s)")
            for p in report.problems {
                let place = [p.split.map { "split \($0)" }, p.file, p.chunk.map { "chunk \($0)" }, p.samples.map { "samples \($0)" }]
                    .compactMap { $0 }.joined(separator: ", ")
                print("  \(place.isEmpty ? "" : place + ": ")\(p.message)")
            }
        }
        if !report.ok { throw ExitCode(1) }
    }
}
