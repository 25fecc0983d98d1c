import EMCCore
import EMCSearch
import EMCTrainer
import Foundation

/// The paper's five findings as claims a report can support, contradict or leave undecided, each judged by an
/// explicit rule over the report's rows (n50 and its interval). Nothing here is a fixed verdict: the rows decide,
/// and intervals that overlap cannot decide.
public struct Finding: Codable, Sendable {
    public enum Verdict: String, Codable, Sendable { case supports, contradicts, undecided, notMeasured = "not measured" }

    public var number: Int
    public var claim: String
    public var rule: String
    /// One line per comparison the rule made, with the numbers behind it.
    public var evidence: [String]
    public var verdict: Verdict
}

public enum Findings {
    /// An EMC's interval as the findings compare it: the boundary's interval at the run's budget, or, with no boundary
    /// (nothing failed yet), [EMC, ∞): a lower bound only.
    static func interval(_ r: ReportRow) -> (low: Double, high: Double) {
        if let b = r.boundary { return (b.low, b.highIsBound ? .infinity : b.high) }
        return (r.emc, .infinity)
    }

    static func describe(_ r: ReportRow) -> String {
        let (lo, hi) = interval(r)
        let range = hi.isFinite ? "\(formatCount(lo))–\(formatCount(hi))" : "≥ \(formatCount(lo))"
        var notes: [String] = []
        if r.budgetBound { notes.append("budget-bound") }
        if r.unfinished { notes.append("unfinished") }
        return "\(r.model) \(r.optimizer) on \(r.condition)\(r.budget.map { ", \($0)" } ?? ""): n50 \(r.headline) (90%: \(range))"
            + (notes.isEmpty ? "" : " [\(notes.joined(separator: ", "))]")
    }

    /// `a` above `b`: +1 when a's interval lies wholly above b's, −1 wholly below, 0 when they overlap.
    static func order(_ a: (low: Double, high: Double), _ b: (low: Double, high: Double)) -> Int {
        if a.low > b.high { return 1 }
        if a.high < b.low { return -1 }
        return 0
    }

    /// All comparisons agree one way: supports (or contradicts); any overlap or disagreement: undecided.
    static func verdict(_ orders: [Int]) -> Finding.Verdict {
        guard !orders.isEmpty else { return .notMeasured }
        if orders.allSatisfy({ $0 > 0 }) { return .supports }
        if orders.allSatisfy({ $0 < 0 }) { return .contradicts }
        return .undecided
    }

    /// The same data condition, budget and batch (optimizers compare by family: a pilot may choose each one's rate).
    static func sameSetting(_ a: ReportRow, _ b: ReportRow) -> Bool { a.condition == b.condition && a.budget == b.budget && a.batch == b.batch }

    /// The fewest model pairs (true and random labels) the gain/gap correlation decides on.
    public static let minimumPairs = 6

    public static func evaluate(_ report: Report) -> [Finding] {
        let rows = report.rows.filter { $0.emc > 0 }
        var findings: [Finding] = []

        // 1. Fewer samples than parameters.
        do {
            var orders: [Int] = [], evidence: [String] = []
            for r in rows {
                let i = interval(r)
                let o = i.high < Double(r.parameters) ? 1 : (i.low > Double(r.parameters) ? -1 : 0)
                orders.append(o)
                evidence.append("\(describe(r)) vs \(formatCount(Double(r.parameters))) parameters: " + ["below", "overlaps", "above"][1 - o])
            }
            findings.append(Finding(number: 1, claim: "Standard optimizers find minima where a model fits far fewer samples than it has parameters.",
                                    rule: "for every configuration, the 90% interval of n50 lies below the parameter count (supports) or above it (contradicts)",
                                    evidence: evidence, verdict: verdict(orders)))
        }

        // 2. CNNs (the convolutional families: cnn, resnet, efficientnet) more parameter-efficient than MLPs and ViTs, on
        //    true and random labels.
        do {
            var orders: [Int] = [], evidence: [String] = []
            let other: [ModelSpec.Family: String] = [.mlp: "MLP", .vit: "ViT"]
            let others = rows.filter { $0.family.map { other[$0] != nil } ?? false }
            for cnn in rows where cnn.family?.isConvolutional == true {
                for that in others where sameSetting(cnn, that) && cnn.optimizerFamily == that.optimizerFamily {
                    let a = interval(cnn), b = interval(that)
                    let pc = Double(cnn.parameters), pm = Double(that.parameters)
                    let o = order((a.low / pc, a.high / pc), (b.low / pm, b.high / pm))
                    orders.append(o)
                    evidence.append(String(format: "%@: CNN %@ n50/params %.3f (%.3f–%@) vs %@ %@ %.3f (%.3f–%@): %@", cnn.condition, cnn.model,
                                           cnn.emc / pc, a.low / pc, a.high.isFinite ? String(format: "%.3f", a.high / pc) : "∞", other[that.family!]!,
                                           that.model, that.emc / pm, b.low / pm, b.high.isFinite ? String(format: "%.3f", b.high / pm) : "∞",
                                           ["CNN below", "overlap", "CNN above"][o + 1]))
                }
            }
            findings.append(Finding(number: 2, claim: "CNNs are more parameter-efficient than MLPs and ViTs, even on randomly labelled data.",
                                    rule: "for every convolutional model (cnn, resnet, efficientnet) and MLP or ViT on the same data, optimizer and budget, "
                                        + "the CNN's n50 per parameter interval lies above the other's",
                                    evidence: evidence, verdict: verdict(orders)))
        }

        // 3. SGD fits more than full-batch GD, at equal steps.
        do {
            var orders: [Int] = [], evidence: [String] = []
            let gds = rows.filter { $0.optimizerKind == .gd }
            for sgd in rows where sgd.optimizerKind == .sgd {
                for gd in gds where gd.model == sgd.model && gd.condition == sgd.condition && gd.budget == sgd.budget {
                    let equalSteps = sgd.budgetValue?.isSteps == true
                    let o = order(interval(sgd), interval(gd))
                    if equalSteps { orders.append(o) }
                    evidence.append("\(equalSteps ? "" : "(equal epochs, not counted) ")\(describe(sgd)) vs \(describe(gd)): "
                                    + ["GD above", "overlap", "SGD above"][o + 1])
                }
            }
            findings.append(Finding(number: 3, claim: "SGD finds minima that fit more training data than full-batch gradient descent.",
                                    rule: "for every model and data run with both at the same step budget, SGD's n50 interval lies above GD's",
                                    evidence: evidence, verdict: verdict(orders)))
        }

        // 4. The EMC gained from true labels predicts generalization (negative correlation with the gap).
        do {
            var evidence: [String] = []
            var v = Finding.Verdict.notMeasured
            if let r = report.gainGapCorrelation {
                let at = report.gainGapN.map { "gaps at n = \($0)" } ?? "gaps at each model's own EMC"
                let ci = report.gainGapInterval
                evidence.append(String(format: "r = %.3f over %d model pairs (%@)", r, report.gainGapPairs, at)
                                + (ci.map { String(format: ", 90%% interval %.2f to %.2f", $0[0], $0[1]) } ?? ", too few pairs for an interval"))
                if report.gainGapPairs < minimumPairs {
                    evidence.append("fewer than \(minimumPairs) pairs: not enough to decide")
                    v = .undecided
                } else if let ci {
                    v = ci[1] < 0 ? .supports : (ci[0] > 0 ? .contradicts : .undecided)
                } else {
                    v = .undecided
                }
            } else if report.gainGapPairs > 0 {
                evidence.append("\(report.gainGapPairs) pair(s): too few for a correlation")
                v = .undecided
            }
            findings.append(Finding(number: 4, claim: "The EMC gained from correct over random labels predicts generalization: the larger the gain, the smaller the generalization gap.",
                                    rule: "over at least \(minimumPairs) models run on both label conditions, the 90% interval (Fisher z) of the correlation between the percentage EMC gain and the generalization gap lies below 0",
                                    evidence: evidence, verdict: v))
        }

        // 5. ReLU fits more than tanh.
        do {
            var orders: [Int] = [], evidence: [String] = []
            // The tanh rows by architecture, so each ReLU row meets only its own.
            // Pairs by the architecture with ReLU in place of its activation.
            let tanhs = Dictionary(grouping: rows.filter { $0.modelSpec?.activation == .tanh }) { $0.modelSpec!.with(activation: .relu).description }
            for relu in rows where relu.modelSpec?.activation == .relu {
                for tanh in tanhs[relu.modelSpec!.description] ?? [] where sameSetting(relu, tanh) && relu.optimizerFamily == tanh.optimizerFamily {
                    let o = order(interval(relu), interval(tanh))
                    orders.append(o)
                    evidence.append("\(describe(relu)) vs \(describe(tanh)): " + ["tanh above", "overlap", "ReLU above"][o + 1])
                }
            }
            findings.append(Finding(number: 5, claim: "ReLU networks fit more data than tanh networks.",
                                    rule: "for every architecture run with both activations on the same data, optimizer and budget, the ReLU n50 interval lies above the tanh one",
                                    evidence: evidence, verdict: verdict(orders)))
        }
        return findings
    }

    /// The findings as a person reads them.
    public static func text(_ findings: [Finding]) -> String {
        findings.map { f in
            var s = "Finding \(f.number): \(f.claim)\n  rule: \(f.rule)\n"
            s += f.evidence.isEmpty ? "  (no configurations in the log compare this)\n" : f.evidence.map { "  - \($0)\n" }.joined()
            return s + "  verdict: this run \(f.verdict == .notMeasured ? "did not measure it" : f.verdict == .undecided ? "cannot decide it" : "\(f.verdict.rawValue) it")\n"
        }.joined(separator: "\n")
    }
}
