/// A broken structural rule of an ``HNSWIndex`` (what hnswlib checks at run time), for tests.
public struct HNSWInvariantViolation: Error, CustomStringConvertible, Sendable {
    public var problems: [String]
    public var description: String { "HNSW invariants violated: " + problems.prefix(10).joined(separator: "; ") }
}

extension HNSWIndex {
    /// Checks the graph and bookkeeping: degrees within `M`/`2M`, no self-links or duplicates, links only
    /// to nodes that exist on that layer, no links to freed slots, free slots zeroed, id map consistent,
    /// entry point on the top layer.
    /// - Throws: ``HNSWInvariantViolation`` listing the problems.
    /// - Complexity: O(slots × M).
    public func checkInvariants() throws(HNSWInvariantViolation) {
        let problems = lock.withReadLock { invariantProblems() }
        if !problems.isEmpty { throw HNSWInvariantViolation(problems: problems) }
    }

    func invariantProblems() -> [String] {
        var p: [String] = []
        func fail(_ s: String) { if p.count < 100 { p.append(s) } }
        var live = 0, deleted = 0, free = 0, topLevel = -1
        for s in 0..<slotCount {
            switch states[s] {
            case .live: live += 1
            case .deleted: deleted += 1
            case .free: free += 1
            }
            if states[s] != .free { topLevel = Swift.max(topLevel, Int(levels[s])) }
        }
        if live != idToSlot.count { fail("\(live) live slots but \(idToSlot.count) ids") }
        if deleted != tombstoneCount { fail("\(deleted) deleted slots but tombstoneCount \(tombstoneCount)") }
        if free != freeSlots.count { fail("\(free) free slots but free list of \(freeSlots.count)") }
        if Set(freeSlots).count != freeSlots.count { fail("duplicate entries in the free list") }
        for f in freeSlots where Int(f) >= slotCount || states[Int(f)] != .free { fail("free list holds slot \(f) that is not free") }
        for (id, s) in idToSlot {
            if Int(s) >= slotCount { fail("id \(id) maps to slot \(s) beyond \(slotCount)"); continue }
            if states[Int(s)] != .live { fail("id \(id) maps to non-live slot \(s)") }
            if labels[Int(s)] != id { fail("slot \(s) labelled \(labels[Int(s)]), id map says \(id)") }
        }
        for s in 0..<UInt32(slotCount) {
            let level = Int(levels[Int(s)])
            if states[Int(s)] == .free {
                if level != 0 || upper[Int(s)] != nil { fail("free slot \(s) keeps upper layers") }
                if links(s, 0)[0] != 0 { fail("free slot \(s) keeps links") }
                let v = storedVector(s).assumingMemoryBound(to: UInt8.self)
                for i in 0..<storedVectorBytes where v[i] != 0 { fail("free slot \(s) keeps vector data"); break }
                continue
            }
            if (level > 0) != (upper[Int(s)] != nil) { fail("slot \(s) level \(level) but upper block \(upper[Int(s)] == nil ? "missing" : "present")") }
            for lc in 0...level {
                let list = links(s, lc)
                let n = Int(list[0])
                if n > maxLinks(lc) { fail("slot \(s) has \(n) links on layer \(lc), limit \(maxLinks(lc))"); continue }
                var seen = Set<UInt32>()
                for j in stride(from: 1, through: n, by: 1) {
                    let t = list[j]
                    if t == s { fail("slot \(s) links to itself on layer \(lc)") }
                    if Int(t) >= slotCount { fail("slot \(s) links to \(t) beyond \(slotCount)"); continue }
                    if states[Int(t)] == .free { fail("slot \(s) links to freed slot \(t) on layer \(lc)") }
                    if Int(levels[Int(t)]) < lc { fail("slot \(s) links on layer \(lc) to \(t), which tops out at \(levels[Int(t)])") }
                    if !seen.insert(t).inserted { fail("slot \(s) links twice to \(t) on layer \(lc)") }
                }
            }
        }
        if topLevel >= 0 {
            if entryPoint == HNSWIndex.none { fail("nodes exist but no entry point") }
            else {
                if states[Int(entryPoint)] == .free { fail("entry point \(entryPoint) is a freed slot") }
                if Int(levels[Int(entryPoint)]) != maxLevel { fail("entry point level \(levels[Int(entryPoint)]) ≠ maxLevel \(maxLevel)") }
                if maxLevel != topLevel { fail("maxLevel \(maxLevel) but highest node level \(topLevel)") }
            }
        } else if entryPoint != HNSWIndex.none { fail("empty graph keeps entry point \(entryPoint)") }
        return p
    }

    /// Fraction of live nodes reachable on layer 0 from the entry point (through any node).
    public func reachableFraction() -> Double {
        lock.withReadLock {
            guard entryPoint != HNSWIndex.none, !idToSlot.isEmpty else { return 1 }
            var seen = [Bool](repeating: false, count: slotCount)
            var stack = [entryPoint]
            seen[Int(entryPoint)] = true
            var reached = 0
            while let s = stack.popLast() {
                if states[Int(s)] == .live { reached += 1 }
                let list = links(s, 0)
                for j in stride(from: 1, through: Int(list[0]), by: 1) where !seen[Int(list[j])] {
                    seen[Int(list[j])] = true
                    stack.append(list[j])
                }
            }
            return Double(reached) / Double(idToSlot.count)
        }
    }

    /// Degree statistics on layer 0 (for diagnostics and docs).
    public var averageDegree: Double {
        lock.withReadLock {
            var total = 0, nodes = 0
            for s in 0..<UInt32(slotCount) where states[Int(s)] == .live { total += Int(links(s, 0)[0]); nodes += 1 }
            return nodes == 0 ? 0 : Double(total) / Double(nodes)
        }
    }
}
