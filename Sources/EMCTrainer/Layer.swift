import EMCCore
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
    /// For each parameter tensor, its shape as a matrix (rows × cols, row-major) when it is a weight matrix, else nil.
    var matrixShapes: [(rows: Int, cols: Int)?] { get }
    /// Called once with this layer's slice of the parameter and gradient stores, and the largest batch.
    func bind(parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>, maxBatch: Int)
    /// Bytes of scratch `bind` allocates for batches of `maxBatch` (im2row rows, pooling indices); nil on overflow.
    func workspaceBytes(maxBatch: Int) -> Int?
    func forward(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, batch: Int)
    func backward(input: UnsafePointer<Float>, output: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>,
                  gradInput: UnsafeMutablePointer<Float>?, batch: Int)
}

extension Layer {
    public var parameterCount: Int { parameterTensors.reduce(0) { $0 + $1.count } }
    public var parameterTensors: [(count: Int, fanIn: Int)] { [] }
    public var matrixShapes: [(rows: Int, cols: Int)?] { parameterTensors.map { _ in nil } }
    public func bind(parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>, maxBatch: Int) {}
    public func workspaceBytes(maxBatch: Int) -> Int? { 0 }
}
