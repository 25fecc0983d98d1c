import EMCCore
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
/// A lapse rate λ (the share of trials that fail whatever n is: an unlucky initialisation, a budget that runs out one
/// sample short) is fitted beside the slope, p(fit) = (1 − λ)·σ(c − s·(log n − log n50)) with c placing p = 1/2 at
/// n50, λ from a small grid (0 to 20%): a lone failure far below the boundary is then a lapse, not evidence of a soft
/// boundary. n50, n10 and n90 come from this model. The interval is the union of its profile interval and the
/// lapse-free model's, because on simulated searches the lapse model's interval alone is too narrow (see `fit`).
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
    /// The fitted lapse rate: the share of trials that fail whatever n is (nil in fits made before it existed).
    public var lapse: Double?
    /// The smallest and largest n among the trials fitted (nil in fits made before they were kept).
    public var smallestTried: Int? = nil
    public var largestTried: Int? = nil

    /// A size of this boundary (n10, n90, an interval end) as a reader should take it: with thousands separators
    /// inside the sizes tried, and "beyond the sizes tried" outside them (a shallow boundary's n90 may lie far above
    /// the data, where the fit says nothing), never clamped silently.
    public func describe(_ v: Double) -> String {
        if let largestTried, !(v <= Double(largestTried) * 1.0001) { return "beyond the sizes tried (> \(formatCount(Double(largestTried))))" }
        if let smallestTried, !(v >= Double(smallestTried) * 0.9999) { return "below the sizes tried (< \(formatCount(Double(smallestTried))))" }
        return formatCount(v)
    }

    /// "Near the boundary" for the budget-bound rule: between n10 and n90, or above this fraction of n50.
    public static let nearFraction = 0.8

    /// Whether a trial at n is near this boundary (`nearFraction`).
    public func isNear(_ n: Int) -> Bool { Double(n) >= n10 && Double(n) <= n90 || Double(n) >= Self.nearFraction * n50 }

    /// The largest share of its budget that a fitted trial near this boundary used (its fit epoch over `budget`, the
    /// trial's epoch budget); nil when no fitted trial is near it. The one measure behind the budget-bound flag, in
    /// `emc run` and `emc report` alike.
    public func budgetShare(_ trials: [TrialRecord], budget: (TrialRecord) -> Int?) -> Double? {
        trials.filter { $0.fitted && isNear($0.n) }.compactMap { t in budget(t).map { Double(t.fitEpoch ?? t.epochs) / Double(max(1, $0)) } }.max()
    }

    /// Half the interval's width relative to n50 (the "±" a reader quotes).
    public var relativeHalfWidth: Double { (high - low) / 2 / n50 }

    public static let maxSlope = 40.0

    /// The boundary of `observations` (n, fitted), or nil when there is nothing to fit: no trials, or trials that
    /// all fitted or all failed (then the boundary lies outside the sizes tried).
    public static func fit(_ observations: [(n: Int, fitted: Bool)], level: Double = 0.9) -> BoundaryFit? {
        let points = Points(observations)
        guard points.fitted > 0, points.failed > 0 else { return nil }
        // n50, n10, n90 from the model with a lapse; the interval the union of both models' profile intervals. On
        // simulated searches (`emc bench search-rules`) the lapse model alone covered the true n50 in about 80% of
        // searches for a nominal 90% (its slope comes out too steep when few trials sit near the boundary); the union
        // covers about 89%, and the lapse model's n50 is the closer estimate.
        var withLapse = fit(points, level: level, lapses: lapses)
        let without = fit(points, level: level, lapses: [0])
        if without.low < withLapse.low { withLapse.low = without.low; withLapse.lowIsBound = without.lowIsBound }
        if without.high > withLapse.high { withLapse.high = without.high; withLapse.highIsBound = without.highIsBound }
        let sizes = observations.map(\.n).filter { $0 > 0 }
        withLapse.smallestTried = sizes.min()
        withLapse.largestTried = sizes.max()
        return withLapse
    }

    /// Trials grouped by size: each distinct log n once, with its counts of fitted and failed trials (the likelihood
    /// is a sum over trials, so a size tried k times contributes k times its term; a search repeats sizes often).
    struct Points {
        var x: [Double] = []
        var fits: [Double] = []
        var fails: [Double] = []
        var fitted = 0, failed = 0

        init(_ observations: [(n: Int, fitted: Bool)]) {
            var counts: [Int: (Int, Int)] = [:]
            for o in observations where o.n > 0 {
                var c = counts[o.n, default: (0, 0)]
                if o.fitted { c.0 += 1; fitted += 1 } else { c.1 += 1; failed += 1 }
                counts[o.n] = c
            }
            for n in counts.keys.sorted() {
                x.append(log(Double(n)))
                fits.append(Double(counts[n]!.0))
                fails.append(Double(counts[n]!.1))
            }
        }
    }

    static func fit(_ points: Points, level: Double, lapses: [Double]) -> BoundaryFit {
        let lo = points.x.first!, hi = points.x.last!
        // The profile log-likelihood of θ = log n50: a coarse scan a little wider than the sizes tried, a golden-section
        // search around its best point, and bisection for the interval's ends (each to about 10⁻⁶ of n).
        let margin = max(0.05, (hi - lo) * 0.05)
        let a = lo - margin, b = hi + margin
        let f = { (theta: Double) in profileLikelihood(points, theta: theta, lapses: lapses).value }
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
            // Each step keeps one of its two interior points, so it evaluates only the new one.
            var m1 = r - g * (r - l), m2 = l + g * (r - l)
            var f1 = f(m1), f2 = f(m2)
            for _ in 0..<24 {
                if f1 < f2 { l = m1; m1 = m2; f1 = f2; m2 = l + g * (r - l); f2 = f(m2) } else { r = m2; m2 = m1; f2 = f1; m1 = r - g * (r - l); f1 = f(m1) }
            }
            theta = (l + r) / 2
        }
        let best = profileLikelihood(points, theta: theta, lapses: lapses)
        let drop = chiSquare1(level) / 2
        /// How far below the cut-off the profile is at t: ≤ 0 inside the interval.
        let excess = { (t: Double) in best.value - f(t) - drop }
        /// The last θ inside the interval between `from` (the maximum, inside) and `to`, or `to` itself when it is inside
        /// (a bound): the root of `excess` by the Illinois variant of false position, which keeps a bracket like
        /// bisection but converges in a handful of steps on a smooth profile, to 10⁻⁷ in log n.
        func end(from: Double, to: Double) -> (Double, Bool) {
            var o = to, ho = excess(to)
            if ho <= 0 { return (to, true) }
            var i = from, hi = -drop
            var side = 0
            for _ in 0..<48 where abs(o - i) > 1e-7 {
                var m = (i * ho - o * hi) / (ho - hi)
                if !(m > min(i, o) && m < max(i, o)) { m = (i + o) / 2 }
                let hm = excess(m)
                if hm <= 0 {
                    i = m; hi = hm
                    if side == -1 { ho /= 2 }
                    side = -1
                } else {
                    o = m; ho = hm
                    if side == 1 { hi /= 2 }
                    side = 1
                }
            }
            return (i, false)
        }
        let (lowTheta, lowBound) = end(from: theta, to: a)
        let (highTheta, highBound) = end(from: theta, to: b)
        let slope = max(best.slope, 1e-9)
        // n10 and n90 on the sigmoid (a trial that does not lapse fits with probability 0.9 and 0.1 there).
        let keep = 1 - best.lapse, q = 1 / (2 * keep), c = best.lapse == 0 ? 0 : log(q / (1 - q))
        let logit9 = 2.1972245773362196
        return BoundaryFit(n50: exp(theta), low: exp(lowTheta), high: exp(highTheta), level: level,
                           lowIsBound: lowBound, highIsBound: highBound,
                           n10: exp(theta + (c - logit9) / slope), n90: exp(theta + (c + logit9) / slope), slope: best.slope,
                           trials: points.fitted + points.failed, fitted: points.fitted, lapse: best.lapse)
    }

    /// The lapse rates the profile likelihood tries: the share of trials that fail whatever n is (an unlucky
    /// initialisation, a budget that runs out one sample short). Without it, one such failure far below the boundary
    /// flattens the fitted slope and widens the interval several-fold.
    public static let lapses = [0.0, 0.02, 0.05, 0.1, 0.2]

    /// max over s ∈ (0, maxSlope] and λ ∈ `lapses` of the log-likelihood Σ log p(y | x; θ, s, λ),
    /// where p(fit | x) = (1 − λ)·σ(c(λ) − s·(x − θ)) and c(λ) = logit(1 / (2(1 − λ))) puts p = 1/2 at x = θ.
    static func profileLikelihood(_ points: Points, theta: Double, lapses: [Double]) -> (value: Double, slope: Double, lapse: Double) {
        var best = (value: -Double.infinity, slope: 0.0, lapse: 0.0)
        for lapse in lapses {
            let (value, slope) = profile(points, theta: theta, lapse: lapse)
            if value > best.value { best = (value, slope, lapse) }
        }
        return best
    }

    static func profile(_ points: Points, theta: Double, lapse: Double) -> (value: Double, slope: Double) {
        let keep = 1 - lapse
        let c = lapse == 0 ? 0 : { let q = 1 / (2 * keep); return log(q / (1 - q)) }()
        let count = points.x.count
        let logKeep = log(keep)
        func objective(_ s: Double) -> Double {
            var v = 0.0
            points.x.withUnsafeBufferPointer { x in
                points.fits.withUnsafeBufferPointer { fits in
                    points.fails.withUnsafeBufferPointer { fails in
                        for i in 0..<count {
                            let g = c - s * (x[i] - theta)
                            // log(1 + e) for e ∈ (0, 1]: log1p's extra precision for tiny e changes a sum of terms of order
                            // one by less than 10⁻¹⁶, and log is about twice as fast.
                            if lapse == 0 {
                                // log σ(g) and log(1 − σ(g)) = log σ(−g), computed stably from one exponential.
                                let e = exp(-abs(g)), l = log(1 + e)
                                let logFit = g >= 0 ? -l : g - l, logFail = g >= 0 ? -g - l : -l
                                v += fits[i] * logFit + fails[i] * logFail
                            } else {
                                // p = keep·σ(g). With e = exp(−|g|) and d = log(1 + e): for g ≥ 0, σ = 1/(1 + e), so
                                // log p = log keep − d and log(1 − p) = log(1 + e − keep) − d; for g < 0, σ = e/(1 + e),
                                // so log p = log keep + g − d and log(1 − p) = log(1 + e − keep·e) − d.
                                let e = exp(-abs(g)), d = log(1 + e)
                                if fits[i] > 0 { v += fits[i] * (logKeep + (g >= 0 ? 0 : g) - d) }
                                if fails[i] > 0 { v += fails[i] * (log(g >= 0 ? 1 + e - keep : 1 + e - keep * e) - d) }
                            }
                        }
                    }
                }
            }
            return v
        }
        // Brent's method over log s (golden sections with parabolic steps; the log-likelihood is unimodal in s for fixed
        // θ and λ) to 1.5·10⁻⁵ in log s: the likelihood is flat at its maximum, so its value there is exact to about 10⁻⁹.
        let (t, here) = maximize(objective: { objective(exp($0)) }, from: log(0.01), to: log(maxSlope), tolerance: 1.5e-5)
        let atCap = objective(maxSlope)
        return atCap > here ? (atCap, maxSlope) : (here, exp(t))
    }

    /// The maximum of a unimodal `objective` on [`from`, `to`] by Brent's method: where it is and its value.
    static func maximize(objective: (Double) -> Double, from: Double, to: Double, tolerance: Double) -> (x: Double, value: Double) {
        let golden = 0.3819660112501051
        var a = from, b = to
        var x = a + golden * (b - a), w = x, v = x
        var fx = -objective(x), fw = fx, fv = fx
        var d = 0.0, e = 0.0
        for _ in 0..<100 {
            let middle = (a + b) / 2, tol2 = 2 * tolerance
            if abs(x - middle) <= tol2 - (b - a) / 2 { break }
            var parabolic = false
            if abs(e) > tolerance {
                // A parabola through x, w and v; its vertex is taken when it falls well inside the bracket.
                var r = (x - w) * (fx - fv), q = (x - v) * (fx - fw)
                var p = (x - v) * q - (x - w) * r
                q = 2 * (q - r)
                if q > 0 { p = -p }
                q = abs(q)
                r = e
                e = d
                if abs(p) < abs(q * r / 2) && p > q * (a - x) && p < q * (b - x) {
                    d = p / q
                    let u = x + d
                    if u - a < tol2 || b - u < tol2 { d = middle >= x ? tolerance : -tolerance }
                    parabolic = true
                }
            }
            if !parabolic {
                e = x >= middle ? a - x : b - x
                d = golden * e
            }
            let u = abs(d) >= tolerance ? x + d : x + (d >= 0 ? tolerance : -tolerance)
            let fu = -objective(u)
            if fu <= fx {
                if u >= x { a = x } else { b = x }
                v = w; fv = fw
                w = x; fw = fx
                x = u; fx = fu
            } else {
                if u < x { a = u } else { b = u }
                if fu <= fw || w == x {
                    v = w; fv = fw
                    w = u; fw = fu
                } else if fu <= fv || v == x || v == w {
                    v = u; fv = fu
                }
            }
        }
        return (x, -fx)
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
