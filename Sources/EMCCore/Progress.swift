#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
import Foundation

/// Progress for anything that takes more than a few seconds.
///
/// On a terminal (stderr is a tty) it redraws one line: a bar, the count, the rate and an ETA.
/// Otherwise (CI, a log file) it prints a plain line at most every `plainInterval` seconds and
/// one at the end. With `quiet` it prints nothing. Thread-safe: workers may call `advance`.
public final class ProgressReporter: @unchecked Sendable {
    public enum Style: Sendable { case bar, plain, quiet }

    public let label: String
    public let total: Int?
    public let unit: String
    public let style: Style
    private let lock = NSLock()
    private let start = Clock.now()
    private var completed = 0
    private var lastDraw = -1.0
    private var finished = false
    private let output: @Sendable (String) -> Void

    /// - Parameters:
    ///   - total: the expected count, or nil when unknown (then only count and rate are shown).
    ///   - quiet: print nothing.
    ///   - output: where text goes (stderr by default; tests capture it).
    public init(_ label: String, total: Int?, unit: String = "items", quiet: Bool = false,
                style: Style? = nil, output: (@Sendable (String) -> Void)? = nil) {
        self.label = label
        self.total = total
        self.unit = unit
        self.style = quiet ? .quiet : (style ?? (isatty(2) != 0 ? .bar : .plain))
        self.output = output ?? { text in StandardStreams.error(text) }
    }

    /// Seconds between plain lines.
    public var plainInterval = 10.0

    public func advance(by count: Int = 1) {
        lock.lock(); defer { lock.unlock() }
        completed += count
        drawIfDue(final: false)
    }

    public func set(completed value: Int) {
        lock.lock(); defer { lock.unlock() }
        completed = value
        drawIfDue(final: false)
    }

    /// Draws the last state and ends the line.
    public func finish() {
        lock.lock(); defer { lock.unlock() }
        guard !finished else { return }
        finished = true
        if style != .quiet && lastDraw >= 0 || style == .bar { drawIfDue(final: true) }
    }

    public var elapsed: Double { Clock.now() - start }

    private func drawIfDue(final: Bool) {
        guard style != .quiet else { return }
        let now = Clock.now() - start
        let interval = style == .bar ? 0.1 : plainInterval
        if !final && lastDraw >= 0 && now - lastDraw < interval { return }
        if !final && style == .plain && now < plainInterval && lastDraw < 0 { return }  // quick jobs stay silent
        lastDraw = now
        let line = ProgressReporter.render(label: label, completed: completed, total: total, unit: unit,
                                   elapsed: now, bar: style == .bar)
        output(style == .bar ? "\r\u{1B}[K" + line + (final ? "\n" : "") : line + "\n")
    }

    /// The text of one progress line (public so tests can check it).
    public static func render(label: String, completed: Int, total: Int?, unit: String,
                              elapsed: Double, bar: Bool) -> String {
        let rate = elapsed > 0 ? Double(completed) / elapsed : 0
        var parts = [label]
        if let total, total > 0 {
            let fraction = min(1, Double(completed) / Double(total))
            if bar {
                let width = 24
                let filled = Int(fraction * Double(width))
                parts.append("[" + String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled) + "]")
            }
            parts.append("\(completed)/\(total) \(unit) (\(String(format: "%.0f", fraction * 100))%)")
            if completed < total && rate > 0 {
                parts.append("ETA " + formatDuration(Double(total - completed) / rate))
            }
        } else {
            parts.append("\(completed) \(unit)")
        }
        parts.append(formatRate(rate) + " \(unit)/s")
        parts.append(formatDuration(elapsed))
        return parts.joined(separator: "  ")
    }
}

/// "1.2k", "3.4M": counts and rates short enough for a progress line.
public func formatRate(_ value: Double) -> String {
    switch value {
    case ..<1_000: return String(format: "%.0f", value)
    case ..<1_000_000: return String(format: "%.1fk", value / 1_000)
    case ..<1_000_000_000: return String(format: "%.1fM", value / 1_000_000)
    default: return String(format: "%.1fG", value / 1_000_000_000)
    }
}

/// "850ms", "12.3s", "4m05s", "1h02m".
public func formatDuration(_ seconds: Double) -> String {
    if seconds < 1 { return String(format: "%.0fms", seconds * 1000) }
    if seconds < 60 { return String(format: "%.1fs", seconds) }
    let s = Int(seconds.rounded())
    if s < 3600 { return String(format: "%dm%02ds", s / 60, s % 60) }
    return String(format: "%dh%02dm", s / 3600, (s % 3600) / 60)
}

/// "1.5 MiB": sizes for people.
public func formatBytes(_ bytes: Int) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(bytes)
    var unit = 0
    while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
    return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit])
}

/// A monotonic clock in seconds.
public enum Clock {
    public static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }
}

/// A size with thousands separators ("12,800"); "-" when not finite; beyond 10¹⁵ in scientific notation (never a trap).
public func formatCount(_ v: Double) -> String {
    guard v.isFinite else { return "-" }
    let rounded = v.rounded()
    guard abs(rounded) < 1e15 else { return String(format: "%.3g", rounded) }
    let negative = rounded < 0
    var digits = String(Int(abs(rounded)))
    var out = ""
    while digits.count > 3 { out = "," + digits.suffix(3) + out; digits = String(digits.dropLast(3)) }
    return (negative ? "-" : "") + digits + out
}
