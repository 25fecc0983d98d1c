import Foundation

/// An SVG plot of EMC against parameter count, log-log, one series per data condition, with the
/// EMC = parameters line drawn: the paper's main picture.
public enum EMCPlot {
    public static func svg(_ report: Report, title: String = "EMC against parameter count") -> String {
        let points = report.rows.filter { $0.emcMedian > 0 && $0.parameters > 0 }
        let width = 720.0, height = 480.0, left = 80.0, right = 220.0, top = 40.0, bottom = 60.0
        guard !points.isEmpty else {
            return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"120\"><text x=\"20\" y=\"60\" font-family=\"sans-serif\">No fitted configurations to plot yet.</text></svg>\n"
        }
        let xs = points.map { log10(Double($0.parameters)) }, ys = points.map { log10($0.emcMedian) }
        let lo = floor(min(xs.min()!, ys.min()!) - 0.1), hi = ceil(max(xs.max()!, ys.max()!) + 0.1)
        func px(_ v: Double) -> Double { left + (v - lo) / (hi - lo) * (width - left - right) }
        func py(_ v: Double) -> Double { height - bottom - (v - lo) / (hi - lo) * (height - top - bottom) }
        let colours = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<text x=\"\(Int(width / 2 - 60))\" y=\"22\" font-size=\"15\" text-anchor=\"middle\">\(escape(title))</text>\n"
        // Axes, decade ticks and grid.
        var decade = lo
        while decade <= hi + 1e-9 {
            let x = px(decade), y = py(decade)
            s += "<line x1=\"\(f(x))\" y1=\"\(f(py(lo)))\" x2=\"\(f(x))\" y2=\"\(f(py(hi)))\" stroke=\"#eee\"/>\n"
            s += "<line x1=\"\(f(px(lo)))\" y1=\"\(f(y))\" x2=\"\(f(px(hi)))\" y2=\"\(f(y))\" stroke=\"#eee\"/>\n"
            s += "<text x=\"\(f(x))\" y=\"\(f(py(lo) + 18))\" text-anchor=\"middle\">10<tspan dy=\"-6\" font-size=\"9\">\(Int(decade))</tspan></text>\n"
            s += "<text x=\"\(f(px(lo) - 8))\" y=\"\(f(y + 4))\" text-anchor=\"end\">10<tspan dy=\"-6\" font-size=\"9\">\(Int(decade))</tspan></text>\n"
            decade += 1
        }
        s += "<rect x=\"\(f(px(lo)))\" y=\"\(f(py(hi)))\" width=\"\(f(px(hi) - px(lo)))\" height=\"\(f(py(lo) - py(hi)))\" fill=\"none\" stroke=\"#333\"/>\n"
        s += "<text x=\"\(f((px(lo) + px(hi)) / 2))\" y=\"\(f(height - 15))\" text-anchor=\"middle\">parameters</text>\n"
        s += "<text x=\"18\" y=\"\(f((py(lo) + py(hi)) / 2))\" text-anchor=\"middle\" transform=\"rotate(-90 18 \(f((py(lo) + py(hi)) / 2)))\">EMC (samples fitted)</text>\n"
        // EMC = parameters.
        s += "<line x1=\"\(f(px(lo)))\" y1=\"\(f(py(lo)))\" x2=\"\(f(px(hi)))\" y2=\"\(f(py(hi)))\" stroke=\"#888\" stroke-dasharray=\"6 4\"/>\n"
        s += "<text x=\"\(f(px(hi) - 4))\" y=\"\(f(py(hi) + 16))\" text-anchor=\"end\" fill=\"#666\">EMC = parameters</text>\n"
        let conditions = Array(Set(points.map(\.condition))).sorted()
        for (i, condition) in conditions.enumerated() {
            let colour = colours[i % colours.count]
            let series = points.filter { $0.condition == condition }.sorted { $0.parameters < $1.parameters }
            let path = series.map { "\(f(px(log10(Double($0.parameters))))),\(f(py(log10($0.emcMedian))))" }.joined(separator: " ")
            if series.count > 1 { s += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(colour)\" stroke-width=\"1.5\"/>\n" }
            for r in series {
                let x = px(log10(Double(r.parameters))), y = py(log10(r.emcMedian))
                if r.emcMax > r.emcMin {
                    s += "<line x1=\"\(f(x))\" y1=\"\(f(py(log10(Double(max(1, r.emcMin))))))\" x2=\"\(f(x))\" y2=\"\(f(py(log10(Double(r.emcMax)))))\" stroke=\"\(colour)\"/>\n"
                }
                s += "<circle cx=\"\(f(x))\" cy=\"\(f(y))\" r=\"4\" fill=\"\(colour)\"><title>\(escape(r.model)) \(escape(r.optimizer)): EMC \(Int(r.emcMedian)), \(r.parameters) params</title></circle>\n"
            }
            let ly = top + 20 + Double(i) * 20
            s += "<circle cx=\"\(f(width - right + 20))\" cy=\"\(f(ly - 4))\" r=\"4\" fill=\"\(colour)\"/>\n"
            s += "<text x=\"\(f(width - right + 30))\" y=\"\(f(ly))\">\(escape(String(condition.prefix(28))))</text>\n"
        }
        s += "</svg>\n"
        return s
    }

    static func f(_ v: Double) -> String { String(format: "%.1f", v) }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
