import EMCCore
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// Softmax cross-entropy with mean reduction over the batch, as `nn.CrossEntropyLoss()`.
///
/// Shapes: logits z [B, K], labels y [B]. loss = (1/B) Σ_b (logsumexp(z_b) − z_b[y_b]);
/// dz_b = (softmax(z_b) − onehot(y_b)) · scale, where `scale` is 1/B for a plain mean (callers
/// accumulating a full-batch gradient over micro-batches pass 1/n instead).
public enum SoftmaxCrossEntropy {
    /// Returns the summed (not averaged) loss over the batch and the number of wrong predictions
    /// (argmax ≠ label, first maximum wins); writes the gradient scaled by `scale` if `gradient` is non-nil.
    @discardableResult
    public static func evaluate(logits: UnsafePointer<Float>, labels: UnsafePointer<Int32>, batch: Int, classes: Int,
                                gradient: UnsafeMutablePointer<Float>?, scale: Float) -> (lossSum: Double, wrong: Int) {
        var lossSum = 0.0
        var wrong = 0
        for b in 0..<batch {
            let z = logits + b * classes
            let y = Int(labels[b])
            var maxValue = z[0]
            var argmax = 0
            for k in 1..<classes where z[k] > maxValue { maxValue = z[k]; argmax = k }
            if argmax != y || maxValue.isNaN { wrong += 1 }
            var sum: Float = 0
            for k in 0..<classes { sum += expf(z[k] - maxValue) }
            let logSum = logf(sum) + maxValue
            lossSum += Double(logSum - z[y])
            if let gradient {
                let g = gradient + b * classes
                let inverse = 1 / sum
                for k in 0..<classes { g[k] = expf(z[k] - maxValue) * inverse * scale }
                g[y] -= scale
            }
        }
        return (lossSum, wrong)
    }
}

extension SoftmaxCrossEntropy {
    /// The R-operator of the gradient: with p = softmax(z) and ż = R{z}, R{dz_b} = scale·(p ⊙ ż − p·(p·ż)) per sample
    /// (the labels drop out: the one-hot term does not depend on z).
    public static func rGradient(logits: UnsafePointer<Float>, rLogits: UnsafePointer<Float>, batch: Int, classes: Int,
                                 into rGradient: UnsafeMutablePointer<Float>, scale: Float) {
        for b in 0..<batch {
            let z = logits + b * classes, r = rLogits + b * classes, g = rGradient + b * classes
            var maxValue = z[0]
            for k in 1..<classes where z[k] > maxValue { maxValue = z[k] }
            var sum: Float = 0
            for k in 0..<classes { g[k] = expf(z[k] - maxValue); sum += g[k] }
            var dot: Float = 0
            for k in 0..<classes { g[k] /= sum; dot += g[k] * r[k] }
            for k in 0..<classes { g[k] = scale * g[k] * (r[k] - dot) }
        }
    }
}
