import CFacetKernels

extension HNSWIndex {
    /// The `k` nearest live vectors to `query`, closest first.
    ///
    /// - Parameters:
    ///   - parameters: per-call `ef` (raised to `k` when smaller).
    ///   - filter: only ids it accepts are returned; the graph is still traversed through the others
    ///     (as hnswlib's `BaseFilterFunctor`), so a very selective filter costs more.
    /// - Throws: ``IndexError/dimensionMismatch(expected:actual:)`` or a NaN/infinite component.
    public func search(_ query: [Float], k: Int, parameters: SearchParameters, filter: ((VectorID) -> Bool)?) throws(IndexError) -> [Neighbor] {
        try query.withUnsafeBufferPointer { (q) throws(IndexError) -> [Neighbor] in
            try search(q, k: k, parameters: parameters, filter: filter)
        }
    }

    public func search(_ query: UnsafeBufferPointer<Float>, k: Int, parameters: SearchParameters = SearchParameters(),
                       filter: ((VectorID) -> Bool)? = nil) throws(IndexError) -> [Neighbor] {
        try validate(query, dimension: dim)
        guard k > 0 else { return [] }
        let ef = Swift.max(parameters.ef, k)
        return lock.withReadLock {
            guard entryPoint != HNSWIndex.none else { return [] }
            return contexts.withContext(capacity: capacity) { ctx in
                let q = query.baseAddress!
                let start = greedyDescent(q, from: entryPoint, topLevel: maxLevel, downTo: 1)
                let labels = self.labels
                let accept: ((UInt32) -> Bool)? = filter.map { f in { f(VectorID(rawValue: labels[Int($0)])) } }
                var top = searchLayer(q, entry: start, level: 0, ef: ef, context: ctx, accept: accept)
                while top.count > k { top.pop() }
                var out = [Neighbor](repeating: Neighbor(id: VectorID(0), distance: 0), count: top.count)
                var i = top.count - 1
                while !top.isEmpty {
                    let c = top.pop()
                    out[i] = Neighbor(id: VectorID(rawValue: labels[Int(c.id)]), distance: c.distance)
                    i -= 1
                }
                ctx.top = top.buffer; ctx.topCapacity = top.capacity
                return out
            }
        }
    }

    /// Greedy 1-NN descent through layers `topLevel` … `downTo` (the `changed` loop of hnswlib's `searchKnn`).
    /// Caller holds a lock.
    @inline(__always)
    func greedyDescent(_ q: UnsafePointer<Float>, from entry: UInt32, topLevel: Int, downTo bottom: Int) -> UInt32 {
        var current = entry
        var currentDistance = distance(q, current)
        var level = topLevel
        while level >= bottom {
            var changed = true
            while changed {
                changed = false
                let list = links(current, level)
                let n = Int(list[0])
                var j = 1
                while j <= n {
                    let candidate = list[j]
                    let d = distance(q, candidate)
                    if d < currentDistance { currentDistance = d; current = candidate; changed = true }
                    j += 1
                }
            }
            level -= 1
        }
        return current
    }

    /// Best-first search of one layer with a dynamic list of size `ef` (`searchBaseLayerST`).
    ///
    /// Every reachable node is traversed; only live nodes that `accept` admits enter the result heap.
    /// Returns a farthest-first heap (whose buffer belongs to `context`). Caller holds a lock.
    @inline(__always)
    func searchLayer(_ q: UnsafePointer<Float>, entry: UInt32, level: Int, ef: Int, context ctx: SearchContext,
                     accept: ((UInt32) -> Bool)?) -> CandidateHeap {
        let tag = ctx.nextTag(slots: slotCount)
        let visited = ctx.visited
        let states = self.states
        let pending = ctx.pending
        let prefetchBytes = Swift.min(dim * 4, 512)
        var candidates = CandidateHeap(buffer: ctx.candidates, capacity: ctx.candidatesCapacity, isMax: false)
        var top = CandidateHeap(buffer: ctx.top, capacity: ctx.topCapacity, isMax: true)
        let d0 = distance(q, entry)
        visited[Int(entry)] = tag
        var lowerBound = Float.infinity
        if states[Int(entry)] == .live && (accept?(entry) ?? true) {
            top.push(Candidate(distance: d0, id: entry)); lowerBound = d0
        }
        candidates.push(Candidate(distance: d0, id: entry))
        while !candidates.isEmpty {
            let current = candidates.top
            if current.distance > lowerBound && top.count >= ef { break }
            candidates.pop()
            let list = links(current.id, level)
            let n = Int(list[0])
            // Pass 1: pick the unvisited neighbours and start fetching all their vectors at once, so the
            // memory latencies overlap (hnswlib prefetches one neighbour ahead).
            var m = 0
            var j = 1
            while j <= n {
                let neighbor = list[j]
                j += 1
                if visited[Int(neighbor)] == tag { continue }
                visited[Int(neighbor)] = tag
                facet_prefetch_span(vectorPointer(neighbor), prefetchBytes)
                pending[m] = neighbor
                m += 1
            }
            // Pass 2: distances and heap updates.
            var i = 0
            while i < m {
                let neighbor = pending[i]
                i += 1
                let d = distance(q, neighbor)
                if top.count < ef || d < lowerBound {
                    candidates.push(Candidate(distance: d, id: neighbor))
                    if states[Int(neighbor)] == .live && (accept?(neighbor) ?? true) {
                        top.push(Candidate(distance: d, id: neighbor))
                        if top.count > ef { top.pop() }
                    }
                    if !top.isEmpty { lowerBound = top.top.distance }
                }
            }
        }
        ctx.candidates = candidates.buffer; ctx.candidatesCapacity = candidates.capacity
        ctx.top = top.buffer; ctx.topCapacity = top.capacity
        return top
    }

    /// hnswlib's `getNeighborsByHeuristic2`: walk candidates closest first and keep one only if it is
    /// closer to the base point than to every neighbour already kept, up to `m`.
    /// `candidates` must be sorted closest first.
    func selectNeighbors(_ candidates: [Candidate], m: Int) -> [Candidate] {
        if candidates.count <= m { return candidates }
        var kept: [Candidate] = []
        kept.reserveCapacity(m)
        for c in candidates {
            if kept.count >= m { break }
            var good = true
            let v = vectorPointer(c.id)
            for r in kept where distance(v, r.id) < c.distance { good = false; break }
            if good { kept.append(c) }
        }
        return kept
    }
}
