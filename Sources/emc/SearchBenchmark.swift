import ArgumentParser
import EMCCore
import EMCPipeline
import EMCSearch
import EMCTrainer
import Foundation

struct BenchSearch: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "search",
        abstract: "The EMC search against the authors' method (every point of a fixed 20-point log grid trained), same model and rules.",
        discussion: "Example: emc bench search --data datasets/fashion-mnist --model mlp:width=32,depth=1")

    @Option(help: "The shard set.")
    var data: String

    @Option(help: "Model spec.")
    var model = "mlp:width=32,depth=1"

    @Option(help: "Optimizer spec.")
    var optimizer = "sgd:lr=0.01,momentum=0.9"

    @OptionGroup var training: TrainingOptions

    @Option(help: "Grid: smallest n.")
    var low = 4

    @Option(help: "Grid: largest n.")
    var high = 50_000

    @Option(help: "Grid points.")
    var points = 20

    @Flag(help: "Skip the grid (only the search).")
    var noGrid = false

    @Flag(help: "Print machine-readable JSON on stdout.")
    var json = false

    func run() throws {
        BLAS.configureThreads()
        let request = try RunRequest(data: data, model: model, optimizer: optimizer, training: training, seeds: 1, start: nil, resolution: 0.02)
        let scratch = "/tmp/emc-bench-search-\(getpid()).jsonl"
        defer { FileSystem.remove(scratch) }
        let search = try request.execute(log: scratch, final: false, quiet: true, json: true)
        struct Out: Encodable { var search: RunRequest.Summary; var grid: GridSearch.Result? }
        var grid: GridSearch.Result?
        if !noGrid {
            var subset = SubsetOptions()
            subset.normalize = Normalization(rawValue: training.normalize) ?? .standard
            subset.threads = max(1, EMCEnvironment.cpuCount - 1)
            let fitter = TrainingFitter(view: request.view, config: request.config, subsetOptions: subset)
            let points = GridSearch.grid(low: low, high: min(high, request.config.maxSamples), points: self.points)
            let start = Clock.now()
            grid = try GridSearch.run(points, seed: 0, fitter: fitter) { o in
                FileHandle.standardError.write(Data("  grid n=\(o.samples): \(o.result.rawValue), \(o.epochs) epochs, \(formatDuration(o.seconds))\n".utf8))
            }
            grid!.seconds = Clock.now() - start
        }
        if json { return try printJSON(Out(search: search, grid: grid)) }
        var rows = [["EMC search (doubling + bisection, 2%)", "\(search.emcMedian)", "\(search.trials)", String(format: "%.3g", search.sampleEpochs), formatDuration(search.seconds)]]
        if let g = grid {
            rows.append(["authors' grid (\(self.points) log points \(low)–\(high))", "\(g.emc)", "\(g.trials)", String(format: "%.3g", g.sampleEpochs), formatDuration(g.seconds)])
            rows.append(["search / grid", String(format: "%.2f", search.emcMedian / Double(max(1, g.emc))), "-",
                         String(format: "%.2f", search.sampleEpochs / g.sampleEpochs), String(format: "%.2f", search.seconds / g.seconds)])
        }
        BenchTable.print(title: "EMC of \(request.config.model) on \(request.config.dataName), \(request.config.optimizer), batch \(training.batch), ≤ \(training.epochs) epochs",
                         header: ["method", "EMC", "trials", "sample-epochs", "wall time"], rows: rows, json: false, records: rows)
    }
}
