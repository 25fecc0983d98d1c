import CTrainerKernels
import EMCCore
import EMCSearch
import EMCTrainer
import Foundation

/// `emc bench threads --sums`: batch normalisation's backward sums (Σ dy and Σ dy·x̂ of each channel, each in row
/// order) on one thread and on two, as the layer splits them (by channels: each thread sums its channels over every
/// row), beside a split by rows into sums of each thread's own (each thread reads one contiguous half; the sums are then
/// in another order, so other bits: a bound on what a split that changes the sums could give, not a path emc takes).
/// The shapes are four of EfficientNet-B0's batch norms at batch 128 on 32×32 inputs, the largest among them. Before each timed pass dy is
/// written by both threads, half each by rows (as the layer after it leaves it), and x is either just written the same
/// way ("in cache") or evicted by a 64 MiB write on the caller's thread ("from memory": in training, x was written in the
/// forward pass, many layers before; the write clears the caches up to an L3 of 64 MiB, the other core's L2 less
/// surely). The split by rows is timed without adding the two threads' sums together (2·C values).
public enum ChannelSumsBenchmark {
    public struct Row: Encodable, Sendable {
        var shape: String
        var rows: Int
        var channels: Int
        var input: String
        var wholeMilliseconds: Double
        var byChannelsMilliseconds: Double
        var byRowsMilliseconds: Double
        var coreRoundTripNanoseconds: [Double]
    }

    /// (H, W, C) of the batch norms.
    static let shapes = [(16, 16, 96), (16, 16, 32), (8, 8, 144), (4, 4, 240)]
    static let batch = 128
    static let evictionBytes = 64 << 20

    public static func run(repeats: Int, progress: (String) -> Void = { _ in }) throws -> [Row] {
        let team = ThreadTeam(threads: 2)
        guard team.count == 2 else {
            throw EMCError(.unsupported, "emc bench threads --sums needs a second thread, and the system would not start one")
        }
        let eviction = UnsafeMutableRawPointer.allocate(byteCount: evictionBytes, alignment: 64)
        defer { eviction.deallocate() }
        var rows: [Row] = []
        for (h, w, c) in shapes {
            let m = batch * h * w, n = m * c
            let layer = BatchNorm(input: FeatureShape(height: h, width: w, channels: c))
            let parameters = UnsafeMutablePointer<Float>.allocate(capacity: 2 * c), gradients = UnsafeMutablePointer<Float>.allocate(capacity: 2 * c)
            let x = UnsafeMutablePointer<Float>.allocate(capacity: n), dy = UnsafeMutablePointer<Float>.allocate(capacity: n)
            let y = UnsafeMutablePointer<Float>.allocate(capacity: n)
            let perChannel = UnsafeMutablePointer<Float>.allocate(capacity: 4 * c), privateSums = UnsafeMutablePointer<Double>.allocate(capacity: 4 * c)
            defer { [parameters, gradients, x, dy, y, perChannel].forEach { $0.deallocate() }; privateSums.deallocate() }
            parameters.initialize(repeating: 1, count: c)
            (parameters + c).initialize(repeating: 0, count: c)
            gradients.initialize(repeating: 0, count: 2 * c)
            // mean 0, 1/σ 1, γ 1, β 0 for the split by rows (the same operations as the layer's, other values).
            perChannel.initialize(repeating: 0, count: c)
            (perChannel + c).initialize(repeating: 1, count: 3 * c)
            (perChannel + 3 * c).initialize(repeating: 0, count: c)
            for i in 0..<n { x[i] = Float((i &* 2_654_435_761) % 1000) / 1000 - 0.5; dy[i] = Float((i &* 40_503) % 1000) / 1000 - 0.5 }
            layer.bind(parameters: parameters, gradients: gradients, maxBatch: batch)
            layer.forward(x, y, batch: batch)
            // Part `part`'s half of the rows, as a pass split by samples gives it.
            func half(_ part: Int) -> Range<Int> { m * part / 2..<m * (part + 1) / 2 }
            // Each thread writes its half of `p`'s rows (what such a pass leaves).
            func writeByRows(_ p: UnsafeMutablePointer<Float>, scale: Float) {
                team.run(parts: 2) { part in
                    for i in half(part).lowerBound * c..<half(part).upperBound * c { p[i] = p[i] * scale + 0.001 }
                }
            }
            for input in ["in cache", "from memory"] {
                // Seconds of the three variants (whole, by channels, by rows), alternating within each repetition.
                var times: [[Double]] = [[], [], []], roundTrips: [Double] = []
                for _ in 0..<repeats {
                    roundTrips.append(1e9 * team.coreRoundTripSeconds())
                    for variant in 0..<3 {
                        if input == "from memory" { memset(eviction, Int32(variant), evictionBytes) } else { writeByRows(x, scale: 1) }
                        writeByRows(dy, scale: 0.5)
                        let start = Clock.now()
                        switch variant {
                        case 0: layer.backward(input: x, output: y, gradOutput: dy, gradInput: nil, batch: batch)
                        case 1: team.scoped { layer.backward(input: x, output: y, gradOutput: dy, gradInput: nil, batch: batch) }
                        default:
                            privateSums.initialize(repeating: 0, count: 4 * c)
                            team.run(parts: 2) { part in
                                let rows = half(part), sums = privateSums + 2 * c * part
                                emc_channel_gradient_sums_range(sums, sums + c, dy + rows.lowerBound * c, x + rows.lowerBound * c, perChannel,
                                                                perChannel + c, perChannel + 2 * c, perChannel + 3 * c, rows.count, c, 0, c, 0)
                            }
                        }
                        times[variant].append(Clock.now() - start)
                    }
                }
                rows.append(Row(shape: "\(h)×\(w)×\(c)", rows: m, channels: c, input: input, wholeMilliseconds: 1000 * median(times[0]),
                                byChannelsMilliseconds: 1000 * median(times[1]), byRowsMilliseconds: 1000 * median(times[2]),
                                coreRoundTripNanoseconds: roundTrips))
            }
            progress("  \(h)×\(w)×\(c): measured")
        }
        return rows
    }
}
