import EMCCore
import EMCTrainer
import Foundation
import Testing

/// Runs `steps` updates of a 2-parameter store from p = [1, −2] with the given gradients per step.
func run(_ spec: String, gradients: [[Float]]) throws -> [Float] {
    let optimizer = Optimizer(spec: try OptimizerSpec(parsing: spec), parameterCount: 2)
    let p = UnsafeMutableBufferPointer<Float>.allocate(capacity: 2)
    let g = UnsafeMutableBufferPointer<Float>.allocate(capacity: 2)
    defer { p.deallocate(); g.deallocate() }
    p[0] = 1; p[1] = -2
    let parsed = try OptimizerSpec(parsing: spec)
    for grad in gradients {
        g[0] = grad[0]; g[1] = grad[1]
        optimizer.step(parameters: p, gradients: g, lr: parsed.lr)
    }
    return [p[0], p[1]]
}

@Suite("Optimizers against PyTorch's update rules, computed by hand")
struct OptimizerTests {
    let grads: [[Float]] = [[0.5, -0.25], [0.3, 0.1], [-0.2, 0.4]]

    /// The update as scalar Float arithmetic, each product rounded before its sum, in PyTorch's order: what the vector
    /// kernels (`emc_sgd_step`, `emc_adam_step`) must give bit for bit, over lanes and a tail, on every step.
    @Test("SGD, Nesterov, Adam and AdamW update every parameter with the scalar arithmetic's bits", arguments: [
        "sgd:lr=0.05", "sgd:lr=0.05,momentum=0.9", "sgd:lr=0.05,momentum=0.9,wd=0.001,nesterov=true", "gd:lr=0.1,wd=0.01",
        "adam:lr=0.003", "adam:lr=0.003,wd=0.001", "adamw:lr=0.003,wd=0.01"])
    func elementwiseBits(_ text: String) throws {
        let spec = try OptimizerSpec(parsing: text), n = 1_037
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func draw() -> Float {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(Int64(bitPattern: state >> 11) % 2_000_001 - 1_000_000) / 1_000_000
        }
        let start = (0..<n).map { _ in draw() }
        let steps = (0..<3).map { _ in (0..<n).map { _ in draw() * 0.5 } }
        let optimizer = Optimizer(spec: spec, parameterCount: n)
        let p = UnsafeMutableBufferPointer<Float>.allocate(capacity: n), g = UnsafeMutableBufferPointer<Float>.allocate(capacity: n)
        defer { p.deallocate(); g.deallocate() }
        _ = p.initialize(from: start)
        var expected = start, first = [Float](repeating: 0, count: n), second = [Float](repeating: 0, count: n)
        let lr = Float(spec.lr), wd = Float(spec.weightDecay), mu = Float(spec.momentum)
        let b1 = Float(spec.beta1), b2 = Float(spec.beta2), eps = Float(spec.eps)
        for (t, grads) in steps.enumerated() {
            _ = g.initialize(from: grads)
            optimizer.step(parameters: p, gradients: g, lr: spec.lr)
            let stepSize = Float(spec.lr / (1 - pow(spec.beta1, Double(t + 1))))
            let bias2Root = Float((1 - pow(spec.beta2, Double(t + 1))).squareRoot())
            for i in 0..<n {
                var d = grads[i]
                switch spec.kind {
                case .adam, .adamw:
                    if spec.kind == .adamw { expected[i] *= 1 - lr * wd } else if wd != 0 { d += wd * expected[i] }
                    first[i] = first[i] + (d - first[i]) * (1 - b1)
                    second[i] = second[i] * b2 + (1 - b2) * d * d
                    expected[i] -= stepSize * first[i] / (second[i].squareRoot() / bias2Root + eps)
                default:
                    if wd != 0 { d += wd * expected[i] }
                    if mu != 0 {
                        first[i] = t == 0 ? d : mu * first[i] + d
                        d = spec.nesterov ? d + mu * first[i] : first[i]
                    }
                    expected[i] -= lr * d
                }
            }
            let differing = (0..<n).filter { p[$0].bitPattern != expected[$0].bitPattern }
            #expect(differing.isEmpty, "\(text), step \(t + 1): \(differing.count) parameters differ, the first at \(differing.first ?? -1)")
        }
    }

    @Test("SGD with momentum and weight decay")
    func sgdMomentum() throws {
        // torch.optim.SGD(lr=0.1, momentum=0.9, weight_decay=0.01): d = g + wd·p; buf = d (step 1), mu·buf + d; p -= lr·buf
        var p: [Double] = [1, -2], buf: [Double] = [0, 0]
        for (t, g) in grads.enumerated() {
            for i in 0..<2 {
                let d = Double(g[i]) + 0.01 * p[i]
                buf[i] = t == 0 ? d : 0.9 * buf[i] + d
                p[i] -= 0.1 * buf[i]
            }
        }
        let got = try run("sgd:lr=0.1,momentum=0.9,wd=0.01", gradients: grads)
        for i in 0..<2 { #expect(abs(Double(got[i]) - p[i]) < 1e-6, "p[\(i)] = \(got[i]), expected \(p[i])") }
        // First step by hand: d = 0.5 + 0.01 = 0.51, p = 1 − 0.051.
        #expect(abs(try run("sgd:lr=0.1,momentum=0.9,wd=0.01", gradients: [grads[0]])[0] - 0.949) < 1e-6)
    }

    @Test("SGD with Nesterov momentum, plain SGD, and full-batch GD share the rule")
    func nesterov() throws {
        var p: [Double] = [1, -2], buf: [Double] = [0, 0]
        for (t, g) in grads.enumerated() {
            for i in 0..<2 {
                let d = Double(g[i])
                buf[i] = t == 0 ? d : 0.9 * buf[i] + d
                p[i] -= 0.05 * (d + 0.9 * buf[i])
            }
        }
        let got = try run("sgd:lr=0.05,momentum=0.9,nesterov=true", gradients: grads)
        for i in 0..<2 { #expect(abs(Double(got[i]) - p[i]) < 1e-6) }
        let plain = try run("sgd:lr=0.1", gradients: grads)
        #expect(abs(plain[0] - (1 - 0.1 * (0.5 + 0.3 - 0.2))) < 1e-6)
        #expect(try run("gd:lr=0.1", gradients: grads) == plain)
    }

    @Test("Adam: bias-corrected moments, PyTorch's denominator")
    func adam() throws {
        // torch.optim.Adam(lr=0.1): m = b1·m + (1−b1)g; v = b2·v + (1−b2)g²;
        // p -= (lr / (1 − b1^t)) · m / (√v / √(1 − b2^t) + eps)
        var p: [Double] = [1, -2], m: [Double] = [0, 0], v: [Double] = [0, 0]
        for (t, g) in grads.enumerated() {
            let step = Double(t + 1)
            for i in 0..<2 {
                let d = Double(g[i]) + 0.001 * p[i]  // weight_decay=0.001 (L2)
                m[i] = 0.9 * m[i] + 0.1 * d
                v[i] = 0.999 * v[i] + 0.001 * d * d
                let denom = v[i].squareRoot() / (1 - pow(0.999, step)).squareRoot() + 1e-8
                p[i] -= 0.1 / (1 - pow(0.9, step)) * m[i] / denom
            }
        }
        let got = try run("adam:lr=0.1,wd=0.001", gradients: grads)
        for i in 0..<2 { #expect(abs(Double(got[i]) - p[i]) < 1e-5, "p[\(i)] = \(got[i]), expected \(p[i])") }
        // First Adam step moves each parameter by lr·sign(g).
        let first = try run("adam:lr=0.1", gradients: [grads[0]])
        #expect(abs(first[0] - 0.9) < 1e-5 && abs(first[1] - -1.9) < 1e-5)
    }

    @Test("AdamW decays the weights before the Adam step")
    func adamw() throws {
        var p: [Double] = [1, -2], m: [Double] = [0, 0], v: [Double] = [0, 0]
        for (t, g) in grads.enumerated() {
            let step = Double(t + 1)
            for i in 0..<2 {
                p[i] *= 1 - 0.1 * 0.01
                let d = Double(g[i])
                m[i] = 0.9 * m[i] + 0.1 * d
                v[i] = 0.999 * v[i] + 0.001 * d * d
                p[i] -= 0.1 / (1 - pow(0.9, step)) * m[i] / (v[i].squareRoot() / (1 - pow(0.999, step)).squareRoot() + 1e-8)
            }
        }
        let got = try run("adamw:lr=0.1", gradients: grads)
        for i in 0..<2 { #expect(abs(Double(got[i]) - p[i]) < 1e-5) }
        #expect(abs(try run("adamw:lr=0.1", gradients: [grads[0]])[0] - 0.899) < 1e-5)
    }

    @Test("schedules: warmup, cosine, step; and when the last drop happens")
    func schedules() throws {
        let cosine = try OptimizerSpec(parsing: "sgd:lr=0.1,schedule=cosine,warmup=2")
        #expect(abs(cosine.learningRate(epoch: 0, totalEpochs: 12) - 0.05) < 1e-12)
        #expect(abs(cosine.learningRate(epoch: 2, totalEpochs: 12) - 0.1) < 1e-12)
        #expect(abs(cosine.learningRate(epoch: 7, totalEpochs: 12) - 0.05) < 1e-12)
        let step = try OptimizerSpec(parsing: "sgd:lr=1,schedule=step,step=10,gamma=0.5")
        #expect(step.learningRate(epoch: 9, totalEpochs: 50) == 1)
        #expect(step.learningRate(epoch: 25, totalEpochs: 50) == 0.25)
        #expect(step.lastDropEpoch(totalEpochs: 50) == 40)
        #expect(try OptimizerSpec(parsing: "adam").lr == 1e-3)
    }

    @Test("bad specs are clear errors", arguments: ["rmsprop:lr=1", "sgd:lr=-1", "sgd:momentum=1.5", "sgd:lr=abc", "sgd:foo=1", "adam:schedule=linear", "sgd:nesterov=true"])
    func badSpecs(text: String) {
        #expect(throws: EMCError.self) { _ = try OptimizerSpec(parsing: text) }
    }

    @Test("optimizer and model specs refuse out-of-range and repeated values, naming the key",
          arguments: ["adam:lr=1e-3,beta1=2", "adam:beta2=1", "sgd:momentum=1", "sgd:lr=-1", "sgd:lr=0.1,lr=0.2", "adamw:eps=0", "sgd:gamma=nan"])
    func badOptimizerSpecs(text: String) throws {
        let e = #expect(throws: EMCError.self) { _ = try OptimizerSpec(parsing: text) }
        #expect(e?.kind == .invalidArgument)
    }

    @Test("model specs with huge or repeated sizes are refused before anything is allocated",
          arguments: ["mlp:width=9223372036854775807", "mlp:width=99999999", "mlp:width=8,width=16", "cnn:channels=99999", "cnn:layers=0", "mlp:act=swish2"])
    func badModelSpecs(text: String) throws {
        let e = #expect(throws: EMCError.self) { _ = try ModelSpec(parsing: text) }
        #expect(e?.kind == .invalidArgument)
    }

    @Test("a model or batch that needs more memory than the machine has is refused before allocating, naming both",
          arguments: [("mlp:width=1048576", 128), ("mlp:width=16", 99_999_999_999), ("cnn:channels=16384,layers=2", 128)])
    func tooLarge(spec: String, batch: Int) throws {
        let model = try ModelSpec(parsing: spec)
        let e = #expect(throws: EMCError.self) { _ = try model.build(input: FeatureShape(height: 28, width: 28, channels: 1), classes: 10, maxBatch: batch) }
        #expect(e?.remedy == .smallerModelOrBatch && e?.description.contains("needs") == true)
        #expect(throws: EMCError.self) { _ = try model.build(input: .vector(4), classes: 2, maxBatch: 0) }
    }
}
