import CFacetKernels

extension HNSWIndex {
    /// Inserts `vector` under `id`. An existing vector with this id is replaced (the old one is
    /// tombstoned first, so it is never returned again).
    ///
    /// - Throws: ``IndexError/dimensionMismatch(expected:actual:)``, ``IndexError/nonFiniteComponent(index:)``,
    ///   ``IndexError/capacityExceeded(limit:)``.
    public func insert(_ vector: [Float], id: VectorID) throws(IndexError) {
        try vector.withUnsafeBufferPointer { (v) throws(IndexError) in try insert(v, id: id) }
    }

    /// Same as ``insert(_:id:)-(Array<Float>,_)`` for a buffer.
    ///
    /// Inserts may run concurrently with each other and with searches (as hnswlib's parallel `addItems`):
    /// each claims its slot under the exclusive lock, finds its neighbourhoods under the *shared* lock and
    /// takes the exclusive lock again only to write the links.
    public func insert(_ vector: UnsafeBufferPointer<Float>, id: VectorID) throws(IndexError) {
        try validate(vector, dimension: dim)
        // 1. exclusive: retire an older version, claim a slot, store the vector.
        let (slot, level, epoch, newTop) = try lock.withWriteLock { () throws(IndexError) -> (UInt32, Int, UInt64, Bool) in
            if let old = idToSlot.removeValue(forKey: id.rawValue) {
                states[Int(old)] = .deleted
                tombstoneCount += 1
            }
            let slot: UInt32
            if let reused = freeSlots.popLast() {
                slot = reused
            } else {
                guard slotCount < Int(UInt32.max - 1) else { throw .capacityExceeded(limit: Int(UInt32.max - 1)) }
                grow(to: slotCount + 1)
                slot = UInt32(slotCount)
                slotCount += 1
            }
            let level = randomLevel()
            let rec = record(slot)
            rec.assumingMemoryBound(to: UInt32.self).pointee = 0
            storeVector(vector.baseAddress!, in: slot)
            labels[Int(slot)] = id.rawValue
            levels[Int(slot)] = UInt8(level)
            if level > 0 {
                let block = UnsafeMutablePointer<UInt32>.allocate(capacity: level * upperStride)
                block.initialize(repeating: 0, count: level * upperStride)
                upper[Int(slot)] = block
            }
            states[Int(slot)] = .free   // not yet linked, not yet visible
            return (slot, level, purgeEpoch, entryPoint == HNSWIndex.none || level > maxLevel)
        }
        if newTop {
            // A node above the current top layer (about log_M(n) times in all): plan and link under one exclusive
            // lock, so its upper layers are complete before it becomes the entry point.
            lock.withWriteLock {
                link(slot, plan: planLinks(for: slot, level: level, query: vector.baseAddress!))
                publish(slot, level: level, id: id)
            }
        } else {
            // 2. shared: find the neighbourhoods (the expensive part; searches and other inserts run alongside).
            let plan = lock.withReadLock { planLinks(for: slot, level: level, query: vector.baseAddress!) }
            // 3. exclusive: link both ways and publish. A purge in between may have freed (and reused) slots
            //    the plan names: plan again then.
            lock.withWriteLock {
                link(slot, plan: purgeEpoch == epoch ? plan : planLinks(for: slot, level: level, query: vector.baseAddress!))
                publish(slot, level: level, id: id)
            }
        }
        writer.withLock { purgeIfNeeded() }
    }

    /// Makes a linked slot visible. Caller holds the exclusive lock.
    private func publish(_ slot: UInt32, level: Int, id: VectorID) {
        states[Int(slot)] = .live
        if let other = idToSlot.updateValue(slot, forKey: id.rawValue) {
            // A concurrent insert of the same id published first: this one wins, that one is retired.
            states[Int(other)] = .deleted
            tombstoneCount += 1
        }
        if entryPoint == HNSWIndex.none || level > maxLevel {
            entryPoint = slot
            maxLevel = level
        }
    }

    /// Replaces the vector stored under `id` (same as ``insert(_:id:)-(Array<Float>,_)``).
    public func update(_ vector: [Float], id: VectorID) throws(IndexError) { try insert(vector, id: id) }

    /// Deletes `id`. From the moment this returns, no search returns it; its slot is reclaimed by the
    /// next purge (automatic once tombstones pass `purgeFraction`, or ``compact()``).
    @discardableResult
    public func remove(_ id: VectorID) -> Bool {
        writer.withLock {
            let removed = lock.withWriteLock { () -> Bool in
                guard let s = idToSlot.removeValue(forKey: id.rawValue) else { return false }
                states[Int(s)] = .deleted
                tombstoneCount += 1
                return true
            }
            if removed { purgeIfNeeded() }
            return removed
        }
    }

    /// Physically removes every tombstone now: re-links their neighbours, zeroes and frees their slots.
    public func compact() {
        writer.withLock { lock.withWriteLock { purgeTombstones() } }
    }

    /// Caller holds `writer`.
    func purgeIfNeeded() {
        let needed = lock.withReadLock {
            tombstoneCount >= Swift.max(configuration.purgeMinimum, Int(configuration.purgeFraction * Double(idToSlot.count)))
        }
        if needed { lock.withWriteLock { purgeTombstones() } }
    }

    /// For each level the new node lives on (and the graph has), the neighbours chosen by the heuristic.
    /// Caller holds the shared lock.
    func planLinks(for slot: UInt32, level: Int, query q: UnsafePointer<Float>) -> [[Candidate]] {
        guard entryPoint != HNSWIndex.none else { return [] }
        var current = entryPoint
        if level < maxLevel { current = greedyDescent(q, from: entryPoint, topLevel: maxLevel, downTo: level + 1) }
        let top = Swift.min(level, maxLevel)
        var plan = [[Candidate]](repeating: [], count: top + 1)
        contexts.withContext(capacity: capacity) { ctx in
            for lc in stride(from: top, through: 0, by: -1) {
                let sorted = searchLayerSorted(q, entry: current, level: lc, ef: configuration.efConstruction, context: ctx, accept: nil)
                guard let closest = sorted.first else { continue }
                plan[lc] = selectNeighbors(sorted, m: maxM)
                current = closest.id
            }
        }
        return plan
    }

    /// Writes the new node's links and the back-links (pruning full lists with the heuristic).
    /// Caller holds the exclusive lock.
    func link(_ slot: UInt32, plan: [[Candidate]]) {
        for (lc, selected) in plan.enumerated() {
            let list = links(slot, lc)
            list[0] = UInt32(selected.count)
            for (j, c) in selected.enumerated() { list[j + 1] = c.id }
            let limit = maxLinks(lc)
            for c in selected {
                let other = links(c.id, lc)
                let n = Int(other[0])
                if n < limit {
                    other[n + 1] = slot
                    other[0] = UInt32(n + 1)
                } else {
                    var candidates = [Candidate(distance: c.distance, id: slot)]
                    candidates.reserveCapacity(n + 1)
                    withVector(c.id) { base in
                        for j in 1...n { candidates.append(Candidate(distance: distance(base, other[j]), id: other[j])) }
                    }
                    candidates.sort { $0.distance < $1.distance }
                    setLinks(c.id, lc, selectNeighbors(candidates, m: limit))
                }
            }
        }
    }

    @inline(__always)
    func setLinks(_ slot: UInt32, _ level: Int, _ chosen: [Candidate]) {
        let list = links(slot, level)
        list[0] = UInt32(chosen.count)
        for (j, c) in chosen.enumerated() { list[j + 1] = c.id }
    }

    /// Removes every tombstone from the graph. Each live node that linked to a deleted one gets a new
    /// list chosen by the heuristic from its live neighbours and the live nodes reachable through the
    /// deleted ones (falling back to a layer search when too few remain). Freed slots are zeroed and reused.
    /// Caller holds `writer` and the exclusive lock.
    func purgeTombstones() {
        guard tombstoneCount > 0 else { return }
        purgeEpoch &+= 1
        let ctx = contexts.acquire(capacity: capacity)
        defer { contexts.release(ctx) }
        var stack: [UInt32] = []
        var candidates: [Candidate] = []
        let decoded = UnsafeMutablePointer<Float>.allocate(capacity: dim)   // quantised storage: the node as floats
        defer { decoded.deallocate() }
        for s in 0..<UInt32(slotCount) where states[Int(s)] == .live {
            var g = graph
            let base: UnsafePointer<Float>
            if storageKind == 0 { base = UnsafePointer(vectorPointer(s)) } else {
                facet_hnsw_decode(&g, s, decoded)
                base = UnsafePointer(decoded)
            }
            for lc in 0...Int(levels[Int(s)]) {
                let list = links(s, lc)
                let n = Int(list[0])
                var touched = false
                for j in stride(from: 1, through: n, by: 1) where states[Int(list[j])] != .live { touched = true; break }
                guard touched else { continue }
                let tag = ctx.nextTag(slots: slotCount)
                let visited = ctx.visited
                visited[Int(s)] = tag
                candidates.removeAll(keepingCapacity: true)
                stack.removeAll(keepingCapacity: true)
                func visit(_ x: UInt32) {
                    if visited[Int(x)] == tag { return }
                    visited[Int(x)] = tag
                    switch states[Int(x)] {
                    case .live: candidates.append(Candidate(distance: distance(base, x), id: x))
                    case .deleted: stack.append(x)
                    case .free: break
                    }
                }
                for j in stride(from: 1, through: n, by: 1) { visit(list[j]) }
                var expanded = 0
                while let d = stack.popLast(), expanded < 4 * maxM0 {
                    expanded += 1
                    let dl = links(d, lc)
                    for j in stride(from: 1, through: Int(dl[0]), by: 1) { visit(dl[j]) }
                }
                let limit = maxLinks(lc)
                if candidates.count < Swift.min(limit, 4), entryPoint != HNSWIndex.none, maxLevel >= lc {
                    var known = Set(candidates.map(\.id))
                    let start = greedyDescent(base, from: entryPoint, topLevel: maxLevel, downTo: lc + 1)
                    for c in searchLayerSorted(base, entry: start, level: lc, ef: configuration.efConstruction, context: ctx, accept: { $0 != s })
                    where known.insert(c.id).inserted { candidates.append(c) }
                }
                candidates.sort { $0.distance < $1.distance }
                setLinks(s, lc, selectNeighbors(candidates, m: limit))
            }
        }
        for s in 0..<UInt32(slotCount) where states[Int(s)] == .deleted {
            clearSlot(s)   // links and vector gone
            upper[Int(s)]?.deallocate()
            upper[Int(s)] = nil
            levels[Int(s)] = 0
            labels[Int(s)] = 0
            states[Int(s)] = .free
            freeSlots.append(s)
        }
        tombstoneCount = 0
        if entryPoint != HNSWIndex.none && states[Int(entryPoint)] != .live {
            entryPoint = HNSWIndex.none
            maxLevel = -1
            for s in 0..<UInt32(slotCount) where states[Int(s)] == .live && Int(levels[Int(s)]) > maxLevel {
                entryPoint = s
                maxLevel = Int(levels[Int(s)])
            }
        }
        // Keep the free list sorted high→low so `popLast` reuses low slots first (dense storage).
        freeSlots.sort(by: >)
    }
}
