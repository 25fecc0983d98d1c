import EMCCore
import Foundation

/// Prepares an epoch's batches ahead of the trainer on worker threads, into a bounded ring of slots.
///
/// Batch k is built by worker k mod W into slot k mod depth; its content is a pure function of the
/// order, so batches are the same whatever the number of workers. The trainer takes batches in order;
/// a request that is not the next batch (a full evaluation pass, say) falls back to a direct load.
final class Prefetcher: @unchecked Sendable {
    /// Unowned: the subset owns this prefetcher and stops it (joining the workers) in its deinit,
    /// so the workers never outlive it; a strong reference would be a cycle.
    private unowned(unsafe) let subset: Subset
    private let order: [UInt32]
    private let batchSize: Int
    private let depth: Int
    private let batches: Int
    private let inputs: [UnsafeMutablePointer<Float>]
    private let labels: [UnsafeMutablePointer<Int32>]
    /// Slot buffers, owned by the subset and reused every epoch (fresh pages each epoch cost more than the copy).
    final class Slots {
        let inputs: [UnsafeMutablePointer<Float>]
        let labels: [UnsafeMutablePointer<Int32>]
        let batchSize: Int
        init(depth: Int, batchSize: Int, sampleFloats: Int) {
            self.batchSize = batchSize
            inputs = (0..<depth).map { _ in .allocate(capacity: batchSize * sampleFloats) }
            labels = (0..<depth).map { _ in .allocate(capacity: batchSize) }
        }
        deinit {
            for p in inputs { p.deallocate() }
            for p in labels { p.deallocate() }
        }
    }
    private let slots: Slots
    private let condition = NSCondition()
    private var ready: [Int]      // slot → batch index it holds (-1: none)
    private var consumed = 0      // batches taken by the trainer
    private var stopped = false
    private var failure: Error?
    private var threads: [Thread] = []
    private var running = 0

    init(subset: Subset, order: [UInt32], slots: Slots, workers: Int) {
        self.subset = subset
        self.order = order
        self.slots = slots
        batchSize = slots.batchSize
        depth = slots.inputs.count
        batches = (order.count + batchSize - 1) / batchSize
        inputs = slots.inputs
        labels = slots.labels
        ready = [Int](repeating: -1, count: self.depth)
        let w = max(1, min(workers, self.depth))
        running = w
        for worker in 0..<w {
            let thread = Thread { [self] in self.work(worker: worker, of: w) }
            thread.stackSize = 4 << 20
            threads.append(thread)
            thread.start()
        }
    }

    private func work(worker: Int, of workers: Int) {
        var k = worker
        while k < batches {
            condition.lock()
            // Slot k mod depth is free once batch k − depth has been consumed.
            while !stopped && consumed <= k - depth { condition.wait() }
            let stop = stopped
            condition.unlock()
            if stop { break }
            let slot = k % depth
            let start = k * batchSize, end = min(order.count, start + batchSize)
            do {
                try order.withUnsafeBufferPointer { o in
                    try subset.fill(UnsafeBufferPointer(rebasing: o[start..<end]), inputs: inputs[slot], labels: labels[slot])
                }
            } catch {
                condition.lock()
                failure = failure ?? error
                condition.broadcast()
                condition.unlock()
                break
            }
            condition.lock()
            ready[slot] = k
            condition.broadcast()
            condition.unlock()
            k += workers
        }
        condition.lock()
        running -= 1
        condition.broadcast()
        condition.unlock()
    }

    /// Copies the next batch if `indices` is exactly it; returns false otherwise.
    func take(_ indices: UnsafeBufferPointer<UInt32>, inputs out: UnsafeMutablePointer<Float>, labels outLabels: UnsafeMutablePointer<Int32>) throws -> Bool {
        condition.lock()
        let k = consumed
        condition.unlock()
        guard k < batches else { return false }
        let start = k * batchSize, end = min(order.count, start + batchSize)
        guard indices.count == end - start else { return false }
        for (i, q) in indices.enumerated() where order[start + i] != q { return false }
        let slot = k % depth
        condition.lock()
        while ready[slot] != k && failure == nil && !stopped { condition.wait() }
        if let failure { condition.unlock(); throw failure }
        condition.unlock()
        out.update(from: inputs[slot], count: indices.count * subset.shape.count)
        outLabels.update(from: labels[slot], count: indices.count)
        condition.lock()
        ready[slot] = -1
        consumed += 1
        condition.broadcast()
        condition.unlock()
        return true
    }

    /// Stops the workers and waits for them.
    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        while running > 0 { condition.wait() }
        condition.unlock()
    }
}
