import EMCSearch
import EMCCore
import EMCPipeline
import EMCShards
import EMCTrainer
import EMCTransforms
import EMCVariants
import Foundation

/// An experiment manifest (`manifests/experiments/NAME.json`, schema in docs/experiments.md): a grid of data
/// conditions × models × optimizers, measured with the same rules, into one results log.
///
/// Strict, because a typo must not silently change an experiment: an unknown key is an error that names it, and
/// every model and optimizer spec is parsed when the manifest is loaded, before anything runs. Relative paths
/// (data, variants, the log) are relative to the manifest's own folder, so a manifest means the same from anywhere.
public struct Experiment: Codable, Sendable {
    public var name: String
    public var description: String?
    /// Variants to derive before the sweep when missing.
    public var prepare: [Preparation]?
    public var data: [String]
    public var models: [String]
    public var optimizers: [String]
    public var seeds: Int?
    /// The first seed (default 0): a second manifest with `firstSeed` adds seeds to the same configurations' logs.
    public var firstSeed: Int?
    public var epochs: Int?
    /// A step budget per trial (compare optimizers at equal steps), and the minimum steps under an epoch budget.
    public var steps: Int?
    public var minSteps: Int?
    public var batch: Int?
    public var resolution: Double?
    public var fitThreshold: Double?
    public var normalize: Normalization?
    /// The search's rules: confirmations, the refinement's target and cap.
    public var confirm: FailureConfirmation?
    public var targetWidth: Double?
    public var refinementCap: Int?
    /// Measure every seed's generalization gap at this n (compare models at one size).
    public var gapN: Int?
    /// Learning rates to try in a pilot at `pilotN` before each search (the one that fits in the fewest steps is kept).
    public var lrGrid: [Double]?
    public var pilotN: Int?
    /// The loss Hessian check (`--hessian-check`): off, converged or final.
    public var hessianCheck: HessianCheckMode?
    /// Who trains the trials (`native` by default, or `torch`): part of each configuration's identity. The torch
    /// workers' Python comes from EMC_PYTHON in the sweep's environment (Slurm passes it on).
    public var trainer: TrainerKind?
    /// The torch trainer's device (cpu, cuda, cuda:N, mps).
    public var device: String?
    /// The torch trainer's arithmetic (float32 or bf16).
    public var precision: TorchPrecision?
    /// Threads each trial trains on (`--threads`; a Slurm task asks for as many cores). Not part of any identity: the
    /// records are the same bits at any count.
    public var threads: Int?
    /// A named protocol (`paper`): its preset, under the manifest's own keys; and the fit check's cadence in steps.
    public var `protocol`: TrainingProtocol?
    public var checkEvery: Int?
    public var log: String?
    /// A folder for the sweep's HTML report (`emc report --html`), written each time the sweep reports; an earlier
    /// report there is replaced, anything else in the folder refuses it.
    public var html: String?
    /// Sub-grids with their own settings (each key as at the top level, which gives the defaults): one manifest can
    /// hold comparisons that need different budgets, such as optimizers at equal steps beside models at equal epochs.
    public var parts: [Part]?
    /// The folder the manifest was read from (relative paths resolve against it); not part of the JSON.
    public var folder = "."

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, description, prepare, data, models, optimizers, seeds, firstSeed, epochs, steps, minSteps, batch, resolution, fitThreshold, normalize,
             confirm, targetWidth, refinementCap, gapN, lrGrid, pilotN, hessianCheck, trainer, device, precision, threads, `protocol`, checkEvery, log, html, parts
    }

    /// A sub-grid: its own data, models and optimizers (or the top level's) and settings that override the top level's.
    public struct Part: Codable, Sendable, Equatable {
        public var name: String?
        public var data: [String]?
        public var models: [String]?
        public var optimizers: [String]?
        public var seeds: Int?
        public var epochs: Int?
        public var steps: Int?
        public var minSteps: Int?
        public var batch: Int?
        public var fitThreshold: Double?
        public var gapN: Int?
        public var lrGrid: [Double]?
        public var pilotN: Int?
        public var trainer: TrainerKind?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case name, data, models, optimizers, seeds, epochs, steps, minSteps, batch, fitThreshold, gapN, lrGrid, pilotN, trainer
        }
    }

    /// One variant to make before the sweep (what `emc perturb` would make).
    public struct Preparation: Codable, Sendable {
        public var base: String
        public var out: String
        /// "random" (random labels, over `classes` or the base's).
        public var labels: String?
        public var classes: Int?
        public var labelNoise: Double?
        public var mergeClasses: Int?
        public var mergeMode: LabelTransform.MergeMode?
        /// "gaussian", "permute" or "permute-each".
        public var inputs: String?
        public var seed: UInt64?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case base, out, labels, classes, labelNoise, mergeClasses, mergeMode, inputs, seed
        }

        /// The variant request, with paths resolved against `folder`.
        public func request(folder: String) throws -> PerturbRequest {
            var r = PerturbRequest(base: resolve(base, against: folder), out: resolve(out, against: folder))
            let seed = self.seed ?? 0
            let given = [labels != nil, labelNoise != nil, mergeClasses != nil].filter { $0 }.count
            guard given <= 1 else { throw EMCError(.invalidArgument, "prepare \(out): give one label transform (labels, labelNoise or mergeClasses)") }
            if let labels {
                guard labels == "random" else { throw EMCError(.invalidArgument, "prepare \(out): labels must be \"random\", not \"\(labels)\"") }
                let baseClasses = try DatasetManifest.load(directory: r.base).classes.count
                r.labels = .random(classes: classes ?? baseClasses, seed: seed)
            }
            if let p = labelNoise { r.labels = .noise(probability: p, seed: seed) }
            if let k = mergeClasses { r.labels = .merge(classes: k, mode: mergeMode ?? .block, seed: seed) }
            switch inputs {
            case nil: break
            case "gaussian": r.inputs = .gaussian(seed: seed)
            case "permute": r.inputs = .permute(seed: seed)
            case "permute-each": r.inputs = .permuteEach(seed: seed)
            case let other?: throw EMCError(.invalidArgument, "prepare \(out): inputs must be gaussian, permute or permute-each, not \"\(other)\"")
            }
            return r
        }
    }

    /// One search of the grid.
    public struct Cell: Sendable, Equatable {
        public var data: String
        public var model: String
        public var optimizer: String
        /// The part it belongs to (nil: the top-level grid).
        public var part: Int? = nil
    }

    /// The most searches one manifest may hold (Slurm's arrays and a results log of one sweep stay workable).
    public static let maxCells = 100_000

    /// The cells the grids hold, duplicates counted (computed without building them, safe from overflow).
    public var cellCount: Int {
        func product(_ a: Int, _ b: Int, _ c: Int) -> Int {
            let (ab, o1) = a.multipliedReportingOverflow(by: b), (abc, o2) = ab.multipliedReportingOverflow(by: c)
            return o1 || o2 ? Int.max : abc
        }
        guard let parts, !parts.isEmpty else { return product(data.count, models.count, optimizers.count) }
        return parts.reduce(0) { total, p in
            let (sum, o) = total.addingReportingOverflow(product((p.data ?? data).count, (p.models ?? models).count, (p.optimizers ?? optimizers).count))
            return o ? Int.max : sum
        }
    }

    /// The top-level grid's cells when there are no parts, else every part's (a cell whose settings an earlier one
    /// already has, once). `load` has parsed every spec, so every cell's settings can be made.
    public var cells: [Cell] {
        guard let parts, !parts.isEmpty else {
            return data.flatMap { d in models.flatMap { m in optimizers.map { Cell(data: d, model: m, optimizer: $0) } } }
        }
        var out: [Cell] = []
        var seen = Set<SearchSettings>()
        for (i, p) in parts.enumerated() {
            for d in p.data ?? data {
                for m in p.models ?? models {
                    for o in p.optimizers ?? optimizers {
                        let cell = Cell(data: d, model: m, optimizer: o, part: i)
                        if let s = try? settings(cell), !seen.insert(s).inserted { continue }
                        out.append(cell)
                    }
                }
            }
        }
        return out
    }

    /// The results log, resolved against the manifest's folder.
    public var logPath: String { resolve(log ?? "runs/\(name).jsonl", against: folder) }
    /// The HTML report's folder, when the manifest asks for one.
    public var htmlPath: String? { html.map { resolve($0, against: folder) } }

    /// The search settings of a cell: the manifest's rules, its paths resolved.
    public func settings(_ cell: Cell) throws -> SearchSettings {
        var s = try SearchSettings(data: resolve(cell.data, against: folder), model: cell.model)
        // A researcher's model file is relative to the manifest's folder, as the data is.
        if let python = s.model.value.python, python.isFile { s.model = try Written(python.resolved(against: folder).description) }
        s.optimizer = try Written(cell.optimizer)
        if let seeds { s.seeds = seeds }
        if let firstSeed { s.firstSeed = firstSeed }
        if let epochs { s.training.budget.epochs = epochs }
        if let steps { s.training.budget.steps = steps }
        if let minSteps { s.training.budget.minSteps = minSteps }
        if let batch { s.training.batch = batch }
        if let resolution { s.resolution = resolution }
        if let fitThreshold { s.training.fitThreshold = fitThreshold }
        if let normalize { s.normalize = normalize }
        if let confirm { s.rules.confirmation = confirm }
        if let targetWidth { s.rules.targetHalfWidth = targetWidth }
        if let refinementCap { s.rules.refinementCap = refinementCap }
        if let gapN { s.gapN = gapN }
        if let lrGrid { s.lrGrid = lrGrid }
        if let pilotN { s.pilotN = pilotN }
        if let hessianCheck { s.training.hessianCheck = hessianCheck }
        if let trainer { s.trainer = trainer }
        if let device { s.device = device }
        if let precision { s.precision = precision }
        if let threads { s.threads = threads }
        if let checkEvery { s.training.checkEvery = checkEvery }
        if let i = cell.part, let p = parts?[i] {
            if let seeds = p.seeds { s.seeds = seeds }
            if let epochs = p.epochs { s.training.budget.epochs = epochs; s.training.budget.steps = nil }
            if let steps = p.steps { s.training.budget.steps = steps }
            if let minSteps = p.minSteps { s.training.budget.minSteps = minSteps }
            if let batch = p.batch { s.training.batch = batch }
            if let fitThreshold = p.fitThreshold { s.training.fitThreshold = fitThreshold }
            if let gapN = p.gapN { s.gapN = gapN }
            if let lrGrid = p.lrGrid { s.lrGrid = lrGrid }
            if let pilotN = p.pilotN { s.pilotN = pilotN }
            if let trainer = p.trainer { s.trainer = trainer }
        }
        // A named protocol fills what the manifest left at emc's defaults.
        if let `protocol` { s = try `protocol`.apply(to: s) }
        s.log = logPath
        return s
    }

    public static func load(_ path: String) throws -> Experiment {
        let bytes = try ReadableFile.contents(of: path)
        func bad(_ message: String, _ field: String? = nil) -> EMCError { EMCError(.format, message, file: path, place: field.map { .field($0) }) }
        let object = try EMCError.locating(file: path) {
            try JSONCheck.object(bytes, what: "an experiment manifest is {\"name\": ..., \"data\": [...], \"models\": [...], \"optimizers\": [...]}")
        }
        try rejectUnknown(object, known: CodingKeys.allCases.map(\.rawValue), at: nil, bad: bad)
        for (i, item) in (object["prepare"] as? [[String: Any]] ?? []).enumerated() {
            try rejectUnknown(item, known: Preparation.CodingKeys.allCases.map(\.rawValue), at: "prepare[\(i)]", bad: bad)
        }
        for (i, item) in (object["parts"] as? [[String: Any]] ?? []).enumerated() {
            try rejectUnknown(item, known: Part.CodingKeys.allCases.map(\.rawValue), at: "parts[\(i)]", bad: bad)
        }
        var experiment: Experiment
        do {
            experiment = try JSONDecoder().decode(Experiment.self, from: Data(bytes))
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context), let DecodingError.dataCorrupted(context) {
            throw bad(context.debugDescription, context.codingPath.map(\.stringValue).joined(separator: "."))
        } catch let DecodingError.keyNotFound(key, _) {
            throw bad("the manifest needs \"\(key.stringValue)\"", key.stringValue)
        }
        experiment.folder = FileSystem.splitDirectory(path)
        guard !experiment.data.isEmpty, !experiment.models.isEmpty, !experiment.optimizers.isEmpty else {
            throw bad("an experiment needs at least one data set, model and optimizer")
        }
        for (i, p) in (experiment.parts ?? []).enumerated() {
            for (field, list) in [("data", p.data), ("models", p.models), ("optimizers", p.optimizers)] where list?.isEmpty == true {
                throw bad("the list is empty, so this part would run nothing: leave the key out to use the top level's, or give at least one entry",
                          "parts[\(i)].\(field)")
            }
        }
        let count = experiment.cellCount
        guard count <= maxCells else {
            throw bad("the manifest asks for \(formatCount(Double(count))) searches, more than the \(maxCells) one sweep may hold; split it into several manifests")
        }
        // Every cell's settings are checked now, so a misspelt model fails before the first search, not hours in.
        for (field, specs, parse) in [("models", experiment.models, { _ = try ModelSpec(parsing: $0) }),
                                      ("optimizers", experiment.optimizers, { _ = try OptimizerSpec(parsing: $0) })] as [(String, [String], (String) throws -> Void)] {
            for spec in specs {
                do { try parse(spec) } catch let e as EMCError { throw bad(e.message, field) }
            }
        }
        for (i, p) in (experiment.parts ?? []).enumerated() {
            for (field, specs, parse) in [("models", p.models ?? [], { _ = try ModelSpec(parsing: $0) }),
                                          ("optimizers", p.optimizers ?? [], { _ = try OptimizerSpec(parsing: $0) })] as [(String, [String], (String) throws -> Void)] {
                for spec in specs {
                    do { try parse(spec) } catch let e as EMCError { throw bad(e.message, "parts[\(i)].\(field)") }
                }
            }
        }
        for cell in experiment.cells {
            do { try experiment.settings(cell).check() } catch let e as EMCError { throw bad(e.message, cell.part.map { "parts[\($0)]" }) }
        }
        return experiment
    }

    private static func rejectUnknown(_ object: [String: Any], known: [String], at prefix: String?, bad: (String, String?) -> EMCError) throws {
        for key in object.keys.sorted() where !known.contains(key) {
            let close = known.first { $0.hasPrefix(key) || key.hasPrefix($0) }.map { " (did you mean \"\($0)\"?)" } ?? ""
            throw bad("unknown key \"\(key)\"\(close); the manifest may have \(known.joined(separator: ", "))", [prefix, key].compactMap { $0 }.joined(separator: "."))
        }
    }
}

/// `path` when absolute, else `folder`/`path`.
func resolve(_ path: String, against folder: String) -> String {
    path.hasPrefix("/") || folder == "." ? path : FileSystem.join(folder, path)
}
