import Testing
import Foundation
import FacetIndex
import FacetTestSupport

/// A face-like gallery shared by the recall tests (generation is deterministic).
enum Galleries {
    static let faces: FaceLikeGenerator.Gallery = {
        var generator = FaceLikeGenerator(statistics: try! FaceEmbeddingStatistics.bundled(), seed: 42)
        return generator.makeGallery(count: 6000, queryCount: 300)
    }()
}

func buildIndex(_ vectors: [[Float]], m: Int = 16, efConstruction: Int = 200, metric: Metric = .l2Squared,
                ids: [UInt64]? = nil) throws -> HNSWIndex {
    let index = try HNSWIndex(configuration: HNSWConfiguration(dimension: vectors[0].count, metric: metric, m: m,
                                                                efConstruction: efConstruction, initialCapacity: 64))
    for (i, v) in vectors.enumerated() { try index.insert(v, id: VectorID(ids?[i] ?? UInt64(i))) }
    return index
}

func recall(of index: HNSWIndex, queries: [[Float]], base: [[Float]], k: Int, ef: Int, metric: Metric = .l2Squared) throws -> Double {
    let truth = ExactSearch.search(queries: queries, base: base, k: k, metric: metric).map { $0.map(\.id) }
    let approx = try queries.map { try index.search($0, k: k, parameters: SearchParameters(ef: ef)).map(\.id) }
    return Recall.atK(k, approximate: approx, truth: truth)
}

@Suite("HNSW index")
struct HNSWIndexTests {
    @Test("recall@10 ≥ 0.95 against exact search on face-like 128-D data")
    func recallFaceLike() throws {
        let g = Galleries.faces
        let base = (0..<g.count).map(g.baseVector), queries = (0..<g.queryIdentities.count).map(g.queryVector)
        let index = try buildIndex(base)
        try index.checkInvariants()
        let r = try recall(of: index, queries: queries, base: base, k: 10, ef: 64)
        #expect(r >= 0.95, "recall@10 = \(r)")
        #expect(index.reachableFraction() >= 0.999)
        // Larger ef never hurts much and reaches near-exact.
        #expect(try recall(of: index, queries: queries, base: base, k: 10, ef: 256) >= 0.99)
    }

    @Test("recall@10 ≥ 0.95 on clustered 512-D data, L2 and inner product", arguments: [Metric.l2Squared, .innerProduct])
    func recall512(metric: Metric) throws {
        let all = gaussianClusters(count: 3200, dimension: 512, clusters: 400, spread: 0.08, seed: 5)
        let base = Array(all.prefix(3000)), queries = Array(all.suffix(200))
        let index = try buildIndex(base, metric: metric)
        try index.checkInvariants()
        let r = try recall(of: index, queries: queries, base: base, k: 10, ef: 80, metric: metric)
        #expect(r >= 0.95, "recall@10 = \(r)")
    }

    @Test("a vector finds itself first, with distance 0")
    func selfMatch() throws {
        let g = Galleries.faces
        let base = (0..<2000).map(g.baseVector)
        let index = try buildIndex(base)
        var found = 0
        for i in stride(from: 0, to: 2000, by: 7) {
            let hit = try index.search(base[i], k: 1, parameters: SearchParameters(ef: 32))
            if hit.first?.id == VectorID(UInt64(i)) && hit[0].distance < 1e-6 { found += 1 }
        }
        #expect(found == (0..<2000).filter { $0 % 7 == 0 }.count)
    }

    @Test("a deleted vector is never returned, before and after compaction; slots are reused")
    func deleteSemantics() throws {
        let g = Galleries.faces
        let base = (0..<3000).map(g.baseVector)
        let index = try HNSWIndex(configuration: HNSWConfiguration(dimension: 128, initialCapacity: 64, purgeFraction: 10, purgeMinimum: 1 << 30))
        for (i, v) in base.enumerated() { try index.insert(v, id: VectorID(UInt64(i))) }
        var rng = SplitMix64(seed: 9)
        var deleted = Set<UInt64>()
        while deleted.count < 900 { deleted.insert(rng.next() % 3000) }
        for id in deleted { #expect(index.remove(VectorID(id))) }
        #expect(!index.remove(VectorID(deleted.first!)))   // second delete is a no-op
        #expect(index.count == 2100 && index.pendingTombstones == 900)
        try index.checkInvariants()
        func checkNoneReturned() throws {
            for id in deleted.prefix(300) {
                let hits = try index.search(base[Int(id)], k: 10, parameters: SearchParameters(ef: 64))
                #expect(hits.count == 10)
                #expect(hits.allSatisfy { !deleted.contains($0.id.rawValue) })
                #expect(!index.contains(VectorID(id)))
            }
        }
        try checkNoneReturned()
        let memoryBefore = index.memoryBytes
        index.compact()
        #expect(index.pendingTombstones == 0)
        try index.checkInvariants()
        try checkNoneReturned()
        // Remaining vectors are still found, recall holds after repair.
        let live = (0..<3000).filter { !deleted.contains(UInt64($0)) }
        let liveBase = live.map { base[$0] }
        let queries = (0..<200).map(g.queryVector)
        let truth = ExactSearch.search(queries: queries, base: liveBase, k: 10).map { $0.map { VectorID(UInt64(live[Int($0.id.rawValue)])) } }
        let approx = try queries.map { try index.search($0, k: 10, parameters: SearchParameters(ef: 64)).map(\.id) }
        #expect(Recall.atK(10, approximate: approx, truth: truth) >= 0.95)
        #expect(index.reachableFraction() >= 0.995)
        // Freed slots are reused: 900 new vectors do not grow the storage.
        for i in 0..<900 { try index.insert(g.baseVector(3000 + i), id: VectorID(UInt64(10_000 + i))) }
        #expect(index.memoryBytes <= memoryBefore + 64 * 1024)
        #expect(index.count == 3000)
        try index.checkInvariants()
    }

    @Test("update replaces the vector: the new one is found, the old one no longer matches")
    func updateSemantics() throws {
        let g = Galleries.faces
        let base = (0..<1000).map(g.baseVector)
        let index = try buildIndex(base)
        let newVector = g.baseVector(5000)
        try index.update(newVector, id: VectorID(17))
        #expect(index.count == 1000)
        let hit = try index.search(newVector, k: 1, parameters: SearchParameters(ef: 64))
        #expect(hit.first?.id == VectorID(17) && hit[0].distance < 1e-6)
        let old = try index.search(base[17], k: 10, parameters: SearchParameters(ef: 64))
        #expect(!old.contains { $0.id == VectorID(17) && $0.distance < 1e-6 })
        #expect(index.vector(for: VectorID(17)) == newVector)
        try index.checkInvariants()
    }

    @Test("filtered search returns only accepted ids and matches exact filtered search")
    func filtered() throws {
        let g = Galleries.faces
        let base = (0..<4000).map(g.baseVector)
        let index = try buildIndex(base)
        let queries = (0..<100).map(g.queryVector)
        for modulus in [3, 50] {
            let accept: (VectorID) -> Bool = { $0.rawValue % UInt64(modulus) == 0 }
            let flat = base.flatMap { $0 }
            let truth = queries.map { q in flat.withUnsafeBufferPointer { b in q.withUnsafeBufferPointer { qp in
                ExactSearch.search(queries: qp, base: b, dimension: 128, k: 10, filter: accept)[0].map(\.id)
            } } }
            let approx = try queries.map { try index.search($0, k: 10, parameters: SearchParameters(ef: 64), filter: accept).map(\.id) }
            #expect(approx.allSatisfy { $0.allSatisfy(accept) && $0.count == 10 })
            let r = Recall.atK(10, approximate: approx, truth: truth)
            #expect(r >= 0.95, "filtered recall (1/\(modulus)) = \(r)")
        }
    }

    @Test("invariants hold after thousands of random inserts, updates and deletes")
    func randomOperations() throws {
        let vectors = gaussianClusters(count: 4000, dimension: 16, clusters: 40, spread: 0.2, seed: 11)
        let index = try HNSWIndex(configuration: HNSWConfiguration(dimension: 16, m: 6, efConstruction: 40, initialCapacity: 16,
                                                                    seed: 3, purgeFraction: 0.2, purgeMinimum: 50))
        var rng = SplitMix64(seed: 12)
        // Deterministic across processes: deletions pick from an array, never from a Dictionary's (seeded) order.
        var live: [UInt64: Int] = [:]     // id → vector row
        var liveIDs: [UInt64] = [], position: [UInt64: Int] = [:]
        for step in 0..<6000 {
            let roll = rng.next() % 10
            if roll < 6 || live.isEmpty {
                let id = rng.next() % 2500, row = Int(rng.next() % 4000)
                try index.insert(vectors[row], id: VectorID(id))
                if live[id] == nil { position[id] = liveIDs.count; liveIDs.append(id) }
                live[id] = row
            } else {
                let at = Int(rng.next() % UInt64(liveIDs.count)), id = liveIDs[at]
                #expect(index.remove(VectorID(id)))
                live[id] = nil
                let last = liveIDs.removeLast()
                if last != id { liveIDs[at] = last; position[last] = at }
                position[id] = nil
            }
            if step % 500 == 499 { try index.checkInvariants() }
        }
        try index.checkInvariants()
        #expect(index.count == live.count)
        #expect(Set(index.ids.map(\.rawValue)) == Set(live.keys))
        index.compact()
        try index.checkInvariants()
        #expect(index.reachableFraction() >= 0.99)
        // Every live template's own vector is searched for. HNSW is approximate (a node can be left unreachable
        // by repairs; reachableFraction allows 1%), so at most 1% may be missed; a returned id is never a deleted one.
        var missed: [UInt64] = []
        for id in liveIDs.sorted() {
            let hits = try index.search(vectors[live[id]!], k: 5, parameters: SearchParameters(ef: 100))
            #expect(hits.allSatisfy { live[$0.id.rawValue] != nil })
            if !(hits.first.map { $0.distance < 1e-6 } ?? false) { missed.append(id) }
        }
        #expect(Double(missed.count) <= 0.01 * Double(liveIDs.count), "not found by their own vector: \(missed)")
        // Delete everything: the index is empty and valid, and accepts new data.
        for id in live.keys { index.remove(VectorID(id)) }
        index.compact()
        try index.checkInvariants()
        #expect(try index.search(vectors[0], k: 3).isEmpty)
        try index.insert(vectors[0], id: VectorID(1))
        #expect(try index.search(vectors[0], k: 3).map(\.id) == [VectorID(1)])
    }

    @Test("concurrent searches while one writer inserts and deletes")
    func concurrentReaders() async throws {
        let g = Galleries.faces
        let index = try buildIndex((0..<1000).map(g.baseVector))
        let queries = (0..<50).map(g.queryVector)
        try await withThrowingTaskGroup(of: Int.self) { group in
            group.addTask {
                for i in 1000..<3000 {
                    try index.insert(g.baseVector(i), id: VectorID(UInt64(i)))
                    if i % 4 == 0 { index.remove(VectorID(UInt64(i - 900))) }
                }
                return 0
            }
            for r in 0..<3 {
                group.addTask {
                    var hits = 0
                    for round in 0..<20 { for q in queries {
                        hits += try index.search(q, k: 10, parameters: SearchParameters(ef: 32 + round + r)).count
                    } }
                    return hits
                }
            }
            for try await _ in group {}
        }
        try index.checkInvariants()
        #expect(index.count == 3000 - 500)
    }

    @Test("bad input is a typed error, never a crash")
    func badInput() throws {
        let index = try HNSWIndex(configuration: HNSWConfiguration(dimension: 8))
        #expect(throws: IndexError.dimensionMismatch(expected: 8, actual: 3)) { try index.insert([1, 2, 3], id: VectorID(1)) }
        #expect(throws: IndexError.nonFiniteComponent(index: 2)) { try index.insert([0, 0, .nan, 0, 0, 0, 0, 0], id: VectorID(1)) }
        #expect(throws: IndexError.dimensionMismatch(expected: 8, actual: 9)) { try index.search([Float](repeating: 0, count: 9), k: 1) }
        #expect(throws: IndexError.self) { try HNSWIndex(configuration: HNSWConfiguration(dimension: 0)) }
        #expect(throws: IndexError.self) { try HNSWIndex(configuration: HNSWConfiguration(dimension: 8, m: 1)) }
        #expect(try index.search([Float](repeating: 0, count: 8), k: 5).isEmpty)
        #expect(try index.search([Float](repeating: 0, count: 8), k: 0).isEmpty)
    }
}
