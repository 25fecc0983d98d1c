import EMCCore
import EMCSearch
import EMCTrainer
import Foundation

/// EMC figures derived from one search's trials without training again: the boundary had each trial been given a
/// smaller budget (a trial counts as fitted at budget B when it fitted by epoch B), and the boundary at a lower fit
/// threshold (a trial counts as fitted at t when its wrong count reached (1 − t)·n within its budget).
///
/// Trials were placed for the full budget and the strict threshold, so a derived boundary can fall outside the sizes
/// tried: when every trial fits (or none does) there is no boundary inside them, and the figure is only a bound.
public struct DerivedEMC: Codable, Sendable, Equatable {
    /// Epochs (budget curve) or the threshold (threshold figures).
    public var at: Double
    /// The boundary's n50 with its interval, when the trials straddle one.
    public var boundary: BoundaryFit?
    /// "≥ N": every trial fits at this budget or threshold (N the largest n tried). "≤ N": none does.
    public var bound: String?
    public var fitted: Int
    public var trials: Int

    /// The figure as a reader quotes it.
    public var text: String {
        if let bound { return bound }
        guard let b = boundary else { return "-" }
        return String(format: "%@%.0f (%.0f–%.0f)", b.lowIsBound || b.highIsBound ? "~" : "", b.n50, b.low, b.high)
    }

    /// `known`: the boundary of the same trials as they are (fitted or not at the full budget and threshold), reused
    /// when no trial's verdict changes at this budget or threshold.
    static func from(_ observations: [(n: Int, fitted: Bool, seed: Int)], at: Double, level: Double, known: (fitted: [Bool], boundary: BoundaryFit?)? = nil) -> DerivedEMC {
        let fitted = observations.filter(\.fitted).count
        let boundary = known.flatMap { $0.fitted == observations.map(\.fitted) ? $0 : nil }.map(\.boundary) ?? BoundaryFit.fit(observations, level: level)
        var d = DerivedEMC(at: at, boundary: boundary, bound: nil, fitted: fitted, trials: observations.count)
        if d.boundary == nil, let top = observations.map(\.n).max(), let bottom = observations.map(\.n).min() {
            d.bound = fitted == observations.count ? "≥ \(top)" : "≤ \(bottom)"
        }
        return d
    }

    /// The boundary at budgets of `fractions` of the run's epoch budget (`epochs`), from each trial's fit epoch. A trial
    /// whose own budget was larger (a minimum of steps at small n) is cut at the same fraction of its own budget.
    public static func budgetCurve(_ trials: [TrialRecord], epochs: Int, fractions: [Double] = [0.25, 0.5, 0.75, 1], level: Double = 0.9,
                                   boundary: BoundaryFit?? = nil) -> [DerivedEMC] {
        let known = boundary.map { (fitted: trials.map(\.fitted), boundary: $0) }
        return fractions.map { f in
            let budget = max(1, Int((Double(epochs) * f).rounded()))
            return from(trials.map { t in
                let own = t.epochBudget.map { max(1, Int((Double($0) * f).rounded())) } ?? budget
                return (t.n, t.fitted && (t.fitEpoch ?? t.epochs) <= own, t.seed)
            }, at: Double(budget), level: level, known: known)
        }
    }

    /// The boundary at each of the recorded fit thresholds (99%, 99.5%, 99.9%) below the run's own (`below`), from each
    /// trial's threshold epochs: a trial stops when it reaches the run's threshold, so a higher one is never measured.
    /// Logs that predate threshold epochs give none.
    public static func thresholds(_ trials: [TrialRecord], below run: Double = 1, level: Double = 0.9, boundary: BoundaryFit?? = nil) -> [DerivedEMC] {
        guard trials.contains(where: { $0.thresholdEpochs != nil }) else { return [] }
        let known = boundary.map { (fitted: trials.map(\.fitted), boundary: $0) }
        return FitOutcome.thresholds.filter { $0 < run }.map { t in
            from(trials.map { ($0.n, $0.fitted || $0.thresholdEpochs?[FitOutcome.key(t)] != nil, $0.seed) }, at: t, level: level, known: known)
        }
    }
}
