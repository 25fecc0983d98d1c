import ArgumentParser
import EMCCore
import EMCPipeline
import EMCVariants
import EMCShards
import Foundation

struct Synth: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a procedural class-conditional image set (a stand-in for ImageNet-20MS) straight into shards.",
        discussion: "Each image is a pure function of (seed, index); generation runs on all cores with bounded memory.\n\nExample: emc synth --samples 100000 --size 128 --classes 10 --out datasets/synth-100k")

    @Option(help: "Train samples.")
    var samples: Int

    @Option(help: "Test samples (default: a tenth of --samples, at most 10,000).")
    var testSamples: Int?

    @Option(help: "Image side in pixels.")
    var size = 128

    @Option(help: "Classes.")
    var classes = 10

    @Option(help: "Seed.")
    var seed: UInt64 = 0

    @Option(help: "Output folder.")
    var out: String

    @Option(help: "Codec.")
    var codec = CodecArgument(spec: .zstdDelta)

    @Option(help: "Worker threads (default: all cores).")
    var threads: Int?

    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard samples > 0 else { throw ValidationError("--samples must be positive") }
    }

    func run() throws {
        let generator = try SyntheticImages(size: size, classes: classes, seed: seed)
        var options = ShardSetOptions(codec: codec.spec, seed: seed)
        options.threads = threads ?? EMCEnvironment.cpuCount
        let test = testSamples ?? min(10_000, samples / 10)
        let progress = ProgressReporter("synth", total: samples + test, unit: "images", quiet: output.quiet || output.json)
        let start = Clock.now()
        let manifest = try generator.write(to: out, train: samples, test: test, options: options, progress: progress)
        progress.finish()
        let seconds = Clock.now() - start
        let bytes = manifest.splits.values.flatMap(\.shards).reduce(0) { $0 + $1.bytes }
        struct Summary: Encodable { var out: String; var train: Int; var test: Int; var bytes: Int; var seconds: Double; var imagesPerSecond: Double; var peakRSS: Int }
        let summary = Summary(out: out, train: samples, test: test, bytes: bytes, seconds: seconds,
                              imagesPerSecond: Double(samples + test) / seconds, peakRSS: EMCEnvironment.peakRSS)
        if output.json { return try printJSON(summary) }
        if output.quiet { return }
        print("wrote \(out): \(samples) train + \(test) test images of \(size)×\(size)×3, \(classes) classes, \(formatBytes(bytes)) "
              + "(\(String(format: "%.1f", Double((samples + test) * size * size * 3) / Double(max(1, bytes))))× smaller than raw) in \(formatDuration(seconds)), "
              + "\(formatRate(summary.imagesPerSecond)) images/s, peak RSS \(formatBytes(summary.peakRSS))")
    }
}
