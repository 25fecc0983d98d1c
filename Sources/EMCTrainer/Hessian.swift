import EMCCore
import Foundation

/// When trials have their loss Hessian checked (`--hessian-check`).
public enum HessianCheckMode: String, Sendable, Codable, CaseIterable {
    /// Never.
    case off
    /// On every trial that would end converged-unfit: it stays so only when the Hessian has no negative eigenvalue
    /// beyond the tolerance; otherwise it is a `saddle`.
    case converged
    /// As `converged`, and also on every other trial's final model (fitted ones included, so the model at the EMC point
    /// is checked); those checks are recorded and decide nothing.
    case final
}

/// The extreme eigenvalues of the full-batch loss Hessian at a trial's final parameters, by Lanczos on exact
/// Hessian-vector products (the R-operator), and what they say.
public struct HessianCheck: Sendable, Codable, Equatable {
    public enum Verdict: String, Sendable, Codable {
        /// λ_min ≥ −tolerance·|λ_max|: no direction of descent worth the name.
        case minimum
        /// λ_min < −tolerance·|λ_max|: the loss still falls along some direction.
        case saddle
    }
    public var verdict: Verdict
    public var lambdaMin: Double
    public var lambdaMax: Double
    public var tolerance: Double
    /// Lanczos steps taken, Ritz values (ascending) and their residual norms ‖H·y − θ·y‖.
    public var steps: Int
    public var ritzValues: [Double]
    public var residuals: [Double]
    /// The samples the loss is averaged over (the trial's n).
    public var samples: Int
    /// Hessian-vector products computed, the check's seconds, and those seconds in units of one full pass (a forward and
    /// backward over the n samples; the check starts with one, timed, which is included).
    public var products: Int
    public var seconds: Double
    public var fullPasses: Double
    /// True when the n samples went through as one batch (the forward and backward once, then only R-passes per
    /// product); false when memory made it micro-batches (every product recomputes them).
    public var singleBatch: Bool

    public init(verdict: Verdict, lambdaMin: Double, lambdaMax: Double, tolerance: Double, steps: Int, ritzValues: [Double], residuals: [Double],
                samples: Int, products: Int, seconds: Double, fullPasses: Double, singleBatch: Bool) {
        self.verdict = verdict
        self.lambdaMin = lambdaMin
        self.lambdaMax = lambdaMax
        self.tolerance = tolerance
        self.steps = steps
        self.ritzValues = ritzValues
        self.residuals = residuals
        self.samples = samples
        self.products = products
        self.seconds = seconds
        self.fullPasses = fullPasses
        self.singleBatch = singleBatch
    }

    public static func verdict(lambdaMin: Double, lambdaMax: Double, tolerance: Double) -> Verdict {
        lambdaMin < -tolerance * abs(lambdaMax) ? .saddle : .minimum
    }
}

/// Settings of the check.
public struct HessianCheckOptions: Sendable, Codable, Hashable {
    public var steps = 40
    public var tolerance = 1e-3
    /// The largest memory the single-batch mode may take; above it the check runs in micro-batches.
    public var memoryBudget = 1 << 30
    public init() {}
}

extension Trainer {
    /// Computes H·v for the mean loss over all n samples: `products(v)` with v in the parameters' layout.
    /// `prepare` runs the forward and backward once when the whole set fits in memory as one batch.
    final class HessianOperator {
        let trainer: Trainer
        let singleBatch: Bool
        private var allInputs: UnsafeMutableBufferPointer<Float>?
        private var allLabels: UnsafeMutableBufferPointer<Int32>?
        private let originalBatch: Int

        init(trainer: Trainer, memoryBudget: Int) throws {
            self.trainer = trainer
            let model = trainer.model, n = trainer.data.count
            originalBatch = model.maxBatch
            let inputBytes = checkedProduct([4, n, model.inputShape.count])
            if let bytes = model.hessianBytes(batch: n), let inputBytes, bytes + inputBytes <= memoryBudget {
                singleBatch = true
                model.resizeBatches(max(n, originalBatch))
                let inputs = UnsafeMutableBufferPointer<Float>.allocate(capacity: n * model.inputShape.count)
                let labels = UnsafeMutableBufferPointer<Int32>.allocate(capacity: n)
                allInputs = inputs
                allLabels = labels
                let indices = (0..<n).map { UInt32($0) }
                try indices.withUnsafeBufferPointer { try trainer.data.loadBatch($0, inputs: inputs, labels: labels) }
            } else {
                singleBatch = false
            }
            model.prepareHessianVectorProducts()
            if singleBatch { forwardBackward(trainer.model, allInputs!.baseAddress!, allLabels!.baseAddress!, batch: n) }
        }

        deinit {
            allInputs?.deallocate()
            allLabels?.deallocate()
            trainer.model.resizeBatches(originalBatch)
        }

        /// Forward, the loss's gradient (mean over all n) and backward: what every R-pass builds on.
        private func forwardBackward(_ model: Model, _ inputs: UnsafePointer<Float>, _ labels: UnsafePointer<Int32>, batch: Int) {
            let logits = model.forward(inputs, batch: batch)
            SoftmaxCrossEntropy.evaluate(logits: logits, labels: labels, batch: batch, classes: model.classes,
                                         gradient: model.logitGradient, scale: 1 / Float(trainer.data.count))
            model.backward(inputs, batch: batch)
        }

        /// H·v (v in the parameters' layout, Double for Lanczos).
        func multiply(_ v: [Double]) throws -> [Double] {
            let model = trainer.model, n = trainer.data.count
            let direction = model.hessianDirection, product = model.hessianProduct
            for i in 0..<model.parameterCount { direction[i] = Float(v[i]) }
            product.update(repeating: 0)
            if singleBatch {
                rBackwardPass(model, allInputs!.baseAddress!, batch: n)
            } else {
                let micro = trainer.options.evalBatch
                var indices = [UInt32](repeating: 0, count: micro)
                var start = 0
                model.zeroGradients()
                while start < n {
                    let b = min(micro, n - start)
                    for k in 0..<b { indices[k] = UInt32(start + k) }
                    try indices.withUnsafeBufferPointer { try trainer.loadBatch(UnsafeBufferPointer(rebasing: $0[0..<b])) }
                    forwardBackward(model, trainer.inputs.baseAddress!, trainer.labels.baseAddress!, batch: b)
                    rBackwardPass(model, trainer.inputs.baseAddress!, batch: b)
                    start += b
                }
            }
            return (0..<model.parameterCount).map { Double(product[$0]) }
        }

        /// R-forward, the loss's R-operator and R-backward on a batch whose forward and backward are in the buffers.
        private func rBackwardPass(_ model: Model, _ inputs: UnsafePointer<Float>, batch: Int) {
            let rLogits = model.rForward(inputs, batch: batch)
            SoftmaxCrossEntropy.rGradient(logits: model.logits, rLogits: rLogits, batch: batch, classes: model.classes,
                                          into: model.rLogitGradient, scale: 1 / Float(trainer.data.count))
            model.rBackward(inputs, batch: batch)
        }
    }

    /// H·v for the mean loss over the n samples at the current parameters (v in the parameters' layout). For tests and
    /// tools; a check reuses one operator for all its products. A model with batch normalisation is in evaluation mode
    /// for it, with the statistics recomputed over the n samples, as in `checkHessian`.
    public func hessianVectorProduct(_ v: [Double], memoryBudget: Int = 1 << 30) throws -> [Double] {
        guard v.count == model.parameterCount else { throw EMCError(.invalidArgument, "the direction has \(v.count) values, the model \(model.parameterCount) parameters") }
        try Model.requireHessianSupport(model.layers, model: "this model")
        if model.hasBatchNorm { try recomputeNormalization() }
        defer { model.setMode(.training) }
        return try HessianOperator(trainer: self, memoryBudget: memoryBudget).multiply(v)
    }

    /// Lanczos on the full-batch Hessian at the current parameters: λ_min, λ_max and the verdict.
    /// A model with batch normalisation is checked as it is judged (`FitOutcome.batchNormDecision`): in evaluation mode,
    /// with the statistics recomputed over the n samples, so the Hessian is that of the function whose fit was decided.
    public func checkHessian(_ options: HessianCheckOptions = HessianCheckOptions(), seed: UInt64) throws -> HessianCheck {
        try Model.requireHessianSupport(model.layers, model: "this model")
        if model.hasBatchNorm { try recomputeNormalization() }
        defer { model.setMode(.training) }
        // One full pass (forward and backward over the n samples), timed: the unit of the check's cost.
        let start = Clock.now()
        try fullPass(gradient: true)
        let passSeconds = max(1e-9, Clock.now() - start)
        let op = try HessianOperator(trainer: self, memoryBudget: options.memoryBudget)
        var products = 0
        let result = try Lanczos.run(dimension: model.parameterCount, steps: options.steps, seed: seed) { v in
            products += 1
            return try op.multiply(v)
        }
        let seconds = Clock.now() - start
        return HessianCheck(verdict: HessianCheck.verdict(lambdaMin: result.lambdaMin, lambdaMax: result.lambdaMax, tolerance: options.tolerance),
                            lambdaMin: result.lambdaMin, lambdaMax: result.lambdaMax, tolerance: options.tolerance, steps: result.steps,
                            ritzValues: result.ritzValues, residuals: result.residuals, samples: data.count, products: products,
                            seconds: seconds, fullPasses: seconds / passSeconds, singleBatch: op.singleBatch)
    }
}
