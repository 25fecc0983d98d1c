import EMCCore
import EMCTrainer
import Foundation

/// Whether the budget decides a boundary, measured from its own trials. Under a constant, plateau or fixed-step schedule
/// a run with budget B is the start of any longer run, so a trial that fitted by epoch e would have fitted with any
/// budget of at least e: the boundary at half the budget follows from the same trials (a trial counts as fitted there
/// when it fitted by half its own budget). When n50 at B is clearly above n50 at B/2, more budget would likely fit more:
/// the budget decides the boundary and n50 is a lower bound for it. Under a horizon schedule (cosine, whose rate depends
/// on the budget) a run cut at half its budget is not a half-budget run, and nothing is derived.
///
/// Beside it, the failures near n50: the share that ran out of budget, rather than converging short of a fit or
/// stopping at a saddle. A boundary whose failures are mostly converged-unfit is one the optimizer's minima decide.
public struct BudgetCheck: Codable, Sendable, Equatable {
    /// False under a horizon schedule: the half-budget boundary is not derived.
    public var measured: Bool
    /// n50 at half the budget from the same trials (nil when no trial had fitted by then).
    public var halfBudgetN50: Double?
    /// The n50 gained from half the budget to all of it (0.1: 10% more), with its interval at the boundary's level (a t
    /// interval over the subsets' own gains; with one subset, from the full budget's interval).
    public var gain: Double?
    public var gainLow: Double?
    public var gainHigh: Double?
    /// Failed trials near n50 (`BoundaryFit.isNear`), and the share of them that ran out of budget.
    public var failuresNear: Int
    public var exhaustedShare: Double?
    /// The budget decides the boundary: n50 grew by more than `minimumGain` from half the budget, with an interval above 0.
    public var bound: Bool

    /// The gain from half the budget above which (its interval above 0) the budget is said to decide the boundary.
    public static let minimumGain = 0.05

    /// The check over `trials` (those that entered `boundary`); `budget` gives a trial's own epoch budget (the run's
    /// budget grown to its minimum of steps at small n).
    public static func measure(_ trials: [TrialRecord], boundary: BoundaryFit, horizonSchedule: Bool, budget: (TrialRecord) -> Int?) -> BudgetCheck {
        let near = trials.filter { !$0.fitted && boundary.isNear($0.n) }
        let exhausted = near.isEmpty ? nil : Double(near.filter { $0.result == .budgetExhausted }.count) / Double(near.count)
        var check = BudgetCheck(measured: !horizonSchedule, failuresNear: near.count, exhaustedShare: exhausted, bound: false)
        guard !horizonSchedule else { return check }
        let half = trials.map { t -> (n: Int, fitted: Bool, seed: Int) in
            let own = budget(t) ?? t.epochs
            return (t.n, t.fitted && 2 * (t.fitEpoch ?? t.epochs) <= own, t.seed)
        }
        guard let h = BoundaryFit.fit(half, level: boundary.level) else {
            // Nothing had fitted by half the budget (or everything that fitted did so only later): n50 at B/2 is below
            // every size tried, far below n50 at B.
            check.bound = half.allSatisfy { !$0.fitted } && trials.contains { $0.fitted }
            return check
        }
        check.halfBudgetN50 = h.n50
        check.gain = boundary.n50 / h.n50 - 1
        if let full = boundary.subsetN50s, let part = h.subsetN50s, full.count == part.count, full.count >= 2 {
            let d = zip(full, part).map { log($0 / $1) }
            let mean = d.reduce(0, +) / Double(d.count)
            let sd = (d.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(d.count - 1)).squareRoot()
            let q = BoundaryFit.tQuantile(0.5 + boundary.level / 2, degrees: Double(d.count - 1)) * sd / Double(d.count).squareRoot()
            check.gainLow = exp(log(1 + check.gain!) - q) - 1
            check.gainHigh = exp(log(1 + check.gain!) + q) - 1
        } else {
            check.gainLow = boundary.low / h.n50 - 1
            check.gainHigh = boundary.high / h.n50 - 1
        }
        check.bound = check.gain! > minimumGain && (check.gainLow ?? 0) > 0
        return check
    }

    /// The check as a report line.
    public var text: String {
        var parts: [String] = []
        if !measured {
            parts.append("budget dependence not measured (a horizon schedule: a run cut at half its budget is not a half-budget run)")
        } else if let gain, let half = halfBudgetN50 {
            let interval = zipOptional(gainLow, gainHigh).map { String(format: " (%.0f%% to %.0f%%)", $0 * 100, $1 * 100) } ?? ""
            parts.append(String(format: "n50 at half the budget %@, %+.0f%%%@ to the full budget", formatCount(half), gain * 100, interval)
                         + (bound ? ": budget-bound, n50 is a lower bound for this budget" : ""))
        } else if bound {
            parts.append("no trial had fitted by half the budget: budget-bound, n50 is a lower bound for this budget")
        }
        if let exhaustedShare {
            parts.append(String(format: "%d failure(s) near n50, %.0f%% out of budget", failuresNear, exhaustedShare * 100))
        }
        return parts.joined(separator: "; ")
    }
}
