import EMCCore
import EMCSearch
import EMCTrainer
import Foundation

/// The plot's x axis.
public enum PlotAxis: String, Codable, Sendable, CaseIterable {
    case parameters, width, depth, channels

    func value(_ r: ReportRow) -> Double? {
        self == .parameters ? Double(r.parameters) : r.modelSpec?.size(rawValue)
    }
}

/// What one line of the plot joins.
public enum PlotSeries: String, Codable, Sendable, CaseIterable {
    case condition, family, model, optimizer, budget

    func key(_ r: ReportRow) -> String {
        switch self {
        case .condition: return r.condition
        case .family: return "\(r.family?.rawValue ?? "?") on \(r.condition)"
        case .model: return "\(r.model) on \(r.condition)"
        case .optimizer: return "\(r.optimizer) on \(r.condition)"
        case .budget: return "\(r.budget ?? "?") on \(r.condition)"
        }
    }
}

/// SVG drawing helpers shared by the plots: log axes fitted to the data with decade (and 2, 5) ticks.
struct LogAxis {
    let lo: Double, hi: Double
    let from: Double, to: Double

    /// An axis spanning `values` (positive) with a little margin, mapped to pixels [from, to].
    init(_ values: [Double], from: Double, to: Double) {
        let logs = values.filter { $0 > 0 && $0.isFinite }.map(log10)
        var lo = (logs.min() ?? 0), hi = (logs.max() ?? 1)
        if hi - lo < 0.3 { let mid = (hi + lo) / 2; lo = mid - 0.15; hi = mid + 0.15 }
        let pad = (hi - lo) * 0.06
        self.lo = lo - pad
        self.hi = hi + pad
        self.from = from
        self.to = to
    }

    func px(_ v: Double) -> Double { from + (log10(max(v, 1e-300)) - lo) / (hi - lo) * (to - from) }

    /// Tick values: decades, and 2× and 5× when the axis spans less than three decades.
    var ticks: [Double] {
        var out: [Double] = []
        let fine = hi - lo < 3
        var d = floor(lo)
        while d <= ceil(hi) {
            for m in fine ? [1.0, 2, 5] : [1.0] {
                let v = m * pow(10, d)
                if log10(v) >= lo && log10(v) <= hi { out.append(v) }
            }
            d += 1
        }
        return out
    }
}

func svgNumber(_ v: Double) -> String { String(format: "%.1f", v) }

func svgEscape(_ text: String) -> String { Escapes.svg.apply(text) }

/// A tick label: 1k, 20k, 3M...
func tickLabel(_ v: Double) -> String {
    if v >= 1e6 { return "\(formatCount(v / 1e6))M" }
    if v >= 1e3 { return "\(formatCount(v / 1e3))k" }
    return formatCount(v)
}

let plotColours = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]

/// An SVG plot of EMC against parameter count (or width, depth, channels), log-log, one line per series, the EMC =
/// parameters line drawn when x is the parameter count: the paper's main picture. Error bars are each configuration's
/// 90% interval of n50 (the seeds' min–max where there is no boundary, drawn dashed); a lower bound is an open
/// triangle pointing up.
public enum EMCPlot {
    public static func svg(_ report: Report, x: PlotAxis = .parameters, by: PlotSeries = .condition, title: String? = nil) -> String {
        let points = report.rows.filter { $0.emc > 0 && x.value($0) != nil }
        let title = title ?? "EMC against \(x.rawValue)"
        guard !points.isEmpty else {
            return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"720\" height=\"120\"><text x=\"20\" y=\"60\" font-family=\"sans-serif\">No fitted configurations with a \(x.rawValue) to plot.</text></svg>\n"
        }
        let series = Array(Set(points.map(by.key))).sorted()
        let legendWidth = Double(series.map(\.count).max() ?? 10) * 6.6 + 40
        let width = 560 + legendWidth, height = 480.0, left = 80.0, top = 40.0, bottom = 70.0
        let plotRight = width - legendWidth - 20
        func bars(_ r: ReportRow) -> (Double, Double) {
            if let b = r.boundary { return (b.low, b.high) }
            return (Double(max(1, r.emcMin)), Double(max(1, r.emcMax)))
        }
        let xs = points.map { x.value($0)! }
        var ys = points.flatMap { r -> [Double] in let (l, h) = bars(r); return [r.emc, l, h] }
        if x == .parameters { ys += xs.filter { $0 <= (ys.max() ?? 0) * 1.5 } }
        let ax = LogAxis(xs, from: left, to: plotRight), ay = LogAxis(ys, from: height - bottom, to: top)
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<text x=\"\(svgNumber((left + plotRight) / 2))\" y=\"22\" font-size=\"15\" text-anchor=\"middle\">\(svgEscape(title))</text>\n"
        for t in ax.ticks {
            s += "<line x1=\"\(svgNumber(ax.px(t)))\" y1=\"\(svgNumber(top))\" x2=\"\(svgNumber(ax.px(t)))\" y2=\"\(svgNumber(height - bottom))\" stroke=\"#eee\"/>\n"
            s += "<text x=\"\(svgNumber(ax.px(t)))\" y=\"\(svgNumber(height - bottom + 16))\" text-anchor=\"middle\">\(tickLabel(t))</text>\n"
        }
        for t in ay.ticks {
            s += "<line x1=\"\(svgNumber(left))\" y1=\"\(svgNumber(ay.px(t)))\" x2=\"\(svgNumber(plotRight))\" y2=\"\(svgNumber(ay.px(t)))\" stroke=\"#eee\"/>\n"
            s += "<text x=\"\(svgNumber(left - 6))\" y=\"\(svgNumber(ay.px(t) + 4))\" text-anchor=\"end\">\(tickLabel(t))</text>\n"
        }
        s += "<rect x=\"\(svgNumber(left))\" y=\"\(svgNumber(top))\" width=\"\(svgNumber(plotRight - left))\" height=\"\(svgNumber(height - bottom - top))\" fill=\"none\" stroke=\"#333\"/>\n"
        s += "<text x=\"\(svgNumber((left + plotRight) / 2))\" y=\"\(svgNumber(height - bottom + 36))\" text-anchor=\"middle\">\(x.rawValue)</text>\n"
        s += "<text x=\"18\" y=\"\(svgNumber((top + height - bottom) / 2))\" text-anchor=\"middle\" transform=\"rotate(-90 18 \(svgNumber((top + height - bottom) / 2)))\">EMC (n50, samples fitted)</text>\n"
        s += "<text x=\"\(svgNumber(left))\" y=\"\(svgNumber(height - 12))\" fill=\"#555\">bars: 90% interval of n50 (dashed: min–max over seeds where no boundary); △: a lower bound (budget-bound or unfinished)</text>\n"
        if x == .parameters {
            // EMC = parameters, clipped to the plot.
            let a = max(pow(10, ax.lo), pow(10, ay.lo)), b = min(pow(10, ax.hi), pow(10, ay.hi))
            if a < b {
                s += "<line x1=\"\(svgNumber(ax.px(a)))\" y1=\"\(svgNumber(ay.px(a)))\" x2=\"\(svgNumber(ax.px(b)))\" y2=\"\(svgNumber(ay.px(b)))\" stroke=\"#888\" stroke-dasharray=\"6 4\"/>\n"
                s += "<text x=\"\(svgNumber(ax.px(b) - 4))\" y=\"\(svgNumber(ay.px(b) + 16))\" text-anchor=\"end\" fill=\"#666\">EMC = parameters</text>\n"
            }
        }
        for (i, key) in series.enumerated() {
            let colour = plotColours[i % plotColours.count]
            let line = points.filter { by.key($0) == key }.sorted { x.value($0)! < x.value($1)! }
            if line.count > 1 {
                let path = line.map { "\(svgNumber(ax.px(x.value($0)!))),\(svgNumber(ay.px($0.emc)))" }.joined(separator: " ")
                s += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(colour)\" stroke-width=\"1.5\"/>\n"
            }
            for r in line {
                let px = ax.px(x.value(r)!), py = ay.px(r.emc)
                let (l, h) = bars(r)
                if h > l {
                    s += "<line x1=\"\(svgNumber(px))\" y1=\"\(svgNumber(ay.px(l)))\" x2=\"\(svgNumber(px))\" y2=\"\(svgNumber(ay.px(h)))\" stroke=\"\(colour)\"\(r.boundary == nil ? " stroke-dasharray=\"3 2\"" : "")/>\n"
                }
                let label = "<title>\(svgEscape(r.model)) \(svgEscape(r.optimizer)) on \(svgEscape(r.condition)): EMC \(svgEscape(r.headline)), \(r.parameters) params</title>"
                if r.lowerBound {
                    s += "<path d=\"M\(svgNumber(px)),\(svgNumber(py - 6)) L\(svgNumber(px + 5)),\(svgNumber(py + 4)) L\(svgNumber(px - 5)),\(svgNumber(py + 4)) Z\" fill=\"white\" stroke=\"\(colour)\" stroke-width=\"1.5\">\(label)</path>\n"
                } else {
                    s += "<circle cx=\"\(svgNumber(px))\" cy=\"\(svgNumber(py))\" r=\"4\" fill=\"\(colour)\">\(label)</circle>\n"
                }
            }
            let ly = top + 14 + Double(i) * 18
            s += "<circle cx=\"\(svgNumber(plotRight + 20))\" cy=\"\(svgNumber(ly - 4))\" r=\"4\" fill=\"\(colour)\"/>\n"
            s += "<text x=\"\(svgNumber(plotRight + 30))\" y=\"\(svgNumber(ly))\">\(svgEscape(key))</text>\n"
        }
        return s + "</svg>\n"
    }
}

/// Per configuration, two panels: p(fit) against n (the fitted boundary, its interval shaded, each trial a tick at
/// 1 if it fitted and 0 if not) and EMC against budget (derived from the same trials, bounds as triangles).
public enum BoundaryPlot {
    public static func svg(_ report: Report, records: [TrialRecord]) -> String {
        let rows = report.rows
        let panelHeight = 220.0, width = 960.0, top = 30.0
        let height = top + Double(max(1, rows.count)) * (panelHeight + 40)
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"11\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        for (i, r) in rows.enumerated() {
            let y0 = top + Double(i) * (panelHeight + 40)
            let trials = records.filter { $0.config == r.config && $0.kind == .trial }
            s += "<text x=\"20\" y=\"\(svgNumber(y0 + 4))\" font-size=\"13\">\(svgEscape("\(r.model), \(r.optimizer) on \(r.condition)\(r.budget.map { ", \($0)" } ?? "")"))</text>\n"
            s += pFitPanel(r, trials: trials, x0: 70, x1: 500, y0: y0 + 20, y1: y0 + panelHeight)
            s += budgetPanel(r, x0: 600, x1: 930, y0: y0 + 20, y1: y0 + panelHeight)
        }
        return s + "</svg>\n"
    }

    static func frame(x0: Double, x1: Double, y0: Double, y1: Double, xLabel: String, yLabel: String) -> String {
        var s = "<rect x=\"\(svgNumber(x0))\" y=\"\(svgNumber(y0))\" width=\"\(svgNumber(x1 - x0))\" height=\"\(svgNumber(y1 - y0))\" fill=\"none\" stroke=\"#333\"/>\n"
        s += "<text x=\"\(svgNumber((x0 + x1) / 2))\" y=\"\(svgNumber(y1 + 30))\" text-anchor=\"middle\">\(svgEscape(xLabel))</text>\n"
        s += "<text x=\"\(svgNumber(x0 - 45))\" y=\"\(svgNumber((y0 + y1) / 2))\" text-anchor=\"middle\" transform=\"rotate(-90 \(svgNumber(x0 - 45)) \(svgNumber((y0 + y1) / 2)))\">\(svgEscape(yLabel))</text>\n"
        return s
    }

    static func pFitPanel(_ r: ReportRow, trials: [TrialRecord], x0: Double, x1: Double, y0: Double, y1: Double) -> String {
        guard !trials.isEmpty else { return "" }
        let ax = LogAxis(trials.map { Double($0.n) } + [r.boundary?.low, r.boundary?.high].compactMap { $0 }, from: x0, to: x1)
        func py(_ p: Double) -> Double { y1 - p * (y1 - y0) }
        var s = frame(x0: x0, x1: x1, y0: y0, y1: y1, xLabel: "n (log scale)", yLabel: "p(fit)")
        for t in ax.ticks { s += "<text x=\"\(svgNumber(ax.px(t)))\" y=\"\(svgNumber(y1 + 14))\" text-anchor=\"middle\">\(tickLabel(t))</text>\n" }
        for p in [0.0, 0.5, 1.0] { s += "<text x=\"\(svgNumber(x0 - 5))\" y=\"\(svgNumber(py(p) + 4))\" text-anchor=\"end\">\(p)</text>\n" }
        if let b = r.boundary {
            s += "<rect x=\"\(svgNumber(ax.px(b.low)))\" y=\"\(svgNumber(y0))\" width=\"\(svgNumber(ax.px(b.high) - ax.px(b.low)))\" height=\"\(svgNumber(y1 - y0))\" fill=\"#1f77b4\" fill-opacity=\"0.12\"/>\n"
            let lapse = b.lapse ?? 0, keep = 1 - lapse
            let c = lapse == 0 ? 0 : log((1 / (2 * keep)) / (1 - 1 / (2 * keep)))
            let path = (0...120).map { k -> String in
                let lx = ax.lo + (ax.hi - ax.lo) * Double(k) / 120
                let n = pow(10, lx)
                let p = keep / (1 + exp(-(c - b.slope * (log(n) - log(b.n50)))))
                return "\(svgNumber(ax.px(n))),\(svgNumber(py(p)))"
            }.joined(separator: " ")
            s += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\"/>\n"
            s += "<line x1=\"\(svgNumber(ax.px(b.n50)))\" y1=\"\(svgNumber(y0))\" x2=\"\(svgNumber(ax.px(b.n50)))\" y2=\"\(svgNumber(y1))\" stroke=\"#1f77b4\" stroke-dasharray=\"4 3\"/>\n"
            s += "<text x=\"\(svgNumber(ax.px(b.n50) + 4))\" y=\"\(svgNumber(y0 + 12))\" fill=\"#1f77b4\">n50 \(formatCount(b.n50)) (90%: \(formatCount(b.low))–\(formatCount(b.high)))</text>\n"
        }
        for t in trials {
            let x = ax.px(Double(t.n))
            // Fitted trials tick down from 1, the others up from 0; inconclusive ones (out of budget, a saddle) longer.
            let long = t.result == .budgetExhausted || t.result == .saddle
            let (a, z) = t.fitted ? (py(1) + 1, py(1) + 9) : (py(0) - (long ? 15 : 9), py(0) - 1)
            s += "<line x1=\"\(svgNumber(x))\" y1=\"\(svgNumber(a))\" x2=\"\(svgNumber(x))\" y2=\"\(svgNumber(z))\" stroke=\"\(tickColour(t.result))\"><title>seed \(t.seed), n \(t.n), \(t.result.rawValue)</title></line>\n"
        }
        let kinds = Set(trials.map(\.result))
        var lx = x0
        for result in [FitOutcome.Result.fitted, .convergedUnfit, .diverged, .budgetExhausted, .saddle] where kinds.contains(result) {
            s += "<line x1=\"\(svgNumber(lx))\" y1=\"\(svgNumber(y1 + 38))\" x2=\"\(svgNumber(lx))\" y2=\"\(svgNumber(y1 + 48))\" stroke=\"\(tickColour(result))\" stroke-width=\"2\"/>"
                + "<text x=\"\(svgNumber(lx + 5))\" y=\"\(svgNumber(y1 + 47))\">\(result.rawValue)</text>\n"
            lx += 20 + Double(result.rawValue.count) * 6.2
        }
        return s
    }

    /// A trial's tick colour by how it ended: fitted green, a failure red, out of budget orange, a saddle purple.
    static func tickColour(_ result: FitOutcome.Result) -> String {
        switch result {
        case .fitted: return "#2ca02c"
        case .convergedUnfit, .diverged: return "#d62728"
        case .budgetExhausted: return "#ff7f0e"
        case .saddle: return "#9467bd"
        }
    }

    /// One configuration's panels side by side: p(fit) against n with its trials, the EMC against budget, and the EMC
    /// against the fit threshold (what `emc report --html` shows for a configuration).
    public static func detailSVG(_ r: ReportRow, trials: [TrialRecord]) -> String {
        let width = 1000.0, height = 290.0, y0 = 20.0, y1 = 220.0
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" font-family=\"sans-serif\" font-size=\"11\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += pFitPanel(r, trials: trials, x0: 60, x1: 470, y0: y0, y1: y1)
        s += curvePanel(r.budgetCurve, xLabel: "budget (epochs)", evenly: false, label: { "\(Int($0))" }, x0: 540, x1: 760, y0: y0, y1: y1)
        var thresholds = r.thresholdEMCs
        if let b = r.boundary, !thresholds.isEmpty {
            thresholds.append(DerivedEMC(at: r.fitThreshold ?? 1, boundary: b, bound: nil, fitted: 0, trials: b.trials))
        }
        s += curvePanel(thresholds, xLabel: "fit threshold", evenly: true, label: { String(format: "%g%%", $0 * 100) }, x0: 820, x1: 990, y0: y0, y1: y1)
        return s + "</svg>\n"
    }

    static func budgetPanel(_ r: ReportRow, x0: Double, x1: Double, y0: Double, y1: Double) -> String {
        curvePanel(r.budgetCurve, xLabel: "budget (epochs)", evenly: false, label: { "\(Int($0))" }, x0: x0, x1: x1, y0: y0, y1: y1)
    }

    /// EMC (n50 with its interval; a bound as a triangle) at each point of a derived curve: x linear in `at`, or the
    /// points evenly spaced.
    static func curvePanel(_ curve: [DerivedEMC], xLabel: String, evenly: Bool, label: (Double) -> String,
                           x0: Double, x1: Double, y0: Double, y1: Double) -> String {
        let values = curve.flatMap { d -> [Double] in
            if let b = d.boundary { return [b.low, b.n50, b.high] }
            return d.bound.flatMap { Double($0.filter { $0.isNumber }) }.map { [$0] } ?? []
        }
        guard !curve.isEmpty, !values.isEmpty else { return "" }
        let ay = LogAxis(values, from: y1, to: y0)
        let budgets = evenly ? curve.indices.map(Double.init) : curve.map(\.at)
        let bx0 = budgets.min()!, bx1 = max(budgets.max()!, bx0 + 1)
        func px(_ v: Double) -> Double { x0 + 20 + (v - bx0) / (bx1 - bx0) * (x1 - x0 - 40) }
        var s = frame(x0: x0, x1: x1, y0: y0, y1: y1, xLabel: xLabel, yLabel: "EMC")
        for t in ay.ticks { s += "<text x=\"\(svgNumber(x0 - 5))\" y=\"\(svgNumber(ay.px(t) + 4))\" text-anchor=\"end\">\(tickLabel(t))</text>\n" }
        var previous: (Double, Double)?
        for (d, position) in zip(curve, budgets) {
            let x = px(position), name = svgEscape(label(d.at))
            s += "<text x=\"\(svgNumber(x))\" y=\"\(svgNumber(y1 + 14))\" text-anchor=\"middle\">\(name)</text>\n"
            if let b = d.boundary {
                let y = ay.px(b.n50)
                s += "<line x1=\"\(svgNumber(x))\" y1=\"\(svgNumber(ay.px(b.low)))\" x2=\"\(svgNumber(x))\" y2=\"\(svgNumber(ay.px(b.high)))\" stroke=\"#1f77b4\"/>\n"
                s += "<circle cx=\"\(svgNumber(x))\" cy=\"\(svgNumber(y))\" r=\"3.5\" fill=\"#1f77b4\"><title>\(svgEscape(xLabel)) \(name): \(svgEscape(d.text))</title></circle>\n"
                if let (px0, py0) = previous { s += "<line x1=\"\(svgNumber(px0))\" y1=\"\(svgNumber(py0))\" x2=\"\(svgNumber(x))\" y2=\"\(svgNumber(y))\" stroke=\"#1f77b4\"/>\n" }
                previous = (x, y)
            } else if let bound = d.bound, let v = Double(bound.filter { $0.isNumber }) {
                let y = ay.px(v), up = bound.hasPrefix("≥")
                s += "<path d=\"M\(svgNumber(x)),\(svgNumber(y + (up ? -6 : 6))) L\(svgNumber(x + 5)),\(svgNumber(y + (up ? 4 : -4))) L\(svgNumber(x - 5)),\(svgNumber(y + (up ? 4 : -4))) Z\" fill=\"white\" stroke=\"#1f77b4\"><title>\(svgEscape(xLabel)) \(name): \(svgEscape(bound))</title></path>\n"
            }
        }
        return s
    }
}
