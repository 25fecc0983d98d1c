import Foundation
import EMCCore
import EMCTrainer

/// One line of the results log: a trial (n, seed → outcome) or the final train/test evaluation at the EMC point.
public struct TrialRecord: Codable, Sendable, Equatable {
    /// How non-finite numbers (a diverged trial's loss) are written in the log: as the strings "nan", "inf", "-inf".
    public static let nonFiniteEncoding = JSONEncoder.NonConformingFloatEncodingStrategy.convertToString(
        positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    public static let nonFiniteDecoding = JSONDecoder.NonConformingFloatDecodingStrategy.convertFromString(
        positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")

    public enum Kind: String, Codable, Sendable { case trial, final }

    public var kind: Kind
    /// Hash of the full configuration including the seed: the resume key.
    public var key: String
    /// Hash of the configuration without the seed: groups a configuration's seeds in reports.
    public var config: String
    public var seed: Int
    public var n: Int
    public var result: FitOutcome.Result
    public var fitted: Bool
    public var reason: String
    public var epochs: Int
    public var steps: Int
    public var loss: Double
    public var trainAccuracy: Double
    public var wrong: Int
    public var gradientNorm: Double?
    public var seconds: Double
    /// Only on `final` lines.
    public var testAccuracy: Double?
    /// Descriptive fields, so a report can be made from the log alone.
    public var data: String
    public var variant: String?
    public var model: String
    public var optimizer: String
    public var parameters: Int
    public var lossHistory: [Double]?
    /// The data's content id, and that of the unperturbed set at the bottom of its variant chain (absent in logs
    /// written before they were recorded). Reports pair a random-label variant with its true-label base by these.
    public var dataContentId: String?
    public var rootContentId: String?

    public var sampleEpochs: Double { Double(n) * Double(epochs) }

    public init(kind: Kind, key: String, config: String, seed: Int, n: Int, result: FitOutcome.Result, fitted: Bool, reason: String,
                epochs: Int, steps: Int, loss: Double, trainAccuracy: Double, wrong: Int, gradientNorm: Double?, seconds: Double,
                testAccuracy: Double?, data: String, variant: String?, model: String, optimizer: String, parameters: Int, lossHistory: [Double]?) {
        self.kind = kind
        self.key = key
        self.config = config
        self.seed = seed
        self.n = n
        self.result = result
        self.fitted = fitted
        self.reason = reason
        self.epochs = epochs
        self.steps = steps
        self.loss = loss
        self.trainAccuracy = trainAccuracy
        self.wrong = wrong
        self.gradientNorm = gradientNorm
        self.seconds = seconds
        self.testAccuracy = testAccuracy
        self.data = data
        self.variant = variant
        self.model = model
        self.optimizer = optimizer
        self.parameters = parameters
        self.lossHistory = lossHistory
    }
}
