import EMCCore
import EMCSearch
import EMCTrainer
import Foundation

/// `emc bench threads --sums`: batch normalisation's backward sums (Σ dy and Σ dy·x̂ of each channel) on one thread and
/// on two, the layer's real pass at each of its two arithmetics: each channel's sums over the whole batch in row order,
/// which two threads can only split by channels (each thread sums its channels over every row: resnet's and
/// efficientnet's arithmetic revision 1), and by micro-batches of 16 samples added in a fixed tree, which two threads
/// split by samples (each reads one contiguous half: revision 2, `MicroBatchSums`). The shapes are four of
/// EfficientNet-B0's batch norms at batch 128 on 32×32 inputs, the largest among them. Before each timed pass dy is
/// written by both threads, half each by rows (as the layer after it leaves it), and x is either just written the same
/// way ("in cache") or evicted by a 64 MiB write on the caller's thread ("from memory": in training, x was written in the
/// forward pass, many layers before; the write clears the caches up to an L3 of 64 MiB, the other core's L2 less surely).
public enum ChannelSumsBenchmark {
    public struct Row: Encodable, Sendable {
        var shape: String
        var rows: Int
        var channels: Int
        var input: String
        /// Revision 1 (whole batch, in row order): one thread, and two split by channels.
        var wholeMilliseconds: Double
        var byChannelsMilliseconds: Double
        /// Revision 2 (micro-batches of `microBatch` samples): one thread, and two split by samples.
        var microBatchesOneThreadMilliseconds: Double
        var microBatchesMilliseconds: Double
        var coreRoundTripNanoseconds: [Double]
    }

    /// (H, W, C) of the batch norms.
    static let shapes = [(16, 16, 96), (16, 16, 32), (8, 8, 144), (4, 4, 240)]
    static let batch = 128
    static let microBatch = ModelSpec.microBatch
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
            let m = batch * h * w, n = m * c, shape = FeatureShape(height: h, width: w, channels: c)
            let layers = [BatchNorm(input: shape), BatchNorm(input: shape, microBatch: microBatch)]
            let parameters = UnsafeMutablePointer<Float>.allocate(capacity: 2 * c), gradients = UnsafeMutablePointer<Float>.allocate(capacity: 2 * c)
            let x = UnsafeMutablePointer<Float>.allocate(capacity: n), dy = UnsafeMutablePointer<Float>.allocate(capacity: n)
            let y = UnsafeMutablePointer<Float>.allocate(capacity: n)
            defer { [parameters, gradients, x, dy, y].forEach { $0.deallocate() } }
            parameters.initialize(repeating: 1, count: c)
            (parameters + c).initialize(repeating: 0, count: c)
            gradients.initialize(repeating: 0, count: 2 * c)
            for i in 0..<n { x[i] = Float((i &* 2_654_435_761) % 1000) / 1000 - 0.5; dy[i] = Float((i &* 40_503) % 1000) / 1000 - 0.5 }
            for layer in layers {
                layer.bind(parameters: parameters, gradients: gradients, maxBatch: batch)
                layer.forward(x, y, batch: batch)
            }
            // Part `part`'s half of the rows, as a pass split by samples gives it.
            func half(_ part: Int) -> Range<Int> { m * part / 2..<m * (part + 1) / 2 }
            // Each thread writes its half of `p`'s rows (what such a pass leaves).
            func writeByRows(_ p: UnsafeMutablePointer<Float>, scale: Float) {
                team.run(parts: 2) { part in
                    for i in half(part).lowerBound * c..<half(part).upperBound * c { p[i] = p[i] * scale + 0.001 }
                }
            }
            for input in ["in cache", "from memory"] {
                // Seconds of the four variants (each arithmetic on one thread and on two), alternating within each repetition.
                var times: [[Double]] = [[], [], [], []], roundTrips: [Double] = []
                for _ in 0..<repeats {
                    roundTrips.append(1e9 * team.coreRoundTripSeconds())
                    for variant in 0..<4 {
                        if input == "from memory" { memset(eviction, Int32(variant), evictionBytes) } else { writeByRows(x, scale: 1) }
                        writeByRows(dy, scale: 0.5)
                        let layer = layers[variant / 2]
                        let start = Clock.now()
                        if variant % 2 == 0 {
                            layer.backward(input: x, output: y, gradOutput: dy, gradInput: nil, batch: batch)
                        } else {
                            team.scoped { layer.backward(input: x, output: y, gradOutput: dy, gradInput: nil, batch: batch) }
                        }
                        times[variant].append(Clock.now() - start)
                    }
                }
                rows.append(Row(shape: "\(h)×\(w)×\(c)", rows: m, channels: c, input: input, wholeMilliseconds: 1000 * median(times[0]),
                                byChannelsMilliseconds: 1000 * median(times[1]), microBatchesOneThreadMilliseconds: 1000 * median(times[2]),
                                microBatchesMilliseconds: 1000 * median(times[3]), coreRoundTripNanoseconds: roundTrips))
            }
            progress("  \(h)×\(w)×\(c): measured")
        }
        return rows
    }
}
