import EMCCore

/// A feed-forward network: layers applied in order, with preallocated activation and gradient
/// buffers for batches of up to `maxBatch` samples, and all parameters in one flat store so that
/// optimizers are simple loops.
public final class Model {
    public let layers: [Layer]
    public let inputShape: FeatureShape
    public let classes: Int
    public private(set) var maxBatch: Int
    public let parameterCount: Int
    /// All weights and biases, layer after layer.
    public let parameters: UnsafeMutableBufferPointer<Float>
    /// Gradients, same layout as `parameters`.
    public let gradients: UnsafeMutableBufferPointer<Float>
    private var activations: [UnsafeMutableBufferPointer<Float>]
    private var gradActivations: [UnsafeMutableBufferPointer<Float>]
    private var parameterOffsets: [Int]
    /// The first layer with parameters: no input gradient is needed at or below it.
    private let firstTrainable: Int
    /// The R-operator's stores (the direction V, the product Hv, R{activations} and R{gradients}), allocated by
    /// `prepareHessianVectorProducts`.
    private var rStores: (direction: UnsafeMutableBufferPointer<Float>, product: UnsafeMutableBufferPointer<Float>)?
    private var rActivations: [UnsafeMutableBufferPointer<Float>] = []
    private var rGradActivations: [UnsafeMutableBufferPointer<Float>] = []

    /// Seconds each top-level layer's forward and backward took, added up while set (nil: not timed): for benchmarks.
    public var profile: LayerProfile?

    /// The threads this model's passes and optimizer steps split their work over (`ThreadTeam`); the results are the
    /// same bits at any count.
    public let team: ThreadTeam

    /// A model of `layers` for batches of up to `maxBatch`, training on `threads` threads (`ThreadTeam`).
    public init(layers: [Layer], maxBatch: Int, threads: Int = 1) {
        precondition(!layers.isEmpty && maxBatch > 0)
        BLAS.useOneThread()
        team = ThreadTeam(threads: threads)
        self.layers = layers
        self.inputShape = layers[0].inputShape
        self.classes = layers.last!.outputShape.count
        self.maxBatch = maxBatch
        parameterCount = layers.reduce(0) { $0 + $1.parameterCount }
        parameters = .allocate(capacity: max(1, parameterCount))
        gradients = .allocate(capacity: max(1, parameterCount))
        parameters.initialize(repeating: 0)
        gradients.initialize(repeating: 0)
        activations = layers.map { .allocate(capacity: maxBatch * $0.outputShape.count) }
        gradActivations = layers.map { .allocate(capacity: maxBatch * $0.outputShape.count) }
        firstTrainable = layers.firstIndex { $0.parameterCount > 0 } ?? layers.count
        parameterParts = team.count > 1 ? Self.parameterParts(Self.parameterLayout(layers), parts: team.count) : nil
        var offset = 0
        parameterOffsets = []
        // Layers size their per-thread scratch by the team they bind under.
        team.scoped {
            for layer in layers {
                parameterOffsets.append(offset)
                layer.bind(parameters: parameters.baseAddress! + offset, gradients: gradients.baseAddress! + offset, maxBatch: maxBatch)
                offset += layer.parameterCount
            }
        }
    }

    /// Which parameters each thread of the team updates in an optimizer step and zeroes before a batch (nil with one
    /// thread): every tensor of at least `Model.splitTensorFloats` split in equal shares, a weight matrix at whole rows
    /// (as a linear layer's forward splits its output features and a weight gradient its rows), part p taking the p-th
    /// share of each; a smaller tensor whole, to the part with the fewest parameters so far. Any split of an elementwise
    /// pass computes the same bits; this one leaves each tensor's part in the cache of the thread that wrote its
    /// gradient and will read its weights next, where a flat split of the whole store hands the other thread lines
    /// another core just wrote or still holds, each a round trip between cores ("Cores near and far" in
    /// docs/benchmarks.md).
    public let parameterParts: [[Range<Int>]]?

    /// The fewest parameters a tensor has for `parameterParts` to split it over the threads.
    static let splitTensorFloats = 4096

    /// `parameterParts` for `layout` on `parts` threads.
    static func parameterParts(_ layout: [ParameterTensorLayout], parts: Int) -> [[Range<Int>]] {
        var out = Array(repeating: [Range<Int>](), count: parts)
        var load = Array(repeating: 0, count: parts)
        func add(_ part: Int, _ flat: Range<Int>) {
            guard !flat.isEmpty else { return }
            load[part] += flat.count
            if let last = out[part].last, last.upperBound == flat.lowerBound {
                out[part][out[part].count - 1] = last.lowerBound..<flat.upperBound
            } else {
                out[part].append(flat)
            }
        }
        for tensor in layout where tensor.count > 0 {
            let rows = tensor.rows ?? tensor.count, width = tensor.count / rows
            let split = tensor.count >= splitTensorFloats ? Parallel.partCount(rows, grain: 1, minimum: 1, threads: parts) : 1
            if split == 1 {
                add(load.indices.min { load[$0] < load[$1] }!, tensor.offset..<(tensor.offset + tensor.count))
                continue
            }
            for part in 0..<split {
                let range = Parallel.range(part, of: split, count: rows, grain: 1)
                add(part, (tensor.offset + range.lowerBound * width)..<(tensor.offset + range.upperBound * width))
            }
        }
        return out
    }

    /// One optimizer step on this model's parameters and gradients, split over the team by `parameterParts`.
    public func step(_ optimizer: Optimizer, lr: Double) {
        team.scoped { optimizer.step(parameters: parameters, gradients: gradients, lr: lr, parts: parameterParts) }
    }

    /// Where each parameter tensor lies in the flat store, with the shape of each weight matrix.
    public var parameterLayout: [ParameterTensorLayout] { Self.parameterLayout(layers) }

    static func parameterLayout(_ layers: [Layer]) -> [ParameterTensorLayout] {
        var out: [ParameterTensorLayout] = []
        var offset = 0
        for layer in layers {
            for (tensor, shape) in zip(layer.parameterTensors, layer.matrixShapes) {
                out.append(ParameterTensorLayout(offset: offset, count: tensor.count, rows: shape?.rows, cols: shape?.cols))
                offset += tensor.count
            }
        }
        return out
    }

    /// Bytes a model of `layers` takes for batches of `maxBatch`: parameters with their gradients and up to two
    /// optimizer moments, activations and their gradients, layer scratch, and the trainer's input batch; nil on overflow.
    public static func estimatedBytes(layers: [Layer], maxBatch: Int) -> Int? {
        var total = 0
        func add(_ n: Int?) -> Bool {
            guard let n else { return false }
            let (sum, overflow) = total.addingReportingOverflow(n)
            total = sum
            return !overflow
        }
        let parameters = layers.reduce(0) { $0 + $1.parameterCount }
        guard add(checkedProduct([4 * 4, parameters])), let input = layers.first?.inputShape.count,
              add(checkedProduct([4, maxBatch, input])) else { return nil }
        for layer in layers {
            guard add(checkedProduct([2 * 4, maxBatch, layer.outputShape.count])), add(layer.workspaceBytes(maxBatch: maxBatch)) else { return nil }
        }
        return total
    }

    deinit {
        parameters.deallocate()
        gradients.deallocate()
        for a in activations { a.deallocate() }
        for g in gradActivations { g.deallocate() }
        releaseHessianStores()
    }

    // MARK: Hessian-vector products (Pearlmutter's R-operator through every layer), for `Trainer.hessianVectorProduct`
    // and the Hessian check; internal, so the stores exist whenever these run.

    /// Allocates the R-operator's stores for batches of up to `maxBatch` (once; again after `resizeBatches`).
    func prepareHessianVectorProducts() {
        guard rStores == nil else { return }
        let direction = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(1, parameterCount))
        let product = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(1, parameterCount))
        direction.initialize(repeating: 0)
        product.initialize(repeating: 0)
        rStores = (direction, product)
        rActivations = layers.map { .allocate(capacity: maxBatch * $0.outputShape.count) }
        rGradActivations = layers.map { .allocate(capacity: maxBatch * $0.outputShape.count) }
        var offset = 0
        team.scoped {
            for layer in layers {
                layer.bindDirection(direction.baseAddress! + offset, product: product.baseAddress! + offset, maxBatch: maxBatch)
                offset += layer.parameterCount
            }
        }
    }

    private func releaseHessianStores() {
        guard let stores = rStores else { return }
        stores.direction.deallocate()
        stores.product.deallocate()
        for a in rActivations { a.deallocate() }
        for g in rGradActivations { g.deallocate() }
        rActivations = []
        rGradActivations = []
        rStores = nil
    }

    /// The direction V of the next product (same layout as `parameters`).
    var hessianDirection: UnsafeMutableBufferPointer<Float> { rStores!.direction }
    /// Where `rBackward` adds H·V (same layout as `parameters`; the caller zeroes it).
    var hessianProduct: UnsafeMutableBufferPointer<Float> { rStores!.product }

    /// R{logits} along `hessianDirection`, after `forward` on the same input.
    @discardableResult
    func rForward(_ input: UnsafePointer<Float>, batch: Int) -> UnsafePointer<Float> {
        precondition(batch <= maxBatch && rStores != nil)
        var rx: UnsafePointer<Float>? = nil
        team.scoped {
            for i in firstTrainable..<layers.count {
                let x = i == 0 ? input : UnsafePointer(activations[i - 1].baseAddress!)
                layers[i].rForward(input: x, rInput: rx, output: activations[i].baseAddress!, rOutput: rActivations[i].baseAddress!,
                                   batch: batch)
                rx = UnsafePointer(rActivations[i].baseAddress!)
            }
        }
        return UnsafePointer(rActivations[layers.count - 1].baseAddress!)
    }

    /// Where the loss's R-operator writes R{dLoss/dlogits} before `rBackward`.
    var rLogitGradient: UnsafeMutablePointer<Float> { rGradActivations[layers.count - 1].baseAddress! }

    /// Adds this batch's H·V to `hessianProduct`, after `backward` and `rForward` on the same input.
    func rBackward(_ input: UnsafePointer<Float>, batch: Int) {
        team.scoped {
            for i in stride(from: layers.count - 1, through: firstTrainable, by: -1) {
                let x = i == 0 ? input : UnsafePointer(activations[i - 1].baseAddress!)
                layers[i].rBackward(input: x, rInput: i == firstTrainable ? nil : UnsafePointer(rActivations[i - 1].baseAddress!),
                                    output: activations[i].baseAddress!, gradOutput: gradActivations[i].baseAddress!,
                                    rGradOutput: rGradActivations[i].baseAddress!,
                                    rGradInput: i == firstTrainable ? nil : rGradActivations[i - 1].baseAddress!, batch: batch)
            }
        }
    }

    /// Reallocates the activation buffers and layer scratch for batches of up to `newMaxBatch` (parameters and gradients
    /// stay): the Hessian check runs its full-batch passes as one batch when memory allows.
    func resizeBatches(_ newMaxBatch: Int) {
        precondition(newMaxBatch > 0)
        guard newMaxBatch != maxBatch else { return }
        let hadStores = rStores != nil
        releaseHessianStores()
        for a in activations { a.deallocate() }
        for g in gradActivations { g.deallocate() }
        maxBatch = newMaxBatch
        activations = layers.map { .allocate(capacity: newMaxBatch * $0.outputShape.count) }
        gradActivations = layers.map { .allocate(capacity: newMaxBatch * $0.outputShape.count) }
        team.scoped {
            for (layer, start) in zip(layers, parameterOffsets) {
                layer.bind(parameters: parameters.baseAddress! + start, gradients: gradients.baseAddress! + start, maxBatch: newMaxBatch)
            }
        }
        if hadStores { prepareHessianVectorProducts() }
    }

    /// Bytes the buffers of batches of `batch` take with the R-operator's stores (four activation-sized buffers per
    /// layer, one and a half times a layer's scratch and twice a block's); nil on overflow.
    func hessianBytes(batch: Int) -> Int? {
        var total = 0
        for layer in layers {
            guard let a = checkedProduct([4 * 4, batch, layer.outputShape.count]), let w = layer.workspaceBytes(maxBatch: batch) else { return nil }
            // A block's R-operator doubles its chains' buffers (which are most of its scratch); a leaf adds about half.
            let r = layer is CompositeLayer ? w : w / 2
            let (sum, overflow) = total.addingReportingOverflow(a + w + r)
            if overflow { return nil }
            total = sum
        }
        return total
    }

    /// Each layer's parameter initialisation (`Layer.initializers`; PyTorch's defaults: Linear and Conv2d weights and
    /// biases uniform in ±1/√fan_in, which kaiming_uniform with a = √5 gives exactly; normalisation scales 1 and shifts
    /// 0). Draws come from the counter-based RNG by (seed, parameter tensor, index), so they do not depend on threads.
    public func initialize(seed: UInt64) {
        let rng = CounterRNG(seed: seed, stream: .initialization)
        var offset = 0
        var tensorIndex: UInt64 = 0
        for layer in layers {
            for ((count, _), kind) in zip(layer.parameterTensors, layer.initializers) {
                let stream = rng.derived(tensorIndex)
                for i in 0..<count {
                    switch kind {
                    case .uniform(let bound): parameters[offset + i] = (2 * stream.uniform(UInt64(i)) - 1) * bound
                    case .constant(let value): parameters[offset + i] = value
                    case .normal(let std): parameters[offset + i] = Float(stream.normal(UInt64(i))) * std
                    }
                }
                offset += count
                tensorIndex += 1
            }
        }
    }

    /// True when some layer normalises by batch statistics (its fit is judged in evaluation mode: `Trainer`).
    public var hasBatchNorm: Bool { layers.contains { $0.usesBatchStatistics } }

    /// The layers whose R-operator is not written yet (the Hessian check refuses the model while any remain).
    public var layersWithoutHessian: [String] { Self.layersWithoutHessian(layers) }

    /// The names of the layers among `layers` (inside blocks too) whose R-operator is not written yet.
    public static func layersWithoutHessian(_ layers: [Layer]) -> [String] {
        func missing(_ layer: Layer) -> [String] {
            guard !layer.supportsHessian else { return [] }
            guard let block = layer as? CompositeLayer else { return [layer.name] }
            let inner = block.sublayers.flatMap(missing)
            return inner.isEmpty ? [layer.name] : inner  // a block without an R-operator of its own (squeeze-excite)
        }
        return layers.flatMap(missing)
    }

    /// Throws, naming them, when some of `layers` have no R-operator yet: the one refusal of the Hessian check, whether a
    /// search is set up (`ModelSpec.checkHessianSupport`, before any training) or a trainer is asked directly.
    static func requireHessianSupport(_ layers: [Layer], model: String) throws {
        let missing = layersWithoutHessian(layers)
        guard missing.isEmpty else {
            throw EMCError(.unsupported, "the Hessian check has no R-operator for \(Set(missing).sorted().joined(separator: ", ")) yet; "
                           + "run \(model) with --hessian-check off (it is off by default)")
        }
    }

    /// Sets every layer's normalisation mode (`NormalizationMode`).
    public func setMode(_ mode: NormalizationMode) { for layer in layers { layer.setMode(mode) } }

    public func zeroGradients() {
        let store = gradients.baseAddress!
        team.scoped { Parallel.zero(store, count: gradients.count, parts: parameterParts) }
    }

    /// Runs the batch forward; returns a pointer to the logits [batch, classes].
    @discardableResult
    public func forward(_ input: UnsafePointer<Float>, batch: Int) -> UnsafePointer<Float> {
        precondition(batch <= maxBatch)
        var x = input
        team.scoped {
            for (i, layer) in layers.enumerated() {
                let start = profile == nil ? 0 : Clock.now()
                layer.forward(x, activations[i].baseAddress!, batch: batch)
                if let profile { profile.forward[i] += Clock.now() - start }
                x = UnsafePointer(activations[i].baseAddress!)
            }
        }
        return x
    }

    /// The logits of the last `forward`.
    public var logits: UnsafePointer<Float> { UnsafePointer(activations[layers.count - 1].baseAddress!) }

    /// Where the loss writes dLoss/dlogits before `backward`.
    public var logitGradient: UnsafeMutablePointer<Float> { gradActivations[layers.count - 1].baseAddress! }

    /// Back-propagates `logitGradient` through the layers, adding to `gradients`. Needs the
    /// activations of the last `forward` on the same input. Stops at the first layer with parameters:
    /// nothing below it needs a gradient (for an MLP that saves the largest product, dx of layer 1).
    public func backward(_ input: UnsafePointer<Float>, batch: Int) {
        team.scoped {
            for i in stride(from: layers.count - 1, through: firstTrainable, by: -1) {
                let x = i == 0 ? input : UnsafePointer(activations[i - 1].baseAddress!)
                let start = profile == nil ? 0 : Clock.now()
                layers[i].backward(input: x, output: activations[i].baseAddress!, gradOutput: gradActivations[i].baseAddress!,
                                   gradInput: i == firstTrainable ? nil : gradActivations[i - 1].baseAddress!, batch: batch)
                if let profile { profile.backward[i] += Clock.now() - start }
            }
        }
    }

    /// FLOPs of the matrix products and convolutions in one training step (forward and backward) at batch `batch`:
    /// linear and convolution layers (a class-token block's q/k/v projection included), inside blocks too. (Attention's
    /// own products and elementwise work are not counted.)
    public func gemmFLOPsPerStep(batch: Int) -> Double {
        func flops(_ layer: Layer, first: Bool) -> Double {
            if let block = layer as? CompositeLayer { return block.sublayers.reduce(0) { $0 + flops($1, first: false) } }
            let perProduct: Double
            if let linear = layer as? Linear {
                perProduct = 2 * Double(batch * linear.positions) * Double(linear.inFeatures) * Double(linear.outFeatures)
            } else if let conv = layer as? Conv2D {
                perProduct = 2 * Double(batch * conv.outputShape.height * conv.outputShape.width) * Double(conv.patch) * Double(conv.outChannels)
            } else if let projection = layer as? ClassQueryProjection {
                // Keys and values for every token (2D outputs), the query for the class token alone (D outputs).
                perProduct = 2 * Double(batch) * Double(projection.dim * projection.dim) * Double(2 * projection.tokens + 1)
            } else if let conv = layer as? DepthwiseConv2D {
                perProduct = 2 * Double(batch * conv.outputShape.count) * Double(conv.kernel * conv.kernel)
            } else { return 0 }
            return perProduct * (first ? 2 : 3)  // forward, dW, and dx unless first
        }
        return layers.enumerated().reduce(0) { $0 + flops($1.element, first: $1.offset == firstTrainable) }
    }

    /// A copy of the parameters (for tests, checkpoints and determinism checks).
    public var parameterValues: [Float] { Array(parameters.prefix(parameterCount)) }

    /// One line per layer (blocks' layers indented below them): shapes and parameter counts.
    public var summary: String {
        func lines(_ layer: Layer, indent: String) -> [String] {
            let line = indent + "\(layer.name) \(layer.inputShape) → \(layer.outputShape)" + (layer.parameterCount > 0 ? " (\(layer.parameterCount) params)" : "")
            guard let block = layer as? CompositeLayer else { return [line] }
            return [line] + block.sublayers.flatMap { lines($0, indent: indent + "  ") }
        }
        return layers.flatMap { lines($0, indent: "") }.joined(separator: "\n")
    }
}

/// Seconds per top-level layer of a model's forward and backward passes, added up while `Model.profile` holds it.
public final class LayerProfile {
    public var forward: [Double]
    public var backward: [Double]

    public init(layers: Int) {
        forward = Array(repeating: 0, count: layers)
        backward = Array(repeating: 0, count: layers)
    }
}
