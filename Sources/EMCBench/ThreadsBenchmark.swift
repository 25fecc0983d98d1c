import EMCCore
import EMCTrainer
import EMCSearch
import Foundation

/// `emc bench threads`: one trial's training step on 1, 2, … threads (`--threads`), the models of `emc bench train`, with
/// PyTorch at the same thread counts beside it, a profile by layer at 1 and 2 threads, and the scaling model built
/// from that profile (docs/benchmarks.md, "One trial on every core").
public enum ThreadsBenchmark {
    public struct Row: Encodable, Sendable {
        var model: String
        var input: String
        var parameters: Int
        var threads: [Int]
        var samplesPerSecond: [Double]
        /// Each repetition's samples/s at each thread count ([thread count][repetition]), and the team's core round trip
        /// (ns, at the largest thread count) measured just before the repetition.
        var repetitionSamplesPerSecond: [[Double]]
        var coreRoundTripNanoseconds: [Double]
        var torchSamplesPerSecond: [Double?]
        /// Jobs handed to the team per step (at the largest thread count measured).
        var handOversPerStep: Double
        /// The scaling model's samples/s at `predictedThreads`, and the thread count past which a doubling gains < 10%.
        var predictedThreads: [Int]
        var predictedSamplesPerSecond: [Double]
        var stopsScalingAt: Int
        var parts: [Part]
    }

    /// One top-level layer (or the rest of the step: loss, optimizer, zeroing, loading) at 1 and 2 threads, with the
    /// most parts its passes split into at batch 128.
    public struct Part: Encodable, Sendable {
        var name: String
        var kind: String
        var units: Int
        var oneThreadMilliseconds: Double
        var twoThreadMilliseconds: Double
    }

    /// The thread counts the scaling model predicts.
    static let predicted = [2, 8, 32, 128]

    /// The round trip under which the team's cores count as near, sharing a cache: about 40–80 ns between cores of one
    /// L3 domain on current x86 servers; cores across dies or sockets take two to several times that (320–400 ns on the
    /// AMD EPYC VM of docs/benchmarks.md, whose host moves its two cores between the two placements).
    public static let nearRoundTripNanoseconds = 150.0

    /// The round trip under which the team's two threads share one core (its two hardware threads, sharing its L1: about
    /// 27 ns on that VM, whose host places its two virtual CPUs so now and then). Such repetitions measure two hardware
    /// threads, not two cores, and do not count as near.
    public static let sharedCoreRoundTripNanoseconds = 40.0

    /// Whether a repetition whose core round trip took `nanoseconds` ran on two cores sharing a cache.
    public static func near(_ nanoseconds: Double) -> Bool {
        nanoseconds >= sharedCoreRoundTripNanoseconds && nanoseconds < nearRoundTripNanoseconds
    }

    public static func run(threads: [Int], batch: Int, seconds: Double, repeats: Int, only: String?, torch: [Int: [String: Double]],
                           progress: (String) -> Void = { _ in }) throws -> (rows: [Row], handOver: Double) {
        BLAS.useOneThread()
        let handOver = ThreadTeam(threads: 2).handOverSeconds()
        var rows: [Row] = []
        let selected = TrainBenchmark.cases.filter { only.map($0.0.contains) ?? true }
        for (index, (specText, shape)) in selected.enumerated() {
            var trainers: [(Model, Trainer, Optimizer)] = []
            for t in threads { trainers.append(try TrainBenchmark.benchTrainer(model: specText, shape: shape, batch: batch, optimizer: "sgd:lr=0.01,momentum=0.9", threads: t)) }
            for (_, trainer, optimizer) in trainers { try trainer.runSteps(5, optimizer: optimizer, lr: 0.01) }
            let probe = Clock.now()
            try trainers[0].1.runSteps(5, optimizer: trainers[0].2, lr: 0.01)
            let steps = max(5, Int(seconds / max(1e-6, (Clock.now() - probe) / 5)))
            // The thread counts alternate within each repetition, so that a change in the machine's load hits them alike.
            var times = Array(repeating: [Double](), count: threads.count), roundTrips: [Double] = []
            for _ in 0..<repeats {
                roundTrips.append(1e9 * trainers.last!.0.team.coreRoundTripSeconds())
                for (i, (_, trainer, optimizer)) in trainers.enumerated() {
                    let start = Clock.now()
                    try trainer.runSteps(steps, optimizer: optimizer, lr: 0.01)
                    times[i].append(Clock.now() - start)
                }
            }
            let rates = times.map { Double(steps * batch) / median($0) }
            let last = trainers.last!.0
            let jobsBefore = last.team.splitJobs
            try trainers.last!.1.runSteps(steps, optimizer: trainers.last!.2, lr: 0.01)
            let handOvers = Double(last.team.splitJobs - jobsBefore) / Double(steps)
            // The profile at 1 and 2 threads (models of their own, so that the timed runs above stay unprofiled).
            let one = try profile(specText, shape: shape, batch: batch, threads: 1, steps: steps, repeats: repeats)
            let two = try profile(specText, shape: shape, batch: batch, threads: 2, steps: steps, repeats: repeats)
            let model = trainers[0].0
            var parts = model.layers.enumerated().map { i, layer in
                Part(name: layer.name, kind: kind(layer), units: units(layer, batch: batch), oneThreadMilliseconds: 1000 * one.layers[i],
                     twoThreadMilliseconds: 1000 * two.layers[i])
            }
            parts.append(Part(name: "rest", kind: "loss, optimizer, zeroing, loading", units: max(1, model.parameterCount / (1 << 14)),
                              oneThreadMilliseconds: 1000 * one.rest, twoThreadMilliseconds: 1000 * two.rest))
            let predictions = predicted.map { t in Double(batch) / predictedStep(parts, threads: t, handOvers: handOvers) }
            var stops = 1
            while stops < 4096 {
                let now = predictedStep(parts, threads: stops, handOvers: handOvers)
                let doubled = predictedStep(parts, threads: 2 * stops, handOvers: handOvers)
                if now / doubled < 1.1 { break }
                stops *= 2
            }
            let key = "\(specText)@\(shape.height)x\(shape.width)x\(shape.channels)"
            rows.append(Row(model: specText, input: "\(shape)", parameters: model.parameterCount, threads: threads, samplesPerSecond: rates,
                            repetitionSamplesPerSecond: times.map { $0.map { Double(steps * batch) / $0 } }, coreRoundTripNanoseconds: roundTrips,
                            torchSamplesPerSecond: threads.map { torch[$0]?[key] }, handOversPerStep: handOvers,
                            predictedThreads: predicted, predictedSamplesPerSecond: predictions, stopsScalingAt: stops, parts: parts))
            progress("  [\(index + 1)/\(selected.count)] \(specText) \(shape): " + zip(threads, rates).map { "\($0) thread(s) \(Int($1))" }.joined(separator: ", ") + " samples/s")
        }
        return (rows, handOver)
    }

    /// Seconds per step in each top-level layer (forward and backward) and in the rest of the step, median over repetitions.
    static func profile(_ spec: String, shape: FeatureShape, batch: Int, threads: Int, steps: Int, repeats: Int) throws
        -> (layers: [Double], rest: Double) {
        let (model, trainer, optimizer) = try TrainBenchmark.benchTrainer(model: spec, shape: shape, batch: batch, optimizer: "sgd:lr=0.01,momentum=0.9",
                                                                          threads: threads)
        try trainer.runSteps(3, optimizer: optimizer, lr: 0.01)
        var layerRuns = Array(repeating: [Double](), count: model.layers.count), restRuns: [Double] = []
        for _ in 0..<repeats {
            let profile = LayerProfile(layers: model.layers.count)
            model.profile = profile
            let start = Clock.now()
            try trainer.runSteps(steps, optimizer: optimizer, lr: 0.01)
            let total = (Clock.now() - start) / Double(steps)
            model.profile = nil
            var inLayers = 0.0
            for i in 0..<model.layers.count {
                let t = (profile.forward[i] + profile.backward[i]) / Double(steps)
                layerRuns[i].append(t)
                inLayers += t
            }
            restRuns.append(max(0, total - inLayers))
        }
        return (layerRuns.map(median), median(restRuns))
    }

    /// The scaling model's seconds per step on `threads` threads (docs/benchmarks.md): each part's time at one thread is a
    /// share that did not split (what 2 threads left of it beyond half) and a share that splits over min(T, its units)
    /// threads; every hand-over of a job costs `handOver` (measured at 2 threads, inside the 2-thread profile) plus
    /// `countdown` for each thread beyond 2 (a job's end is counted down on one cache line, one thread after another).
    static func predictedStep(_ parts: [Part], threads t: Int, handOvers: Double) -> Double {
        var total = 0.0
        for part in parts {
            let one = part.oneThreadMilliseconds / 1000, two = part.twoThreadMilliseconds / 1000
            // t(2) = s + p/2 with s + p = t(1): the splitting share p, within [0, t(1)].
            let p = min(one, max(0, 2 * (one - two)))
            total += (one - p) + p / Double(min(t, max(1, part.units)))
        }
        let extraHandOver = t > 2 ? handOvers * countdown * Double(t - 2) : 0
        return total + extraHandOver
    }

    /// The scaling model's cost per job of each thread beyond 2: one cache-line transfer between cores (~100 ns on a
    /// two-socket server), assumed, not measured (this machine has 2 cores).
    static let countdown = 100e-9

    static func kind(_ layer: Layer) -> String {
        switch layer {
        case is Linear: return "linear"
        case is Conv2D: return "convolution"
        case is BatchNorm: return "batch norm"
        case is LayerNorm: return "layer norm"
        case is SelfAttention: return "attention"
        case is Activation: return "activation"
        case is CompositeLayer: return "block"
        default: return "other"
        }
    }

    /// The most parts a layer's passes split into at `batch` (the smallest over its passes that carry most of its work):
    /// a product's rows in multiples of its shape's row grain or its weight gradient's outputs, a direct convolution's images
    /// and output channels, batch norm's rows and channels (8 at a time; one part for 1, 2, 4 and 8 channels, whose 16-lane sums stay whole), a block's heaviest
    /// layers.
    static func units(_ layer: Layer, batch: Int) -> Int {
        // A product's rows in multiples of the grain found for its shape at two threads (one part when none splits it).
        func rows(_ shape: BLAS.ProductShape) -> Int { BLAS.rowGrain(shape, threads: 2).map { shape.m / $0 } ?? 1 }
        switch layer {
        case let l as Linear:
            let positions = batch * l.positions
            let forward = rows(BLAS.ProductShape(transA: .none, transB: .transpose, m: positions, n: l.outFeatures, k: l.inFeatures,
                                                 beta: l.hasBias ? 1 : 0))
            let gradient = BLAS.prefersTallKernel(m: l.outFeatures, n: l.inFeatures, k: positions)
                ? (l.inFeatures >= 16 ? l.inFeatures / 8 : l.outFeatures)
                : rows(BLAS.ProductShape(transA: .transpose, transB: .none, m: l.outFeatures, n: l.inFeatures, k: positions, beta: 1))
            return max(1, min(forward, gradient))
        case let c as Conv2D:
            if c.usesDirect { return max(1, min(batch, c.directGradientSplitsColumns ? c.kernel * c.inChannels : c.outChannels)) }
            let pixels = batch * c.outputShape.height * c.outputShape.width
            let patch = c.kernel * c.kernel * c.inChannels
            let forward = rows(BLAS.ProductShape(transA: .none, transB: .transpose, m: pixels, n: c.outChannels, k: patch, beta: 1))
            let gradient = BLAS.prefersTallKernel(m: c.outChannels, n: patch, k: pixels)
                ? (patch >= 16 ? patch / 8 : c.outChannels)
                : rows(BLAS.ProductShape(transA: .transpose, transB: .none, m: c.outChannels, n: patch, k: pixels, beta: 1))
            return max(1, min(forward, gradient))
        case let b as BatchNorm:
            let c = b.channels
            return c < 16 && 16 % c == 0 ? 1 : max(1, c / 8)
        case let l as LayerNorm: return max(1, min(l.channels, batch))
        case is SelfAttention: return batch
        case let block as CompositeLayer:
            let heavy = block.sublayers.filter { $0.parameterCount > 0 }
            return heavy.map { units($0, batch: batch) }.min() ?? batch
        default: return max(1, batch * layer.outputShape.count / (1 << 14))
        }
    }
}
