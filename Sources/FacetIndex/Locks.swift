import CFacetKernels
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

/// Per-search scratch space: a generation-tagged visited list (as hnswlib's `VisitedList`), the two heaps
/// and the pending-neighbour buffer, in the C layout the search loop uses (`facet_hnsw_scratch`).
final class SearchContext {
    var scratch = facet_hnsw_scratch()
    var visitedCapacity: Int
    /// Room for a decoded / prepared query vector.
    var queryCapacity = 0

    init(capacity: Int) {
        visitedCapacity = Swift.max(capacity, 1)
        scratch.visited = facet_alloc_large(visitedCapacity * 2)!.assumingMemoryBound(to: UInt16.self)
        scratch.pending = malloc(512 * 4)!.assumingMemoryBound(to: UInt32.self)
        scratch.candidates_capacity = 256
        scratch.candidates = malloc(256 * MemoryLayout<Candidate>.stride)!.assumingMemoryBound(to: Candidate.self)
        scratch.top_capacity = 256
        scratch.top = malloc(256 * MemoryLayout<Candidate>.stride)!.assumingMemoryBound(to: Candidate.self)
    }
    deinit {
        facet_free_large(scratch.visited, visitedCapacity * 2)
        free(scratch.candidates); free(scratch.top); free(scratch.pending); free(scratch.query_buffer)
    }

    var visited: UnsafeMutablePointer<UInt16> { scratch.visited }
    /// The result of the last layer search, closest first.
    var results: UnsafeMutablePointer<Candidate> { scratch.top }

    /// A query buffer of at least `count` floats.
    func queryBuffer(_ count: Int) -> UnsafeMutablePointer<Float> {
        if count > queryCapacity {
            free(scratch.query_buffer)
            scratch.query_buffer = malloc(count * 4)!.assumingMemoryBound(to: Float.self)
            queryCapacity = count
        }
        return scratch.query_buffer
    }

    /// A fresh tag: every slot whose mark differs counts as unvisited. Clears only on wrap-around.
    @inline(__always)
    func nextTag(slots: Int) -> UInt16 {
        if slots > visitedCapacity {
            facet_free_large(scratch.visited, visitedCapacity * 2)
            visitedCapacity = Swift.max(slots, visitedCapacity * 2)
            scratch.visited = facet_alloc_large(visitedCapacity * 2)!.assumingMemoryBound(to: UInt16.self)   // zeroed
            scratch.tag = 0
        }
        scratch.tag &+= 1
        if scratch.tag == 0 {
            scratch.visited.update(repeating: 0, count: visitedCapacity)
            scratch.tag = 1
        }
        return scratch.tag
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
