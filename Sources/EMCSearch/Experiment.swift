import EMCCore
import Foundation

/// An experiment manifest (`manifests/experiments/NAME.json`): a grid of data conditions × models ×
/// optimizers, measured with the same rules, into one results log.
public struct Experiment: Codable, Sendable {
    public var name: String
    public var description: String?
    /// Variants to derive before the sweep when missing.
    public var prepare: [Preparation]?
    public var data: [String]
    public var models: [String]
    public var optimizers: [String]
    public var seeds: Int?
    public var epochs: Int?
    public var batch: Int?
    public var resolution: Double?
    public var fitThreshold: Double?
    public var log: String?

    /// One variant to make with `emc perturb` (fields as its flags).
    public struct Preparation: Codable, Sendable {
        public var base: String
        public var out: String
        public var labels: String?
        public var labelNoise: Double?
        public var mergeClasses: Int?
        public var mergeMode: String?
        public var inputs: String?
        public var seed: UInt64?

        /// The `emc perturb` arguments.
        public var arguments: [String] {
            var a = [base, "--out", out]
            if let labels { a += ["--labels", labels] }
            if let labelNoise { a += ["--label-noise", "\(labelNoise)"] }
            if let mergeClasses { a += ["--merge-classes", "\(mergeClasses)"] }
            if let mergeMode { a += ["--merge-mode", mergeMode] }
            if let inputs { a += ["--inputs", inputs] }
            if let seed { a += ["--seed", "\(seed)"] }
            return a
        }
    }

    /// One search of the grid.
    public struct Cell: Sendable, Equatable {
        public var data: String
        public var model: String
        public var optimizer: String
    }

    public var cells: [Cell] {
        data.flatMap { d in models.flatMap { m in optimizers.map { Cell(data: d, model: m, optimizer: $0) } } }
    }

    public var logPath: String { log ?? "runs/\(name).jsonl" }

    public static func load(_ path: String) throws -> Experiment {
        let bytes = try ReadableFile.contents(of: path)
        let experiment: Experiment
        do {
            experiment = try JSONDecoder().decode(Experiment.self, from: Data(bytes))
        } catch {
            throw EMCError(.format, "not a valid experiment manifest: \(error)", file: path)
        }
        guard !experiment.data.isEmpty, !experiment.models.isEmpty, !experiment.optimizers.isEmpty else {
            throw EMCError(.format, "an experiment needs at least one data set, model and optimizer", file: path)
        }
        return experiment
    }

    /// The `emc run` arguments of a cell.
    public func runArguments(_ cell: Cell) -> [String] {
        var a = ["run", "--data", cell.data, "--model", cell.model, "--optimizer", cell.optimizer, "--log", logPath, "--json", "--quiet"]
        if let seeds { a += ["--seeds", "\(seeds)"] }
        if let epochs { a += ["--epochs", "\(epochs)"] }
        if let batch { a += ["--batch", "\(batch)"] }
        if let resolution { a += ["--resolution", "\(resolution)"] }
        if let fitThreshold { a += ["--fit-threshold", "\(fitThreshold)"] }
        return a
    }
}
