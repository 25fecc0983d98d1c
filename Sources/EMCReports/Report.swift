import EMCSearch
import EMCCore
import EMCTrainer
import EMCTransforms
import Foundation

/// One seed of a configuration as its trials in the log say it ended.
public struct SeedSummary: Sendable, Codable, Equatable {
    public var seed: Int
    /// The largest fitted n below `firstUnfitted` (all fitted n when there is none).
    public var emc: Int
    /// The smallest n where a failure was confirmed (two failed initialisations); for logs without replicates, the
    /// smallest failed n.
    public var firstUnfitted: Int?
    /// False when nothing above the EMC failed: the search was interrupted while still growing n (or fitted all data).
    public var finished: Bool
    public var trials: Int
}

/// What `emc report` shows for one configuration: everything that determines its trials is the same (data and
/// variant, model, optimizer and schedule, batch, budget, threshold and the convergence rules; the configuration hash).
public struct ReportRow: Sendable, Codable {
    public var config: String
    public var data: String
    public var variant: String?
    public var model: String
    public var optimizer: String
    public var parameters: Int
    /// Training settings from the records (nil for logs that predate them).
    public var batch: Int?
    public var budget: String?
    public var fitThreshold: Double?
    /// Who trained the trials ("native" or "torch"; logs from before the choice: native), with the native trainer's
    /// arithmetic revision from 2 on ("native (arithmetic 3)") and the torch trainer's bf16 policy.
    public var trainer: String = TrainerKind.native.rawValue
    /// The named protocol the configuration was run by ("paper", "paper (budget scaled: ...)"); nil: emc's own.
    public var `protocol`: String?
    /// The seeds this row pools, when the report splits configurations by seed sets ("0..2"); nil: every seed.
    public var seedSet: String?
    public var seeds: [SeedSummary]
    /// The seeds' EMCs: median, smallest and largest.
    public var emcMedian: Double
    public var emcMin: Int
    public var emcMax: Int
    /// The boundary over every trial (n50 with its interval), nil when the trials do not straddle one.
    public var boundary: BoundaryFit?
    /// The EMC estimate: the boundary's n50, or the seeds' median when there is no boundary.
    public var emc: Double
    /// True when the estimate is only a lower bound: the budget decides the boundary, a seed's search is
    /// unfinished, or every trial fitted.
    public var lowerBound: Bool
    public var budgetBound: Bool
    /// Whether the budget decides the boundary, and the failures near n50 (`BudgetCheck`); nil without a boundary.
    public var budgetCheck: BudgetCheck?
    /// Nakkiran et al.'s EMC beside n50: the largest n tried whose mean training error over its trials is at most
    /// `Report.nakkiranEpsilon` (nil when none is); from the recorded wrong counts.
    public var nakkiranEMC: Int?
    /// Some seed's search stopped before a confirmed failure (interrupted, or the data ran out).
    public var unfinished: Bool
    public var emcPerParameter: Double
    /// Median over seeds of the train and test accuracy of the fitted trial at each seed's EMC.
    public var trainAccuracy: Double?
    public var testAccuracy: Double?
    public var generalizationGap: Double?
    /// The generalization gap at one n shared by the configurations compared (the trials at `gapN`, median over seeds).
    public var gapN: Int?
    public var gapAtN: Double?
    public var budgetExhaustedTrials: Int
    /// What the Hessian checks in the row's trials said (nil when none was checked).
    public var hessian: HessianTally? = nil
    public var trials: Int
    public var sampleEpochs: Double
    public var seconds: Double

    /// The content ids of the row's data and of the unperturbed set below it (nil for logs that predate them).
    public var dataContentId: String?
    public var rootContentId: String?
    /// What the same trials say at smaller budgets (a quarter, half, three quarters and all of the longest trial's
    /// epochs) and lower thresholds.
    public var budgetCurve: [DerivedEMC] = []
    public var thresholdEMCs: [DerivedEMC] = []

    /// The model, optimizer and budget as values, parsed once from the records' text (nil when a record's text does not
    /// parse: such a row takes part in no comparison that needs it). Not written: the text above is.
    public var modelSpec: ModelSpec?
    public var optimizerSpec: OptimizerSpec?
    public var budgetValue: Budget?

    /// Parses the typed views of `model`, `optimizer` and `budget`.
    mutating func parseSpecs() {
        modelSpec = try? ModelSpec(parsing: model)
        optimizerSpec = try? OptimizerSpec(parsing: optimizer)
        budgetValue = budget.flatMap { try? Budget(parsing: $0) }
    }

    enum CodingKeys: String, CodingKey {
        case config, data, variant, model, optimizer, parameters, batch, budget, fitThreshold, trainer, `protocol`, seedSet, seeds, emcMedian, emcMin, emcMax, boundary, emc, lowerBound, budgetBound, budgetCheck, nakkiranEMC, unfinished, emcPerParameter, trainAccuracy, testAccuracy, generalizationGap, gapN, gapAtN, budgetExhaustedTrials, hessian, trials, sampleEpochs, seconds, dataContentId, rootContentId, budgetCurve, thresholdEMCs
    }

    /// True when this row's data is a random-label variant (its only transform) of `base`'s data.
    public func isRandomLabels(of base: ReportRow) -> Bool {
        guard let variant, !variant.contains(";"), let transform = try? LabelTransform(parsing: variant), case .random = transform else { return false }
        if let root = rootContentId, let id = base.dataContentId { return root == id }
        // Logs written before content ids were recorded: the variant's name is its base's name plus the transform.
        return data.hasPrefix(base.data + "+")
    }

    /// The data condition a row belongs to in plots: the data name with its variant.
    public var condition: String { variant.map { "\(data) [\($0)]" } ?? data }
    /// The model family (mlp, cnn, ...).
    public var family: ModelSpec.Family? { modelSpec?.family }
    /// The optimizer's kind (sgd, gd, adam, ...).
    public var optimizerKind: OptimizerSpec.Kind? { optimizerSpec?.kind }
    /// The optimizer without its learning rate: configurations whose rate a pilot chose compare on this.
    public var optimizerFamily: String { optimizerSpec?.withoutRate ?? optimizer }

    /// The EMC as a headline reads it: "≥ X" for a lower bound.
    public var headline: String { (lowerBound ? "≥ " : "") + formatCount(emc) }

    /// The value of a filter or grouping key ("data", "variant", "model", "family", "optimizer", "budget", "batch", "threshold").
    public func value(of key: String) -> String? {
        switch key {
        case "data": return data
        case "variant": return variant ?? ""
        case "condition": return condition
        case "model": return model
        case "family": return family?.rawValue ?? ""
        case "optimizer": return optimizer
        case "budget": return budget ?? ""
        case "batch": return batch.map(String.init) ?? ""
        case "threshold": return fitThreshold.map { String(format: "%g", $0) } ?? ""
        case "trainer": return trainer
        case "protocol": return `protocol` ?? "emc"
        default: return nil
        }
    }
}

/// Which rows a report keeps: every `key=value` must hold (the value a substring of the row's).
public struct ReportFilter: Sendable, Equatable {
    public var key: String
    public var value: String

    public static let keys = ["data", "variant", "condition", "model", "family", "optimizer", "budget", "batch", "threshold", "trainer", "protocol"]

    /// Parses "key=value" (the key one of `keys`).
    public init(parsing text: String) throws {
        guard let eq = text.firstIndex(of: "="), ReportFilter.keys.contains(String(text[..<eq])) else {
            throw EMCError(.invalidArgument, "a filter is key=value with key one of \(ReportFilter.keys.joined(separator: ", ")), not '\(text)'")
        }
        key = String(text[..<eq])
        value = String(text[text.index(after: eq)...])
    }

    public func keeps(_ row: ReportRow) -> Bool { row.value(of: key)?.contains(value) ?? false }
}

public struct Report: Sendable, Codable {
    public var rows: [ReportRow]
    /// Models run on both true and random labels of the same data, with their generalization gaps at one common n (the
    /// n most pairs share, `--gap-n`; pairs at another n, or without a gap there, are left out): each pair's log EMC
    /// gain, log(true / random n50), its standard error, and the true-label run's gap.
    public struct GainGapPair: Sendable, Codable {
        public var model: String
        public var gain: Double
        public var gainSE: Double
        public var gap: Double
    }
    public var gainGap: [GainGapPair]
    /// Spearman's rank correlation between the pairs' log gains and gaps (nil below 3 pairs).
    public var gainGapCorrelation: Double?
    public var gainGapPairs: Int
    /// The common n of the pairs' gaps.
    public var gainGapN: Int?
    /// Configurations measured by both trainers (the same data, model, optimizer and rules): whether their n50
    /// intervals overlap.
    public struct TrainerPair: Sendable, Codable {
        public var native: String
        public var torch: String
        public var model: String
        public var condition: String
        public var nativeInterval: [Double]
        public var torchInterval: [Double]
        public var overlap: Bool
    }
    public var trainerPairs: [TrainerPair] = []

    /// Builds the report from results logs' records (lines repeated across logs count once), keeping the rows
    /// every filter keeps. With `seedSets`, each configuration is a row per set of seeds (its trials of those seeds
    /// only, each set its own boundary and interval), side by side; seeds in no set are left out.
    public static func from(_ records: [TrialRecord], filters: [ReportFilter] = [], seedSets: [ClosedRange<Int>]? = nil) -> Report {
        let unique = unique(records)
        // A configuration whose only trials are learning-rate pilots (a rate the pilot did not choose) is no search.
        let byConfig = Dictionary(grouping: unique, by: \.config).filter { $0.value.contains { $0.kind == .final || $0.role != .pilot } }
        var groups: [(key: String, set: String?, records: [TrialRecord])] = []
        for (config, group) in byConfig {
            guard let seedSets else { groups.append((config, nil, group)); continue }
            for set in seedSets {
                let within = group.filter { set.contains($0.seed) }
                if !within.isEmpty { groups.append((config, "\(set.lowerBound)..\(set.upperBound)", within)) }
            }
        }
        // Rows are independent: computed on every core, each by the same code (the report does not depend on the count).
        let grouped = groups
        let slots = ResultSlots<ReportRow>(grouped.count)
        try? parallelFor(grouped.count, threads: EMCEnvironment.cpuCount) { i in
            var r = row(config: grouped[i].key, grouped[i].records)
            r.seedSet = grouped[i].set
            slots.set(i, r)
        }
        var rows = (0..<grouped.count).map { slots.get($0)! }
        rows = rows.filter { r in filters.allSatisfy { $0.keeps(r) } }
        // The configuration's hash breaks ties (batch, threshold, protocol): the same log gives the same order every time.
        func last(_ r: ReportRow) -> String { [r.trainer, r.seedSet ?? "", r.config].joined(separator: "\u{1}") }
        rows.sort { ($0.condition, $0.parameters, $0.model, $0.optimizer, $0.budget ?? "", last($0))
            < ($1.condition, $1.parameters, $1.model, $1.optimizer, $1.budget ?? "", last($1)) }
        // Pairs: the same model, optimizer (its rate aside: a pilot may choose each) and budget on a set and on its random-label variant (a variant whose only
        // recorded transform is random labels, built on that very set).
        var candidates: [(pair: GainGapPair, n: Int)] = []
        // Candidates by (model, optimizer family, budget), in row order: each real row looks at its own few, not at all.
        struct PairKey: Hashable { var model: String; var optimizer: String; var budget: String? }
        let variants = Dictionary(grouping: rows.filter { $0.variant != nil }) { PairKey(model: $0.model, optimizer: $0.optimizerFamily, budget: $0.budget) }
        func logSE(_ r: ReportRow) -> Double {
            guard let b = r.boundary else { return 0 }
            return (log(b.high) - log(b.low)) / (2 * BoundaryFit.normalQuantile(0.5 + b.level / 2))
        }
        for real in rows where real.variant == nil {
            guard let random = variants[PairKey(model: real.model, optimizer: real.optimizerFamily, budget: real.budget)]?.first(where: { $0.isRandomLabels(of: real) }),
                  random.emc > 0, real.emc > 0, let gap = real.gapAtN, let n = real.gapN else { continue }
            let se = (pow(logSE(real), 2) + pow(logSE(random), 2)).squareRoot()
            candidates.append((GainGapPair(model: real.model, gain: log(real.emc / random.emc), gainSE: se, gap: gap), n))
        }
        // The gap n most pairs share (the smaller on a tie): gaps at different n are not one measure.
        let counts = Dictionary(grouping: candidates.map(\.n), by: { $0 }).mapValues(\.count)
        let commonN = counts.max { ($0.value, -$0.key) < ($1.value, -$1.key) }?.key
        let pairs = candidates.filter { $0.n == commonN }.map(\.pair)
        let r = pairs.count >= 3 ? Findings.spearman(pairs.map(\.gain), pairs.map(\.gap)) : nil
        return Report(rows: rows, gainGap: pairs, gainGapCorrelation: r, gainGapPairs: pairs.count, gainGapN: commonN,
                      trainerPairs: trainerPairs(rows))
    }

    /// The records with lines repeated across logs (the same trial of the same configuration) counted once.
    public static func unique(_ records: [TrialRecord]) -> [TrialRecord] {
        var seen = Set<String>()
        return records.filter { seen.insert("\($0.key)/\($0.kind)/\($0.n)/\($0.replicateIndex)").inserted }
    }

    /// Rows that differ only in their trainer, paired, with whether their n50 intervals overlap.
    static func trainerPairs(_ rows: [ReportRow]) -> [TrainerPair] {
        struct Key: Hashable { var condition, model, optimizer: String; var batch: Int?; var budget: String?; var threshold: Double? }
        func key(_ r: ReportRow) -> Key { Key(condition: r.condition, model: r.model, optimizer: r.optimizer, batch: r.batch, budget: r.budget, threshold: r.fitThreshold) }
        let torch = Dictionary(grouping: rows.filter { $0.trainer == TrainerKind.torch.rawValue }, by: key)
        return rows.filter(\.trainedNatively).compactMap { native in
            guard let other = torch[key(native)]?.first, let a = native.boundary, let b = other.boundary else { return nil }
            return TrainerPair(native: native.config, torch: other.config, model: native.model, condition: native.condition,
                               nativeInterval: [a.low, a.high], torchInterval: [b.low, b.high], overlap: a.low <= b.high && b.low <= a.high)
        }
    }

    /// The training error Nakkiran et al.'s EMC allows (their ε): 1% of the samples.
    public static let nakkiranEpsilon = 0.01

    /// The largest n tried whose trials' mean training error (wrong / n) is at most `nakkiranEpsilon`.
    static func nakkiranEMC(_ trials: [TrialRecord]) -> Int? {
        Dictionary(grouping: trials, by: \.n).filter { n, at in
            at.map { Double($0.wrong) / Double(max(1, n)) }.reduce(0, +) / Double(at.count) <= nakkiranEpsilon
        }.keys.max()
    }

    static func row(config: String, _ group: [TrialRecord]) -> ReportRow {
        let first = group[0]
        let trialLines = group.filter { $0.kind == .trial }
        // The seeds searched: a learning-rate pilot trains at seed 0 whatever the first seed is, and is no seed's search.
        let searched = Set(trialLines.lazy.filter(\.isSeedSearch).map(\.seed))
        let bySeed = Dictionary(grouping: trialLines.filter { searched.contains($0.seed) }, by: \.seed)
        var seeds: [SeedSummary] = []
        var train: [Double] = [], test: [Double] = []
        for (seed, lines) in bySeed.sorted(by: { $0.key < $1.key }) {
            // The seed's EMC by its one definition (`SeedEMC`, docs/methods.md), from its own search's trials.
            let (emc, firstUnfitted) = SeedEMC.of(lines)
            let fittedBelow = lines.filter { $0.isSeedSearch && $0.fitted && $0.n < (firstUnfitted ?? Int.max) }
            seeds.append(SeedSummary(seed: seed, emc: emc, firstUnfitted: firstUnfitted, finished: firstUnfitted != nil, trials: lines.count))
            // Accuracy at the EMC: the fitted trial there, or (older logs) the seed's final evaluation line.
            if let atEMC = fittedBelow.first(where: { $0.n == emc && $0.testAccuracy != nil }) {
                train.append(atEMC.trainAccuracy)
                test.append(atEMC.testAccuracy!)
            } else if let f = group.last(where: { $0.kind == .final && $0.seed == seed }) {
                train.append(f.trainAccuracy)
                if let t = f.testAccuracy { test.append(t) }
            }
        }
        let emcs = seeds.map { Double($0.emc) }
        let boundaryLines = trialLines.filter(\.entersBoundary)
        let boundary = BoundaryFit.fit(boundaryLines.map(\.observation))
        // Budget-bound: fitted trials near the boundary used most of their budget.
        // The schedule is in the optimizer's spec; a record whose spec does not parse is taken as a horizon schedule
        // (nothing derived from it).
        let horizon = (try? OptimizerSpec(parsing: first.optimizer))?.dependsOnHorizon ?? true
        let check = boundary.map { BudgetCheck.measure(boundaryLines, boundary: $0, horizonSchedule: horizon) { $0.epochBudget } }
        let budgetBound = check?.bound ?? false
        let unfinished = seeds.contains { !$0.finished }
        let emc = boundary?.n50 ?? (emcs.isEmpty ? 0 : median(emcs))
        let trainMed = train.isEmpty ? nil : median(train), testMed = test.isEmpty ? nil : median(test)
        // The gap at a common n: the trials of the "gap" role (every seed trained there), median over seeds.
        var gapN: Int?, gapAtN: Double?
        if let n = trialLines.first(where: { $0.role == .gap })?.n {
            let at = trialLines.filter { $0.n == n && $0.role == .gap && $0.testAccuracy != nil }
            if !at.isEmpty { gapN = n; gapAtN = median(at.map { $0.trainAccuracy - $0.testAccuracy! }) }
        }
        var row = ReportRow(config: config, data: first.data, variant: first.variant, model: first.model, optimizer: first.optimizer,
                         parameters: first.parameters, batch: first.batch, budget: first.budget, fitThreshold: first.fitThreshold, seeds: seeds,
                         emcMedian: emcs.isEmpty ? 0 : median(emcs), emcMin: Int(emcs.min() ?? 0), emcMax: Int(emcs.max() ?? 0),
                         boundary: boundary, emc: emc, lowerBound: budgetBound || unfinished || boundary == nil && !trialLines.isEmpty,
                         budgetBound: budgetBound, budgetCheck: check, nakkiranEMC: nakkiranEMC(boundaryLines), unfinished: unfinished,
                         emcPerParameter: emc / Double(max(1, first.parameters)), trainAccuracy: trainMed, testAccuracy: testMed,
                         generalizationGap: zipOptional(trainMed, testMed).map { $0 - $1 }, gapN: gapN, gapAtN: gapAtN,
                         budgetExhaustedTrials: trialLines.filter { $0.result == .budgetExhausted }.count,
                         hessian: HessianTally(trialLines), trials: trialLines.count, sampleEpochs: trialLines.reduce(0) { $0 + $1.sampleEpochs }, seconds: group.reduce(0) { $0 + $1.seconds },
                         dataContentId: first.dataContentId, rootContentId: first.rootContentId,
                         budgetCurve: horizon ? [] : DerivedEMC.budgetCurve(boundaryLines, epochs: boundaryLines.compactMap(\.epochBudget).min() ?? boundaryLines.map(\.epochs).max() ?? 1,
                                                             boundary: .some(boundary)),
                         thresholdEMCs: DerivedEMC.thresholds(boundaryLines, below: first.fitThreshold ?? 1, boundary: .some(boundary)))
        row.trainer = first.trainer?.kind.rawValue ?? TrainerKind.native.rawValue
        // A native model whose arithmetic changed: the revision tells its rows from an earlier revision's.
        if let revision = first.trainer?.arithmetic { row.trainer += " (arithmetic \(revision))" }
        // bf16 autocast is another configuration: its rows say so beside float32's.
        if let precision = first.trainer?.precision, precision.hasPrefix("bf16") { row.trainer += " " + precision }
        row.protocol = first.protocol
        row.parseSpecs()
        return row
    }

    /// One line per configuration.
    public var csv: String {
        var lines = ["data,variant,model,optimizer,batch,budget,fit_threshold,parameters,seeds,emc,emc_is_lower_bound,n50,n50_low,n50_high,n10,n90,"
            + "seed_emc_median,seed_emc_min,seed_emc_max,emc_per_parameter,budget_bound,unfinished,train_accuracy,test_accuracy,generalization_gap,"
            + "gap_n,gap_at_n,budget_exhausted_trials,trials,sample_epochs,seconds"]
        for r in rows {
            let b = r.boundary
            let fields: [String] = Self.csvFields(r) + [csvNumber(r.emc), "\(r.lowerBound)", csvNumber(b?.n50), csvNumber(b?.low), csvNumber(b?.high),
                                              csvNumber(b?.n10), csvNumber(b?.n90), csvNumber(r.emcMedian), "\(r.emcMin)", "\(r.emcMax)",
                                              csvNumber(r.emcPerParameter), "\(r.budgetBound)", "\(r.unfinished)", csvNumber(r.trainAccuracy),
                                              csvNumber(r.testAccuracy), csvNumber(r.generalizationGap), r.gapN.map(String.init) ?? "", csvNumber(r.gapAtN),
                                              "\(r.budgetExhaustedTrials)", "\(r.trials)", csvNumber(r.sampleEpochs), String(format: "%.1f", r.seconds)]
            lines.append(fields.joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// One line per seed of each configuration.
    public var seedsCSV: String {
        var lines = ["data,variant,model,optimizer,batch,budget,fit_threshold,parameters,seed,emc,first_unfitted,finished,trials"]
        for r in rows {
            for s in r.seeds {
                lines.append((Self.csvFields(r) + ["\(s.seed)", "\(s.emc)", s.firstUnfitted.map(String.init) ?? "", "\(s.finished)", "\(s.trials)"])
                    .joined(separator: ","))
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func csvFields(_ r: ReportRow) -> [String] {
        [csvQuote(r.data), csvQuote(r.variant ?? ""), csvQuote(r.model), csvQuote(r.optimizer), r.batch.map(String.init) ?? "",
         csvQuote(r.budget ?? ""), r.fitThreshold.map { String(format: "%g", $0) } ?? "", "\(r.parameters)"]
    }
}

/// A CSV field (RFC 4180): quoted when it holds a comma, a quote, a CR or an LF.
func csvQuote(_ s: String) -> String {
    s.contains { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" || $0 == "\r\n" } ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
}
func csvNumber(_ d: Double?) -> String { d.map { String(format: "%.6g", $0) } ?? "" }

func pearson(_ x: [Double], _ y: [Double]) -> Double? {
    let n = Double(x.count)
    let mx = x.reduce(0, +) / n, my = y.reduce(0, +) / n
    var sxy = 0.0, sxx = 0.0, syy = 0.0
    for i in x.indices { sxy += (x[i] - mx) * (y[i] - my); sxx += (x[i] - mx) * (x[i] - mx); syy += (y[i] - my) * (y[i] - my) }
    guard sxx > 0, syy > 0 else { return nil }
    return sxy / (sxx * syy).squareRoot()
}


extension Report {
    /// The report as a person reads it: a Markdown table (with the settings columns that differ between rows), each
    /// configuration's boundary and derived figures, and the correlation line.
    public var text: String {
        let report = self
        guard !rows.isEmpty else { return "no configurations (check the log and the filters)" }
        func o(_ v: Double?, _ d: Int = 3) -> String { v.map { String(format: "%.\(d)f", $0) } ?? "-" }
        let varying: [(String, (ReportRow) -> String)] = [
            ("batch", { $0.batch.map(String.init) ?? "?" }), ("budget", { $0.budget ?? "?" }),
            ("threshold", { $0.fitThreshold.map { String(format: "%g", $0) } ?? "?" }), ("trainer", { $0.trainer }), ("protocol", { $0.protocol ?? "emc" }), ("seed set", { $0.seedSet ?? "all" }),
        ].filter { _, value in Set(report.rows.map(value)).count > 1 }
        let gapHeader = rows.contains { $0.gapAtN != nil } ? "gap at n" : nil
        var header = ["data", "model", "optimizer"] + varying.map(\.0) + ["params", "EMC (n50)", "90% interval", "seeds: median (range)", "EMC/params", "test acc", "gen. gap"]
        if let gapHeader { header.append(gapHeader) }
        header.append("notes")
        let table = rows.map { r -> [String] in
            let interval = r.boundary.map { b in "\(b.lowIsBound ? "≤" : "")\(formatCount(b.low))–\(formatCount(b.high))\(b.highIsBound ? "+" : "")" } ?? "-"
            let range = r.emcMin == r.emcMax ? "" : " (\(formatCount(Double(r.emcMin)))–\(formatCount(Double(r.emcMax))))"
            var notes: [String] = []
            if r.budgetBound { notes.append("budget-bound") }
            if r.unfinished { notes.append("unfinished") }
            if r.boundary == nil { notes.append("no failure yet") }
            var line = [r.condition, r.model, r.optimizer] + varying.map { $0.1(r) }
            line += ["\(r.parameters)", r.headline, interval, "\(formatCount(r.emcMedian))\(range), \(r.seeds.count) seeds", String(format: "%.3f", r.emcPerParameter),
                     o(r.testAccuracy), o(r.generalizationGap)]
            if gapHeader != nil { line.append(r.gapAtN.map { String(format: "%.3f at %d", $0, r.gapN ?? 0) } ?? "-") }
            line.append(notes.joined(separator: ", "))
            return line
        }
        var text = MarkdownTable.render(header: header, rows: table)
        for r in rows where r.boundary != nil || !r.budgetCurve.isEmpty {
            // The boundary's line follows the heading; the others are indented below it.
            let lines = r.detailLines, inline = r.boundary != nil ? 1 : 0
            text += "\n\n\(r.title):" + lines.prefix(inline).map { " " + $0 }.joined() + lines.dropFirst(inline).map { "\n  " + $0 }.joined()
        }
        for p in report.trainerPairs {
            text += String(format: "\n\n%@, %@: the native and torch trainers' n50 intervals %@ (native %@–%@, torch %@–%@)", p.condition, p.model,
                           p.overlap ? "overlap" : "do not overlap", formatCount(p.nativeInterval[0]), formatCount(p.nativeInterval[1]),
                           formatCount(p.torchInterval[0]), formatCount(p.torchInterval[1]))
        }
        if let r = report.gainGapCorrelation {
            text += String(format: "\n\nrank correlation between the log EMC gained from true labels and the generalization gap at n = %d: ρ = %.3f (%d models)",
                           report.gainGapN ?? 0, r, report.gainGapPairs)
        } else if report.gainGapPairs > 0 {
            text += "\n\n(\(report.gainGapPairs) true/random-label model pair(s) with gaps at one n: at least 3 are needed for a correlation)"
        }
        if report.rows.contains(where: { ($0.hessian?.saddles ?? 0) > 0 }) {
            text += "\nsaddle trials (converged short of fitting where the loss Hessian still has negative curvature) count as not fitted, like budget-exhausted ones."
        }
        if report.rows.contains(where: { $0.budgetExhaustedTrials > 0 }) {
            text += "\nbudget-exhausted trials count as not fitted; \"≥\" marks an EMC that is only a lower bound (budget-bound, unfinished, or no failure yet)."
        }
        return text
    }
}

extension ReportRow {
    /// The configuration as a heading names it: data, model, optimizer, budget and the trainer when it is not native.
    public var title: String {
        "\(condition), \(model), \(optimizer)\(budget.map { ", \($0)" } ?? "")\(trainer == TrainerKind.native.rawValue ? "" : trainedNatively ? ", \(trainer)" : ", trained by \(trainer)")"
    }

    /// Whether emc's own trainer trained the trials (at any arithmetic revision).
    public var trainedNatively: Bool { trainer.hasPrefix(TrainerKind.native.rawValue) }

    /// What the report says of this configuration beyond its table row, a line each: the boundary, the seeds, the budget
    /// check, the subsets' spread, Nakkiran's EMC, the Hessian checks, the EMC against budget and threshold.
    public var detailLines: [String] {
        let r = self
        var lines: [String] = []
        if let b = r.boundary {
            lines.append(String(format: "boundary n50 %@, %.0f%% interval %@–%@%@, n10 %@, n90 %@, %d trials",
                                formatCount(b.n50), b.level * 100, formatCount(b.low), formatCount(b.high),
                                b.lowIsBound || b.highIsBound ? " (an end is only a bound)" : "", b.describe(b.n10), b.describe(b.n90), b.trials))
        }
        lines.append("seeds: " + r.seeds.map { s in
            "\(s.seed): \(formatCount(Double(s.emc)))" + (s.firstUnfitted.map { " (first unfitted \(formatCount(Double($0))))" } ?? " (unfinished: no confirmed failure)")
        }.joined(separator: "; "))
        if let c = r.budgetCheck { lines.append(c.text) }
        if let b = r.boundary, let subsets = b.subsets, subsets >= 2, let spread = b.spread {
            lines.append(String(format: "%d subsets: their n50 spread by σ = %.2f in log n (up to %.2f at %.0f%%); lapse %.0f%%", subsets, spread,
                                b.spreadHigh ?? .nan, b.level * 100, (b.lapse ?? 0) * 100)
                + (b.isotonicN50.map { "; the shape-free (isotonic) crossing at \(formatCount($0))" } ?? ""))
        } else if r.boundary?.subsets == 1 {
            lines.append("one subset: the interval is for this seed's sample of the data, not for the population (--seeds 5 or more)")
        }
        if let k = r.nakkiranEMC {
            lines.append(String(format: "Nakkiran's EMC (the largest n whose mean training error is at most %g%%): %@", Report.nakkiranEpsilon * 100, formatCount(Double(k))))
        }
        if let h = r.hessian { lines.append("Hessian check: " + h.text) }
        if !r.budgetCurve.isEmpty {
            lines.append("EMC against budget (from the same trials' fit epochs): " + r.budgetCurve.map { "\(Int($0.at)) epochs: \($0.text)" }.joined(separator: "; "))
        }
        if !r.thresholdEMCs.isEmpty {
            lines.append("EMC at a lower fit threshold: " + r.thresholdEMCs.map { String(format: "%g%%: ", $0.at * 100) + $0.text }.joined(separator: "; "))
        }
        return lines
    }
}

/// The Hessian checks among a configuration's trials: how many converged-unfit trials were minima and how many saddles,
/// how many other trials were checked (`--hessian-check final`), and what the checks cost.
public struct HessianTally: Codable, Sendable, Equatable {
    public var minima: Int
    public var saddles: Int
    public var others: Int
    public var seconds: Double
    /// The median check's cost in full passes over its trial's samples.
    public var medianPasses: Double
    public var medianProducts: Double

    /// Nil when no trial was checked.
    public init?(_ trials: [TrialRecord]) {
        let checked = trials.filter { $0.hessian != nil }
        guard !checked.isEmpty else { return nil }
        minima = checked.filter { $0.result == .convergedUnfit }.count
        saddles = checked.filter { $0.result == .saddle }.count
        others = checked.count - minima - saddles
        seconds = checked.reduce(0) { $0 + $1.hessian!.seconds }
        medianPasses = median(checked.map { $0.hessian!.fullPasses })
        medianProducts = median(checked.map { Double($0.hessian!.products) })
    }

    public var text: String {
        String(format: "%d converged-unfit trial(s) confirmed minima, %d saddle(s)%@; %.1f s in all, a median %.0f Hessian-vector products = %.1f full passes per check",
               minima, saddles, others > 0 ? ", \(others) other trial(s) checked" : "", seconds, medianProducts, medianPasses)
    }
}
