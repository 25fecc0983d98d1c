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

    // Read-ahead: chunks in the order an epoch will first touch them, decoded by background threads at most
    // `lookahead` chunks ahead of the furthest chunk a reader has asked for.
    private var plan: [Int] = []
    private var rank: [Int: Int] = [:]
    private var nextToDecode = 0
    private var consumed = -1
    private var lookahead = 0
    private var generation = 0
    private var readers = 0

    /// Starts decoding `keys` (shard << 32 | chunk) ahead of use on `threads` threads; replaces any earlier plan.
    func readAhead(_ keys: [Int], threads: Int, lookahead: Int) {
        stopReadAhead()
        condition.lock()
        generation += 1
        plan = keys
        rank = Dictionary(keys.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        nextToDecode = 0
        consumed = -1
        self.lookahead = max(1, min(lookahead, capacity / 2))
        let mine = generation
        readers = threads
        condition.unlock()
        for _ in 0..<threads {
            let t = Thread { [self] in
                while true {
                    condition.lock()
                    while generation == mine && nextToDecode < plan.count && nextToDecode > consumed + self.lookahead { condition.wait() }
                    guard generation == mine, nextToDecode < plan.count else { break }
                    let key = plan[nextToDecode]
                    nextToDecode += 1
                    condition.unlock()
                    _ = try? fetch(key: key, shard: key >> 32, chunk: key & 0xFFFF_FFFF)
                }
                readers -= 1
                condition.broadcast()
                condition.unlock()
            }
            t.start()
        }
    }

    /// Stops the read-ahead threads and waits for them.
    func stopReadAhead() {
        condition.lock()
        generation += 1
        condition.broadcast()
        while readers > 0 { condition.wait() }
        condition.unlock()
    }

    deinit { stopReadAhead() }

    func get(shard s: Int, chunk c: Int) throws -> DecodedChunk {
        let key = s << 32 | c
        condition.lock()
        if let r = rank[key], r > consumed {
            consumed = r
            condition.broadcast()
        }
        condition.unlock()
        return try fetch(key: key, shard: s, chunk: c)
    }

    private func fetch(key: Int, shard s: Int, chunk c: Int) throws -> DecodedChunk {
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
