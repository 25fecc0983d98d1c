import Foundation

/// Runs `body(i)` for i in 0..<count on up to `threads` threads (the caller's thread is one of
/// them). Iterations are handed out in order; results must not depend on which thread runs which.
/// If iterations throw, the error of the lowest failing index is rethrown, so the error a user
/// sees does not depend on thread timing either.
public func parallelFor(_ count: Int, threads: Int, _ body: @escaping @Sendable (Int) throws -> Void) throws {
    guard count > 0 else { return }
    let workers = max(1, min(threads, count))
    if workers == 1 {
        for i in 0..<count { try body(i) }
        return
    }
    final class State: @unchecked Sendable {
        let lock = NSLock()
        var next = 0
        var failure: (index: Int, error: Error)?
        let done = DispatchGroup()
    }
    let state = State()
    let work: @Sendable () -> Void = {
        while true {
            state.lock.lock()
            let i = state.next
            let stop = state.failure != nil && state.failure!.index < i
            state.next += 1
            state.lock.unlock()
            if i >= count || stop { return }
            do { try body(i) } catch {
                state.lock.lock()
                if state.failure == nil || state.failure!.index > i { state.failure = (i, error) }
                state.lock.unlock()
            }
        }
    }
    for _ in 1..<workers {
        state.done.enter()
        let thread = Thread { work(); state.done.leave() }
        thread.stackSize = 8 << 20
        thread.start()
    }
    work()
    state.done.wait()
    if let failure = state.failure { throw failure.error }
}

/// A small pool of reusable per-thread objects (codec contexts, scratch buffers).
public final class ObjectPool<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var free: [T] = []
    private let make: () throws -> T

    public init(_ make: @escaping () throws -> T) { self.make = make }

    public func with<R>(_ body: (T) throws -> R) throws -> R {
        lock.lock()
        let item = free.popLast()
        lock.unlock()
        let object = try item ?? make()
        defer { lock.lock(); free.append(object); lock.unlock() }
        return try body(object)
    }
}

/// Slots for results computed on several threads, read back in order.
public final class ResultSlots<T>: @unchecked Sendable {
    private var items: [T?]
    private let lock = NSLock()
    public init(_ count: Int) { items = Array(repeating: nil, count: count) }
    public func set(_ i: Int, _ value: T) { lock.lock(); items[i] = value; lock.unlock() }
    public func get(_ i: Int) -> T? { lock.lock(); defer { lock.unlock() }; return items[i] }
}
