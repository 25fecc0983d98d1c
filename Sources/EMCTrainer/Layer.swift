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
    /// How each parameter tensor starts (default: PyTorch's uniform ±1/√fan-in from `parameterTensors`).
    var initializers: [ParameterInit] { get }
    /// Switches batch normalisation between batch statistics and fixed ones (`NormalizationMode`); other layers
    /// ignore it, and layers made of layers pass it on.
    func setMode(_ mode: NormalizationMode)
    /// False for a layer whose R-operator is not written yet: the Hessian check refuses a model that has one, and
    /// never calls its `rForward` or `rBackward`.
    var supportsHessian: Bool { get }
    /// True for a layer that normalises by batch statistics in training (batch normalisation, or a block holding one).
    var usesBatchStatistics: Bool { get }
    /// Called once with this layer's slice of the parameter and gradient stores, and the largest batch.
    func bind(parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>, maxBatch: Int)
    /// Bytes of scratch `bind` allocates for batches of `maxBatch` (im2row rows, pooling indices); nil on overflow.
    func workspaceBytes(maxBatch: Int) -> Int?
    func forward(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, batch: Int)
    func backward(input: UnsafePointer<Float>, output: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>,
                  gradInput: UnsafeMutablePointer<Float>?, batch: Int)

    // Pearlmutter's R-operator, for exact Hessian-vector products (docs/methods.md, "The Hessian check"): the
    // directional derivative R{·} = d/dr (·)(θ + r·V) at r = 0 of forward and backward, along a parameter direction V.
    // Every layer has one; a layer without parameters ignores `bindDirection`.

    /// This layer's slice of the direction V and of the product store Hv (which `rBackward` adds to), and the largest batch.
    func bindDirection(_ direction: UnsafePointer<Float>, product: UnsafeMutablePointer<Float>, maxBatch: Int)
    /// R{y} from R{x} (`rInput`; nil when the input does not depend on θ). Called after `forward` on the same batch.
    func rForward(input: UnsafePointer<Float>, rInput: UnsafePointer<Float>?, output: UnsafePointer<Float>,
                  rOutput: UnsafeMutablePointer<Float>, batch: Int)
    /// Adds R{dθ} to the product store and writes R{dx} when `rGradInput` is non-nil, from dy, R{dy}, x, R{x}, y.
    /// Called after `backward` and `rForward` on the same batch.
    func rBackward(input: UnsafePointer<Float>, rInput: UnsafePointer<Float>?, output: UnsafePointer<Float>,
                   gradOutput: UnsafePointer<Float>, rGradOutput: UnsafePointer<Float>, rGradInput: UnsafeMutablePointer<Float>?, batch: Int)
}

/// A layer's weight and bias slices of one flat store (its parameters, their gradients, a Hessian direction or a
/// Hessian product): the weights first, then the biases.
struct WeightAndBias {
    let weight: UnsafeMutablePointer<Float>
    let bias: UnsafeMutablePointer<Float>

    init(_ base: UnsafeMutablePointer<Float>, weights: Int) {
        weight = base
        bias = base + weights
    }

    init(_ base: UnsafePointer<Float>, weights: Int) { self.init(UnsafeMutablePointer(mutating: base), weights: weights) }
}

/// A layer made of layers (a residual block, squeeze-and-excitation): for summaries and FLOP counts.
public protocol CompositeLayer: Layer {
    var sublayers: [Layer] { get }
}

/// A layer whose R-operator is not written yet (LayerNorm, self-attention, patch tokens, squeeze-and-excitation): the
/// Hessian check refuses a model holding one before it trains (`Model.requireHessianSupport`), so these are never called.
public protocol LayerWithoutHessian: Layer {}

extension LayerWithoutHessian {
    public var supportsHessian: Bool { false }

    public func rForward(input: UnsafePointer<Float>, rInput: UnsafePointer<Float>?, output: UnsafePointer<Float>,
                         rOutput: UnsafeMutablePointer<Float>, batch: Int) {
        preconditionFailure("\(name) has no R-operator yet; the Hessian check refuses models with one")
    }

    public func rBackward(input: UnsafePointer<Float>, rInput: UnsafePointer<Float>?, output: UnsafePointer<Float>,
                          gradOutput: UnsafePointer<Float>, rGradOutput: UnsafePointer<Float>, rGradInput: UnsafeMutablePointer<Float>?, batch: Int) {
        preconditionFailure("\(name) has no R-operator yet; the Hessian check refuses models with one")
    }
}

/// A layer without parameters whose forward is a fixed linear map of its input (flatten, average pooling): its R-forward
/// is its forward applied to R{x}, its R-backward its backward applied to R{dy}.
public protocol LinearParameterFreeLayer: Layer {}

extension LinearParameterFreeLayer {
    public func rForward(input: UnsafePointer<Float>, rInput: UnsafePointer<Float>?, output: UnsafePointer<Float>,
                         rOutput: UnsafeMutablePointer<Float>, batch: Int) {
        guard let rInput else { rOutput.update(repeating: 0, count: batch * outputShape.count); return }
        forward(rInput, rOutput, batch: batch)
    }

    public func rBackward(input: UnsafePointer<Float>, rInput: UnsafePointer<Float>?, output: UnsafePointer<Float>,
                          gradOutput: UnsafePointer<Float>, rGradOutput: UnsafePointer<Float>, rGradInput: UnsafeMutablePointer<Float>?, batch: Int) {
        backward(input: input, output: output, gradOutput: rGradOutput, gradInput: rGradInput, batch: batch)
    }
}

/// How a parameter tensor is initialised. Draws come from the counter-based RNG by (seed, tensor, index).
public enum ParameterInit: Sendable, Equatable {
    /// Uniform in ±bound (PyTorch's Linear and Conv2d: bound 1/√fan-in).
    case uniform(bound: Float)
    /// Every value the same (normalisation scales 1, shifts 0).
    case constant(Float)
    /// Normal with mean 0 (ViT's class token and position embeddings: standard deviation 0.02).
    case normal(std: Float)
}

/// What batch normalisation normalises by. Training uses each batch's statistics (and updates the running ones as
/// PyTorch does); `collecting` does the same and also accumulates the statistics of every sample it sees; `evaluation`
/// uses fixed statistics: those collected, when a collection preceded it, else the running ones.
public enum NormalizationMode: Sendable, Equatable {
    case training, collecting, evaluation
}

extension Layer {
    public var initializers: [ParameterInit] { parameterTensors.map { .uniform(bound: 1 / Float($0.fanIn).squareRoot()) } }
    public func setMode(_ mode: NormalizationMode) {}
    public var supportsHessian: Bool { true }
    public var usesBatchStatistics: Bool { false }
    public var parameterCount: Int { parameterTensors.reduce(0) { $0 + $1.count } }
    public var parameterTensors: [(count: Int, fanIn: Int)] { [] }
    public var matrixShapes: [(rows: Int, cols: Int)?] { parameterTensors.map { _ in nil } }
    public func bind(parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>, maxBatch: Int) {}
    public func workspaceBytes(maxBatch: Int) -> Int? { 0 }
    public func bindDirection(_ direction: UnsafePointer<Float>, product: UnsafeMutablePointer<Float>, maxBatch: Int) {}
}
