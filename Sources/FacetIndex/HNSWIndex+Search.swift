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
        try search(query, k: k, parameters: parameters, filter: filter, fullVector: nil)
    }

    /// Search with re-ranking for quantised storage: the best `parameters.rerank` (default `max(ef, k)`)
    /// candidates found on the quantised vectors are re-scored with exact distances on the full vectors that
    /// `fullVector` writes into its buffer (returning false when it has none: the candidate keeps its
    /// approximate distance). Full vectors thus live outside the index — a partition reads them from LMDB.
    /// With `float32` storage, or without `fullVector`, this is the plain search.
    public func search(_ query: UnsafeBufferPointer<Float>, k: Int, parameters: SearchParameters = SearchParameters(),
                       filter: ((VectorID) -> Bool)? = nil,
                       fullVector: ((VectorID, UnsafeMutableBufferPointer<Float>) -> Bool)?) throws(IndexError) -> [Neighbor] {
        try validate(query, dimension: dim)
        guard k > 0 else { return [] }
        if let r = parameters.rerank, r < 1 { throw .invalidParameter(name: "rerank", value: r, reason: "must be positive") }
        let ef = Swift.max(parameters.ef, k)
        let rerankSource = storageKind == 0 ? nil : fullVector
        return lock.withReadLock {
            guard entryPoint != HNSWIndex.none else { return [] }
            return contexts.withContext(capacity: capacity) { ctx in
                let q = query.baseAddress!
                let start = greedyDescent(q, from: entryPoint, topLevel: maxLevel, downTo: 1)
                let labels = self.labels
                let found: Int
                if let filter {
                    found = searchLayer(q, entry: start, level: 0, ef: ef, context: ctx) { filter(VectorID(rawValue: labels[Int($0)])) }
                } else {
                    found = searchLayer(q, entry: start, level: 0, ef: ef, context: ctx, accept: nil)
                }
                let results = ctx.results
                guard let rerankSource else {
                    return (0..<Swift.min(k, found)).map { i in
                        Neighbor(id: VectorID(rawValue: labels[Int(results[i].id)]), distance: results[i].distance)
                    }
                }
                let depth = Swift.min(found, Swift.max(k, parameters.rerank ?? ef))
                let full = ctx.queryBuffer(dim)
                var rescored = [Neighbor]()
                rescored.reserveCapacity(depth)
                for i in 0..<depth {
                    let id = VectorID(rawValue: labels[Int(results[i].id)])
                    var d = results[i].distance
                    if rerankSource(id, UnsafeMutableBufferPointer(start: full, count: dim)) {
                        d = Distance.distance(configuration.metric, q, full, dimension: dim)
                    }
                    rescored.append(Neighbor(id: id, distance: d))
                }
                rescored.sort { $0.distance < $1.distance || ($0.distance == $1.distance && $0.id < $1.id) }
                return Array(rescored.prefix(k))
            }
        }
    }

    /// Greedy 1-NN descent through layers `topLevel` … `downTo` (the `changed` loop of hnswlib's `searchKnn`).
    /// Caller holds a lock.
    @inline(__always)
    func greedyDescent(_ q: UnsafePointer<Float>, from entry: UInt32, topLevel: Int, downTo bottom: Int) -> UInt32 {
        var g = graph
        return facet_hnsw_greedy(&g, q, entry, Int32(topLevel), Int32(bottom))
    }

    /// Best-first search of one layer with a dynamic list of size `ef` (`searchBaseLayerST`, in C: `hnsw.c`).
    ///
    /// Every reachable node is traversed; only live nodes that `accept` admits enter the result.
    /// Returns how many results `context.results` holds, closest first. Caller holds a lock.
    @inline(__always)
    func searchLayer(_ q: UnsafePointer<Float>, entry: UInt32, level: Int, ef: Int, context ctx: SearchContext,
                     accept: ((UInt32) -> Bool)?) -> Int {
        _ = ctx.nextTag(slots: slotCount)
        var g = graph
        guard let accept else {
            return facet_hnsw_search_layer(&g, q, entry, Int32(level), ef, &ctx.scratch, nil, nil)
        }
        return withoutActuallyEscaping(accept) { accept in
            var box = accept
            return withUnsafeMutablePointer(to: &box) { p in
                facet_hnsw_search_layer(&g, q, entry, Int32(level), ef, &ctx.scratch, { context, slot in
                    context!.assumingMemoryBound(to: ((UInt32) -> Bool).self).pointee(slot) ? 1 : 0
                }, p)
            }
        }
    }

    /// The layer search's result as an array, closest first.
    func searchLayerSorted(_ q: UnsafePointer<Float>, entry: UInt32, level: Int, ef: Int, context ctx: SearchContext,
                           accept: ((UInt32) -> Bool)?) -> [Candidate] {
        let n = searchLayer(q, entry: entry, level: level, ef: ef, context: ctx, accept: accept)
        return Array(UnsafeBufferPointer(start: ctx.results, count: n))
    }

    /// hnswlib's `getNeighborsByHeuristic2`: walk candidates closest first and keep one only if it is
    /// closer to the base point than to every neighbour already kept, up to `m`.
    /// `candidates` must be sorted closest first.
    func selectNeighbors(_ candidates: [Candidate], m: Int) -> [Candidate] {
        if candidates.count <= m { return candidates }
        var g = graph
        return [Candidate](unsafeUninitializedCapacity: m) { out, count in
            count = candidates.withUnsafeBufferPointer { c in facet_hnsw_select(&g, c.baseAddress, c.count, m, out.baseAddress) }
        }
    }
}
