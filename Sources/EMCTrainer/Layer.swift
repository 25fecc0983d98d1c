/// The shape of one sample as it flows through a network: height × width × channels, channels
/// innermost (NHWC). Feature vectors are 1 × 1 × F.
public struct FeatureShape: Sendable, Equatable, CustomStringConvertible {
    public var height: Int
    public var width: Int
    public var channels: Int

    public init(height: Int, width: Int, channels: Int) {
        self.height = height
        self.width = width
        self.channels = channels
    }

    public static func vector(_ n: Int) -> FeatureShape { FeatureShape(height: 1, width: 1, channels: n) }

    public var count: Int { height * width * channels }
    public var description: String { height == 1 && width == 1 ? "\(channels)" : "\(height)×\(width)×\(channels)" }
}

/// One layer with its forward and backward written out over flat Float32 buffers (llm.c style).
///
/// Buffers hold a batch of `batch` samples back to back, each `inputShape.count` (or
/// `outputShape.count`) floats in NHWC order. `backward` adds this batch's parameter gradients to
/// the gradient store and, when `gradInput` is non-nil, writes the gradient with respect to the input.
public protocol Layer: AnyObject {
    var name: String { get }
    var inputShape: FeatureShape { get }
    var outputShape: FeatureShape { get }
    /// Number of trainable values (weights and biases).
    var parameterCount: Int { get }
    /// Fan-in of each parameter tensor, for PyTorch's default initialisation (empty if none).
    var parameterTensors: [(count: Int, fanIn: Int)] { get }
    /// Called once with this layer's slice of the parameter and gradient stores, and the largest batch.
    func bind(parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>, maxBatch: Int)
    func forward(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, batch: Int)
    func backward(input: UnsafePointer<Float>, output: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>,
                  gradInput: UnsafeMutablePointer<Float>?, batch: Int)
}

extension Layer {
    public var parameterCount: Int { parameterTensors.reduce(0) { $0 + $1.count } }
    public var parameterTensors: [(count: Int, fanIn: Int)] { [] }
    public func bind(parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>, maxBatch: Int) {}
}
