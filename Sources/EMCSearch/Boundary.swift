import EMCCore
import Foundation

/// The fit/no-fit boundary of a configuration, fitted by maximum likelihood over every trial of every seed, with an
/// interval for the population's n50.
///
/// The model: within one subset (a seed's nested sample of the data), p(fit | n) = (1 − λ)·σ(c(λ) − s·(log n − θ_j)),
/// θ_j the subset's log n50, s the slope (how sharp the boundary is), λ a lapse rate (the share of trials that fail
/// whatever n is: an unlucky initialisation, a diverged run) and c(λ) placing p = 1/2 at θ_j. Subsets differ: θ_j is a
/// random effect, θ_j = θ + σ·u_j. The EMC estimate is e^θ, the n50 of a typical subset (the median over subsets; for
/// λ = 0, also where the fit probability averaged over subsets is 1/2).
///
/// How it is fitted: s and λ are shared by the subsets, each θ_j is the subset's own (maximum likelihood given s and λ,
/// s under a weakly informative prior instead of a cap: log s ~ N(log 8, 1.5²), so that separated trials give a finite
/// slope); θ is the mean of the θ_j, and its interval a t interval with J − 1 degrees of freedom over the J subsets, its
/// variance the larger of the θ_j's spread and their own sampling variance (from each subset's profile likelihood): a
/// subset effect, however large, is in the interval, and the interval never rests on an accident of three equal θ_j.
/// With one subset the interval is that subset's profile-likelihood interval: it says nothing about other subsets.
/// `emc bench search-rules` and docs/methods.md give its coverage on generators with and without subset effects,
/// asymmetric links, large lapses and budget failures.
public struct BoundaryFit: Codable, Sendable, Equatable {
    public var n50: Double
    /// The interval for n50 at `level`.
    public var low: Double
    public var high: Double
    public var level: Double
    /// True where the interval reaches the edge of the sizes tried: that end is only a bound.
    public var lowIsBound: Bool
    public var highIsBound: Bool
    /// Where a typical subset fits with probability 0.9 and 0.1 (on the same curve as n50, lapse included; nil when the
    /// lapse makes 0.9 unreachable).
    public var n10: Double?
    public var n90: Double?
    /// Per unit of log n.
    public var slope: Double
    public var trials: Int
    public var fitted: Int
    /// The fitted lapse rate: the share of trials that fail whatever n is (nil in fits made before it existed), and the
    /// lapse rates the data cannot tell from it (within the interval's cut-off of the best).
    public var lapse: Double?
    public var lapseRange: [Double]? = nil
    /// The smallest and largest n among the trials fitted (nil in fits made before they were kept).
    public var smallestTried: Int? = nil
    public var largestTried: Int? = nil
    /// The subsets (seeds) fitted, each subset's n50 in seed order, and the spread of log n50 between subsets (σ, with
    /// its upper bound at `level`; nil with one subset). Nil in fits made before subsets entered the model.
    public var subsets: Int? = nil
    public var subsetN50s: [Double]? = nil
    public var spread: Double? = nil
    public var spreadHigh: Double? = nil
    /// The shape-free check: where the pooled fit rate, made non-increasing in n (isotonic regression), crosses 1/2
    /// (nil when it never does). Far from n50, the logistic curve does not describe these trials.
    public var isotonicN50: Double? = nil

    /// A size of this boundary (n10, n90, an interval end) as a reader should take it: with thousands separators
    /// inside the sizes tried, and "beyond the sizes tried" outside them (a shallow boundary's n90 may lie far above
    /// the data, where the fit says nothing), never clamped silently.
    public func describe(_ v: Double?) -> String {
        guard let v else { return "unreachable (the lapse rate is above 10%)" }
        if let largestTried, !(v <= Double(largestTried) * 1.0001) { return "beyond the sizes tried (> \(formatCount(Double(largestTried))))" }
        if let smallestTried, !(v >= Double(smallestTried) * 0.9999) { return "below the sizes tried (< \(formatCount(Double(smallestTried))))" }
        return formatCount(v)
    }

    /// "Near the boundary" for the budget-bound rule: between n10 and n90, or above this fraction of n50.
    public static let nearFraction = 0.8

    /// Whether a trial at n is near this boundary (`nearFraction`).
    public func isNear(_ n: Int) -> Bool {
        Double(n) >= (n10 ?? n50) && Double(n) <= (n90 ?? .infinity) || Double(n) >= Self.nearFraction * n50
    }

    /// The largest share of its budget that a fitted trial near this boundary used (its fit epoch over `budget`, the
    /// trial's epoch budget); nil when no fitted trial is near it. The one measure behind the budget-bound flag, in
    /// `emc run` and `emc report` alike.
    public func budgetShare(_ trials: [TrialRecord], budget: (TrialRecord) -> Int?) -> Double? {
        trials.filter { $0.fitted && isNear($0.n) }.compactMap { t in budget(t).map { Double(t.fitEpoch ?? t.epochs) / Double(max(1, $0)) } }.max()
    }

    /// Half the interval's width relative to n50 (the "±" a reader quotes).
    public var relativeHalfWidth: Double { (high - low) / 2 / n50 }

    /// The slope's prior: log s ~ N(log 8, 1.5²), weak (s from 0.4 to 160 within two standard deviations), so that
    /// perfectly separated trials give a finite slope and an interval as wide as the gap between them.
    public static let slopePrior = (center: log(8.0), scale: 1.5)
    static func logPrior(slope s: Double) -> Double { let z = (log(s) - slopePrior.center) / slopePrior.scale; return -z * z / 2 }
    /// The range the slope is searched in (per unit of log n).
    static let slopeRange = (low: 0.05, high: 2000.0)

    /// The boundary of `observations` (n, fitted, the seed whose subset it trained on), or nil when there is nothing to
    /// fit: no trials, or trials that all fitted or all failed (then the boundary lies outside the sizes tried).
    public static func fit(_ observations: [(n: Int, fitted: Bool, seed: Int)], level: Double = 0.9) -> BoundaryFit? {
        let all = Points(observations.map { ($0.n, $0.fitted) })
        guard all.fitted > 0, all.failed > 0 else { return nil }
        let subsets = Dictionary(grouping: observations.filter { $0.n > 0 }, by: \.seed).sorted { $0.key < $1.key }
            .map { Points($0.value.map { ($0.n, $0.fitted) }) }
        let lo = all.x.first!, hi = all.x.last!
        let margin = max(0.05, (hi - lo) * 0.05)
        let window = (low: lo - margin, high: hi + margin)
        let drop = chiSquare1(level) / 2

        // For each lapse on the grid, the slope that maximises the penalised likelihood, with `groups` each at its own
        // best θ: every trial as one group (the population's curve), or each subset on its own (the subsets' θ_j).
        func shared(_ groups: [Points]) -> (best: (lapse: Double, slope: Double, value: Double), all: [(lapse: Double, slope: Double, value: Double)]) {
            var fits: [(lapse: Double, slope: Double, value: Double)] = []
            for lapse in lapses {
                let (t, value) = maximize(objective: { logS in
                    groups.reduce(0) { $0 + bestTheta($1, slope: exp(logS), lapse: lapse, window: window).value } + logPrior(slope: exp(logS))
                }, from: log(slopeRange.low), to: log(slopeRange.high), tolerance: 1e-4)
                fits.append((lapse, exp(t), value))
            }
            return (fits.max { $0.value < $1.value }!, fits)
        }
        // The population's curve: n50, the slope, the lapse. Pooled, its n50 is the subsets' typical one (their curves
        // average to a flatter one around it); its small-sample bias is the smallest of the estimates tried.
        let (pooled, fits) = shared([all])
        let theta = bestTheta(all, slope: pooled.slope, lapse: pooled.lapse, window: window).theta
        // The subsets' own θ_j (a slope and lapse shared by them), for the interval's variance.
        let own = subsets.count == 1 ? pooled : shared(subsets).best
        let (s, lapse) = (own.slope, own.lapse)

        // Each subset's θ_j and its own profile interval (s and λ held).
        var thetas: [Double] = [], variances: [Double] = []
        var lowBound = false, highBound = false
        let z = normalQuantile(0.5 + level / 2)
        for points in subsets {
            let (theta, value) = bestTheta(points, slope: s, lapse: lapse, window: window)
            let excess = { (t: Double) in value - logLikelihood(points, theta: t, slope: s, lapse: lapse) - drop }
            let (l, lb) = intervalEnd(excess, from: theta, to: window.low, drop: drop)
            let (h, hb) = intervalEnd(excess, from: theta, to: window.high, drop: drop)
            thetas.append(theta)
            variances.append(pow((h - l) / 2 / z, 2))
            lowBound = lowBound || lb
            highBound = highBound || hb
        }
        let J = thetas.count
        let mean = thetas.reduce(0, +) / Double(J)
        var low = theta, high = theta
        var spread: Double?, spreadHigh: Double?
        if J >= 2 {
            let between = thetas.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(J - 1)
            let within = variances.reduce(0, +) / Double(J)
            let se = (max(between, within) / Double(J)).squareRoot()
            let q = tQuantile(0.5 + level / 2, degrees: Double(J - 1))
            low = theta - q * se
            high = theta + q * se
            spread = max(0, between - within).squareRoot()
            // σ's upper bound at `level`: the between-subset variance's one-sided χ² bound, less the sampling variance.
            spreadHigh = max(0, between * Double(J - 1) / chiSquareQuantile(1 - level, degrees: Double(J - 1)) - within).squareRoot()
        }
        // The population curve's own profile-likelihood interval (slope and lapse profiled): with one subset, the
        // interval; with more, joined to the t interval: the seeds' spread says how far subsets scatter, the profile how
        // well the pooled trials place the curve. Each alone falls short on some generator (docs/methods.md).
        let profile = { (t: Double) -> Double in
            lapses.map { lapse in
                maximize(objective: { logS in logLikelihood(all, theta: t, slope: exp(logS), lapse: lapse) + logPrior(slope: exp(logS)) },
                         from: log(slopeRange.low), to: log(slopeRange.high), tolerance: 1e-4).value
            }.max()!
        }
        let top = profile(theta)
        let excess = { (t: Double) in top - profile(t) - drop }
        let (pl, plb) = intervalEnd(excess, from: theta, to: window.low, drop: drop)
        let (ph, phb) = intervalEnd(excess, from: theta, to: window.high, drop: drop)
        if J == 1 { (lowBound, highBound) = (false, false) }
        if pl < low { low = pl; lowBound = plb }
        if ph > high { high = ph; highBound = phb }
        // The shape-free check: where the isotonic (non-increasing) fit rate crosses 1/2. A curve of another shape than
        // the logistic (two populations of initialisations, an asymmetric fall) moves the logistic n50 off it; the
        // interval then reaches it.
        let isotonic = isotonicCrossing(all)
        if let iso = isotonic, J >= 2 {
            if iso < low { low = iso }
            if iso > high { high = iso }
        }
        if low <= window.low { low = window.low; lowBound = true }
        if high >= window.high { high = window.high; highBound = true }
        // n at p(fit) = 0.9 and 0.1 on the population's curve.
        let keep = 1 - pooled.lapse, c = offset(lapse: pooled.lapse)
        func at(_ p: Double) -> Double? {
            let q = p / keep
            guard q < 1 else { return nil }
            return exp(theta + (c - log(q / (1 - q))) / pooled.slope)
        }
        let sizes = observations.map(\.n).filter { $0 > 0 }
        let cut = pooled.value - drop
        return BoundaryFit(n50: exp(theta), low: exp(low), high: exp(high), level: level, lowIsBound: lowBound, highIsBound: highBound,
                           n10: at(0.9), n90: at(0.1), slope: pooled.slope, trials: all.fitted + all.failed, fitted: all.fitted, lapse: pooled.lapse,
                           lapseRange: fits.filter { $0.value >= cut }.map(\.lapse), smallestTried: sizes.min(), largestTried: sizes.max(),
                           subsets: J, subsetN50s: thetas.map { exp($0) }, spread: spread, spreadHigh: spreadHigh,
                           isotonicN50: isotonic.map { exp($0) })
    }

    /// c(λ) = logit(1 / (2(1 − λ))): puts p = 1/2 at n50 on a curve that tops out at 1 − λ.
    static func offset(lapse: Double) -> Double {
        guard lapse > 0 else { return 0 }
        let q = 1 / (2 * (1 - lapse))
        return log(q / (1 - q))
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

    /// A subset's best θ and its log-likelihood, given the slope and lapse: a scan of the window, then Brent's method
    /// around the best point (the likelihood may have a plateau, where separated trials leave θ free: its middle).
    static func bestTheta(_ points: Points, slope: Double, lapse: Double, window: (low: Double, high: Double)) -> (theta: Double, value: Double) {
        let steps = 32
        let scan = (0...steps).map { window.low + (window.high - window.low) * Double($0) / Double(steps) }
        let values = scan.map { logLikelihood(points, theta: $0, slope: slope, lapse: lapse) }
        let top = values.max()!
        let plateau = values.indices.filter { values[$0] > top - 1e-9 }
        if plateau.count > 1 { let i = plateau[plateau.count / 2]; return (scan[i], values[i]) }
        let i = plateau[0]
        let (t, v) = maximize(objective: { logLikelihood(points, theta: $0, slope: slope, lapse: lapse) },
                              from: scan[max(0, i - 1)], to: scan[min(steps, i + 1)], tolerance: 1e-7)
        return v >= top ? (t, v) : (scan[i], top)
    }

    /// Where the isotonic fit of the fit rate (pool-adjacent-violators, non-increasing in log n) crosses 1/2, in log n:
    /// between the last block at or above 1/2 and the first below it, interpolated linearly in log n between their
    /// weighted centres. Nil when no block is on either side.
    static func isotonicCrossing(_ points: Points) -> Double? {
        // Blocks of (trials, fits, Σ trials·x), merged while a later block's rate exceeds an earlier one's.
        var blocks: [(count: Double, fits: Double, x: Double)] = []
        for i in points.x.indices {
            let count = points.fits[i] + points.fails[i]
            blocks.append((count, points.fits[i], count * points.x[i]))
            while blocks.count > 1 {
                let b = blocks[blocks.count - 1], a = blocks[blocks.count - 2]
                guard b.fits / b.count > a.fits / a.count else { break }
                blocks.removeLast(2)
                blocks.append((a.count + b.count, a.fits + b.fits, a.x + b.x))
            }
        }
        guard let below = blocks.firstIndex(where: { $0.fits / $0.count < 0.5 }), below > 0 else { return nil }
        let a = blocks[below - 1], b = blocks[below]
        let (pa, pb, xa, xb) = (a.fits / a.count, b.fits / b.count, a.x / a.count, b.x / b.count)
        return xa + (xb - xa) * (pa - 0.5) / (pa - pb)
    }

    /// The last θ inside an interval between `from` (the maximum, inside) and `to`, where `excess` (how far below the
    /// cut-off the likelihood is; ≤ 0 inside) crosses zero, or `to` itself when it is inside (a bound): the Illinois
    /// variant of false position, which keeps a bracket like bisection but converges in a handful of steps on a smooth
    /// profile, to 10⁻⁷ in log n.
    static func intervalEnd(_ excess: (Double) -> Double, from: Double, to: Double, drop: Double) -> (Double, Bool) {
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

    /// The lapse rates the fit tries: the share of trials that fail whatever n is (an unlucky initialisation, a diverged
    /// run, a budget that runs out one sample short). Without it, one such failure far below the boundary flattens the
    /// fitted slope and widens the interval several-fold.
    public static let lapses = [0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4]

    /// Σ log p(y | x; θ, s, λ) over a subset's trials, where p(fit | x) = (1 − λ)·σ(c(λ) − s·(x − θ)).
    static func logLikelihood(_ points: Points, theta: Double, slope s: Double, lapse: Double) -> Double {
        let keep = 1 - lapse, c = offset(lapse: lapse), logKeep = log(keep)
        var v = 0.0
        for i in points.x.indices {
            let g = c - s * (points.x[i] - theta)
            let fits = points.fits[i], fails = points.fails[i]
            // log(1 + e) for e ∈ (0, 1]: log1p's extra precision for tiny e changes a sum of terms of order one by less
            // than 10⁻¹⁶, and log is about twice as fast.
            let e = exp(-abs(g)), d = log(1 + e)
            if lapse == 0 {
                // log σ(g) and log(1 − σ(g)) = log σ(−g), computed stably from one exponential.
                v += fits * (g >= 0 ? -d : g - d) + fails * (g >= 0 ? -g - d : -d)
            } else {
                // p = keep·σ(g). For g ≥ 0, σ = 1/(1 + e), so log p = log keep − d and log(1 − p) = log(1 + e − keep) − d;
                // for g < 0, σ = e/(1 + e), so log p = log keep + g − d and log(1 − p) = log(1 + e − keep·e) − d.
                if fits > 0 { v += fits * (logKeep + (g >= 0 ? 0 : g) - d) }
                if fails > 0 { v += fails * (log(g >= 0 ? 1 + e - keep : 1 + e - keep * e) - d) }
            }
        }
        return v
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
    public static func normalQuantile(_ p: Double) -> Double {
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

    /// The Student t distribution's p-quantile with `degrees` degrees of freedom: bisection on its distribution function,
    /// 1 − I_{ν/(ν+t²)}(ν/2, 1/2)/2 for t > 0, to 10⁻¹⁰.
    public static func tQuantile(_ p: Double, degrees nu: Double) -> Double {
        guard p != 0.5 else { return 0 }
        if p < 0.5 { return -tQuantile(1 - p, degrees: nu) }
        func cdf(_ t: Double) -> Double { 1 - incompleteBeta(nu / (nu + t * t), a: nu / 2, b: 0.5) / 2 }
        var lo = 0.0, hi = 1.0
        while cdf(hi) < p { hi *= 2 }
        for _ in 0..<200 where hi - lo > 1e-10 * max(1, hi) {
            let mid = (lo + hi) / 2
            if cdf(mid) < p { lo = mid } else { hi = mid }
        }
        return (lo + hi) / 2
    }

    /// The two-sided p-value of a t statistic with `degrees` degrees of freedom.
    public static func tTwoSided(_ t: Double, degrees nu: Double) -> Double {
        guard t.isFinite else { return t.isNaN ? 1 : 0 }
        return incompleteBeta(nu / (nu + t * t), a: nu / 2, b: 0.5)
    }

    /// The χ² distribution's p-quantile with k degrees of freedom (Wilson and Hilferty's cube-root approximation, within
    /// a few percent from k = 1 and closer as k grows).
    public static func chiSquareQuantile(_ p: Double, degrees k: Double) -> Double {
        let z = normalQuantile(p), a = 2 / (9 * k)
        return max(1e-12, k * pow(1 - a + z * a.squareRoot(), 3))
    }

    /// The regularised incomplete beta function I_x(a, b), by its continued fraction (modified Lentz).
    static func incompleteBeta(_ x: Double, a: Double, b: Double) -> Double {
        guard x > 0 else { return 0 }
        guard x < 1 else { return 1 }
        let logFront: Double = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log(1 - x)
        let front = exp(logFront)
        // The continued fraction converges fast for x < (a + 1)/(a + b + 2); otherwise use the symmetry I_x(a, b) = 1 − I_{1−x}(b, a).
        if x > (a + 1) / (a + b + 2) { return 1 - incompleteBeta(1 - x, a: b, b: a) }
        let tiny = 1e-300
        var c = 1.0, d = 1 - (a + b) * x / (a + 1)
        if abs(d) < tiny { d = tiny }
        d = 1 / d
        var f = d
        for m in 1...300 {
            let m2 = Double(2 * m), md = Double(m)
            let even: Double = md * (b - md) * x
            var num: Double = even / ((a + m2 - 1) * (a + m2))
            d = 1 + num * d; if abs(d) < tiny { d = tiny }
            c = 1 + num / c; if abs(c) < tiny { c = tiny }
            d = 1 / d
            f *= d * c
            let odd: Double = -(a + md) * (a + b + md) * x
            num = odd / ((a + m2) * (a + m2 + 1))
            d = 1 + num * d; if abs(d) < tiny { d = tiny }
            c = 1 + num / c; if abs(c) < tiny { c = tiny }
            d = 1 / d
            let delta = d * c
            f *= delta
            if abs(delta - 1) < 1e-15 { break }
        }
        return front * f / a
    }
}
