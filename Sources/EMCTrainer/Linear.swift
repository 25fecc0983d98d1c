import EMCCore
import CTrainerKernels

/// Fully connected layer, y = x Wᵀ + b, as PyTorch's `nn.Linear`; or, `pointwise`, the same map applied at every
/// position of an NHWC input (a 1×1 convolution, or a transformer's per-token linear), without im2row.
///
/// Shapes: x [R, in], W [out, in], b [out], y [R, out], with R = B (in = the whole sample) or R = B·H·W (pointwise:
/// in = the channels).
/// Forward  y  = x · Wᵀ + b           (sgemm NoTrans×Trans)
/// Backward dW += dyᵀ · x, db += Σ_R dy (sgemm Trans×NoTrans)
///          dx  = dy · W               (sgemm NoTrans×NoTrans)
/// The R-operator is the same three products on (x, R{x}) and (W, V_W): see `rForward` and `rBackward`.
///
/// `inPlaceProducts` (the ViT's token-wise maps): the forward and input-gradient products whose sums are at most
/// `inPlaceDepth` long by `emc_product_rows` (product.c) instead of OpenBLAS: operands read in place (only Wᵀ is copied,
/// for the forward), the bias added as each element is stored, each element one fused multiply-add chain in order; rows
/// split over the team anywhere. OpenBLAS packs its operands for every k panel, which costs most when k is short; from
/// k = 128 its kernels ran 10–25% faster than product.c's tiles here (docs/benchmarks.md). The weight gradient is emc's
/// tall kernel either way.
public final class Linear: Layer {
    public let name: String
    public let inputShape: FeatureShape
    public let outputShape: FeatureShape
    public let inFeatures: Int
    public let outFeatures: Int
    /// Rows per sample: 1, or H·W when pointwise.
    public let positions: Int
    public let hasBias: Bool
    public let inPlaceProducts: Bool
    /// The longest sum an in-place product takes (`inPlaceProducts`).
    public static let inPlaceDepth = 64
    private var forwardInPlace: Bool { inPlaceProducts && inFeatures <= Self.inPlaceDepth }
    private var gradientInPlace: Bool { inPlaceProducts && outFeatures <= Self.inPlaceDepth }
    /// Wᵀ (in × out) for the in-place forward.
    private var transposed = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    private var parameters: WeightAndBias!
    private var gradients: WeightAndBias!
    // The R-operator's direction (V_W, V_b) and product slices.
    private var direction: WeightAndBias!
    private var product: WeightAndBias!

    public init(input: FeatureShape, outputs: Int, pointwise: Bool = false, bias: Bool = true, inPlaceProducts: Bool = false) {
        inputShape = input
        hasBias = bias
        self.inPlaceProducts = inPlaceProducts
        if pointwise {
            inFeatures = input.channels
            positions = input.height * input.width
            outputShape = FeatureShape(height: input.height, width: input.width, channels: outputs)
            name = "pointwise"
        } else {
            inFeatures = input.count
            positions = 1
            outputShape = .vector(outputs)
            name = "linear"
        }
        outFeatures = outputs
    }

    public var parameterTensors: [(count: Int, fanIn: Int)] {
        [(outFeatures * inFeatures, inFeatures)] + (hasBias ? [(outFeatures, inFeatures)] : [])
    }
    public var matrixShapes: [(rows: Int, cols: Int)?] { [(outFeatures, inFeatures)] + (hasBias ? [nil] : []) }

    public func bind(parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>, maxBatch: Int) {
        self.parameters = WeightAndBias(parameters, weights: outFeatures * inFeatures)
        self.gradients = WeightAndBias(gradients, weights: outFeatures * inFeatures)
        if forwardInPlace {
            transposed.deallocate()
            transposed = .allocate(capacity: outFeatures * inFeatures)
        }
    }

    deinit { transposed.deallocate() }

    public func bindDirection(_ direction: UnsafePointer<Float>, product: UnsafeMutablePointer<Float>, maxBatch: Int) {
        self.direction = WeightAndBias(direction, weights: outFeatures * inFeatures)
        self.product = WeightAndBias(product, weights: outFeatures * inFeatures)
    }

    /// out = x · Wᵀ (beta 0) or out += x · Wᵀ (beta 1).
    private func addProduct(_ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, beta: Float = 1, batch: Int) {
        if forwardInPlace {
            inPlaceForward(x, weight, into: out, bias: nil, accumulate: beta != 0, batch: batch)
            return
        }
        BLAS.sgemm(.none, .transpose, m: batch * positions, n: outFeatures, k: inFeatures, alpha: 1, a: x, lda: inFeatures,
                   b: weight, ldb: inFeatures, beta: beta, c: out, ldc: outFeatures)
    }

    /// dW += dyᵀ · x.
    private func addWeightGradient(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, into dW: UnsafeMutablePointer<Float>, batch: Int) {
        BLAS.accumulateTransposedProduct(m: outFeatures, n: inFeatures, k: batch * positions, a: dy, lda: outFeatures,
                                         b: x, ldb: inFeatures, c: dW, ldc: inFeatures)
    }

    /// dx = dy · W (beta 0) or dx += dy · W (beta 1).
    private func inputGradient(_ dy: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, into dx: UnsafeMutablePointer<Float>, beta: Float, batch: Int) {
        if gradientInPlace {
            inPlaceProduct(dy, columns: outFeatures, weight, into: dx, outputs: inFeatures, bias: nil, accumulate: beta != 0, batch: batch)
            return
        }
        BLAS.sgemm(.none, .none, m: batch * positions, n: inFeatures, k: outFeatures, alpha: 1, a: dy, lda: outFeatures,
                   b: weight, ldb: inFeatures, beta: beta, c: dx, ldc: inFeatures)
    }

    /// out = x · Wᵀ (+ bias) (+ out) in place: Wᵀ copied once, then the rows.
    private func inPlaceForward(_ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>,
                                bias: UnsafePointer<Float>?, accumulate: Bool, batch: Int) {
        emc_transpose(BLAS.hardwareLevel.rawValue, transposed.baseAddress!, weight, inFeatures, Int32(outFeatures), Int32(inFeatures))
        inPlaceProduct(x, columns: inFeatures, transposed.baseAddress!, into: out, outputs: outFeatures, bias: bias,
                       accumulate: accumulate, batch: batch)
    }

    /// out[r] = a[r] · b (+ bias) (+ out[r]) for the batch's rows, a's rows `columns` long and b `columns` × `outputs`.
    private func inPlaceProduct(_ a: UnsafePointer<Float>, columns: Int, _ b: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>,
                                outputs: Int, bias: UnsafePointer<Float>?, accumulate: Bool, batch: Int) {
        Self.inPlaceRows(batch * positions, n: outputs, depth: columns, a, lda: columns, b, ldb: outputs, out, ldc: outputs, bias: bias,
                         accumulate: accumulate)
    }

    /// c[r] = a[r] · b (+ bias) (+ c[r]) for `rows` rows (a's `lda` apart, c's `ldc` apart), b `depth` × `n` (rows `ldb`
    /// apart), by product.c's tiles, rows split over the team (every element's chain is the same whatever rows a part holds).
    static func inPlaceRows(_ rows: Int, n: Int, depth: Int, _ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int,
                            _ c: UnsafeMutablePointer<Float>, ldc: Int, bias: UnsafePointer<Float>?, accumulate: Bool) {
        Parallel.ranges(rows, minimum: max(1, Parallel.minimumMultiplyAdds / max(1, depth * n))) { part, _ in
            emc_product_rows(BLAS.hardwareLevel.rawValue, Int32(part.count), Int32(n), Int32(depth), a + part.lowerBound * lda, lda, b, ldb,
                             c + part.lowerBound * ldc, ldc, bias, accumulate ? 1 : 0)
        }
    }

    public func forward(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, batch: Int) {
        if forwardInPlace {
            // The bias is added to each element as it is stored.
            inPlaceForward(input, parameters.weight, into: output, bias: hasBias ? UnsafePointer(parameters.bias) : nil,
                           accumulate: false, batch: batch)
            return
        }
        // Bias first, then accumulate the product onto it.
        let rows = batch * positions
        // More weights than inputs (an MLP's layers): split by output features, so that each thread reads only the rows
        // of W it owns (`Model.parameterParts`) and writes their bias into its own columns; else by rows of the batch.
        if outFeatures > rows, BLAS.sgemmSplittingColumns(.none, .transpose, m: rows, n: outFeatures, k: inFeatures, alpha: 1,
                                                          a: input, lda: inFeatures, b: parameters.weight, ldb: inFeatures,
                                                          beta: hasBias ? 1 : 0, c: output, ldc: outFeatures, prepare: { columns in
            guard hasBias else { return }
            for r in 0..<rows {
                (output + r * outFeatures + columns.lowerBound).update(from: parameters.bias + columns.lowerBound, count: columns.count)
            }
        }) { return }
        if hasBias { Parallel.addBias(output, parameters.bias, rows: rows, columns: outFeatures) }
        addProduct(input, parameters.weight, into: output, beta: hasBias ? 1 : 0, batch: batch)
    }

    public func backward(input: UnsafePointer<Float>, output: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>,
                         gradInput: UnsafeMutablePointer<Float>?, batch: Int) {
        addWeightGradient(gradOutput, input, into: gradients.weight, batch: batch)
        if hasBias { Parallel.sumRows(gradients.bias, gradOutput, rows: batch * positions, columns: outFeatures) }
        if let gradInput { inputGradient(gradOutput, parameters.weight, into: gradInput, beta: 0, batch: batch) }
    }

    /// R{y} = R{x}·Wᵀ + x·V_Wᵀ + V_b.
    public func rForward(input: UnsafePointer<Float>, rInput: UnsafePointer<Float>?, output: UnsafePointer<Float>,
                         rOutput: UnsafeMutablePointer<Float>, batch: Int) {
        if hasBias { Parallel.addBias(rOutput, direction.bias, rows: batch * positions, columns: outFeatures) }
        addProduct(input, direction.weight, into: rOutput, beta: hasBias ? 1 : 0, batch: batch)
        if let rInput { addProduct(rInput, parameters.weight, into: rOutput, batch: batch) }
    }

    /// R{dW} += R{dy}ᵀ·x + dyᵀ·R{x},  R{db} += Σ_B R{dy},  R{dx} = R{dy}·W + dy·V_W.
    public func rBackward(input: UnsafePointer<Float>, rInput: UnsafePointer<Float>?, output: UnsafePointer<Float>,
                          gradOutput: UnsafePointer<Float>, rGradOutput: UnsafePointer<Float>, rGradInput: UnsafeMutablePointer<Float>?, batch: Int) {
        addWeightGradient(rGradOutput, input, into: product.weight, batch: batch)
        if let rInput { addWeightGradient(gradOutput, rInput, into: product.weight, batch: batch) }
        if hasBias { Parallel.sumRows(product.bias, rGradOutput, rows: batch * positions, columns: outFeatures) }
        if let rGradInput {
            inputGradient(rGradOutput, parameters.weight, into: rGradInput, beta: 0, batch: batch)
            inputGradient(gradOutput, direction.weight, into: rGradInput, beta: 1, batch: batch)
        }
    }
}
