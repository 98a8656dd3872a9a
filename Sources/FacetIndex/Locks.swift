#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A readers–writer lock over `pthread_rwlock_t`: many concurrent searches, one exclusive mutation.
final class ReadWriteLock: @unchecked Sendable {   // pthread_rwlock_t is thread-safe by contract.
    private let handle = UnsafeMutablePointer<pthread_rwlock_t>.allocate(capacity: 1)
    init() { pthread_rwlock_init(handle, nil) }
    deinit { pthread_rwlock_destroy(handle); handle.deallocate() }

    @inline(__always)
    func withReadLock<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        pthread_rwlock_rdlock(handle)
        defer { pthread_rwlock_unlock(handle) }
        return try body()
    }
    @inline(__always)
    func withWriteLock<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        pthread_rwlock_wrlock(handle)
        defer { pthread_rwlock_unlock(handle) }
        return try body()
    }
}

/// A plain mutex over `pthread_mutex_t`.
final class PlainMutex: @unchecked Sendable {   // pthread_mutex_t is thread-safe by contract.
    private let handle = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    init() { pthread_mutex_init(handle, nil) }
    deinit { pthread_mutex_destroy(handle); handle.deallocate() }
    @inline(__always)
    func withLock<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        pthread_mutex_lock(handle)
        defer { pthread_mutex_unlock(handle) }
        return try body()
    }
}

/// Per-search scratch space: a generation-tagged visited list (as hnswlib's `VisitedList`) and the two heaps.
final class SearchContext {
    var visited: UnsafeMutablePointer<UInt16>
    var visitedCapacity: Int
    var tag: UInt16 = 0
    var candidates: UnsafeMutablePointer<Candidate>
    var candidatesCapacity: Int
    var top: UnsafeMutablePointer<Candidate>
    var topCapacity: Int
    /// Unvisited neighbours of the node being expanded (at most 2·M ≤ 512).
    let pending: UnsafeMutablePointer<UInt32>

    init(capacity: Int) {
        pending = .allocate(capacity: 512)
        visitedCapacity = Swift.max(capacity, 1)
        visited = .allocate(capacity: visitedCapacity)
        visited.initialize(repeating: 0, count: visitedCapacity)
        candidatesCapacity = 256
        candidates = .allocate(capacity: candidatesCapacity)
        topCapacity = 256
        top = .allocate(capacity: topCapacity)
    }
    deinit { visited.deallocate(); candidates.deallocate(); top.deallocate(); pending.deallocate() }

    /// A fresh tag: every slot whose mark differs counts as unvisited. Clears only on wrap-around.
    @inline(__always)
    func nextTag(slots: Int) -> UInt16 {
        if slots > visitedCapacity {
            visited.deallocate()
            visitedCapacity = Swift.max(slots, visitedCapacity * 2)
            visited = .allocate(capacity: visitedCapacity)
            visited.initialize(repeating: 0, count: visitedCapacity)
            tag = 0
        }
        tag &+= 1
        if tag == 0 {
            visited.update(repeating: 0, count: visitedCapacity)
            tag = 1
        }
        return tag
    }
}

/// Reuses search contexts so concurrent queries never allocate (hnswlib's `VisitedListPool`).
final class SearchContextPool: @unchecked Sendable {   // guarded by `mutex`
    private let mutex = PlainMutex()
    private var free: [SearchContext] = []

    func acquire(capacity: Int) -> SearchContext {
        if let c = mutex.withLock({ free.popLast() }) { return c }
        return SearchContext(capacity: capacity)
    }
    func release(_ context: SearchContext) {
        mutex.withLock { free.append(context) }
    }
    func withContext<R, E: Error>(capacity: Int, _ body: (SearchContext) throws(E) -> R) throws(E) -> R {
        let c = acquire(capacity: capacity)
        defer { release(c) }
        return try body(c)
    }
}

/// SplitMix64: small, fast, seedable; used for HNSW level draws.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
