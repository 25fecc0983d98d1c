import EMCCore
import CTrainerKernels
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// Elementwise activation functions, as PyTorch defines them.
public enum ActivationKind: String, Sendable, CaseIterable {
    case relu
    case leakyRelu = "leaky_relu"  // negative slope 0.01, as nn.LeakyReLU()
    case tanh
    case sigmoid
    case gelu                      // exact (erf) form, as nn.GELU()
    case silu                      // x·σ(x), as nn.SiLU() (swish)
    case identity

    /// Non-decreasing everywhere (GELU and SiLU dip below zero, so they are not).
    public var isMonotonic: Bool { self != .gelu && self != .silu }
}

/// y = f(x) elementwise; backward uses x or y, whichever is cheaper. GELU and SiLU keep f′(x) from forward (computed
/// with the exponentials y needs anyway), so their backward is one product instead of a second pass of exponentials.
public final class Activation: Layer {
    public let kind: ActivationKind
    public let inputShape: FeatureShape
    public var outputShape: FeatureShape { inputShape }
    public var name: String { kind.rawValue }
    /// f′(x) of the last forward (GELU and SiLU only).
    private var derivative = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    private var keepsDerivative: Bool { kind == .gelu || kind == .silu }

    public init(_ kind: ActivationKind, input: FeatureShape) {
        self.kind = kind
        inputShape = input
    }

    deinit { derivative.deallocate() }

    public func workspaceBytes(maxBatch: Int) -> Int? { keepsDerivative ? checkedProduct([4, maxBatch, inputShape.count]) : 0 }

    public func bind(parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>, maxBatch: Int) {
        derivative.deallocate()
        derivative = keepsDerivative ? .allocate(capacity: maxBatch * inputShape.count) : UnsafeMutableBufferPointer(start: nil, count: 0)
    }

    public func forward(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, batch: Int) {
        let derivative = self.derivative.baseAddress, kind = self.kind
        Parallel.elements(batch * inputShape.count) { start, n in
            let input = input + start, output = output + start
            switch kind {
            case .relu: emc_relu_forward(output, input, n)
            case .leakyRelu: for i in 0..<n { output[i] = input[i] > 0 ? input[i] : 0.01 * input[i] }
            case .tanh: for i in 0..<n { output[i] = tanhf(input[i]) }
            case .sigmoid: emc_sigmoid_forward(output, input, n)
            case .gelu: emc_gelu_forward(output, derivative! + start, input, n)
            case .silu: emc_silu_forward(output, derivative! + start, input, n)
            case .identity: output.update(from: input, count: n)
            }
        }
    }

    public func backward(input: UnsafePointer<Float>, output: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>,
                         gradInput: UnsafeMutablePointer<Float>?, batch: Int) {
        guard let gradInput else { return }
        let derivative = self.derivative.baseAddress, kind = self.kind
        Parallel.elements(batch * inputShape.count) { start, n in
            let g = gradInput + start, input = input + start, output = output + start, gradOutput = gradOutput + start
            switch kind {
            case .relu: emc_relu_backward(g, input, gradOutput, n)
            case .leakyRelu: for i in 0..<n { g[i] = input[i] > 0 ? gradOutput[i] : 0.01 * gradOutput[i] }
            case .tanh: for i in 0..<n { g[i] = gradOutput[i] * (1 - output[i] * output[i]) }
            case .sigmoid: for i in 0..<n { g[i] = gradOutput[i] * output[i] * (1 - output[i]) }
            case .gelu, .silu: emc_multiply(g, gradOutput, derivative! + start, n)
            case .identity: g.update(from: gradOutput, count: n)
            }
        }
    }

    @inline(__always)
    private func derivatives(_ x: Float, _ y: Float) -> (Float, Float) {
        switch kind {
        case .relu: return (x > 0 ? 1 : 0, 0)
        case .leakyRelu: return (x > 0 ? 1 : 0.01, 0)
        case .tanh: let d = 1 - y * y; return (d, -2 * y * d)
        case .sigmoid: let d = y * (1 - y); return (d, d * (1 - 2 * y))
        case .gelu:
            let cdf = 0.5 * (1 + emc_erf(x * 0.70710678118654752))
            let pdf = emc_exp(-0.5 * x * x) * 0.39894228040143268
            return (cdf + x * pdf, pdf * (2 - x * x))
        case .silu:
            let sig = 1 / (1 + emc_exp(-x)), ds = sig * (1 - sig)
            return (sig + x * ds, ds * (2 + x * (1 - 2 * sig)))
        case .identity: return (1, 0)
        }
    }

    /// R{y} = f′(x)·R{x}.
    public func rForward(input: UnsafePointer<Float>, rInput: UnsafePointer<Float>?, output: UnsafePointer<Float>,
                         rOutput: UnsafeMutablePointer<Float>, batch: Int) {
        let n = batch * inputShape.count
        guard let rInput else { rOutput.update(repeating: 0, count: n); return }
        for i in 0..<n { rOutput[i] = derivatives(input[i], output[i]).0 * rInput[i] }
    }

    /// R{dx} = f″(x)·R{x}·dy + f′(x)·R{dy}.
    public func rBackward(input: UnsafePointer<Float>, rInput: UnsafePointer<Float>?, output: UnsafePointer<Float>,
                          gradOutput: UnsafePointer<Float>, rGradOutput: UnsafePointer<Float>, rGradInput: UnsafeMutablePointer<Float>?, batch: Int) {
        guard let g = rGradInput else { return }
        let n = batch * inputShape.count
        for i in 0..<n {
            let (d1, d2) = derivatives(input[i], output[i])
            g[i] = d1 * rGradOutput[i] + (rInput.map { d2 * $0[i] * gradOutput[i] } ?? 0)
        }
    }
}
