import CTrainerKernels
import EMCCore

/// The threads one model trains on (`--threads T`): the calling thread and T − 1 workers (`emc_pool_create`).
///
/// Parallel work in emc's trainer never splits a sum. Each pass divides what it computes, not what it adds up: the
/// samples of a forward pass or an input gradient, the rows of a product's output (in multiples of the grain
/// `BLAS.rowGrain` finds for the product's shape, where OpenBLAS computes every element the same way whichever call it
/// falls in), the output rows or columns of a weight gradient (each element's chain over the batch stays whole, in
/// order), the channels of batch normalisation's sums, the parameters of an optimizer step. Every value is therefore computed by the same
/// operations in the same order at any thread count, and a trial's records are the same bytes at `--threads 1, 2, 3…`
/// (the tests train every family at 1, 2 and 3 threads and compare the parameters bit for bit).
public final class ThreadTeam: @unchecked Sendable {
    /// Threads in the team, the caller included (1 when workers could not start: the work then runs on the caller).
    public let count: Int
    let pool: OpaquePointer?

    public init(threads: Int) {
        pool = threads > 1 ? emc_pool_create(Int32(threads)) : nil
        count = Int(emc_pool_threads(pool))
    }

    deinit { emc_pool_destroy(pool) }

    /// Jobs this team has split over more than one thread so far (0 with one thread).
    public var splitJobs: Int { Int(emc_pool_jobs(pool)) }

    /// Seconds one hand-over of a job to the team takes on average, measured over `jobs` empty jobs (0 with one thread):
    /// the cost of splitting a pass, for `emc bench threads`.
    public func handOverSeconds(jobs: Int = 20_000) -> Double {
        guard count > 1 else { return 0 }
        let start = Clock.now()
        scoped { for _ in 0..<jobs { Parallel.parts(count) { _ in } } }
        return (Clock.now() - start) / Double(jobs)
    }

    /// Seconds a cache line takes from the caller's core to a worker's and back (`emc_pool_round_trip`, the median over
    /// batches of 100 of `rounds`; 0 with one thread): how far apart the team's cores are. A host may move a machine's cores closer or
    /// further apart while it runs, and passes that read what another core wrote slow down with the distance.
    public func coreRoundTripSeconds(rounds: Int = 4_000) -> Double { emc_pool_round_trip(pool, rounds) }

    /// Runs `body(part)` for each part < `parts` on the team's threads at once, part 0 on the caller: for benchmarks that
    /// split a pass by hand. A team runs at most `count` parts at once; with one thread every part runs on the caller in
    /// turn.
    public func run(parts: Int, _ body: (Int) -> Void) {
        precondition(count == 1 || parts <= count, "a team of \(count) threads runs at most \(count) parts at once, not \(parts)")
        scoped { Parallel.parts(parts, body) }
    }

    /// Runs `body` with this team splitting the calling thread's passes (and the previous team restored after).
    public func scoped<R>(_ body: () throws -> R) rethrows -> R {
        let previous = emc_pool_set_current(pool)
        defer { emc_pool_set_current(previous) }
        return try body()
    }
}

/// How a pass splits its work over the calling thread's team (`ThreadTeam.scoped`); with no team, or one thread, the
/// work runs as a single part on the caller, exactly the single-threaded code.
enum Parallel {
    /// The parts work splits into on this thread now: the current team's threads, 1 without one.
    static var threads: Int { Int(emc_pool_threads(emc_pool_current())) }

    /// Calls `body(range, part)` for contiguous ranges covering 0..<count, one per thread of the current team: each
    /// starts at a multiple of `grain` (the last takes the rest), and each holds at least `minimum` items (fewer parts
    /// when there is less work). Parts run at once; part indices are below `threads`.
    static func ranges(_ count: Int, grain: Int = 1, minimum: Int = 1, _ body: (Range<Int>, Int) -> Void) {
        guard count > 0 else { return }
        let pool = emc_pool_current()
        let parts = partCount(count, grain: grain, minimum: minimum, threads: Int(emc_pool_threads(pool)))
        guard parts > 1 else { body(0..<count, 0); return }
        run(pool, parts) { part in body(range(part, of: parts, count: count, grain: grain), part) }
    }

    /// The parts `ranges` splits `count` items into on `threads` threads.
    static func partCount(_ count: Int, grain: Int, minimum: Int, threads: Int) -> Int {
        max(1, min(threads, count / max(1, grain), count / max(1, minimum)))
    }

    /// Part `part`'s range when `ranges` splits `count` items into `parts` parts at multiples of `grain`.
    static func range(_ part: Int, of parts: Int, count: Int, grain: Int) -> Range<Int> {
        let units = count / max(1, grain)
        let start = units * part / parts * grain
        return start..<(part == parts - 1 ? count : units * (part + 1) / parts * grain)
    }

    /// Calls `body(part)` for each part < `parts` on the current team's threads (all on the caller without one).
    static func parts(_ parts: Int, _ body: (Int) -> Void) {
        run(emc_pool_current(), parts, body)
    }

    private static func run(_ pool: OpaquePointer?, _ parts: Int, _ body: (Int) -> Void) {
        withoutActuallyEscaping(body) { body in
            var closure = body
            withUnsafeMutablePointer(to: &closure) { pointer in
                emc_pool_run(pool, Int32(parts), { context, part in
                    context!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(Int(part))
                }, pointer)
            }
        }
    }
}

extension Parallel {
    /// The fewest floats a thread takes in an elementwise pass split over a team, and the fewest multiply-adds in a
    /// product: handing a part to another thread costs microseconds (more when it sleeps: a futex wake), so a part
    /// must be worth tens of microseconds (with 16× less, the small MLPs ran at 0.7× on two threads).
    static let minimumElements = 1 << 16
    static let minimumMultiplyAdds = 1 << 20

    /// p[0..<count] = 0, elements split over the team (by `parts`, a model's `parameterParts`, where given).
    static func zero(_ p: UnsafeMutablePointer<Float>, count: Int, parts: [[Range<Int>]]? = nil) {
        elements(count, parts: parts) { start, n in (p + start).update(repeating: 0, count: n) }
    }

    /// `body(offset, count)` over 0..<n, an elementwise pass (each element computed alone), in ranges of whole 16-float
    /// vectors of at least `minimum` floats; or by `parts` (part i's ranges on one thread: a model's `parameterParts`,
    /// which cover 0..<n) where given for the team's thread count and that flat split would use every thread too.
    static func elements(_ n: Int, minimum: Int = minimumElements, parts: [[Range<Int>]]? = nil, _ body: (Int, Int) -> Void) {
        let threads = self.threads
        if let parts, parts.count == threads, partCount(n, grain: 16, minimum: minimum, threads: threads) == threads {
            self.parts(threads) { part in for range in parts[part] { body(range.lowerBound, range.count) } }
        } else {
            ranges(n, grain: 16, minimum: minimum) { range, _ in body(range.lowerBound, range.count) }
        }
    }

    /// `body(samples, part)` over the batch's samples, each part at least enough samples of `perSample` floats to be
    /// worth a thread: a pass in which every sample is computed alone.
    static func samples(_ batch: Int, perSample: Int, _ body: (Range<Int>, Int) -> Void) {
        ranges(batch, minimum: max(1, minimumElements / max(1, perSample)), body)
    }

    /// y[r][c] = bias[c] for `rows` rows (`emc_add_bias`), rows split over the team.
    static func addBias(_ y: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>, rows: Int, columns: Int) {
        ranges(rows, minimum: max(1, minimumElements / max(1, columns))) { r, _ in
            emc_add_bias(y + r.lowerBound * columns, bias, r.count, columns)
        }
    }

    /// Whether the kernels sum `count` columns or channels in 16 lanes of a flat walk (counts dividing 16), an order a
    /// split by columns cannot keep: such sums stay on one thread (batch norm's at 16 channels excepted, whose lanes
    /// are each one channel's sum from zero).
    static func sumsInLanes(_ count: Int) -> Bool { count > 0 && count <= 16 && 16 % count == 0 }

    /// out[c] += Σ_r x[r][c] (`emc_sum_rows`): columns split over the team when they take its general path (each column's
    /// sum whole and in order); 16-lane sums stay on one thread.
    static func sumRows(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, rows: Int, columns: Int) {
        guard threads > 1, !sumsInLanes(columns), rows * columns >= 2 * minimumElements else {
            emc_sum_rows(out, x, rows, columns)
            return
        }
        ranges(columns, grain: 8, minimum: 8) { c, _ in emc_sum_rows_range(out, x, rows, columns, c.lowerBound, c.upperBound) }
    }
}

/// Sums over a batch by micro-batches, the order that a split by samples keeps at any thread count: each micro-batch of
/// `samples` samples sums its own rows in order into a partial of `width` values from zero, the micro-batches run over
/// the team by samples (each thread reading the rows its part of the layer before wrote), and the partials are added
/// pairwise in a fixed tree (1 into 0, 3 into 2, …, then 2 into 0, …). Batch norm's per-channel sums and a depthwise convolution's filter gradient
/// use it from their families' arithmetic revision 2 (`ModelSpec.arithmeticRevision`).
struct MicroBatchSums<Value: FloatingPoint> {
    private var partials = UnsafeMutableBufferPointer<Value>(start: nil, count: 0)

    func deallocate() { partials.deallocate() }

    /// The `width` sums over `batch` samples: `body(partial, samples)` adds micro-batch `samples`' terms into `partial`
    /// (zeroed), in order; `perSample` (the work one sample takes, in floats or multiply-adds) sets how many
    /// micro-batches a thread must take for a split to pay. Valid until the next call.
    mutating func sum(batch: Int, samples: Int, width: Int, perSample: Int,
                      _ body: (UnsafeMutablePointer<Value>, Range<Int>) -> Void) -> UnsafeMutablePointer<Value> {
        let count = (batch + samples - 1) / samples
        if partials.count < max(1, count) * width {
            partials.deallocate()
            partials = .allocate(capacity: max(1, count) * width)
        }
        let p = partials.baseAddress!
        if count == 0 { p.update(repeating: 0, count: width) }
        Parallel.ranges(count, minimum: max(1, Parallel.minimumElements / max(1, samples * perSample))) { chosen, _ in
            for b in chosen {
                let partial = p + b * width
                partial.update(repeating: 0, count: width)
                body(partial, b * samples..<min(batch, (b + 1) * samples))
            }
        }
        var step = 1
        while step < count {
            for b in stride(from: 0, to: count - step, by: 2 * step) {
                let into = p + b * width, from = p + (b + step) * width
                for k in 0..<width { into[k] += from[k] }
            }
            step *= 2
        }
        return p
    }
}

/// Per-thread scratch of a layer: one buffer of `count` floats for each thread of the team it was bound under.
struct PartScratch {
    private(set) var base = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    private(set) var count = 0

    /// Replaces the buffers with `Parallel.threads` of `count` floats each (zeroed).
    mutating func allocate(_ count: Int) {
        base.deallocate()
        self.count = count
        base = .allocate(capacity: max(1, count * Parallel.threads))
        base.initialize(repeating: 0)
    }

    func deallocate() { base.deallocate() }

    /// Part `part`'s buffer.
    subscript(part: Int) -> UnsafeMutablePointer<Float> { base.baseAddress! + part * count }
}
