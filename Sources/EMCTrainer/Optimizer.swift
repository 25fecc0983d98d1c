import EMCCore
import CTrainerKernels
import Foundation

/// An optimizer written as a string: `sgd:lr=0.01,momentum=0.9`, `gd:lr=0.1`, `adam:lr=1e-3`,
/// `adamw:lr=1e-3,wd=0.01`, with an optional schedule: `schedule=constant|cosine|step|plateau`,
/// `step=E,gamma=G` (multiply by G every E units), `warmup=W` (linear over the first W units), and for the plateau
/// schedule `wait=P,drops=K` (multiply by `gamma` after P epochs without improvement of the epoch loss, at most K times).
/// The units are epochs under an epoch budget and optimizer steps under a step budget (`--steps`): cosine then
/// reaches zero at the last step, and `step=` and `warmup=` count steps. The plateau schedule always counts epochs.
///
/// - sgd: mini-batch SGD with momentum (`momentum`, `nesterov`, `dampening` 0) and L2 weight decay (`wd`).
/// - gd: full-batch gradient descent: one step per epoch on the exact gradient over all n samples
///   (accumulated in micro-batches), with the same update rule as sgd.
/// - adam / adamw: PyTorch's Adam (L2 `wd` added to the gradient) and AdamW (decoupled `wd`, default 0.01),
///   `beta1` 0.9, `beta2` 0.999, `eps` 1e-8.
public struct OptimizerSpec: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, Codable { case sgd, gd, adam, adamw, shampoo }
    /// Whose step norm a Shampoo direction takes (per weight matrix), and who updates vectors (biases).
    public enum Graft: String, Sendable { case adam, sgd, none }
    public enum Schedule: String, Sendable { case constant, cosine, step, plateau }

    public var kind: Kind
    public var lr: Double
    public var momentum = 0.0
    public var nesterov = false
    public var weightDecay = 0.0
    public var beta1 = 0.9
    public var beta2 = 0.999
    public var eps = 1e-8
    public var schedule: Schedule = .constant
    public var stepEpochs = 30
    public var gamma = 0.1
    public var warmup = 0
    /// Shampoo: recompute the inverse roots every `freq` steps; split matrix dimensions above `block`; graft.
    public var frequency = 10
    public var block = 128
    public var graft: Graft = .adam
    /// Plateau schedule: epochs without improvement before a drop, and the most drops.
    public var plateauWait = 10
    public var plateauDrops = 3

    public init(kind: Kind, lr: Double) {
        self.kind = kind
        self.lr = lr
    }

    /// The spec without its learning rate (every other option as written): configurations whose rate a pilot chose
    /// compare on this.
    /// Whether the rate depends on the budget (cosine decays over it): then a run cut at half its budget is not a
    /// half-budget run, and no smaller budget's result can be derived from it.
    public var dependsOnHorizon: Bool { schedule == .cosine }

    public var withoutRate: String { kind.rawValue + ":" + optionsBesideRate.joined(separator: ",") }

    public init(parsing text: String) throws {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        guard let name = parts.first, let kind = Kind(rawValue: name.lowercased()) else {
            throw EMCError(.invalidArgument, "optimizer spec '\(text)' must start with sgd:, gd:, adam:, adamw: or shampoo: (e.g. sgd:lr=0.01,momentum=0.9)")
        }
        var o = try SpecOptions(parts.count > 1 ? parts[1] : "", spec: text)
        let defaultLR: Double = kind == .adam || kind == .adamw || kind == .shampoo ? 1e-3 : 0.01
        let positive = 0.0...Double.greatestFiniteMagnitude
        self.init(kind: kind, lr: try o.double("lr", default: defaultLR, in: positive, openLower: true))
        weightDecay = try o.double("wd", default: kind == .adamw ? 0.01 : 0, in: positive)
        switch kind {
        case .sgd, .gd:
            momentum = try o.double("momentum", default: 0, in: 0...1, openUpper: true)
            nesterov = try o.bool("nesterov", default: false)
            if nesterov && momentum == 0 { throw EMCError(.invalidArgument, "nesterov needs momentum > 0 in '\(text)'") }
        case .adam, .adamw:
            beta1 = try o.double("beta1", default: 0.9, in: 0...1, openUpper: true)
            beta2 = try o.double("beta2", default: 0.999, in: 0...1, openUpper: true)
            eps = try o.double("eps", default: 1e-8, in: positive, openLower: true)
        case .shampoo:
            beta1 = try o.double("beta1", default: 0.9, in: 0...1, openUpper: true)
            beta2 = try o.double("beta2", default: 0.999, in: 0...1)
            eps = try o.double("eps", default: 1e-12, in: positive, openLower: true)
            frequency = try o.int("freq", default: 10, in: 1...1_000_000)
            block = try o.int("block", default: 128, in: 2...4096)
            graft = Graft(rawValue: try o.choice("graft", default: "adam", from: ["adam", "sgd", "none"]))!
        }
        schedule = Schedule(rawValue: try o.choice("schedule", default: "constant", from: ["constant", "cosine", "step", "plateau"]))!
        plateauWait = try o.int("wait", default: 10, in: 1...100_000)
        plateauDrops = try o.int("drops", default: 3, in: 0...100)
        stepEpochs = try o.int("step", default: 30, in: 1...Int.max)
        gamma = try o.double("gamma", default: 0.1, in: positive, openLower: true)
        warmup = try o.int("warmup", default: 0, in: 0...Int.max)
        try o.rejectUnused()
    }

    public var description: String {
        kind.rawValue + ":" + (["lr=\(lr)"] + optionsBesideRate).joined(separator: ",")
    }

    /// Every option but the learning rate, as the canonical description writes them (defaults left out).
    private var optionsBesideRate: [String] {
        var parts: [String] = []
        switch kind {
        case .sgd, .gd:
            if momentum != 0 { parts.append("momentum=\(momentum)") }
            if nesterov { parts.append("nesterov=true") }
        case .adam, .adamw:
            if beta1 != 0.9 { parts.append("beta1=\(beta1)") }
            if beta2 != 0.999 { parts.append("beta2=\(beta2)") }
            if eps != 1e-8 { parts.append("eps=\(eps)") }
        case .shampoo:
            if beta1 != 0.9 { parts.append("beta1=\(beta1)") }
            if beta2 != 0.999 { parts.append("beta2=\(beta2)") }
            if eps != 1e-12 { parts.append("eps=\(eps)") }
            if frequency != 10 { parts.append("freq=\(frequency)") }
            if graft != .adam { parts.append("graft=\(graft.rawValue)") }
            if block != 128 { parts.append("block=\(block)") }
        }
        if weightDecay != (kind == .adamw ? 0.01 : 0) { parts.append("wd=\(weightDecay)") }
        if schedule != .constant { parts.append("schedule=\(schedule.rawValue)") }
        if schedule == .step { parts.append("step=\(stepEpochs)"); parts.append("gamma=\(gamma)") }
        if schedule == .plateau { parts.append("gamma=\(gamma)"); parts.append("wait=\(plateauWait)"); parts.append("drops=\(plateauDrops)") }
        if warmup > 0 { parts.append("warmup=\(warmup)") }
        return parts
    }

    /// The learning rate for `epoch` (0-based) of a run of `totalEpochs`.
    public func learningRate(epoch: Int, totalEpochs: Int) -> Double {
        if warmup > 0 && epoch < warmup { return lr * Double(epoch + 1) / Double(warmup) }
        switch schedule {
        case .constant, .plateau: return lr
        case .cosine:
            let span = max(1, totalEpochs - warmup)
            return lr * 0.5 * (1 + cos(Double.pi * Double(epoch - warmup) / Double(span)))
        case .step: return lr * pow(gamma, Double((epoch - warmup) / stepEpochs))
        }
    }

    /// The epoch after which the learning rate no longer drops in steps (the convergence rule waits for it).
    public func lastDropEpoch(totalEpochs: Int) -> Int {
        switch schedule {
        case .constant, .cosine, .plateau: return warmup
        case .step:
            let drops = max(0, (totalEpochs - 1 - warmup) / stepEpochs)
            return warmup + drops * stepEpochs
        }
    }
}

/// Applies an optimizer's update rule to a flat parameter store, exactly as PyTorch's `torch.optim`
/// (single-tensor, non-foreach path) does per element.
public final class Optimizer {
    public let spec: OptimizerSpec
    public let count: Int
    private var first: [Float]   // momentum buffer (sgd) or exp_avg (adam)
    private var second: [Float]  // exp_avg_sq (adam)
    public private(set) var steps = 0
    /// The fewest parameters a thread takes in a step split over a team (less is not worth the hand-over).
    static let minimumPart = 1 << 16

    private var shampoo: ShampooState?
    private var direction: [Float] = []
    private var preconditioned: [Float] = []
    private var raw: [Float] = []
    private var corrected: [Float] = []

    /// An optimizer for a store of `parameterCount` values with no known matrices (Shampoo then grafts everything).
    public convenience init(spec: OptimizerSpec, parameterCount: Int) {
        self.init(spec: spec, layout: [ParameterTensorLayout(offset: 0, count: parameterCount)])
    }

    /// An optimizer for a store laid out as `layout` (Shampoo preconditions its matrices).
    public init(spec: OptimizerSpec, layout: [ParameterTensorLayout]) {
        self.spec = spec
        let parameterCount = layout.map { $0.offset + $0.count }.max() ?? 0
        count = parameterCount
        first = [Float](repeating: 0, count: parameterCount)
        let adamLike = spec.kind == .adam || spec.kind == .adamw || (spec.kind == .shampoo && spec.graft == .adam)
        second = adamLike ? [Float](repeating: 0, count: parameterCount) : []
        if spec.kind == .shampoo {
            shampoo = ShampooState(layout: layout, blockSize: spec.block, eps: spec.eps)
            direction = [Float](repeating: 0, count: parameterCount)
            preconditioned = [Float](repeating: 0, count: parameterCount)
            raw = [Float](repeating: 0, count: parameterCount)
            corrected = [Float](repeating: 0, count: parameterCount)
        }
    }

    /// The state a checkpoint keeps: the step count and every moment and Shampoo statistic.
    var state: OptimizerState {
        OptimizerState(steps: steps, first: Data(copying: first), second: Data(copying: second),
                       shampooBlocks: shampoo?.matrices.flatMap { $0.blocks }.map { b in
                           Data(copying: b.left) + Data(copying: b.right) + Data(copying: b.leftRoot) + Data(copying: b.rightRoot)
                       } ?? [])
    }

    /// Restores `state` (from an optimizer of the same spec and layout); false, changing nothing, when its sizes differ.
    func restore(_ state: OptimizerState) -> Bool {
        guard let f = state.first.values(Float.self, count: first.count), let s = state.second.values(Float.self, count: second.count) else { return false }
        let blocks = shampoo?.matrices.flatMap { $0.blocks } ?? []
        guard blocks.count == state.shampooBlocks.count else { return false }
        var restored: [([Double], [Double], [Float], [Float])] = []
        for (b, data) in zip(blocks, state.shampooBlocks) {
            let l = b.rows * b.rows * 8, r = b.cols * b.cols * 8, lr = b.rows * b.rows * 4, rr = b.cols * b.cols * 4
            guard data.count == l + r + lr + rr,
                  let left = data.subdata(in: data.startIndex..<(data.startIndex + l)).values(Double.self, count: b.rows * b.rows),
                  let right = data.subdata(in: (data.startIndex + l)..<(data.startIndex + l + r)).values(Double.self, count: b.cols * b.cols),
                  let leftRoot = data.subdata(in: (data.startIndex + l + r)..<(data.startIndex + l + r + lr)).values(Float.self, count: b.rows * b.rows),
                  let rightRoot = data.subdata(in: (data.startIndex + l + r + lr)..<data.endIndex).values(Float.self, count: b.cols * b.cols)
            else { return false }
            restored.append((left, right, leftRoot, rightRoot))
        }
        steps = state.steps
        first = f
        second = s
        for (b, r) in zip(blocks, restored) { (b.left, b.right, b.leftRoot, b.rightRoot) = r }
        return true
    }

    /// One update of `parameters` from `gradients` at learning rate `lr`; the elementwise steps split over the current
    /// team by `parts` where given (`Model.parameterParts`), else in flat ranges: the same bits either way.
    public func step(parameters: UnsafeMutableBufferPointer<Float>, gradients: UnsafeMutableBufferPointer<Float>, lr: Double,
                     parts: [[Range<Int>]]? = nil) {
        steps += 1
        let n = count
        let p = parameters.baseAddress!, g = gradients.baseAddress!
        let wd = Float(spec.weightDecay)
        let lrf = Float(lr)
        switch spec.kind {
        case .sgd, .gd:
            let mu = Float(spec.momentum)
            let firstStep = steps == 1, nesterov = spec.nesterov
            // emc_sgd_step: d = g (+ wd·p); buf = d on the first step, then mu·buf + d (dampening 0); d = buf, or d + mu·buf
            // with Nesterov; p −= lr·d.
            first.withUnsafeMutableBufferPointer { buf in
                let buffer = buf.baseAddress!
                Parallel.elements(n, minimum: Optimizer.minimumPart, parts: parts) { i, count in
                    emc_sgd_step(p + i, g + i, buffer + i, count, lrf, wd, mu, firstStep ? 1 : 0, nesterov ? 1 : 0)
                }
            }
        case .adam, .adamw:
            let b1 = Float(spec.beta1), b2 = Float(spec.beta2), eps = Float(spec.eps)
            let bias1 = 1 - pow(spec.beta1, Double(steps)), bias2 = 1 - pow(spec.beta2, Double(steps))
            let stepSize = Float(lr / bias1)
            let bias2Root = Float(bias2.squareRoot())
            let decoupled = spec.kind == .adamw
            first.withUnsafeMutableBufferPointer { m in
                second.withUnsafeMutableBufferPointer { v in
                    // emc_adam_step: d = g (+ wd·p), or p ·= 1 − lr·wd (AdamW); m = m + (d − m)·(1 − β1) (exp_avg.lerp_);
                    // v = v·β2 + (1 − β2)·d·d; p −= stepSize·m / (√v / bias2Root + eps).
                    let mBase = m.baseAddress!, vBase = v.baseAddress!
                    Parallel.elements(n, minimum: Optimizer.minimumPart, parts: parts) { i, count in
                        emc_adam_step(p + i, g + i, mBase + i, vBase + i, count, lrf, wd, decoupled ? 1 : 0, b1, b2, eps,
                                      stepSize, bias2Root)
                    }
                }
            }
        case .shampoo:
            shampooStep(p, g, lr: lr)
        }
    }

    /// Shampoo: the gradient's momentum M (β1, bias-corrected) preconditioned per weight matrix as L^(−1/4)·M·R^(−1/4)
    /// from the raw gradient's statistics, then grafted: each matrix's direction rescaled to the Frobenius norm of the
    /// graft's step on it (Adam's m̂/(√v̂ + 1e-8) with β2 0.999, or SGD's M); vectors (biases) take the graft's step.
    private func shampooStep(_ p: UnsafeMutablePointer<Float>, _ g: UnsafeMutablePointer<Float>, lr: Double) {
        let n = count
        let wd = Float(spec.weightDecay)
        let b1 = Float(spec.beta1)
        let bias1 = Float(1 - pow(spec.beta1, Double(steps)))
        let graftBeta2: Float = 0.999
        let bias2Root = Float((1 - pow(Double(graftBeta2), Double(steps))).squareRoot())
        first.withUnsafeMutableBufferPointer { m in
            second.withUnsafeMutableBufferPointer { v in
                direction.withUnsafeMutableBufferPointer { u in
                    raw.withUnsafeMutableBufferPointer { d in
                        let graft = spec.graft
                        Parallel.ranges(n, grain: 16, minimum: Optimizer.minimumPart) { range, _ in
                            for i in range {
                                d[i] = g[i] + (wd != 0 ? wd * p[i] : 0)
                                m[i] = b1 * m[i] + (1 - b1) * d[i]
                                let mHat = m[i] / bias1
                                switch graft {
                                case .adam:
                                    v[i] = graftBeta2 * v[i] + (1 - graftBeta2) * d[i] * d[i]
                                    u[i] = mHat / (v[i].squareRoot() / bias2Root + 1e-8)
                                case .sgd, .none:
                                    u[i] = mHat
                                }
                            }
                        }
                    }
                }
            }
        }
        guard let state = shampoo, n > 0 else { return }
        // The bias-corrected momentum for the preconditioner.
        first.withUnsafeBufferPointer { m in
            corrected.withUnsafeMutableBufferPointer { c in
                Parallel.ranges(n, grain: 16, minimum: Optimizer.minimumPart) { range, _ in for i in range { c[i] = m[i] / bias1 } }
            }
        }
        let refresh = (steps - 1) % spec.frequency == 0
        raw.withUnsafeBufferPointer { d in
            corrected.withUnsafeBufferPointer { mHat in
                preconditioned.withUnsafeMutableBufferPointer { out in
                    state.precondition(gradient: d.baseAddress!, momentum: mHat.baseAddress!, direction: out.baseAddress!,
                                       beta2: spec.beta2, eps: spec.eps, refresh: refresh)
                }
            }
        }
        direction.withUnsafeMutableBufferPointer { u in
            preconditioned.withUnsafeBufferPointer { q in
                // Matrix by matrix (each norm one sum in order, on one thread).
                let matrices = state.matrices, grafted = spec.graft != .none
                Parallel.ranges(matrices.count) { chosen, _ in
                    for matrix in matrices[chosen] {
                        let range = matrix.offset..<(matrix.offset + matrix.rows * matrix.cols)
                        var scale: Float = 1
                        if grafted {
                            var graftNorm = 0.0, ownNorm = 0.0
                            for i in range { graftNorm += Double(u[i] * u[i]); ownNorm += Double(q[i] * q[i]) }
                            scale = ownNorm > 0 ? Float((graftNorm / ownNorm).squareRoot()) : 0
                        }
                        for i in range { u[i] = q[i] * scale }
                    }
                }
            }
            let lrf = Float(lr)
            let step = UnsafePointer(u.baseAddress!)
            Parallel.ranges(n, grain: 16, minimum: Optimizer.minimumPart) { range, _ in
                    for i in range { p[i] -= lrf * step[i] }
            }
        }
    }
}
