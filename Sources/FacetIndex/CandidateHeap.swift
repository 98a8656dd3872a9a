/// A (distance, slot) pair in the search heaps.
@usableFromInline
struct Candidate {
    @usableFromInline var distance: Float
    @usableFromInline var id: UInt32
    @inlinable init(distance: Float, id: UInt32) { self.distance = distance; self.id = id }
}

/// A binary heap on a caller-owned buffer, ordered closest-first (`isMax == false`) or farthest-first.
///
/// Hot-loop building block: no ARC, no bounds checks, grows by reallocation when full.
@usableFromInline
struct CandidateHeap {
    @usableFromInline var buffer: UnsafeMutablePointer<Candidate>
    @usableFromInline var capacity: Int
    @usableFromInline var count: Int = 0
    @usableFromInline let isMax: Bool

    @inlinable init(buffer: UnsafeMutablePointer<Candidate>, capacity: Int, isMax: Bool) {
        self.buffer = buffer; self.capacity = capacity; self.isMax = isMax
    }

    @inlinable @inline(__always)
    func before(_ a: Candidate, _ b: Candidate) -> Bool {
        isMax ? a.distance > b.distance : a.distance < b.distance
    }

    @inlinable var isEmpty: Bool { count == 0 }
    @inlinable var top: Candidate { buffer[0] }

    @inlinable @inline(__always)
    mutating func push(_ c: Candidate) {
        if count == capacity { grow() }
        var i = count
        count += 1
        while i > 0 {
            let parent = (i - 1) >> 1
            if before(c, buffer[parent]) { buffer[i] = buffer[parent]; i = parent } else { break }
        }
        buffer[i] = c
    }

    @inlinable @inline(__always)
    @discardableResult
    mutating func pop() -> Candidate {
        let result = buffer[0]
        count -= 1
        if count > 0 {
            let last = buffer[count]
            var i = 0
            while true {
                let l = 2 * i + 1
                if l >= count { break }
                var c = l
                if l + 1 < count && before(buffer[l + 1], buffer[l]) { c = l + 1 }
                if before(buffer[c], last) { buffer[i] = buffer[c]; i = c } else { break }
            }
            buffer[i] = last
        }
        return result
    }

    @usableFromInline
    mutating func grow() {
        let newCapacity = Swift.max(16, capacity * 2)
        let fresh = UnsafeMutablePointer<Candidate>.allocate(capacity: newCapacity)
        fresh.moveInitialize(from: buffer, count: count)
        buffer.deallocate()
        buffer = fresh
        capacity = newCapacity
    }
}

/// Keeps the `k` smallest distances seen (a bounded max-heap); used by exact search.
public struct TopK {
    public let k: Int
    private var heap: [Neighbor] = []

    public init(k: Int) { self.k = k; heap.reserveCapacity(k) }

    /// The current k-th best distance (infinity until k items were seen).
    public var threshold: Float { heap.count < k ? .infinity : heap[0].distance }

    @inline(__always)
    public mutating func consider(_ id: VectorID, _ distance: Float) {
        if heap.count < k {
            heap.append(Neighbor(id: id, distance: distance))
            var i = heap.count - 1
            while i > 0 {
                let p = (i - 1) >> 1
                if heap[p].distance < heap[i].distance || (heap[p].distance == heap[i].distance && heap[p].id < heap[i].id) {
                    heap.swapAt(p, i); i = p
                } else { break }
            }
        } else if k > 0 && (distance < heap[0].distance || (distance == heap[0].distance && id < heap[0].id)) {
            heap[0] = Neighbor(id: id, distance: distance)
            var i = 0
            let n = heap.count
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < n && Self.worse(heap[l], heap[m]) { m = l }
                if r < n && Self.worse(heap[r], heap[m]) { m = r }
                if m == i { break }
                heap.swapAt(i, m); i = m
            }
        }
    }

    @inline(__always) private static func worse(_ a: Neighbor, _ b: Neighbor) -> Bool {
        a.distance > b.distance || (a.distance == b.distance && a.id > b.id)
    }

    /// The kept neighbours, closest first (ties broken by id).
    public func sorted() -> [Neighbor] {
        heap.sorted { $0.distance < $1.distance || ($0.distance == $1.distance && $0.id < $1.id) }
    }
}
