import EMCCore
import EMCShards
import Foundation

/// Decoded chunks shared by the threads that stream one subset: each chunk is decoded once, by whichever
/// thread needs it first, while the others wait for it (no thread decodes a chunk another is decoding).
/// Eviction is least-recently-used; a chunk handed out stays valid for its holder after eviction.
final class SharedChunks: @unchecked Sendable {
    private let reader: SplitReader
    private let workers: ObjectPool<Worker>
    private let condition = NSCondition()
    private var chunks: [Int: DecodedChunk] = [:]
    private var lastUse: [Int: UInt64] = [:]
    private var inFlight = Set<Int>()
    private var clock: UInt64 = 0
    private let capacity: Int

    /// A decoder and its scratch buffer, one per thread at a time.
    final class Worker {
        let decoder: ChunkDecoder
        var scratch: [UInt8] = []
        init() throws { decoder = try ChunkDecoder() }
    }

    init(reader: SplitReader, capacity: Int) {
        self.reader = reader
        self.capacity = max(2, capacity)
        workers = ObjectPool { try Worker() }
    }

    func get(shard s: Int, chunk c: Int) throws -> DecodedChunk {
        let key = s << 32 | c
        condition.lock()
        while true {
            if let hit = chunks[key] {
                clock &+= 1
                lastUse[key] = clock
                condition.unlock()
                return hit
            }
            if !inFlight.contains(key) { break }
            condition.wait()
        }
        inFlight.insert(key)
        condition.unlock()
        var chunk = DecodedChunk()
        do {
            try workers.with { w in try reader.shards[s].decode(chunk: c, into: &chunk, scratch: &w.scratch, decoder: w.decoder) }
        } catch {
            condition.lock()
            inFlight.remove(key)
            condition.broadcast()
            condition.unlock()
            throw error
        }
        condition.lock()
        inFlight.remove(key)
        if chunks.count >= capacity, let oldest = lastUse.min(by: { $0.value < $1.value })?.key {
            chunks[oldest] = nil
            lastUse[oldest] = nil
        }
        clock &+= 1
        chunks[key] = chunk
        lastUse[key] = clock
        condition.broadcast()
        condition.unlock()
        return chunk
    }
}
