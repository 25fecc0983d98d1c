import EMCCore
import EMCTransforms
import Foundation

/// What `emc report` shows: per configuration (data × model × optimizer), the EMC over its seeds.
public struct ReportRow: Sendable, Codable {
    public var config: String
    public var data: String
    public var variant: String?
    public var model: String
    public var optimizer: String
    public var parameters: Int
    public var seeds: Int
    public var emcMedian: Double
    public var emcMin: Int
    public var emcMax: Int
    public var emcPerParameter: Double
    public var trainAccuracy: Double?
    public var testAccuracy: Double?
    public var generalizationGap: Double?
    public var budgetExhaustedTrials: Int
    public var trials: Int
    public var seconds: Double

    /// The content ids of the row's data and of the unperturbed set below it (nil for logs that predate them).
    public var dataContentId: String?
    public var rootContentId: String?
    /// The boundary over every trial of the configuration (n50 with its interval), and what the same trials say at
    /// smaller budgets (a quarter, half, three quarters and all of the longest trial's epochs) and lower thresholds.
    public var boundary: BoundaryFit?
    public var budgetCurve: [DerivedEMC] = []
    public var thresholdEMCs: [DerivedEMC] = []

    /// True when this row's data is a random-label variant (its only transform) of `base`'s data.
    public func isRandomLabels(of base: ReportRow) -> Bool {
        guard let variant, !variant.contains(";"), let transform = try? LabelTransform(parsing: variant), case .random = transform else { return false }
        if let root = rootContentId, let id = base.dataContentId { return root == id }
        // Logs written before content ids were recorded: the variant's name is its base's name plus the transform.
        return data.hasPrefix(base.data + "+")
    }

    /// The data condition a row belongs to in plots: the data name with its variant.
    public var condition: String { variant.map { "\(data) [\($0)]" } ?? data }
}

public struct Report: Sendable, Codable {
    public var rows: [ReportRow]
    /// Pearson correlation, over models run on both true and random labels of the same data, between the EMC
    /// gained from true labels (EMC true − EMC random) and the generalization gap of the true-label run.
    public var gainGapCorrelation: Double?
    public var gainGapPairs: Int

    /// Builds the report from a results log. EMC per seed is the largest fitted n among its trials.
    public static func from(_ records: [TrialRecord]) -> Report {
        var rows: [ReportRow] = []
        let groups = Dictionary(grouping: records, by: \.config)
        for (config, group) in groups.sorted(by: { $0.key < $1.key }) {
            let first = group[0]
            let seeds = Dictionary(grouping: group, by: \.seed)
            var emcs: [Double] = [], train: [Double] = [], test: [Double] = []
            for (_, lines) in seeds {
                emcs.append(Double(lines.filter { $0.kind == .trial && $0.fitted }.map(\.n).max() ?? 0))
                if let f = lines.last(where: { $0.kind == .final }) {
                    train.append(f.trainAccuracy)
                    if let t = f.testAccuracy { test.append(t) }
                }
            }
            let trialLines = group.filter { $0.kind == .trial }
            let med = median(emcs)
            let trainMed = train.isEmpty ? nil : median(train), testMed = test.isEmpty ? nil : median(test)
            rows.append(ReportRow(config: config, data: first.data, variant: first.variant, model: first.model, optimizer: first.optimizer,
                                  parameters: first.parameters, seeds: seeds.count, emcMedian: med, emcMin: Int(emcs.min()!), emcMax: Int(emcs.max()!),
                                  emcPerParameter: med / Double(max(1, first.parameters)), trainAccuracy: trainMed, testAccuracy: testMed,
                                  generalizationGap: zipOptional(trainMed, testMed).map { $0 - $1 },
                                  budgetExhaustedTrials: trialLines.filter { $0.result == .budgetExhausted }.count,
                                  trials: trialLines.count, seconds: group.reduce(0) { $0 + $1.seconds },
                                  dataContentId: first.dataContentId, rootContentId: first.rootContentId,
                                  boundary: BoundaryFit.fit(trialLines.map { ($0.n, $0.fitted) }),
                                  budgetCurve: DerivedEMC.budgetCurve(trialLines, epochs: trialLines.map(\.epochs).max() ?? 1),
                                  thresholdEMCs: DerivedEMC.thresholds(trialLines)))
        }
        rows.sort { ($0.condition, $0.parameters, $0.model, $0.optimizer) < ($1.condition, $1.parameters, $1.model, $1.optimizer) }
        // Pairs: the same model and optimizer on a set and on its random-label variant (a variant whose only recorded
        // transform is random labels, built on that very set).
        var gains: [Double] = [], gaps: [Double] = []
        for real in rows where real.variant == nil {
            guard let gap = real.generalizationGap,
                  let random = rows.first(where: { $0.isRandomLabels(of: real) && $0.model == real.model && $0.optimizer == real.optimizer })
            else { continue }
            gains.append(real.emcMedian - random.emcMedian)
            gaps.append(gap)
        }
        return Report(rows: rows, gainGapCorrelation: gains.count >= 3 ? pearson(gains, gaps) : nil, gainGapPairs: gains.count)
    }

    public var csv: String {
        var lines = ["data,variant,model,optimizer,parameters,seeds,emc_median,emc_min,emc_max,emc_per_parameter,train_accuracy,test_accuracy,generalization_gap,budget_exhausted_trials,trials,seconds"]
        func q(_ s: String) -> String { s.contains(",") || s.contains("\"") ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s }
        func o(_ d: Double?) -> String { d.map { String(format: "%.6g", $0) } ?? "" }
        for r in rows {
            lines.append([q(r.data), q(r.variant ?? ""), q(r.model), q(r.optimizer), "\(r.parameters)", "\(r.seeds)", o(r.emcMedian), "\(r.emcMin)",
                          "\(r.emcMax)", o(r.emcPerParameter), o(r.trainAccuracy), o(r.testAccuracy), o(r.generalizationGap),
                          "\(r.budgetExhaustedTrials)", "\(r.trials)", String(format: "%.1f", r.seconds)].joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

func pearson(_ x: [Double], _ y: [Double]) -> Double? {
    let n = Double(x.count)
    let mx = x.reduce(0, +) / n, my = y.reduce(0, +) / n
    var sxy = 0.0, sxx = 0.0, syy = 0.0
    for i in x.indices { sxy += (x[i] - mx) * (y[i] - my); sxx += (x[i] - mx) * (x[i] - mx); syy += (y[i] - my) * (y[i] - my) }
    guard sxx > 0, syy > 0 else { return nil }
    return sxy / (sxx * syy).squareRoot()
}

extension Report {
    /// The report as a person reads it: a Markdown table and the correlation line.
    public var text: String {
        let report = self
        func o(_ v: Double?, _ d: Int = 3) -> String { v.map { String(format: "%.\(d)f", $0) } ?? "-" }
        let rows = report.rows.map { r -> [String] in
            let emc = r.emcMedian.rounded() == r.emcMedian ? "\(Int(r.emcMedian))" : String(format: "%.1f", r.emcMedian)
            let range = r.emcMin == r.emcMax ? "-" : "\(r.emcMin)–\(r.emcMax)"
            return [r.condition, r.model, r.optimizer, "\(r.parameters)", emc, o(r.emcPerParameter), range, "\(r.seeds)",
                    o(r.testAccuracy), o(r.generalizationGap), r.budgetExhaustedTrials > 0 ? "\(r.budgetExhaustedTrials)" : "-"]
        }
        var text = MarkdownTable.render(header: ["data", "model", "optimizer", "params", "EMC", "EMC/params", "range", "seeds",
                                                "test acc", "gen. gap", "budget-exhausted"], rows: rows)
        for r in report.rows where r.boundary != nil || !r.budgetCurve.isEmpty {
            text += "\n\n\(r.condition), \(r.model), \(r.optimizer):"
            if let b = r.boundary {
                text += String(format: " boundary n50 %.0f, %.0f%% interval %.0f–%.0f%@", b.n50, b.level * 100, b.low, b.high,
                               b.lowIsBound || b.highIsBound ? " (an end is only a bound)" : "")
            }
            if !r.budgetCurve.isEmpty {
                text += "\n  EMC against budget (from the same trials' fit epochs): "
                    + r.budgetCurve.map { "\(Int($0.at)) epochs: \($0.text)" }.joined(separator: "; ")
            }
            if !r.thresholdEMCs.isEmpty {
                text += "\n  EMC at a lower fit threshold: " + r.thresholdEMCs.map { String(format: "%g%%: ", $0.at * 100) + $0.text }.joined(separator: "; ")
            }
        }
        if let r = report.gainGapCorrelation {
            text += String(format: "\n\ncorrelation between the EMC gained from true labels and the generalization gap: %.3f (%d models)", r, report.gainGapPairs)
        } else if report.gainGapPairs > 0 {
            text += "\n\n(\(report.gainGapPairs) true/random-label model pair(s): at least 3 are needed for a correlation)"
        }
        if report.rows.contains(where: { $0.budgetExhaustedTrials > 0 }) {
            text += "\nbudget-exhausted trials count as not fitted: those EMCs are lower bounds for their epoch budget."
        }
        return text
    }
}
