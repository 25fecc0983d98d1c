import ArgumentParser
import EMCConvert
import EMCCore
import EMCFormats
import EMCShards
import Foundation

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a raw dataset (IDX, CIFAR, JPEG/PNG folders, NPZ batches, tabular CSV) into a shard set.",
        discussion: """
        DATASET is a name from manifests/datasets (\(DatasetDefinition.knownNames().joined(separator: ", "))) or a path \
        to such a JSON file. image-folder reads any root/<class>/<image> tree of JPEG and PNG files.
        Samples are written in a seeded random order, so any prefix is a uniform random subset.
        Rerunning an interrupted conversion resumes it; rerunning a finished one does nothing.

        Example: emc convert fashion-mnist --raw /usr/share/datasets/fashion-mnist --out datasets/fashion-mnist
        """)

    @Argument(help: "Dataset name or definition file.")
    var dataset: String

    @Option(help: "The raw files: a folder (IDX, extracted CIFAR) or an archive (cifar-10-binary.tar.gz).")
    var raw: String

    @Option(help: "Output folder for the shard set (default: datasets/<dataset>).")
    var out: String?

    @Option(help: "Codec: auto, none, lz4, lz4-delta, zstd, zstd-delta (optionally :level).")
    var codec = CodecArgument.auto

    @Option(help: "Shuffle seed.")
    var seed: UInt64 = 0

    @Flag(help: "Keep the source order instead of shuffling.")
    var noShuffle = false

    @Option(help: "Target shard size in MiB of raw data.")
    var shardSize = 256

    @Option(help: "Exact samples per shard (rounded up to whole chunks); overrides --shard-size.")
    var shardSamples: Int?

    @Option(help: "Target chunk size in KiB of raw data.")
    var chunkSize = 1024

    @Option(help: "Worker threads (default: all cores).")
    var threads: Int?

    @Option(help: "Image folders: output side in pixels (default: the dataset definition's, 64 for image-folder).")
    var size: Int?

    @Option(help: "Image folders: center-crop (shorter side to --size, then the centre) or stretch.")
    var resize = Resize.Mode.centerCrop

    @Option(help: "NPZ without class names: the number of classes (needed when the labels alone make an implausible count).")
    var classes: Int?

    @Option(help: "Image folders: refuse images with more pixels than this.")
    var maxPixels = RasterImage.defaultMaxPixels

    @Flag(help: "Image folders: skip files that do not decode (listed in the manifest) instead of failing.")
    var skipBad = false

    @Flag(help: "Fail when a source file does not match its published checksum or expected size.")
    var strict = false

    @Flag(help: "Replace a different shard set already in the output folder.")
    var force = false

    @Option(help: "Folder of dataset definitions (default: manifests/datasets, found from here or the executable).")
    var manifests: String?

    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard shardSize > 0, chunkSize > 0, (threads ?? 1) > 0 else { throw ValidationError("--shard-size, --chunk-size and --threads must be positive") }
        if let s = shardSamples, s <= 0 { throw ValidationError("--shard-samples must be positive") }
        guard maxPixels > 0 else { throw ValidationError("--max-pixels must be positive") }
        if let c = classes, !(1...(1 << 24)).contains(c) { throw ValidationError("--classes must be between 1 and 16777216") }
    }

    func run() throws {
        let definition = try DatasetDefinition.load(dataset, manifests: manifests)
        var options = ShardSetOptions(codec: codec.spec, seed: seed, shuffle: !noShuffle)
        options.shardBytes = shardSize << 20
        options.shardSamples = shardSamples
        options.chunkBytes = chunkSize << 10
        options.threads = threads ?? EMCEnvironment.cpuCount
        var request = ConvertRequest(dataset: definition, raw: raw, out: out ?? "datasets/\(definition.name)", options: options)
        request.strict = strict
        request.force = force
        request.imageSize = size
        request.resize = resize
        request.classes = classes
        request.skipBad = skipBad
        request.maxPixels = maxPixels
        let result = try Converter.run(request, quiet: output.quiet || output.json) { line in
            StandardStreams.error(line + "\n")
        }
        try ConvertPrinter.show(result, output: output)
    }
}

/// How `emc convert` reports a conversion.
enum ConvertPrinter {
    static func show(_ result: ConvertResult, output: OutputOptions) throws {
        if output.json { return try printJSON(result) }
        if output.quiet { return }  // warnings went to stderr; success says nothing
        if result.alreadyConverted {
            print("\(result.out) already holds this conversion (content id \(result.contentId.prefix(12))); nothing to do.")
            return
        }
        for check in result.checks {
            let status = check.status == .match ? "matches the published MD5"
                : check.status == .contentMatch ? "recompressed copy; its content matches the published MD5"
                : check.status == .mismatch ? "DOES NOT MATCH the published MD5" : "no published checksum"
            print("  source \(FileSystem.baseName(check.file)): \(status)")
        }
        for split in result.splits {
            let size = split.ratio >= 1 ? String(format: "%.2f× smaller than raw", split.ratio) : String(format: "%.2f× the raw size", split.ratio)
            print("  \(split.name): \(split.samples) samples in \(split.shards) shard(s), \(formatBytes(split.bytes)) (\(size))")
        }
        if result.reusedShards > 0 { print("  resumed: \(result.reusedShards) shard(s) kept from the interrupted run") }
        print("wrote \(result.out) (\(result.dataset), codec \(result.codec), content id \(result.contentId.prefix(12))) in \(formatDuration(result.seconds))")
    }
}

/// `--codec`: auto (chosen from the data) or a codec spec such as `zstd-delta:3`; a bad one is a parse error.
struct CodecArgument: ExpressibleByArgument, CustomStringConvertible {
    /// nil: automatic.
    let spec: CodecSpec?
    static let auto = CodecArgument(spec: nil)

    init(spec: CodecSpec?) { self.spec = spec }

    init?(argument: String) {
        if argument == "auto" { spec = nil; return }
        guard let spec = try? CodecSpec(parsing: argument) else { return nil }
        self.spec = spec
    }

    var description: String { spec?.description ?? "auto" }
    var defaultValueDescription: String { description }
}

/// Prints any Encodable as pretty JSON on stdout.
func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

extension Resize.Mode: ExpressibleByArgument {}
