import EMCCore
import EMCTrainer
import Foundation
import Testing

/// Double-precision helpers for the reference: symmetric eigendecomposition by cyclic Jacobi rotations.
enum Reference {
    /// (eigenvalues, eigenvectors as columns of a row-major n×n) of the symmetric `a`.
    static func eigen(_ a: [Double], n: Int) -> ([Double], [Double]) {
        var m = a
        var v = [Double](repeating: 0, count: n * n)
        for i in 0..<n { v[i * n + i] = 1 }
        for _ in 0..<100 {
            var off = 0.0
            for p in 0..<n { for q in (p + 1)..<max(p + 1, n) { off += m[p * n + q] * m[p * n + q] } }
            if off < 1e-30 { break }
            for p in 0..<n {
                for q in (p + 1)..<max(p + 1, n) where abs(m[p * n + q]) > 1e-300 {
                    let theta = (m[q * n + q] - m[p * n + p]) / (2 * m[p * n + q])
                    let t = (theta >= 0 ? 1 : -1) / (abs(theta) + (theta * theta + 1).squareRoot())
                    let c = 1 / (t * t + 1).squareRoot(), s = t * c
                    for k in 0..<n {
                        let mkp = m[k * n + p], mkq = m[k * n + q]
                        m[k * n + p] = c * mkp - s * mkq
                        m[k * n + q] = s * mkp + c * mkq
                    }
                    for k in 0..<n {
                        let mpk = m[p * n + k], mqk = m[q * n + k]
                        m[p * n + k] = c * mpk - s * mqk
                        m[q * n + k] = s * mpk + c * mqk
                    }
                    for k in 0..<n {
                        let vkp = v[k * n + p], vkq = v[k * n + q]
                        v[k * n + p] = c * vkp - s * vkq
                        v[k * n + q] = s * vkp + c * vkq
                    }
                }
            }
        }
        return ((0..<n).map { m[$0 * n + $0] }, v)
    }

    static func inverseFourthRoot(_ a: [Double], n: Int, eps: Double) -> [Double] {
        let (values, v) = eigen(a, n: n)
        var out = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0..<n { for k in 0..<n { out[i * n + j] += v[i * n + k] * pow(max(values[k], eps), -0.25) * v[j * n + k] } } }
        return out
    }

    static func multiply(_ a: [Double], _ b: [Double], _ m: Int, _ k: Int, _ n: Int) -> [Double] {
        var c = [Double](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n { for l in 0..<k { c[i * n + j] += a[i * k + l] * b[l * n + j] } } }
        return c
    }

    static func transpose(_ a: [Double], _ m: Int, _ n: Int) -> [Double] {
        var t = [Double](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n { t[j * m + i] = a[i * n + j] } }
        return t
    }

    /// Shampoo's first step on one m×n matrix block G (β1 = 0, so M = G): L = εI + G·Gᵀ, R = εI + Gᵀ·G,
    /// P = L^(−1/4)·G·R^(−1/4).
    static func firstStep(_ g: [Double], _ m: Int, _ n: Int, eps: Double) -> [Double] {
        var l = multiply(g, transpose(g, m, n), m, n, m)
        var r = multiply(transpose(g, m, n), g, n, m, n)
        for i in 0..<m { l[i * m + i] += eps }
        for i in 0..<n { r[i * n + i] += eps }
        return multiply(multiply(inverseFourthRoot(l, n: m, eps: eps), g, m, m, n), inverseFourthRoot(r, n: n, eps: eps), m, n, n)
    }
}

@Suite("Shampoo")
struct ShampooTests {
    @Test("the spec parses with its defaults and refuses nonsense")
    func spec() throws {
        let s = try OptimizerSpec(parsing: "shampoo")
        #expect(s.kind == .shampoo && s.lr == 1e-3 && s.beta1 == 0.9 && s.beta2 == 0.999 && s.eps == 1e-12 && s.frequency == 10 && s.block == 128 && s.graft == .adam)
        #expect(try OptimizerSpec(parsing: "shampoo:lr=0.01,freq=1,graft=sgd,block=64").description == "shampoo:lr=0.01,freq=1,graft=sgd,block=64")
        #expect(throws: EMCError.self) { _ = try OptimizerSpec(parsing: "shampoo:graft=lion") }
        #expect(throws: EMCError.self) { _ = try OptimizerSpec(parsing: "shampoo:freq=0") }
        #expect(throws: EMCError.self) { _ = try OptimizerSpec(parsing: "shampoo:block=1") }
    }

    @Test("one step equals a Double reference from the formulas: per block, grafted or not, biases by the graft alone",
          arguments: ["none", "sgd"])
    func oneStep(graft: String) throws {
        // A 5×6 matrix split by block=3 into row parts (2, 3) and column parts (3, 3), then a bias of 5.
        let (m, n) = (5, 6)
        let rng = CounterRNG(seed: 3, stream: .test)
        let g = (0..<(m * n + m)).map { Float(rng.normal(UInt64($0))) }
        let p0 = (0..<(m * n + m)).map { Float(rng.normal(UInt64(1000 + $0))) }
        let eps = 1e-3, lr = 0.1
        let spec = try OptimizerSpec(parsing: "shampoo:lr=\(lr),beta1=0,beta2=1,eps=\(eps),freq=1,block=3,graft=\(graft)")
        let optimizer = Optimizer(spec: spec, layout: [ParameterTensorLayout(offset: 0, count: m * n, rows: m, cols: n),
                                                        ParameterTensorLayout(offset: m * n, count: m)])
        var p = p0, grad = g
        p.withUnsafeMutableBufferPointer { pp in grad.withUnsafeMutableBufferPointer { gg in optimizer.step(parameters: pp, gradients: gg, lr: lr) } }
        // Reference, in Double.
        var direction = [Double](repeating: 0, count: m * n)
        for (r0, r) in [(0, 2), (2, 3)] {
            for (c0, c) in [(0, 3), (3, 3)] {
                let block = (0..<r).flatMap { i in (0..<c).map { j in Double(g[(r0 + i) * n + c0 + j]) } }
                let pb = Reference.firstStep(block, r, c, eps: eps)
                for i in 0..<r { for j in 0..<c { direction[(r0 + i) * n + c0 + j] = pb[i * c + j] } }
            }
        }
        if graft == "sgd" {
            let gn = (0..<(m * n)).map { Double(g[$0]) * Double(g[$0]) }.reduce(0, +).squareRoot()
            let dn = direction.map { $0 * $0 }.reduce(0, +).squareRoot()
            direction = direction.map { $0 * gn / dn }
        }
        for i in 0..<(m * n) {
            let expected = Double(p0[i]) - lr * direction[i]
            #expect(abs(Double(p[i]) - expected) <= 1e-4 * max(1, abs(expected)), "weight \(i): \(p[i]) vs \(expected)")
        }
        for i in (m * n)..<(m * n + m) {
            #expect(abs(Double(p[i]) - (Double(p0[i]) - lr * Double(g[i]))) < 1e-6, "bias \(i): SGD's step")
        }
    }

    /// Feature scales from 1 to 100 (the Gram matrix's condition number about 10⁴). Measured when this test was
    /// written: steps to 1e-3 of the starting loss at scales to 100 / 1,000 / 10,000 were SGD 54 / 59 / never,
    /// Adam 73 / 83 / 93, Shampoo 37 / 46 / 76.
    static let spread = 100.0

    /// Steps to bring ½‖W·X − Y‖²/N below `target` × its start, or nil within `limit`; X with condition number ~100.
    static func stepsToFit(_ optimizerText: String, limit: Int = 3000, target: Double = 1e-3) throws -> Int? {
        let (m, n, samples) = (4, 8, 64)
        let rng = CounterRNG(seed: 11, stream: .test)
        // Inputs with feature scales from 1 to `spread`, then rotated by a random orthogonal matrix, so the
        // ill-conditioning is not along the axes (where a diagonal method like Adam would undo it).
        let scaled = (0..<(n * samples)).map { i in Double(rng.normal(UInt64(i))) * pow(Self.spread, Double(i / samples) / Double(n - 1)) / Self.spread.squareRoot() }
        var q = (0..<(n * n)).map { Double(rng.normal(UInt64(50_000 + $0))) }
        for i in 0..<n {  // Gram-Schmidt on the rows
            for j in 0..<i {
                let dot = (0..<n).map { q[i * n + $0] * q[j * n + $0] }.reduce(0, +)
                for k in 0..<n { q[i * n + k] -= dot * q[j * n + k] }
            }
            let norm = (0..<n).map { q[i * n + $0] * q[i * n + $0] }.reduce(0, +).squareRoot()
            for k in 0..<n { q[i * n + k] /= norm }
        }
        let x = Reference.multiply(q, scaled, n, n, samples)
        let wTrue = (0..<(m * n)).map { Double(rng.normal(UInt64(10_000 + $0))) }
        let y = Reference.multiply(wTrue, x, m, n, samples)
        var w = [Float](repeating: 0, count: m * n)
        let spec = try OptimizerSpec(parsing: optimizerText)
        let optimizer = Optimizer(spec: spec, layout: [ParameterTensorLayout(offset: 0, count: m * n, rows: m, cols: n)])
        func lossAndGradient() -> (Double, [Float]) {
            let residual = zip(Reference.multiply(w.map(Double.init), x, m, n, samples), y).map { $0 - $1 }
            let loss = residual.map { $0 * $0 }.reduce(0, +) / Double(2 * samples)
            let grad = Reference.multiply(residual, Reference.transpose(x, n, samples), m, samples, n).map { Float($0 / Double(samples)) }
            return (loss, grad)
        }
        let start = lossAndGradient().0
        for step in 0..<limit {
            var (loss, grad) = lossAndGradient()
            if !loss.isFinite { return nil }
            if loss <= target * start { return step }
            w.withUnsafeMutableBufferPointer { pw in grad.withUnsafeMutableBufferPointer { pg in optimizer.step(parameters: pw, gradients: pg, lr: spec.lr) } }
        }
        return nil
    }

    @Test("on an ill-conditioned least-squares problem Shampoo needs fewer steps than SGD and Adam at their best rates")
    func illConditioned() throws {
        let rates = [1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1]
        func best(_ make: (Double) -> String) throws -> (Int, Double)? {
            var found: (Int, Double)?
            for lr in rates { if let s = try Self.stepsToFit(make(lr)), s < (found?.0 ?? .max) { found = (s, lr) } }
            return found
        }
        let sgd = try best { "sgd:lr=\($0),momentum=0.9" }
        let adam = try best { "adam:lr=\($0)" }
        let shampoo = try #require(try best { "shampoo:lr=\($0),freq=1" })
        print("steps to 1e-3 of the starting loss: SGD \(String(describing: sgd)), Adam \(String(describing: adam)), Shampoo \(shampoo)")
        #expect(shampoo.0 < (sgd?.0 ?? .max) && shampoo.0 < (adam?.0 ?? .max))
    }
}
