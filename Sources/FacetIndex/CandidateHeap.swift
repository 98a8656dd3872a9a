import CFacetKernels

/// A (distance, slot) pair in the search heaps (the C type, so results pass to and from the C search loop as is).
typealias Candidate = facet_candidate

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
