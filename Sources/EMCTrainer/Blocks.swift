import EMCCore
import CTrainerKernels

/// Layers applied in order inside a block, with their own activation and gradient buffers (and R-operator buffers when
/// bound for Hessian products). A block's parameters are its chains' parameters, one after the other.
final class LayerChain {
    let layers: [Layer]
    private var outputs: [UnsafeMutableBufferPointer<Float>] = []
    private var grads: [UnsafeMutableBufferPointer<Float>] = []
    private var rOutputs: [UnsafeMutableBufferPointer<Float>] = []
    private var rGrads: [UnsafeMutableBufferPointer<Float>] = []

    init(_ layers: [Layer]) { self.layers = layers }

    deinit { release(&outputs); release(&grads); release(&rOutputs); release(&rGrads) }

    private func release(_ buffers: inout [UnsafeMutableBufferPointer<Float>]) {
        for b in buffers { b.deallocate() }
        buffers = []
    }

    var isEmpty: Bool { layers.isEmpty }
    var parameterCount: Int { layers.reduce(0) { $0 + $1.parameterCount } }
    var parameterTensors: [(count: Int, fanIn: Int)] { layers.flatMap(\.parameterTensors) }
    var matrixShapes: [(rows: Int, cols: Int)?] { layers.flatMap(\.matrixShapes) }
    var initializers: [ParameterInit] { layers.flatMap(\.initializers) }
    var supportsHessian: Bool { layers.allSatisfy(\.supportsHessian) }
    var usesBatchStatistics: Bool { layers.contains(where: \.usesBatchStatistics) }
    func setMode(_ mode: NormalizationMode) { for layer in layers { layer.setMode(mode) } }

    /// The layers' scratch and two buffers per layer (outputs and their gradients); nil on overflow.
    func workspaceBytes(maxBatch: Int) -> Int? {
        var total = 0
        for layer in layers {
            guard let w = layer.workspaceBytes(maxBatch: maxBatch), let a = checkedProduct([2 * 4, maxBatch, layer.outputShape.count]) else { return nil }
            let (sum, overflow) = total.addingReportingOverflow(w + a)
            if overflow { return nil }
            total = sum
        }
        return total
    }

    func bind(parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>, maxBatch: Int) {
        release(&outputs)
        release(&grads)
        var offset = 0
        for layer in layers {
            layer.bind(parameters: parameters + offset, gradients: gradients + offset, maxBatch: maxBatch)
            offset += layer.parameterCount
            outputs.append(.allocate(capacity: maxBatch * layer.outputShape.count))
            grads.append(.allocate(capacity: maxBatch * layer.outputShape.count))
        }
    }

    func bindDirection(_ direction: UnsafePointer<Float>, product: UnsafeMutablePointer<Float>, maxBatch: Int) {
        release(&rOutputs)
        release(&rGrads)
        var offset = 0
        for layer in layers {
            layer.bindDirection(direction + offset, product: product + offset, maxBatch: maxBatch)
            offset += layer.parameterCount
            rOutputs.append(.allocate(capacity: maxBatch * layer.outputShape.count))
            rGrads.append(.allocate(capacity: maxBatch * layer.outputShape.count))
        }
    }

    private func input(_ i: Int, _ x: UnsafePointer<Float>) -> UnsafePointer<Float> { i == 0 ? x : UnsafePointer(outputs[i - 1].baseAddress!) }

    /// The output of the last `forward`.
    var output: UnsafePointer<Float> { UnsafePointer(outputs[layers.count - 1].baseAddress!) }

    /// Runs the chain on x; returns its output.
    func forward(_ x: UnsafePointer<Float>, batch: Int) -> UnsafePointer<Float> {
        for (i, layer) in layers.enumerated() { layer.forward(input(i, x), outputs[i].baseAddress!, batch: batch) }
        return UnsafePointer(outputs[layers.count - 1].baseAddress!)
    }

    /// Back-propagates dy (the gradient of the chain's output) to the parameters and, when non-nil, writes dx.
    func backward(_ x: UnsafePointer<Float>, gradOutput dy: UnsafePointer<Float>, gradInput dx: UnsafeMutablePointer<Float>?, batch: Int) {
        var g = dy
        for i in stride(from: layers.count - 1, through: 0, by: -1) {
            let target = i == 0 ? dx : grads[i - 1].baseAddress!
            layers[i].backward(input: input(i, x), output: outputs[i].baseAddress!, gradOutput: g, gradInput: target, batch: batch)
            if i > 0 { g = UnsafePointer(grads[i - 1].baseAddress!) }
        }
    }

    /// R{output} from R{x} (nil: x does not depend on θ), after `forward` on the same batch.
    func rForward(_ x: UnsafePointer<Float>, rInput: UnsafePointer<Float>?, batch: Int) -> UnsafePointer<Float> {
        var rx = rInput
        for (i, layer) in layers.enumerated() {
            layer.rForward(input: input(i, x), rInput: rx, output: outputs[i].baseAddress!, rOutput: rOutputs[i].baseAddress!, batch: batch)
            rx = UnsafePointer(rOutputs[i].baseAddress!)
        }
        return UnsafePointer(rOutputs[layers.count - 1].baseAddress!)
    }

    /// Adds the chain's R{dθ} and writes R{dx} when non-nil; after `backward` (with the same dy) and `rForward`.
    /// `backward` must have run last on this batch: the chain's gradient buffers hold its intermediate dy's.
    func rBackward(_ x: UnsafePointer<Float>, rInput: UnsafePointer<Float>?, gradOutput dy: UnsafePointer<Float>,
                   rGradOutput rdy: UnsafePointer<Float>, rGradInput rdx: UnsafeMutablePointer<Float>?, batch: Int) {
        var g = dy, rg = rdy
        for i in stride(from: layers.count - 1, through: 0, by: -1) {
            let rx = i == 0 ? rInput : UnsafePointer(rOutputs[i - 1].baseAddress!)
            layers[i].rBackward(input: input(i, x), rInput: rx, output: outputs[i].baseAddress!, gradOutput: g, rGradOutput: rg,
                                rGradInput: i == 0 ? rdx : rGrads[i - 1].baseAddress!, batch: batch)
            if i > 0 { g = UnsafePointer(grads[i - 1].baseAddress!); rg = UnsafePointer(rGrads[i - 1].baseAddress!) }
        }
    }
}

/// A residual block: y = main(x) + shortcut(x), where the shortcut is the identity (no layers) or a chain of its own
/// (a 1×1 convolution with batch normalisation, or the parameter-free `ShortcutA`). The activation after the sum is
/// the next layer of the model. Parameters: the main chain's, then the shortcut's.
public final class Residual: CompositeLayer {
    public let name: String
    public let inputShape: FeatureShape
    public let outputShape: FeatureShape
    let main: LayerChain
    let shortcut: LayerChain
    private var scratch = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    private var rScratch = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)

    /// Throws when the paths' shapes do not meet (a bug in a model spec, reported as such).
    public init(name: String = "residual", main: [Layer], shortcut: [Layer] = []) throws {
        guard let first = main.first, let last = main.last else { throw EMCError(.invalidArgument, "a residual block needs layers") }
        let shortcutOut = shortcut.last?.outputShape ?? first.inputShape
        guard last.outputShape == shortcutOut, shortcut.first.map({ $0.inputShape == first.inputShape }) ?? true else {
            throw EMCError(.invalidArgument, "residual block: the main path gives \(last.outputShape), the shortcut \(shortcutOut)")
        }
        self.name = name
        inputShape = first.inputShape
        outputShape = last.outputShape
        self.main = LayerChain(main)
        self.shortcut = LayerChain(shortcut)
    }

    deinit { scratch.deallocate(); rScratch.deallocate() }

    /// The layers inside, main path first (for summaries and FLOP counts).
    public var sublayers: [Layer] { main.layers + shortcut.layers }
    public var mainPath: [Layer] { main.layers }
    /// Empty for the identity.
    public var shortcutPath: [Layer] { shortcut.layers }
    public var parameterTensors: [(count: Int, fanIn: Int)] { main.parameterTensors + shortcut.parameterTensors }
    public var matrixShapes: [(rows: Int, cols: Int)?] { main.matrixShapes + shortcut.matrixShapes }
    public var initializers: [ParameterInit] { main.initializers + shortcut.initializers }
    public var supportsHessian: Bool { main.supportsHessian && shortcut.supportsHessian }
    public var usesBatchStatistics: Bool { main.usesBatchStatistics || shortcut.usesBatchStatistics }
    public func setMode(_ mode: NormalizationMode) { main.setMode(mode); shortcut.setMode(mode) }

    public func workspaceBytes(maxBatch: Int) -> Int? {
        guard let a = main.workspaceBytes(maxBatch: maxBatch), let b = shortcut.workspaceBytes(maxBatch: maxBatch),
              let c = checkedProduct([4, maxBatch, inputShape.count]) else { return nil }
        let (s1, o1) = a.addingReportingOverflow(b)
        let (s2, o2) = s1.addingReportingOverflow(c)
        return o1 || o2 ? nil : s2
    }

    public func bind(parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>, maxBatch: Int) {
        main.bind(parameters: parameters, gradients: gradients, maxBatch: maxBatch)
        let m = main.parameterCount
        shortcut.bind(parameters: parameters + m, gradients: gradients + m, maxBatch: maxBatch)
        scratch.deallocate()
        scratch = .allocate(capacity: maxBatch * inputShape.count)
    }

    public func bindDirection(_ direction: UnsafePointer<Float>, product: UnsafeMutablePointer<Float>, maxBatch: Int) {
        main.bindDirection(direction, product: product, maxBatch: maxBatch)
        let m = main.parameterCount
        shortcut.bindDirection(direction + m, product: product + m, maxBatch: maxBatch)
        rScratch.deallocate()
        rScratch = .allocate(capacity: maxBatch * inputShape.count)
    }

    private static func sum(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
        Parallel.elements(count) { start, n in for i in start..<(start + n) { y[i] = a[i] + b[i] } }
    }

    private static func add(_ a: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
        Parallel.elements(count) { start, n in for i in start..<(start + n) { y[i] += a[i] } }
    }

    public func forward(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, batch: Int) {
        let m = main.forward(input, batch: batch)
        let s = shortcut.isEmpty ? input : shortcut.forward(input, batch: batch)
        Self.sum(m, s, into: output, count: batch * outputShape.count)
    }

    public func backward(input: UnsafePointer<Float>, output: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>,
                         gradInput: UnsafeMutablePointer<Float>?, batch: Int) {
        main.backward(input, gradOutput: gradOutput, gradInput: gradInput, batch: batch)
        if shortcut.isEmpty {
            if let gradInput { Self.add(gradOutput, into: gradInput, count: batch * inputShape.count) }
        } else {
            shortcut.backward(input, gradOutput: gradOutput, gradInput: gradInput == nil ? nil : scratch.baseAddress!, batch: batch)
            if let gradInput { Self.add(scratch.baseAddress!, into: gradInput, count: batch * inputShape.count) }
        }
    }

    /// R{y} = R{main(x)} + R{shortcut(x)} (R{x} itself for the identity).
    public func rForward(input: UnsafePointer<Float>, rInput: UnsafePointer<Float>?, output: UnsafePointer<Float>,
                         rOutput: UnsafeMutablePointer<Float>, batch: Int) {
        let n = batch * outputShape.count
        let rm = main.rForward(input, rInput: rInput, batch: batch)
        if !shortcut.isEmpty {
            Self.sum(rm, shortcut.rForward(input, rInput: rInput, batch: batch), into: rOutput, count: n)
        } else if let rInput {
            Self.sum(rm, rInput, into: rOutput, count: n)
        } else {
            rOutput.update(from: rm, count: n)
        }
    }

    public func rBackward(input: UnsafePointer<Float>, rInput: UnsafePointer<Float>?, output: UnsafePointer<Float>,
                          gradOutput: UnsafePointer<Float>, rGradOutput: UnsafePointer<Float>, rGradInput: UnsafeMutablePointer<Float>?, batch: Int) {
        // The chains' gradient buffers must hold this batch's dy's: backward ran last, and main's and the shortcut's are separate.
        main.rBackward(input, rInput: rInput, gradOutput: gradOutput, rGradOutput: rGradOutput, rGradInput: rGradInput, batch: batch)
        if shortcut.isEmpty {
            if let rGradInput { Self.add(rGradOutput, into: rGradInput, count: batch * inputShape.count) }
        } else {
            shortcut.rBackward(input, rInput: rInput, gradOutput: gradOutput, rGradOutput: rGradOutput,
                               rGradInput: rGradInput == nil ? nil : rScratch.baseAddress!, batch: batch)
            if let rGradInput { Self.add(rScratch.baseAddress!, into: rGradInput, count: batch * inputShape.count) }
        }
    }
}

/// The CIFAR ResNet's parameter-free "option A" shortcut (He et al. 2016, §4.2): the input subsampled with stride S
/// (x[:, ::S, ::S]) and zero channels added, half before and half after, up to the block's output channels.
public final class ShortcutA: LinearParameterFreeLayer {
    public let name = "shortcut-a"
    public let inputShape: FeatureShape
    public let outputShape: FeatureShape
    public let stride: Int
    public let padBefore: Int

    /// Throws when the channel difference is odd or negative (it cannot be split evenly).
    public init(input: FeatureShape, outChannels: Int, stride: Int) throws {
        let extra = outChannels - input.channels
        guard extra >= 0 && extra % 2 == 0 else {
            throw EMCError(.invalidArgument, "option-A shortcut from \(input.channels) to \(outChannels) channels: the difference must be even and not negative")
        }
        inputShape = input
        self.stride = stride
        padBefore = extra / 2
        outputShape = FeatureShape(height: (input.height - 1) / stride + 1, width: (input.width - 1) / stride + 1, channels: outChannels)
    }

    /// Calls `body(input offset, output offset)` for each kept pixel: where its Cin values sit in the input, and where they
    /// go in the output (after the zero channels before them).
    private func forEachKeptPixel(batch: Int, _ body: (Int, Int) -> Void) {
        let ci = inputShape.channels, co = outputShape.channels
        for b in 0..<batch {
            for oy in 0..<outputShape.height {
                for ox in 0..<outputShape.width {
                    body(((b * inputShape.height + oy * stride) * inputShape.width + ox * stride) * ci,
                         ((b * outputShape.height + oy) * outputShape.width + ox) * co + padBefore)
                }
            }
        }
    }

    public func forward(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, batch: Int) {
        output.update(repeating: 0, count: batch * outputShape.count)
        forEachKeptPixel(batch: batch) { i, o in (output + o).update(from: input + i, count: inputShape.channels) }
    }

    public func backward(input: UnsafePointer<Float>, output: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>,
                         gradInput: UnsafeMutablePointer<Float>?, batch: Int) {
        guard let gradInput else { return }
        gradInput.update(repeating: 0, count: batch * inputShape.count)
        forEachKeptPixel(batch: batch) { i, o in (gradInput + i).update(from: gradOutput + o, count: inputShape.channels) }
    }
}

/// Squeeze-and-excitation (Hu et al. 2018), as torchvision's `SqueezeExcitation` in EfficientNet's MBConv: a gate per
/// channel from the global average, g = σ(W₂·silu(W₁·mean_hw(x) + b₁) + b₂), and y = x ⊙ g (broadcast over the pixels).
/// W₁ is [S, C] and W₂ [C, S] (1×1 convolutions with biases in PyTorch). Backward:
///   dg[b, c] = Σ_hw dy·x,  then through the gate's chain into dx,  and dx += dy ⊙ g.
public final class SqueezeExcite: CompositeLayer, LayerWithoutHessian {
    public let name = "squeeze-excite"
    public let inputShape: FeatureShape
    public var outputShape: FeatureShape { inputShape }
    public let squeezed: Int
    let gate: LayerChain
    private var gateGradient = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)

    public init(input: FeatureShape, squeezed: Int) {
        inputShape = input
        self.squeezed = squeezed
        let c = input.channels
        gate = LayerChain([GlobalAvgPool(input: input), Linear(input: .vector(c), outputs: squeezed), Activation(.silu, input: .vector(squeezed)),
                           Linear(input: .vector(squeezed), outputs: c), Activation(.sigmoid, input: .vector(c))])
    }

    deinit { gateGradient.deallocate() }

    public var sublayers: [Layer] { gate.layers }
    public var parameterTensors: [(count: Int, fanIn: Int)] { gate.parameterTensors }
    public var matrixShapes: [(rows: Int, cols: Int)?] { gate.matrixShapes }
    public var initializers: [ParameterInit] { gate.initializers }

    public func workspaceBytes(maxBatch: Int) -> Int? {
        guard let g = gate.workspaceBytes(maxBatch: maxBatch), let d = checkedProduct([4, maxBatch, inputShape.channels]) else { return nil }
        return g + d
    }

    public func bind(parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>, maxBatch: Int) {
        gate.bind(parameters: parameters, gradients: gradients, maxBatch: maxBatch)
        gateGradient.deallocate()
        gateGradient = .allocate(capacity: maxBatch * inputShape.channels)
    }

    public func forward(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, batch: Int) {
        let g = gate.forward(input, batch: batch)
        let c = inputShape.channels, pixels = inputShape.height * inputShape.width
        Parallel.samples(batch, perSample: inputShape.count) { samples, _ in
            for b in samples {
                let o = b * pixels * c
                emc_scale_channels(output + o, input + o, g + b * c, pixels, c)
            }
        }
    }

    public func backward(input: UnsafePointer<Float>, output: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>,
                         gradInput: UnsafeMutablePointer<Float>?, batch: Int) {
        let c = inputShape.channels, pixels = inputShape.height * inputShape.width
        let dg = gateGradient.baseAddress!
        dg.update(repeating: 0, count: batch * c)
        // Each sample's gate gradient is its own sum over its pixels.
        Parallel.samples(batch, perSample: inputShape.count) { samples, _ in
            for b in samples {
                let o = b * pixels * c
                emc_channel_product_sums(dg + b * c, gradOutput + o, input + o, pixels, c)
            }
        }
        // The chain's first layer (the average pool) writes dx from the gate; the direct path adds dy ⊙ g.
        gate.backward(input, gradOutput: dg, gradInput: gradInput, batch: batch)
        guard let gradInput else { return }
        let g = gate.output
        Parallel.samples(batch, perSample: inputShape.count) { samples, _ in
            for b in samples {
                let o = b * pixels * c
                emc_add_scaled_channels(gradInput + o, gradOutput + o, g + b * c, pixels, c)
            }
        }
    }
}
