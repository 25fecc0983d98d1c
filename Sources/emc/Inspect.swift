import ArgumentParser
import EMCConvert
import EMCCore
import EMCFormats
import EMCPipeline
import EMCVariants
import Foundation

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Describe a shard set: schema, classes, splits, class histograms, provenance.",
        discussion: "With --sheet, also writes a PNG contact sheet with one row of samples per class.")

    @Argument(help: "The shard set folder.")
    var directory: String

    @Option(help: "Write a PNG contact sheet here.")
    var sheet: String?

    @Option(help: "Split shown on the contact sheet.")
    var sheetSplit = "train"

    @Option(help: "Samples per class on the contact sheet.")
    var perClass = 12

    @Flag(help: "Replace a file already at --sheet (never one of the set's own files).")
    var force = false

    @OptionGroup var output: OutputOptions

    func run() throws {
        if let sheet { try OutputPaths.check([sheet], force: force, inputs: [directory]) }
        let info = try Inspection.of(directory: directory)
        if let sheet {
            let image = try ContactSheet.make(directory: directory, split: sheetSplit, perClass: perClass)
            try AtomicFileWriter.write(try PNG.encode(image), to: sheet)
        }
        if output.json { return try printJSON(info) }
        print("\(info.name) at \(info.directory)")
        print("  samples: \(info.schema)")
        print("  classes: \(info.classes.count)" + (info.classes.coarseNames.map { ", grouped into \($0.count) coarse classes" } ?? ""))
        let stats = zip(info.statistics.mean, info.statistics.std).prefix(8).map { String(format: "%.2f±%.2f", $0, $1) }
        print("  train mean±std per \(info.schema.kind == .image ? "channel" : "feature"): \(stats.joined(separator: ", "))\(info.statistics.mean.count > 8 ? ", ..." : "")")
        print("  made by \(info.provenance.tool) with the \(info.provenance.decoder) decoder, codec \(info.provenance.codec), "
              + (info.splits.allSatisfy(\.shuffled) ? "shuffled with seed \(info.provenance.shuffleSeed)" : "in source order"))
        if let variant = info.variant {
            print("  variant of \(variant.base) (content id \(variant.baseContentId.prefix(12))): "
                  + ([variant.labelTransform].compactMap { $0 } + variant.inputTransforms).joined(separator: "; ")
                  + (variant.labelFiles.isEmpty ? "" : " (labels changed in: \(variant.labelFiles.keys.sorted().joined(separator: ", ")))"))
        } else {
            for s in info.provenance.sources { print("  source \(s.file): \(formatBytes(s.bytes)), md5 \(s.md5)") }
        }
        if !info.provenance.skipped.isEmpty { print("  skipped \(info.provenance.skipped.count) bad file(s)") }
        print("  content id \(info.contentId)")
        for split in info.splits {
            print("\n  \(split.name): \(split.samples) samples, \(split.shards) shard(s), \(split.chunks) chunks, \(formatBytes(split.bytes))")
            let peak = max(1, split.classCounts.max() ?? 1)
            for (label, count) in split.classCounts.enumerated() {
                let bar = String(repeating: "#", count: count * 30 / peak)
                let name = info.classes.name(label)
                print("    \(String(format: "%3d", label)) \(name.padding(toLength: 14, withPad: " ", startingAt: 0)) \(String(format: "%8d", count)) \(bar)")
            }
        }
        if let sheet { print("\nwrote contact sheet \(sheet)") }
    }
}
