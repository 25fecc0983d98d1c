import ArgumentParser
import EMCBench
import EMCCore
import EMCSearch
import Foundation

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure emc's speed against baselines measured in the same run.",
        discussion: "Each benchmark prints a table of medians and ratios with the machine it ran on. Build with -c release first.",
        subcommands: [BenchCRC.self, BenchShards.self, BenchTrain.self, BenchThreads.self, BenchGradients.self, BenchConv.self, BenchLoader.self, BenchRead.self, BenchSearch.self, BenchSearchRules.self, BenchCalibration.self, BenchReportSpeed.self, BenchShampoo.self, BenchHessian.self, BenchJPEG.self, BenchExportTorch.self])
}

/// Flags every benchmark has.
struct BenchOutputOptions: ParsableArguments {
    @Flag(help: "Print machine-readable JSON on stdout.")
    var json = false

    func show(_ report: BenchReport) throws { print(json ? try report.json() : report.text) }
    /// Progress lines go to stderr, and only with the text table.
    func progress(_ line: String) { if !json { StandardStreams.error(line + "\n") } }
}

/// The checks the benchmarks' counts share, before any work: a median needs a repetition, a rate needs time and
/// samples, and a count past these bounds is a typo rather than a measurement.
enum BenchChecks {
    static func repeats(_ value: Int) throws {
        guard (1...1000).contains(value) else { throw ValidationError("--repeats takes a count from 1 to 1000, like 5, not \(value)") }
    }

    static func seconds(_ value: Double) throws {
        guard value > 0, value <= 3600 else { throw ValidationError("--seconds takes a time above 0 and up to 3600, like 0.5, not \(value)") }
    }

    static func batch(_ value: Int) throws {
        guard (1...65_536).contains(value) else { throw ValidationError("--batch takes a size from 1 to 65536, like 128, not \(value)") }
    }

    /// `--NAME` between `range`'s bounds.
    static func count(_ name: String, _ value: Int, _ range: ClosedRange<Int>) throws {
        guard range.contains(value) else { throw ValidationError("--\(name) takes a count from \(range.lowerBound) to \(range.upperBound), not \(value)") }
    }
}

struct BenchCRC: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "crc", abstract: "CRC32C throughput: hardware path, software path, and memory-read ceiling.")
    @Option(help: "Buffer size in MiB.") var mebibytes = 64
    @Option(help: "Repetitions; the median is reported.") var repeats = 9
    @OptionGroup var output: BenchOutputOptions

    func validate() throws {
        try BenchChecks.count("mebibytes", mebibytes, 1...16_384)
        try BenchChecks.repeats(repeats)
    }

    func run() throws { try output.show(BenchReports.crc(mebibytes: mebibytes, repeats: repeats)) }
}

struct BenchShards: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shards", abstract: "Shard codecs: size ratio, write MB/s, sequential and random-order reads, beside the raw-file ceiling.")
    @Option(help: "Samples per dataset.") var samples = 200_000
    @Option(help: "Repetitions of each read; the median is reported.") var repeats = 3
    @Option(help: "Codecs to measure, comma-separated.") var codecs = "none,lz4,lz4-delta,zstd,zstd-delta"
    @Option(help: "Folder to work in (needs about 2 GB); the benchmark makes a fresh folder inside it and removes only that (default: $TMPDIR or /tmp).") var scratch: String?
    @OptionGroup var output: BenchOutputOptions

    func validate() throws {
        try BenchChecks.count("samples", samples, 1...100_000_000)
        try BenchChecks.repeats(repeats)
    }

    func run() throws {
        try output.show(BenchReports.shards(samples: samples, repeats: repeats, codecs: codecs.split(separator: ",").map(String.init),
                                            scratch: scratch, progress: output.progress))
    }
}

struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train", abstract: "Training speed (forward + backward + SGD step) of every model family at 1 thread, and GEMM efficiency.",
        discussion: """
            Pass --torch with the JSON of scripts/bench/torch_train.py --json to print PyTorch's figures beside emc's.

            GEMM GFLOP/s counts every matrix product and convolution of the step (forward, weight and input gradients) \
            over the whole step's time; "model / raw" sets it beside raw sgemm on the model's largest product. \
            "its layer" times the layer with that product alone (forward, weight and input gradients) and counts its \
            FLOPs, whichever kernel computes them; "layer / raw" sets that beside the same raw sgemm.
            """)
    @Option(help: "Batch size.") var batch = 128
    @Option(help: "Seconds per measurement.") var seconds = 0.5
    @Option(help: "Repetitions; the median is reported.") var repeats = 5
    @Option(help: "JSON from scripts/bench/torch_train.py --json, for a side-by-side table.") var torch: String?
    @Option(help: "Only the rows whose model spec contains this text (e.g. resnet).") var only: String?
    @Flag(inversion: .prefixedNo, help: "Also time raw sgemm on each model's largest product, and the layer with it alone (off: only training runs, for a profiler).")
    var rawSgemm = true
    @OptionGroup var output: BenchOutputOptions

    func validate() throws {
        try BenchChecks.batch(batch)
        try BenchChecks.seconds(seconds)
        try BenchChecks.repeats(repeats)
    }

    func run() throws {
        try output.show(BenchReports.train(batch: batch, seconds: seconds, repeats: repeats, torchJSON: torch, only: only, rawSgemm: rawSgemm,
                                           progress: output.progress))
    }
}

struct BenchThreads: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "threads", abstract: "One trial's training step on 1, 2, … threads (--threads), beside PyTorch at the same counts, with the scaling model.",
        discussion: """
            The models of `emc bench train` at batch 128. For PyTorch, run scripts/bench/torch_train.py --threads 1,2 --json > t.json \
            (the counts alternating in one run) and pass --torch t.json, or --threads N for each count and --torch N=tN.json. \
            Then a profile by layer at 1 and 2 threads, from which the scaling model predicts 8, 32 and 128 threads (docs/benchmarks.md, "One trial on every core"). Before each repetition it times the team's \
            core round trip; --round-trips S prints that alone every 0.2 s for S seconds ("Cores near and far"). --sums times batch \
            norm's backward sums alone on 1 and 2 threads at its two arithmetics: over the whole batch (split by channels) and by \
            micro-batches (split by samples) ("Batch norm's sums on two cores").
            """)
    @Option(help: "Thread counts, comma-separated.") var threads = "1,2"
    @Option(help: "Batch size.") var batch = 128
    @Option(help: "Seconds per measurement.") var seconds = 0.5
    @Option(help: "Repetitions; the median is reported.") var repeats = 5
    @Option(help: "PyTorch's JSON: FILE from torch_train.py --threads 1,2, or N=FILE for one count (repeat for each).") var torch: [String] = []
    @Option(help: "Only the rows whose model spec contains this text (e.g. resnet).") var only: String?
    @Option(help: "Instead of training: a two-thread team's core round trip every 0.2 s for this many seconds.")
    var roundTrips: Double?
    @Flag(help: "Instead of training: batch norm's backward sums on 1 and 2 threads, over the whole batch (split by channels) and by micro-batches (split by samples), in cache and from memory (of the options above, only --repeats applies).")
    var sums = false
    @OptionGroup var output: BenchOutputOptions

    /// The thread counts of --threads (nil for a piece that is not a count).
    private var counts: [Int?] { threads.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) } }

    func validate() throws {
        try BenchChecks.batch(batch)
        try BenchChecks.seconds(seconds)
        try BenchChecks.repeats(repeats)
        if sums && roundTrips != nil { throw ValidationError("--sums and --round-trips are two measurements of their own: choose one") }
        if (sums || roundTrips != nil) && (!torch.isEmpty || only != nil) {
            throw ValidationError("--torch and --only choose the training rows; --sums and --round-trips train nothing")
        }
        if let roundTrips {
            guard roundTrips > 0, roundTrips <= 3600 else { throw ValidationError("--round-trips takes seconds from 0 to 3600, like 40") }
        }
        guard counts.allSatisfy({ $0.map { (1...256).contains($0) } ?? false }) else {
            throw ValidationError("--threads takes counts from 1 to 256, like 1,2, not \(threads)")
        }
        for item in torch {
            // N=FILE when the text before the first "=" is a count; otherwise the whole text is FILE.
            guard let count = BenchReports.torchThreadCount(item) else { continue }
            guard (1...256).contains(count) else {
                throw ValidationError("--torch takes N=FILE with N from 1 to 256 (a thread count and PyTorch's JSON at it) or FILE (from --threads 1,2), not \(item)")
            }
        }
    }

    func run() throws {
        if sums {
            try output.show(BenchReports.channelSums(repeats: repeats, progress: output.progress))
            return
        }
        if let roundTrips {
            try output.show(BenchReports.roundTrips(seconds: roundTrips, progress: output.progress))
            return
        }
        let reports = try BenchReports.threads(threads: counts.compactMap { $0 }, batch: batch, seconds: seconds, repeats: repeats, only: only, torchJSON: torch,
                                               progress: output.progress)
        // JSON: the first report's records hold the profile too.
        for report in output.json ? Array(reports.prefix(1)) : reports { try output.show(report) }
    }
}

/// The options of the benchmarks that time single layers of `emc bench train`'s models.
struct LayerBenchOptions: ParsableArguments {
    @Option(help: "Batch size.") var batch = 128
    @Option(help: "Seconds per measurement.") var seconds = 0.3
    @Option(help: "Repetitions; the median is reported.") var repeats = 5
    @Option(help: "Only the models whose spec contains this text (e.g. resnet).") var only: String?

    func validate() throws {
        try BenchChecks.batch(batch)
        try BenchChecks.seconds(seconds)
        try BenchChecks.repeats(repeats)
    }
}

struct BenchGradients: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gradients", abstract: "The weight-gradient product of every layer in `emc bench train`'s models, by OpenBLAS and by emc's tall kernel.",
        discussion: "Each distinct product C[m×n] += Aᵀ·B (k = batch × output pixels) once, 1 thread, both results compared.")
    @OptionGroup var layers: LayerBenchOptions
    @OptionGroup var output: BenchOutputOptions

    func run() throws { try output.show(BenchReports.gradients(batch: layers.batch, seconds: layers.seconds, repeats: layers.repeats, only: layers.only, progress: output.progress)) }
}

struct BenchConv: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conv", abstract: "Every \"same\"-padded convolution in `emc bench train`'s models (any stride), by im2row with OpenBLAS and by the direct path.",
        discussion: "Forward and backward (weight, bias and input gradients) of each distinct layer once, 1 thread.")
    @OptionGroup var layers: LayerBenchOptions
    @OptionGroup var output: BenchOutputOptions

    func run() throws { try output.show(BenchReports.conv(batch: layers.batch, seconds: layers.seconds, repeats: layers.repeats, only: layers.only, progress: output.progress)) }
}

struct BenchLoader: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loader", abstract: "Pipeline throughput (float batches of 128), cached and streaming, beside the raw-file ceiling.")
    @Option(help: "Repetitions (epochs); the median is reported.") var repeats = 3
    @Option(help: "Folder to work in; the benchmark makes a fresh folder inside it and removes only that (default: $TMPDIR or /tmp).") var scratch: String?
    @OptionGroup var output: BenchOutputOptions

    func validate() throws { try BenchChecks.repeats(repeats) }

    func run() throws { try output.show(BenchReports.loader(repeats: repeats, scratch: scratch, progress: output.progress)) }
}

struct BenchRead: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "read", abstract: "Stream one split of a shard set once: throughput and peak memory.")
    @Argument(help: "The shard set.") var directory: String
    @Option(help: "Split.") var split = "train"
    @OptionGroup var output: BenchOutputOptions

    func run() throws { try output.show(BenchReports.read(directory: directory, split: split)) }
}

struct BenchJPEG: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jpeg",
        abstract: "Converting a folder of ImageNet-size JPEGs (about 500×375, q90, made with libturbojpeg) to 64×64 shards, with and without DCT scaling.")
    @Option(help: "Images.") var images = 600
    @Option(help: "Target side.") var size = 64
    @Option(help: "Folder to work in; the benchmark makes a fresh folder inside it and removes only that (default: $TMPDIR or /tmp).") var scratch: String?
    @OptionGroup var output: BenchOutputOptions

    func validate() throws {
        try BenchChecks.count("images", images, 1...1_000_000)
        try BenchChecks.count("size", size, 1...4096)
    }

    func run() throws { try output.show(BenchReports.jpeg(images: images, size: size, scratch: scratch)) }
}

struct BenchShampoo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shampoo",
        abstract: "Shampoo's time per training step against SGD (mlp:width=256 and cnn:channels=32 on 28×28×1, batch 128), at freq 10 and 1.")
    @Option(help: "Batch size.") var batch = 128
    @Option(help: "Seconds per measurement.") var seconds = 1.0
    @Option(help: "Repetitions (the median is reported).") var repeats = 5
    @OptionGroup var output: BenchOutputOptions

    func validate() throws {
        try BenchChecks.batch(batch)
        try BenchChecks.seconds(seconds)
        try BenchChecks.repeats(repeats)
    }

    func run() throws {
        try output.show(ShampooBenchmark.run(batch: batch, seconds: seconds, repeats: repeats, progress: output.progress))
    }
}

struct BenchHessian: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hessian",
        abstract: "The Hessian check's cost in full passes (mlp:width=32 at n = 10,000 and cnn:channels=8 at n / 5), single-batch and in micro-batches.")
    @Option(help: "Samples of the MLP's check (the CNN's is a fifth).") var samples = 10_000
    @Option(help: "Lanczos steps.") var steps = 40
    @Option(help: "Repetitions (the median is reported).") var repeats = 3
    @OptionGroup var output: BenchOutputOptions

    func validate() throws {
        try BenchChecks.count("samples", samples, 5...10_000_000)
        try BenchChecks.count("steps", steps, 1...1000)
        try BenchChecks.repeats(repeats)
    }

    func run() throws {
        try output.show(HessianBenchmark.run(samples: samples, steps: steps, repeats: repeats, progress: output.progress))
    }
}

struct BenchExportTorch: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export-torch",
        abstract: "Write a freshly initialised model and one fixed batch for scripts/bench/torch_fixtures.py (the PyTorch reference fixtures).",
        shouldDisplay: false)
    @Option(help: "Model spec.") var model: String
    @Option(help: "Input shape HxWxC.") var input = "8x8x3"
    @Option(help: "Classes.") var classes = 5
    @Option(help: "Batch size.") var batch = 4
    @Option(help: "Initialisation and batch seed.") var seed: UInt64 = 1
    @Option(help: "Output folder.") var out: String
    @Option(help: "Also the native Hessian check on the batch, with this many Lanczos steps.") var hessianSteps: Int?
    @Flag(help: "Overwrite an existing export.") var force = false

    func run() throws {
        if let hessianSteps, !(1...1000).contains(hessianSteps) { throw ValidationError("--hessian-steps must be between 1 and 1000") }
        let parts = input.split(separator: "x").compactMap { Int($0) }
        guard parts.count == 3, parts.allSatisfy({ $0 >= 1 && $0 <= 4096 }) else {
            throw ValidationError("--input must be HxWxC with each between 1 and 4096, got '\(input)'")
        }
        guard classes >= 2, batch >= 1, batch <= 4096 else { throw ValidationError("--classes must be at least 2 and --batch between 1 and 4096") }
        let meta = try TorchExport.write(spec: model, input: FeatureShape(height: parts[0], width: parts[1], channels: parts[2]), classes: classes,
                                         batch: batch, seed: seed, to: out, force: force, hessianSteps: hessianSteps)
        print("\(meta.spec): \(meta.parameterCount) parameters in \(meta.tensors.count) tensors → \(out)")
    }
}

struct BenchReportSpeed: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "emc report's speed over synthetic results logs of several sizes, and a sweep manifest's expansion into its searches.")
    @Option(help: "Configurations per log, comma-separated.") var configurations = "100,2500"
    @Option(help: "Seeds per configuration.") var seeds = 3
    @Option(help: "Repetitions; the median is reported.") var repeats = 3
    @Option(help: "Manifest sizes (searches) to expand, comma-separated.") var manifestCells = "100000,1000000"
    @OptionGroup var output: BenchOutputOptions

    func validate() throws {
        try BenchChecks.count("seeds", seeds, 1...100)
        try BenchChecks.repeats(repeats)
    }

    func run() throws {
        let counts = configurations.split(separator: ",").compactMap { Int($0) }, cells = manifestCells.split(separator: ",").compactMap { Int($0) }
        guard !counts.isEmpty, counts.allSatisfy({ (1...100_000).contains($0) }), cells.allSatisfy({ (10...10_000_000).contains($0) }) else {
            throw ValidationError("--configurations takes 1 to 100000 per log, --manifest-cells 10 to 10000000")
        }
        try output.show(BenchReports.report(configurations: counts, seeds: seeds, repeats: repeats, manifestCells: cells, progress: output.progress))
    }
}

struct BenchSearchRules: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "search-rules",
        abstract: "The search's confirmation and refinement rules compared on simulated fitters with known boundaries: coverage, error and cost.")
    @Option(help: "Simulated configurations per rule.") var searches = 200
    @Option(help: "Seeds per configuration.") var seeds = 3
    @OptionGroup var output: BenchOutputOptions

    func validate() throws {
        guard (1...100_000).contains(searches) else { throw ValidationError("--searches must be between 1 and 100000") }
        guard (1...100).contains(seeds) else { throw ValidationError("--seeds must be between 1 and 100") }
    }

    func run() throws {
        try output.show(BenchReports.searchRules(searches: searches, seeds: seeds, threads: EMCEnvironment.cpuCount, progress: output.progress))
    }
}

struct BenchCalibration: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "calibration",
        abstract: "The boundary's 90% interval on simulated searches from generators with and without subset effects, asymmetric links, lapses and budget failures: its coverage, width and cost.")
    @Option(help: "Simulated searches per generator.") var searches = 1000
    @Option(help: "Seeds (subsets) per search.") var seeds = SearchSettings.defaults.seeds
    @Option(help: "The per-seed bisection's resolution.") var resolution = SearchSettings.defaults.resolution
    @Option(help: "Refinement trials over all seeds.") var refinementCap = SearchSettings.defaults.rules.refinementCap
    @Option(help: "Which failing trials are confirmed: final, each or off.") var confirm = SearchSettings.defaults.rules.confirmation
    @OptionGroup var output: BenchOutputOptions

    func validate() throws {
        guard (1...100_000).contains(searches) else { throw ValidationError("--searches must be between 1 and 100000") }
        guard (1...100).contains(seeds) else { throw ValidationError("--seeds must be between 1 and 100") }
    }

    func run() throws {
        var rules = SearchSettings.defaults.rules
        rules.refinementCap = refinementCap
        rules.confirmation = confirm
        try output.show(BenchReports.calibration(searches: searches, seeds: seeds, rules: rules, resolution: resolution, threads: EMCEnvironment.cpuCount,
                                                 progress: output.progress))
    }
}

struct BenchSearch: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "search",
        abstract: "The EMC search against the authors' method (every point of a fixed 20-point log grid trained), same model and rules.",
        discussion: "Example: emc bench search --data datasets/fashion-mnist --model mlp:width=32,depth=1")
    @Option(help: "The shard set.") var data: String
    @Option(help: "Model spec.") var model = "mlp:width=32,depth=1"
    @OptionGroup var training: TrainingOptions
    @Option(help: "Grid: smallest n.") var low = 4
    @Option(help: "Grid: largest n.") var high = 50_000
    @Option(help: "Grid points.") var points = 20
    @Flag(help: "Skip the grid (only the search).") var noGrid = false
    @OptionGroup var output: BenchOutputOptions

    func validate() throws {
        try BenchChecks.count("low", low, 1...100_000_000)
        try BenchChecks.count("high", high, low...max(low, 100_000_000))
        try BenchChecks.count("points", points, 1...1000)
    }

    func run() throws {
        try output.show(BenchReports.search(settings: try training.settings(data: data, model: model), grid: noGrid ? nil : (low, high, points), progress: output.progress))
    }
}
