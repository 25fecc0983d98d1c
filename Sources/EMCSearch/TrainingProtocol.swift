import EMCCore
import EMCTrainer
import Foundation

/// A named protocol: a preset of the training settings, each still overridable (docs/methods.md has the side-by-side
/// table of emc's default protocol and the paper's).
public enum TrainingProtocol: String, Sendable, Codable, CaseIterable {
    /// The authors' code (Shwartz-Ziv et al., 2024): fitted at 99.5% training accuracy; SGD at lr 0.01 with momentum 0.9
    /// and no weight decay, cosine-annealed to zero over a budget of 400,000 steps; batch 640 (full-batch GD takes the
    /// same number of steps); the fit checked every 10,000 steps (by emc's exact pass over the whole subset, where their
    /// code looked at its first 200 batches).
    case paper

    public static let paperSteps = 400_000
    public static let paperCheckEvery = 10_000
    public static let paperBatch = 640
    public static let paperThreshold = 0.995
    public static let paperOptimizer = "sgd:lr=0.01,momentum=0.9,schedule=cosine"

    /// The check cadence for a step budget: the paper's 10,000 of 400,000 steps, scaled in proportion (at least 1) when
    /// the budget is scaled down: a stated rule, and the record says what was used.
    public static func scaledCheckEvery(steps: Int) -> Int { max(1, Int((Double(paperCheckEvery) * Double(steps) / Double(paperSteps)).rounded())) }

    /// `settings` under this protocol: every setting that still has emc's default takes the preset's value; the ones set
    /// otherwise (on the command line or in a manifest) stay. A step budget given replaces the 400,000 and scales the
    /// check cadence with it (unless the cadence is given too). An optimizer given keeps its kind and options (full-batch
    /// GD at the same steps, say), with the cosine schedule when it names none.
    public func apply(to settings: SearchSettings) throws -> SearchSettings {
        var s = settings
        let d = SearchSettings.defaults
        guard s.training.budget.epochs == d.training.budget.epochs && s.training.budget.minSteps == d.training.budget.minSteps else {
            throw EMCError(.invalidArgument, "the paper's protocol has a step budget: give --steps S (its check cadence scales with it), not --epochs or --min-steps")
        }
        s.protocolName = rawValue
        if s.training.fitThreshold == d.training.fitThreshold { s.training.fitThreshold = Self.paperThreshold }
        if s.training.batch == d.training.batch { s.training.batch = Self.paperBatch }
        if s.optimizer == d.optimizer {
            s.optimizer = try Written(Self.paperOptimizer)
        } else if s.optimizer.value.schedule == .constant && !s.optimizer.text.contains("schedule=") {
            s.optimizer = try Written(s.optimizer.text + (s.optimizer.text.contains(":") ? "," : ":") + "schedule=cosine")
        }
        let steps = s.training.budget.steps ?? Self.paperSteps
        s.training.budget = Budget(epochs: s.training.budget.epochs, minSteps: s.training.budget.minSteps, steps: steps)
        if s.training.checkEvery == nil { s.training.checkEvery = Self.scaledCheckEvery(steps: steps) }
        if steps != Self.paperSteps { s.protocolName = "\(rawValue) (budget scaled: \(steps) of \(Self.paperSteps) steps, checks every \(s.training.checkEvery!))" }
        return s
    }
}
