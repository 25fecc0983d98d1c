import EMCConvert
import EMCCore
import EMCFormats
import EMCPipeline
import EMCSearch
import EMCShards
import EMCTrainer
import EMCVariants
import Foundation

private func f(_ v: Double, _ digits: Int = 0) -> String { String(format: "%.\(digits)f", v) }

/// A new private folder for one benchmark's files inside `parent` (created if missing, never emptied) or `$TMPDIR`.
private func freshScratch(_ prefix: String, in parent: String?) throws -> String {
    if let parent { try FileSystem.createDirectory(parent) }
    return try FileSystem.makeTemporaryDirectory(prefix: prefix, in: parent)
}

/// Each `emc bench` benchmark as a report: measured, then laid out as the table docs/benchmarks.md quotes.
public enum BenchReports {
    public static func crc(mebibytes: Int, repeats: Int) -> BenchReport {
        let rows = CRCBenchmark.run(bytes: mebibytes << 20, repeats: repeats)
        return BenchReport(title: "CRC32C over \(mebibytes) MiB (median of \(repeats))", header: ["path", "GB/s", "of memory ceiling"],
                           rows: rows.map { [$0.name, f($0.gbPerSecond, 2), f($0.ratio * 100) + "%"] }, records: rows)
    }

    /// `scratch`: the folder to work in (nil: `$TMPDIR`); the benchmark makes a fresh folder inside it and removes only that.
    public static func shards(samples: Int, repeats: Int, codecs: [String], scratch: String?, progress: (String) -> Void) throws -> BenchReport {
        let scratch = try freshScratch("emc-bench-shards", in: scratch)
        defer { FileSystem.removeTree(scratch) }
        let rows = try ShardBenchmark.run(samples: samples, repeats: repeats, codecs: codecs, directory: scratch, progress: progress)
        return BenchReport(
            title: "Shard read/write, \(samples) samples per dataset (reads: median of \(repeats), 1 thread; writes: \(EMCEnvironment.cpuCount) threads)",
            header: ["data", "codec", "ratio", "write MB/s", "seq samples/s", "seq MB/s", "seq / ceiling", "random samples/s", "random / ceiling"],
            rows: rows.map { r in
                [r.dataset, r.codec, f(r.ratio, 2), r.writeMBps > 0 ? f(r.writeMBps) : "-", f(r.sequentialSamplesPerSecond), f(r.sequentialMBps),
                 f(r.sequentialOfCeiling * 100) + "%", f(r.randomSamplesPerSecond), f(r.randomOfCeiling * 100) + "%"]
            }, records: rows)
    }

    /// `torchJSON`: the output of scripts/bench/torch_train.py --json, for PyTorch's figures beside emc's.
    public static func train(batch: Int, seconds: Double, repeats: Int, torchJSON: String?, only: String? = nil, rawSgemm: Bool = true,
                             progress: (String) -> Void = { _ in }) throws -> BenchReport {
        BLAS.useOneThread()
        var torchRates: [String: Double] = [:]
        var torchVersion = ""
        if let torchJSON {
            struct TorchFile: Decodable { var torch: String; var results: [Result]; struct Result: Decodable { var model: String; var input: String; var samplesPerSecond: Double } }
            let file: TorchFile
            do { file = try JSONDecoder().decode(TorchFile.self, from: Data(try ReadableFile.contents(of: torchJSON))) } catch let e as DecodingError {
                throw EMCError(.format, "not the JSON output of scripts/bench/torch_train.py: \(e)", file: torchJSON)
            }
            torchVersion = " vs PyTorch \(file.torch)"
            for r in file.results { torchRates["\(r.model)@\(r.input)"] = r.samplesPerSecond }
        }
        let rows = try TrainBenchmark.run(batch: batch, seconds: seconds, repeats: repeats, torch: torchRates, only: only, rawSgemm: rawSgemm, progress: progress)
        return BenchReport(
            title: "Training step (forward + backward + SGD momentum), batch \(batch), \(BLAS.threads) BLAS thread, median of \(repeats)\(torchVersion)",
            header: ["model", "input", "params", "emc samples/s", "torch samples/s", "emc / torch", "GEMM GFLOP/s", "largest GEMM", "raw sgemm GFLOP/s", "model / raw", "its layer GFLOP/s", "layer / raw"],
            rows: rows.map { r in
                [r.model, r.input, "\(r.parameters)", f(r.samplesPerSecond), r.torchSamplesPerSecond.map { f($0) } ?? "-",
                 r.torchSamplesPerSecond.map { f(r.samplesPerSecond / $0, 2) + "×" } ?? "-", f(r.gemmGFLOPs, 1), r.largestGemm, r.rawSgemmGFLOPs.map { f($0, 1) } ?? "-",
                 r.rawSgemmGFLOPs.map { f(r.gemmGFLOPs / $0 * 100) + "%" } ?? "-", r.heaviestLayerGFLOPs.map { f($0, 1) } ?? "-",
                 r.heaviestLayerGFLOPs.flatMap { layer in r.rawSgemmGFLOPs.map { f(layer / $0 * 100) + "%" } } ?? "-"]
            }, records: rows)
    }

    /// The thread count of a `--torch N=FILE` argument: the digits before its first "=", or nil when there are none (the
    /// whole argument is then the file, whatever it holds).
    public static func torchThreadCount(_ item: String) -> Int? {
        let prefix = item.prefix { $0 != "=" }
        guard prefix.count < item.count, !prefix.isEmpty, prefix.allSatisfy(\.isASCII), prefix.allSatisfy(\.isNumber) else { return nil }
        return Int(prefix) ?? Int.max
    }

    /// `emc bench threads`: the step rate of one trial on each of `threads`, PyTorch beside it at the same counts
    /// (`torchJSON`: the JSON of scripts/bench/torch_train.py, either `N=FILE` from `--threads N --json` or `FILE` from
    /// `--threads 1,2 --json`, which measured the counts alternating), and the scaling model;
    public static func threads(threads: [Int], batch: Int, seconds: Double, repeats: Int, only: String?, torchJSON: [String],
                               progress: (String) -> Void = { _ in }) throws -> [BenchReport] {
        var torch: [Int: [String: Double]] = [:]
        for item in torchJSON {
            struct TorchFile: Decodable {
                var results: [Result]
                struct Result: Decodable {
                    var model: String
                    var input: String
                    var samplesPerSecond: Double
                    var samplesPerSecondByThreads: [String: Double]?
                }
            }
            let count = torchThreadCount(item)
            let path = count == nil ? item : String(item.drop { $0 != "=" }.dropFirst())
            let file: TorchFile
            do { file = try JSONDecoder().decode(TorchFile.self, from: Data(try ReadableFile.contents(of: path))) } catch let e as DecodingError {
                throw EMCError(.format, "not the JSON output of scripts/bench/torch_train.py: \(e)", file: path)
            }
            for r in file.results {
                let key = "\(r.model)@\(r.input)"
                if let count {
                    torch[count, default: [:]][key] = r.samplesPerSecondByThreads?[String(count)] ?? r.samplesPerSecond
                    continue
                }
                guard let byThreads = r.samplesPerSecondByThreads else {
                    throw EMCError(.invalidArgument, "holds one thread count's rates: pass it as N=FILE with its count", file: path)
                }
                for (text, rate) in byThreads {
                    guard let t = Int(text) else { throw EMCError(.format, "thread count \(text) is not a number", file: path) }
                    torch[t, default: [:]][key] = rate
                }
            }
        }
        let (rows, handOver) = try ThreadsBenchmark.run(threads: threads, batch: batch, seconds: seconds, repeats: repeats, only: only, torch: torch,
                                                        progress: progress)
        let counts = threads.map(String.init).joined(separator: ", ")
        var header = ["model", "input", "params"] + threads.map { "\($0)T samples/s" }
        // Repetitions run while the team's cores were near: two cores sharing a cache (`ThreadsBenchmark.near`).
        func near(_ r: ThreadsBenchmark.Row) -> [Int] {
            r.coreRoundTripNanoseconds.indices.filter { ThreadsBenchmark.near(r.coreRoundTripNanoseconds[$0]) }
        }
        if threads.count > 1 {
            header += threads.dropFirst().map { "\($0)T / 1T" } + ["core round trip ns"] + threads.dropFirst().map { "\($0)T / 1T near" }
        }
        header += threads.map { "torch \($0)T" } + threads.dropFirst().map { "torch \($0)T / 1T" } + threads.map { "emc / torch \($0)T" }
        header += ThreadsBenchmark.predicted.map { "model \($0)T" } + ["stops at"]
        let main = BenchReport(
            title: "One trial on \(counts) thread(s): training step (forward + backward + SGD momentum), batch \(batch), median of \(repeats), "
                + "the thread counts alternating; a job's hand-over to 2 threads \(f(handOver * 1e6, 2)) µs; \"core round trip\": a cache line's trip from "
                + "the caller's core to a worker's and back, before each repetition (a host may place the cores near or far apart, and far apart "
                + "every pass that reads what the other core wrote slows down); \"near\": the median ratio, repetition by repetition, over the "
                + "repetitions (their count in brackets) whose round trip took \(f(ThreadsBenchmark.sharedCoreRoundTripNanoseconds))–\(f(ThreadsBenchmark.nearRoundTripNanoseconds)) ns (two cores that share a cache; under \(f(ThreadsBenchmark.sharedCoreRoundTripNanoseconds)) ns the two threads share one core); OpenBLAS \(BLAS.coreName) kernels; \"model\" columns: the scaling "
                + "model's samples/s (docs/benchmarks.md), \"stops at\": the threads past which a doubling gains < 10%",
            header: header,
            rows: rows.map { r in
                var cells = [r.model, r.input, "\(r.parameters)"] + r.samplesPerSecond.map { f($0) }
                if r.threads.count > 1 {
                    cells += r.samplesPerSecond.dropFirst().map { f($0 / r.samplesPerSecond[0], 2) + "×" }
                    let trips = r.coreRoundTripNanoseconds
                    cells.append(trips.isEmpty ? "-" : f(trips.min()!) + "–" + f(trips.max()!))
                    let reps = near(r)
                    cells += r.repetitionSamplesPerSecond.dropFirst().map { rates in
                        reps.isEmpty ? "-" : f(median(reps.map { rates[$0] / r.repetitionSamplesPerSecond[0][$0] }), 2) + "× (\(reps.count))"
                    }
                }
                cells += r.torchSamplesPerSecond.map { $0.map { f($0) } ?? "-" }
                cells += r.torchSamplesPerSecond.dropFirst().map { rate in
                    guard let rate, let one = r.torchSamplesPerSecond.first ?? nil else { return "-" }
                    return f(rate / one, 2) + "×"
                }
                cells += zip(r.samplesPerSecond, r.torchSamplesPerSecond).map { emc, torch in torch.map { f(emc / $0, 2) + "×" } ?? "-" }
                cells += r.predictedSamplesPerSecond.map { f($0) } + ["\(r.stopsScalingAt)"]
                return cells
            }, records: rows)
        let profile = BenchReport(
            title: "Where one step's time goes, by top-level layer, at 1 and 2 threads (ms per step at batch \(batch), median of \(repeats)); "
                + "\"parts\": the most parts its passes split into; \"rest\": loss, optimizer step, zeroing and loading",
            header: ["model", "layer", "kind", "parts", "1T ms", "2T ms", "2T / 1T speed"],
            rows: rows.flatMap { r in
                r.parts.map { p in
                    [r.model, p.name, p.kind, "\(p.units)", f(p.oneThreadMilliseconds, 3), f(p.twoThreadMilliseconds, 3),
                     p.twoThreadMilliseconds > 0 ? f(p.oneThreadMilliseconds / p.twoThreadMilliseconds, 2) + "×" : "-"]
                }
            }, records: rows.map { ["model": $0.model] })
        return [main, profile]
    }

    /// The core round trip of a two-thread team (`ThreadTeam.coreRoundTripSeconds`, 4,000 round trips) every 0.2 s for
    /// `seconds`: whether the host keeps the cores near or moves them apart while it runs.
    public static func roundTrips(seconds: Double, progress: (String) -> Void = { _ in }) -> BenchReport {
        struct Row: Encodable, Sendable { var seconds: Double; var roundTripNanoseconds: Double }
        let team = ThreadTeam(threads: 2), start = Clock.now()
        var rows: [Row] = []
        while Clock.now() - start < seconds {
            rows.append(Row(seconds: Clock.now() - start, roundTripNanoseconds: 1e9 * team.coreRoundTripSeconds()))
            if rows.count % 25 == 0 { progress("  \(rows.count) round trips measured") }
            Thread.sleep(forTimeInterval: 0.2)
        }
        return BenchReport(
            title: "A two-thread team's core round trip (a cache line from the caller's core to a worker's and back, the median over batches of 100 of 4,000) "
                + "every 0.2 s; \(f(ThreadsBenchmark.sharedCoreRoundTripNanoseconds))–\(f(ThreadsBenchmark.nearRoundTripNanoseconds)) ns the cores count as near (sharing a cache), under \(f(ThreadsBenchmark.sharedCoreRoundTripNanoseconds)) ns the threads share one core",
            header: ["seconds", "round trip ns"],
            rows: rows.map { [f($0.seconds, 1), f($0.roundTripNanoseconds)] }, records: rows)
    }

    public static func channelSums(repeats: Int, progress: (String) -> Void = { _ in }) throws -> BenchReport {
        let rows = try ChannelSumsBenchmark.run(repeats: repeats, progress: progress)
        return BenchReport(
            title: "Batch norm's backward sums (Σ dy, Σ dy·x̂ per channel) at batch \(ChannelSumsBenchmark.batch), median of \(repeats), "
                + "the layer's pass at its two arithmetics, alternating: each channel's sums over the whole batch in row order (resnet's and "
                + "efficientnet's revision 1: two threads split them by channels, every thread reading every row) and by micro-batches of "
                + "\(ChannelSumsBenchmark.microBatch) samples added in a fixed tree (revision 2: two threads split them by samples), each on 1 and 2 threads. "
                + "dy just written by the two threads, half each by rows; x the same (\"in cache\") or evicted by a 64 MiB write (\"from memory\", as in training); "
                + "\"2T / 1T speed\": the one-thread time over the two-thread time",
            header: ["shape", "x", "whole 1T ms", "by channels 2T ms", "speed", "micro-batches 1T ms", "micro-batches 2T ms", "speed", "core round trip ns"],
            rows: rows.map { r in
                [r.shape, r.input, f(r.wholeMilliseconds, 3), f(r.byChannelsMilliseconds, 3), f(r.wholeMilliseconds / r.byChannelsMilliseconds, 2) + "×",
                 f(r.microBatchesOneThreadMilliseconds, 3), f(r.microBatchesMilliseconds, 3),
                 f(r.microBatchesOneThreadMilliseconds / r.microBatchesMilliseconds, 2) + "×",
                 "\(f(r.coreRoundTripNanoseconds.min() ?? 0))–\(f(r.coreRoundTripNanoseconds.max() ?? 0))"]
            }, records: rows)
    }

    public static func gradients(batch: Int, seconds: Double, repeats: Int, only: String?, progress: (String) -> Void = { _ in }) throws -> BenchReport {
        let rows = try WeightGradientBenchmark.run(batch: batch, seconds: seconds, repeats: repeats, only: only, progress: progress)
        let level = BLAS.hardwareLevel == .generic ? "none (OpenBLAS only)" : BLAS.hardwareLevel.description
        return BenchReport(
            title: "Weight-gradient products C[m×n] += Aᵀ·B, k = batch \(batch) × output pixels, 1 thread, median of \(repeats); tall kernel: \(level), OpenBLAS \(BLAS.coreName)",
            header: ["first model with it", "m", "n", "k", "OpenBLAS GFLOP/s", "tall GFLOP/s", "tall / OpenBLAS", "chosen", "‖tall − OpenBLAS‖ / ‖OpenBLAS‖"],
            rows: rows.map { r in
                [r.layer, "\(r.m)", "\(r.n)", "\(r.k)", f(r.openBLASGFLOPs, 1), f(r.tallGFLOPs, 1), f(r.tallGFLOPs / r.openBLASGFLOPs, 2) + "×",
                 r.chosen, String(format: "%.1e", r.relativeDifference)]
            }, records: rows)
    }

    public static func conv(batch: Int, seconds: Double, repeats: Int, only: String?, progress: (String) -> Void = { _ in }) throws -> BenchReport {
        let rows = try ConvolutionBenchmark.run(batch: batch, seconds: seconds, repeats: repeats, only: only, progress: progress)
        return BenchReport(
            title: "\"Same\"-padded convolutions, forward + backward (with the input gradient), batch \(batch), 1 thread, median of \(repeats); im2row + OpenBLAS \(BLAS.coreName) against the direct path",
            header: ["first model with it", "input", "out channels", "kernel", "stride", "im2row ms", "direct ms", "im2row / direct", "chosen"],
            rows: rows.map { r in
                [r.layer, r.input, "\(r.outChannels)", "\(r.kernel)×\(r.kernel)", "\(r.stride)", f(r.im2rowMilliseconds, 2), r.directMilliseconds.map { f($0, 2) } ?? "-",
                 r.directMilliseconds.map { f(r.im2rowMilliseconds / $0, 2) + "×" } ?? "-", r.chosen]
            }, records: rows)
    }

    public static func loader(repeats: Int, scratch: String?, progress: (String) -> Void) throws -> BenchReport {
        let scratch = try freshScratch("emc-bench-loader", in: scratch)
        defer { FileSystem.removeTree(scratch) }
        let rows = try LoaderBenchmark.run(directory: scratch, repeats: repeats, progress: progress)
        return BenchReport(title: "Pipeline: uint8 samples → normalised float batches of 128, one epoch (median of \(repeats)); consumer on 1 thread",
                           header: ["data", "path", "samples/s", "MB/s (uint8)", "of ceiling"],
                           rows: rows.map { [$0.data, $0.path, f($0.samplesPerSecond), f($0.megabytesPerSecond), f($0.ofCeiling * 100) + "%"] }, records: rows)
    }

    public static func read(directory: String, split: String) throws -> BenchReport {
        let r = try ReadBenchmark.run(directory: directory, split: split)
        return BenchReport(title: "Streaming one pass over \(directory) (\(split))", header: ["samples", "seconds", "samples/s", "MB/s", "peak RSS"],
                           rows: [["\(r.samples)", f(r.seconds, 2), f(r.samplesPerSecond), f(r.megabytesPerSecond), formatBytes(r.peakRSS)]], records: r)
    }

    /// Converting ImageNet-size JPEGs (about 500×375, q90, made with libturbojpeg) to `size`×`size` shards.
    public static func jpeg(images: Int, size: Int, scratch: String?) throws -> BenchReport {
        struct Row: Encodable, Sendable { var path: String; var threads: Int; var imagesPerSecond: Double; var perCore: Double }
        let scratch = try freshScratch("emc-bench-jpeg", in: scratch)
        defer { FileSystem.removeTree(scratch) }
        // Photo-like content: smooth gradients, shapes and noise, so the JPEGs have realistic sizes.
        let generator = try SyntheticImages(size: 500, classes: 10, seed: 3)
        for i in 0..<images {
            var pixels = [UInt8](repeating: 0, count: 500 * 500 * 3)
            pixels.withUnsafeMutableBytes { generator.render(UInt64(i), into: $0) }
            let photo = Resize.crop(RasterImage(width: 500, height: 500, channels: 3, pixels: pixels), x: 0, y: 62, width: 500, height: 375)
            let dir = FileSystem.join(scratch, "raw/class\(i % 10)")
            try FileSystem.createDirectory(dir)
            try AtomicFileWriter.write(try JPEG.encode(photo, quality: 90), to: FileSystem.join(dir, "img\(i).JPEG"))
        }
        let (_, items) = try ImageFolder.scanClassFolders(FileSystem.join(scratch, "raw"))
        var rows: [Row] = []
        for scaling in [true, false] {
            for threads in [1, EMCEnvironment.cpuCount] where threads == 1 || EMCEnvironment.cpuCount > 1 {
                let time = try medianSeconds(repeats: 3) {
                    try parallelFor(items.count, threads: threads) { k in _ = try ImageFolder.load(items[k].path, size: size, mode: .centerCrop, dctScaling: scaling) }
                }
                let rate = Double(items.count) / time
                rows.append(Row(path: scaling ? "decode with DCT scaling + area resize" : "full decode + area resize", threads: threads,
                                imagesPerSecond: rate, perCore: rate / Double(threads)))
            }
        }
        // The whole conversion, as emc convert runs it (all cores, zstd-delta shards).
        var options = ShardSetOptions()
        options.threads = EMCEnvironment.cpuCount
        var definition = try DatasetDefinition.load("image-folder")
        definition.imageFolder?.size = size
        let start = Clock.now()
        _ = try Converter.run(ConvertRequest(dataset: definition, raw: FileSystem.join(scratch, "raw"), out: FileSystem.join(scratch, "out"), options: options), quiet: true)
        let convert = Double(items.count) / (Clock.now() - start)
        rows.append(Row(path: "emc convert image-folder (shards written)", threads: EMCEnvironment.cpuCount, imagesPerSecond: convert,
                        perCore: convert / Double(EMCEnvironment.cpuCount)))
        return BenchReport(title: "\(items.count) JPEGs of 500×375 (q90) to \(size)×\(size) (median of 3)", header: ["path", "threads", "images/s", "per core"],
                           rows: rows.map { [$0.path, "\($0.threads)", f($0.imagesPerSecond), f($0.perCore)] }, records: rows)
    }

    /// The search's rules compared on simulated fitters with known boundaries (`SearchSimulation`): coverage of the
    /// interval, errors against the truth, and cost, for the old rules, the rules of each step since, and the default.
    public static func searchRules(searches: Int, seeds: Int, threads: Int, progress: @escaping (String) -> Void) throws -> BenchReport {
        func rules(_ confirmation: FailureConfirmation, cap: Int, slowGrowth: Bool = true) -> SearchRules {
            var r = SearchRules()
            r.confirmation = confirmation
            r.refinementCap = cap
            r.slowGrowthNearBoundary = slowGrowth
            return r
        }
        let candidates: [(String, SearchRules, Double)] = [
            ("no confirmation, 2%, plain doubling (the bare search)", rules(.off, cap: 0, slowGrowth: false), 0.02),
            ("confirm each failure, 2%, cap 24, plain doubling", rules(.each, cap: 24, slowGrowth: false), 0.02),
            ("confirm final failure, 25%, cap 4, plain doubling", rules(.final, cap: 4, slowGrowth: false), 0.25),
            ("confirm each failure, 10%, cap 8", rules(.each, cap: 8), 0.1),
            ("confirm final failure, 2%, cap 8", rules(.final, cap: 8), 0.02),
            ("confirm final failure, 10%, no refinement", rules(.final, cap: 0), 0.1),
            ("confirm final failure, 10%, cap 4", rules(.final, cap: 4), 0.1),
            ("confirm final failure, 25%, cap 8", rules(.final, cap: 8), 0.25),
            ("confirm final failure, 25%, cap 4", rules(.final, cap: 4), 0.25),
            ("confirm final failure, 25%, no refinement (default)", SearchRules(), SearchSettings.defaults.resolution),
            ("confirm final failure, 10%, cap 8", rules(.final, cap: 8), 0.1),
            ("confirm final failure, 10%, cap 16", rules(.final, cap: 16), 0.1),
        ]
        // Many small fsynced logs: in memory (/dev/shm) where there is one, in a fresh private folder all the same.
        let scratch = try freshScratch("emc-bench-rules", in: FileSystem.isRealDirectory("/dev/shm") ? "/dev/shm" : nil)
        defer { FileSystem.removeTree(scratch) }
        var rows: [SearchSimulation.Summary] = []
        var names: [String] = []
        for (i, (name, r, resolution)) in candidates.enumerated() {
            progress("  \(name)…")
            rows.append(try SearchSimulation.run(rules: r, resolution: resolution, searches: searches, seeds: seeds, scratch: scratch, threads: threads,
                                                 name: "rules-\(i)"))
            names.append(name)
        }
        let base = rows[0].meanCost
        let pct = { (x: Double) in String(format: "%.1f%%", 100 * x) }
        return BenchReport(title: "The search's rules on \(searches) simulated configurations of \(seeds) seeds (true n50 300–30,000, slope 4–12 per log n, 5% budget noise)",
                           header: ["rule", "90% interval covers", "median ±", "median n50 error", "median seed-median error", "a seed below n50/2", "trials", "cost vs the bare search"],
                           rows: zip(names, rows).map { name, r in
                               [name, pct(r.coverage), pct(r.medianHalfWidth), pct(r.medianN50Error), pct(r.medianSeedError),
                                "\(r.seedsFarBelow) of \(r.searches)", String(format: "%.1f", r.meanTrials), String(format: "%.2f×", r.meanCost / base)]
                           }, records: rows)
    }

    /// The boundary's interval on every generator of `SimulationGenerator.calibration` (`searches` searches each, under
    /// the default rules with `seeds` subsets): how often it covers the population n50, how wide it is, what it costs;
    /// beside it, the same trials pooled as one subset (the boundary before subsets entered it).
    public static func calibration(searches: Int, seeds: Int, rules: SearchRules = SearchRules(), resolution: Double = SearchSettings.defaults.resolution,
                                   threads: Int, progress: (String) -> Void) throws -> BenchReport {
        let scratch = try freshScratch("emc-bench-calibration", in: FileSystem.isRealDirectory("/dev/shm") ? "/dev/shm" : nil)
        defer { FileSystem.removeTree(scratch) }
        var rows: [SearchSimulation.Summary] = []
        for (i, generator) in SimulationGenerator.calibration.enumerated() {
            progress("  \(generator.name)…")
            rows.append(try SearchSimulation.run(rules: rules, resolution: resolution, searches: searches, seeds: seeds,
                                                 scratch: scratch, threads: threads, name: "calibration-\(i)", generator: generator))
        }
        let pct = { (x: Double) in String(format: "%.1f%%", 100 * x) }
        return BenchReport(title: "The 90% interval for the population n50 on \(searches) simulated searches per generator, \(seeds) subsets each (\(rows.first?.rule ?? ""); true n50 300–30,000, slope 4–12 per log n)",
                           header: ["generator", "covers", "median ±", "median n50 error", "median bias", "trials", "flagged budget-bound", "pooled as one subset: covers", "median ±"],
                           rows: rows.map { r in
                               [r.generator, pct(r.coverage), pct(r.medianHalfWidth), pct(r.medianN50Error), pct(exp(r.medianLogError) - 1),
                                String(format: "%.1f", r.meanTrials), pct(r.budgetBound),
                                pct(r.pooledCoverage), pct(r.pooledMedianHalfWidth)]
                           }, records: rows)
    }

    /// `emc report`'s speed over synthetic logs of each size, and a sweep manifest's expansion (`emc sweep --dry-run`).
    public static func report(configurations: [Int], seeds: Int, repeats: Int, manifestCells: [Int], progress: (String) -> Void) throws -> BenchReport {
        let scratch = try freshScratch("emc-bench-report", in: nil)
        defer { FileSystem.removeTree(scratch) }
        var rows = try ReportBenchmark.run(configurations: configurations, seeds: seeds, repeats: repeats, scratch: scratch, progress: progress)
        for cells in manifestCells {
            progress("  a manifest of \(cells) searches…")
            let (seconds, outcome) = try ReportBenchmark.manifest(cells: cells, parts: 10, scratch: scratch)
            rows.append(ReportBenchmark.Row(task: "emc sweep --dry-run over \(cells) cells in 10 parts: \(outcome)", configurations: cells, records: 0,
                                            megabytes: 0, readSeconds: 0, reportSeconds: seconds))
        }
        return BenchReport(title: "Reports over synthetic logs (\(seeds) seeds per configuration, median of \(repeats)) and manifest expansion",
                           header: ["task", "configurations", "records", "log MB", "read s", "report s", "ms per configuration",
                                    "HTML report s", "index.html MB", "detail/ MB", "findings.js MB"],
                           rows: rows.map { r in
                               [r.task, "\(r.configurations)", r.records > 0 ? "\(r.records)" : "-", r.records > 0 ? f(r.megabytes, 1) : "-",
                                r.records > 0 ? f(r.readSeconds, 2) : "-", f(r.reportSeconds, 2),
                                f(1000 * (r.readSeconds + r.reportSeconds) / Double(max(1, r.configurations)), 2),
                                r.records > 0 ? f(r.htmlSeconds, 2) : "-", r.records > 0 ? f(r.htmlIndexMegabytes, 1) : "-", r.records > 0 ? f(r.htmlDetailMegabytes, 1) : "-",
                                r.records > 0 ? f(r.htmlFindingsMegabytes, 2) : "-"]
                           }, records: rows)
    }

    /// The EMC search against the authors' method (every point of a fixed log grid trained), same model and rules.
    public static func search(settings: SearchSettings, grid: (low: Int, high: Int, points: Int)?, progress: @escaping (String) -> Void) throws -> BenchReport {
        struct Out: Encodable, Sendable { var search: SearchSummary; var grid: GridSearch.Result? }
        BLAS.useOneThread()
        var settings = settings
        let scratch = try freshScratch("emc-bench-search", in: nil)
        defer { FileSystem.removeTree(scratch) }
        settings.log = FileSystem.join(scratch, "search.jsonl")
        settings.evaluateTest = false
        let run = try SearchRun(settings)
        let search = try run.execute()
        var result: GridSearch.Result?
        if let grid {
            var subset = SubsetOptions()
            subset.normalize = settings.normalize
            subset.threads = max(1, EMCEnvironment.cpuCount - 1)
            let fitter = TrainingFitter(view: run.view, config: run.config, subsetOptions: subset)
            let points = GridSearch.grid(low: grid.low, high: min(grid.high, run.config.maxSamples), points: grid.points)
            let start = Clock.now()
            result = try GridSearch.run(points, seed: 0, fitter: fitter) { o in
                progress("  grid n=\(o.samples): \(o.result.rawValue), \(o.epochs) epochs, \(formatDuration(o.seconds))")
            }
            result!.seconds = Clock.now() - start
        }
        var rows = [["EMC search (doubling + bisection, 2%)", "\(search.emcMedian)", "\(search.trials)", String(format: "%.3g", search.sampleEpochs), formatDuration(search.seconds)]]
        if let g = result, let grid {
            rows.append(["authors' grid (\(grid.points) log points \(grid.low)–\(grid.high))", "\(g.emc)", "\(g.trials)", String(format: "%.3g", g.sampleEpochs), formatDuration(g.seconds)])
            rows.append(["search / grid", f(search.emcMedian / Double(max(1, g.emc)), 2), "-", f(search.sampleEpochs / g.sampleEpochs, 2), f(search.seconds / g.seconds, 2)])
        }
        let c = run.config
        return BenchReport(title: "EMC of \(c.model) on \(c.dataName), \(c.optimizer), batch \(c.fit.batch), \(c.fit.budget)",
                           header: ["method", "EMC", "trials", "sample-epochs", "wall time"], rows: rows, records: Out(search: search, grid: result))
    }
}
