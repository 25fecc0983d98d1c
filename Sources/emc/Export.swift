import ArgumentParser
import EMCConvert
import EMCCore
import EMCPipeline
import Foundation

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a split (or a seed's nested subset of it) as NumPy arrays, exactly as emc reads it (variants applied).",
        discussion: """
        Writes OUT.x.npy (uint8 N×H×W×C images or float32 N×F features, before normalisation), OUT.y.npy (int64 labels) \
        and, with --subset, OUT.positions.npy (the samples' positions in the split, in subset order). For checking other \
        tools against emc sample for sample.

        Example: emc export datasets/fashion-mnist-random --split train --subset 1000 --seed 2 --out /tmp/fm
        """)

    @Argument(help: "The shard set or variant.")
    var data: String

    @Option(help: "The split.")
    var split = "train"

    @Option(help: "Path prefix of the files to write.")
    var out: String

    @Option(parsing: .unconditional, help: "Only the seed's nested subset of this many samples (what a search trains on at this n).")
    var subset: Int?

    @Option(parsing: .unconditional, help: "The subset's seed.")
    var seed: UInt64 = 0

    @Option(help: "File format (npy).")
    var format = "npy"

    @Flag(help: "Overwrite existing files.")
    var force = false

    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard format == "npy" else { throw ValidationError("--format must be npy") }
        if let subset { guard subset >= 1 else { throw ValidationError("--subset must be at least 1") } }
    }

    func run() throws {
        var request = DatasetExport.Request(data: data, out: out)
        request.split = split
        request.subset = subset
        request.seed = seed
        request.force = force
        request.threads = EMCEnvironment.cpuCount
        let result = try DatasetExport.run(request)
        if output.json { return try printJSON(result) }
        if !output.quiet { print("wrote \(result.samples) samples (\(result.shape.map(String.init).joined(separator: "×"))): \(result.files.joined(separator: ", "))") }
    }
}
