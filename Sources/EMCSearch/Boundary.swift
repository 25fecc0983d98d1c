import Foundation

/// The fit/no-fit boundary of a configuration: p(fit | n) = σ(−s·(log n − log n50)), fitted by maximum likelihood
/// over every trial of every seed, with a profile-likelihood interval for n50.
///
/// Why this model: fit/no-fit at a given n is random (each trial has its own initialisation, and a finite budget
/// decides borderline trials), and p(fit) falls with n. A logistic curve in log n has two numbers a reader can use:
/// n50, the size fitted half the time (the EMC estimate), and the slope s, how sharp the boundary is (n10 and n90,
/// where p is 0.9 and 0.1, are n50·e^(∓2.197/s)). The interval is the set of n50 whose profile log-likelihood is
/// within χ²₁(level)/2 of the maximum (1.353 for 90%): it needs no normal approximation, which matters when trials
/// are few and the data nearly separated.
///
/// The slope is capped (`maxSlope`, 40 per unit of log n: p from 0.9 to 0.1 across ±5.5% of n50): with perfectly
/// separated trials the likelihood keeps rising as s grows, and the cap turns that into an interval spanning the gap
/// between the largest fitted and the smallest unfitted n, which is what such data can say.
public struct BoundaryFit: Codable, Sendable, Equatable {
    public var n50: Double
    /// The interval for n50 at `level`.
    public var low: Double
    public var high: Double
    public var level: Double
    /// True where the interval reaches the edge of the sizes tried: that end is only a bound.
    public var lowIsBound: Bool
    public var highIsBound: Bool
    public var n10: Double
    public var n90: Double
    /// Per unit of log n.
    public var slope: Double
    public var trials: Int
    public var fitted: Int

    /// Half the interval's width relative to n50 (the "±" a reader quotes).
    public var relativeHalfWidth: Double { (high - low) / 2 / n50 }

    public static let maxSlope = 40.0

    /// The boundary of `observations` (n, fitted), or nil when there is nothing to fit: no trials, or trials that
    /// all fitted or all failed (then the boundary lies outside the sizes tried).
    public static func fit(_ observations: [(n: Int, fitted: Bool)], level: Double = 0.9) -> BoundaryFit? {
        let points = observations.filter { $0.n > 0 }.map { (x: log(Double($0.n)), y: $0.fitted) }
        guard points.contains(where: { $0.y }), points.contains(where: { !$0.y }) else { return nil }
        let xs = points.map(\.x)
        let lo = xs.min()!, hi = xs.max()!
        // The profile log-likelihood of θ = log n50: a coarse scan a little wider than the sizes tried, a golden-section
        // search around its best point, and bisection for the interval's ends.
        let margin = max(0.05, (hi - lo) * 0.05)
        let a = lo - margin, b = hi + margin
        let f = { (theta: Double) in profileLikelihood(points, theta: theta).value }
        let scan = (0...48).map { a + (b - a) * Double($0) / 48 }
        let values = scan.map(f)
        let top = values.max()!
        // A flat maximum (separated data) is a plateau: take its middle.
        let plateau = values.indices.filter { values[$0] > top - 1e-9 }
        var theta = scan[plateau[plateau.count / 2]]
        if plateau.count == 1 {
            let i = plateau[0]
            var l = scan[max(0, i - 1)], r = scan[min(scan.count - 1, i + 1)]
            let g = (sqrt(5) - 1) / 2
            for _ in 0..<32 {
                let m1 = r - g * (r - l), m2 = l + g * (r - l)
                if f(m1) < f(m2) { l = m1 } else { r = m2 }
            }
            theta = (l + r) / 2
        }
        let best = profileLikelihood(points, theta: theta)
        let drop = chiSquare1(level) / 2
        let inside = { (t: Double) in best.value - f(t) <= drop }
        /// The last θ inside the interval between `from` (inside) and `to`, or `to` itself when it is inside (a bound).
        func end(from: Double, to: Double) -> (Double, Bool) {
            if inside(to) { return (to, true) }
            var i = from, o = to
            for _ in 0..<32 { let m = (i + o) / 2; if inside(m) { i = m } else { o = m } }
            return (i, false)
        }
        let (lowTheta, lowBound) = end(from: theta, to: a)
        let (highTheta, highBound) = end(from: theta, to: b)
        let slope = best.slope
        let spread = 2.1972245773362196 / max(slope, 1e-9)  // logit(0.9)
        return BoundaryFit(n50: exp(theta), low: exp(lowTheta), high: exp(highTheta), level: level,
                           lowIsBound: lowBound, highIsBound: highBound,
                           n10: exp(theta - spread), n90: exp(theta + spread), slope: slope,
                           trials: points.count, fitted: points.filter(\.y).count)
    }

    /// max over s ∈ [0, maxSlope] of Σ log p(y | x; θ, s), with the maximising slope. Concave in s for fixed θ,
    /// so a bracketed Newton iteration converges.
    static func profileLikelihood(_ points: [(x: Double, y: Bool)], theta: Double) -> (value: Double, slope: Double) {
        func ll(_ s: Double) -> (value: Double, d1: Double, d2: Double) {
            var v = 0.0, d1 = 0.0, d2 = 0.0
            for p in points {
                // p(fit) = σ(−s·u), u = x − θ; z = ±s·u chosen so the term is log σ(z).
                let u = p.x - theta
                let z = p.y ? -s * u : s * u
                let a = p.y ? -u : u  // dz/ds
                v += z >= 0 ? -log1p(exp(-z)) : z - log1p(exp(z))
                let sig = 1 / (1 + exp(z))  // 1 − σ(z) = d log σ(z) / dz
                d1 += sig * a
                d2 -= sig * (1 - sig) * a * a
            }
            return (v, d1, d2)
        }
        var lo = 0.0, hi = maxSlope, s = 1.0
        for _ in 0..<40 {
            let f = ll(s)
            if f.d1 > 0 { lo = s } else { hi = s }
            var next = f.d2 < 0 ? s - f.d1 / f.d2 : (lo + hi) / 2
            if !(next > lo && next < hi) { next = (lo + hi) / 2 }
            if abs(next - s) < 1e-9 { s = next; break }
            s = next
        }
        let atCap = ll(maxSlope)
        let here = ll(s)
        return atCap.value > here.value ? (atCap.value, maxSlope) : (here.value, s)
    }

    /// The χ² quantile with one degree of freedom (1.0 − the two tails of a standard normal at `level`).
    public static func chiSquare1(_ level: Double) -> Double {
        let z = normalQuantile(0.5 + level / 2)
        return z * z
    }

    /// Acklam's rational approximation to the standard normal quantile (relative error below 1.2e-9).
    static func normalQuantile(_ p: Double) -> Double {
        let a = [-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00]
        let b = [-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01, -1.328068155288572e+01]
        let c = [-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00]
        let d = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00]
        let low = 0.02425
        if p < low {
            let q = sqrt(-2 * log(p))
            return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
        }
        if p > 1 - low { return -normalQuantile(1 - p) }
        let q = p - 0.5, r = q * q
        return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
    }
}
