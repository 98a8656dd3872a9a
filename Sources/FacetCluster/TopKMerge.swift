import FacetWire

/// Merges per-partition top-k candidate lists into the global top-k.
///
/// Each list is sorted nearest first (as matchers return them). The merge is a k-way heap merge that stops
/// after `k` candidates; ties are broken by template id so the result is deterministic whatever order the
/// partitions answered in. Because partitions are disjoint, the merged top-k equals the top-k of one index
/// holding every template (exactly for exact per-partition search; up to the ANN's recall otherwise).
public enum TopKMerge {
    public static func merge(_ lists: [[WireCandidate]], k: Int, maxDistance: Float? = nil) -> [WireCandidate] {
        guard k > 0 else { return [] }
        // Sort defensively (a peer may not keep its promise); lists are short (≤ k).
        let sorted = lists.map { $0.sorted(by: precedes) }
        var heap = MinHeap<(Int, Int)> { a, b in precedes(sorted[a.0][a.1], sorted[b.0][b.1]) }
        for (i, l) in sorted.enumerated() where !l.isEmpty { heap.push((i, 0)) }
        var out: [WireCandidate] = []
        var seen = Set<UInt64>()
        out.reserveCapacity(k)
        while out.count < k, let (li, idx) = heap.pop() {
            let c = sorted[li][idx]
            if let maxDistance, c.distance > maxDistance { break }
            if seen.insert(c.templateID).inserted { out.append(c) }  // a template answered by two replicas counts once
            if idx + 1 < sorted[li].count { heap.push((li, idx + 1)) }
        }
        return out
    }

    /// Nearest first; equal distances by template id.
    public static func precedes(_ a: WireCandidate, _ b: WireCandidate) -> Bool {
        a.distance != b.distance ? a.distance < b.distance : a.templateID < b.templateID
    }
}

/// A binary min-heap with a custom ordering.
struct MinHeap<Element> {
    private var items: [Element] = []
    private let less: (Element, Element) -> Bool
    init(less: @escaping (Element, Element) -> Bool) { self.less = less }

    var isEmpty: Bool { items.isEmpty }

    mutating func push(_ e: Element) {
        items.append(e)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard less(items[i], items[parent]) else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> Element? {
        guard !items.isEmpty else { return nil }
        items.swapAt(0, items.count - 1)
        let top = items.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < items.count, less(items[l], items[m]) { m = l }
            if r < items.count, less(items[r], items[m]) { m = r }
            if m == i { break }
            items.swapAt(i, m)
            i = m
        }
        return top
    }
}
