import Testing
import Foundation
import FacetIndex
import FacetTestSupport

/// Scalar-quantised storage (fp16, int8) with re-ranking on full vectors, and concurrent inserts.
@Suite("HNSW quantised storage and concurrent inserts")
struct QuantisationTests {
    static let base: [[Float]] = { let g = Galleries.faces; return (0..<g.count).map(g.baseVector) }()
    static let queries: [[Float]] = { let g = Galleries.faces; return (0..<g.queryIdentities.count).map(g.queryVector) }()

    static func build(_ storage: VectorStorage, base: [[Float]] = base) throws -> HNSWIndex {
        let index = try HNSWIndex(configuration: HNSWConfiguration(dimension: 128, initialCapacity: 64, storage: storage))
        for (i, v) in base.enumerated() { try index.insert(v, id: VectorID(UInt64(i))) }
        return index
    }

    static func int8() -> VectorStorage {
        .int8(ScalarQuantizer.fit(sample: Array(base.prefix(1000).joined()), dimension: 128))
    }

    /// The full vector of an id, as a partition would read it from storage.
    static func fullVector(_ id: VectorID, _ out: UnsafeMutableBufferPointer<Float>) -> Bool {
        let row = base[Int(id.rawValue)]
        for i in 0..<row.count { out[i] = row[i] }
        return true
    }

    static func recall(_ index: HNSWIndex, ef: Int, rerank: Bool) throws -> Double {
        let truth = ExactSearch.search(queries: queries, base: base, k: 10).map { $0.map(\.id) }
        let approx = try queries.map { q in
            try q.withUnsafeBufferPointer { qb in
                try index.search(qb, k: 10, parameters: SearchParameters(ef: ef), filter: nil,
                                 fullVector: rerank ? QuantisationTests.fullVector : nil).map(\.id)
            }
        }
        return Recall.atK(10, approximate: approx, truth: truth)
    }

    @Test("fp16 and int8 storage with re-ranking reach recall@10 ≥ 0.95 against exact search, in less memory",
          arguments: ["float16", "int8"])
    func recallQuantised(kind: String) throws {
        let storage: VectorStorage = kind == "float16" ? .float16 : Self.int8()
        let index = try Self.build(storage)
        try index.checkInvariants()
        let reranked = try Self.recall(index, ef: 64, rerank: true)
        #expect(reranked >= 0.95, "\(kind) recall@10 with re-ranking = \(reranked)")
        // Without re-ranking the order comes from quantised distances: still a usable index.
        let raw = try Self.recall(index, ef: 64, rerank: false)
        #expect(raw >= 0.85, "\(kind) recall@10 without re-ranking = \(raw)")
        // Memory: the same 1000 vectors in float32 and in this storage.
        let small = Array(Self.base.prefix(1000))
        let fullBytes = try Self.build(.float32, base: small).memoryBytes
        let quantisedBytes = try Self.build(storage, base: small).memoryBytes
        #expect(Double(quantisedBytes) < Double(fullBytes) * (kind == "int8" ? 0.5 : 0.7), "\(quantisedBytes) vs \(fullBytes) bytes")
    }

    @Test("re-ranked results carry exact distances, sorted, and agree with exact search on the candidates")
    func rerankCorrectness() throws {
        let index = try Self.build(Self.int8())
        for q in Self.queries.prefix(50) {
            let hits = try q.withUnsafeBufferPointer { qb in
                try index.search(qb, k: 10, parameters: SearchParameters(ef: 64, rerank: 40), filter: nil, fullVector: Self.fullVector)
            }
            #expect(hits.count == 10)
            for (a, b) in zip(hits, hits.dropFirst()) { #expect(a.distance <= b.distance) }
            for h in hits {
                let exact = Distance.distance(.l2Squared, q, Self.base[Int(h.id.rawValue)])
                #expect(abs(h.distance - exact) <= 1e-5 * max(1, exact), "id \(h.id): \(h.distance) vs exact \(exact)")
            }
            // The quantised distances of the same ids differ (else re-ranking would be a no-op).
            let raw = try index.search(q, k: 10, parameters: SearchParameters(ef: 64))
            #expect(raw.contains { r in
                let exact = Distance.distance(.l2Squared, q, Self.base[Int(r.id.rawValue)])
                return r.distance != exact
            })
        }
        // A missing full vector keeps the approximate distance instead of failing.
        let q = Self.queries[0]
        let hits = try q.withUnsafeBufferPointer { qb in
            try index.search(qb, k: 5, parameters: SearchParameters(ef: 32), filter: nil, fullVector: { _, _ in false })
        }
        #expect(hits.count == 5)
    }

    @Test("quantised values decode within half a step; out-of-range components are clamped")
    func int8Codec() throws {
        let q = ScalarQuantizer(lower: [-1, 0, 2], upper: [1, 10, 2])
        let index = try HNSWIndex(configuration: HNSWConfiguration(dimension: 3, storage: .int8(q)))
        try index.insert([0.3, 7.77, 2], id: VectorID(1))
        try index.insert([-5, 50, 2], id: VectorID(2))
        let v1 = try #require(index.vector(for: VectorID(1)))
        #expect(abs(v1[0] - 0.3) <= 1 / 255 + 1e-6)
        #expect(abs(v1[1] - 7.77) <= 5 / 255 + 1e-5)
        #expect(v1[2] == 2)
        let v2 = try #require(index.vector(for: VectorID(2)))
        #expect(v2[0] == -1 && abs(v2[1] - 10) < 1e-5 && v2[2] == 2)
        let h = try HNSWIndex(configuration: HNSWConfiguration(dimension: 3, storage: .float16))
        try h.insert([0.1, -2.5, 1000], id: VectorID(7))
        let v7 = try #require(h.vector(for: VectorID(7)))
        #expect(abs(v7[0] - 0.1) < 1e-4 && v7[1] == -2.5 && v7[2] == 1000)
        #expect(throws: IndexError.self) {
            try HNSWIndex(configuration: HNSWConfiguration(dimension: 4, storage: .int8(q)))
        }
        #expect(throws: IndexError.self) {
            try HNSWIndex(configuration: HNSWConfiguration(dimension: 1, storage: .int8(ScalarQuantizer(lower: [1], upper: [0]))))
        }
    }

    @Test("a quantised index survives a snapshot round trip and deletes with compaction")
    func quantisedSnapshotAndDeletes() throws {
        let index = try Self.build(Self.int8(), base: Array(Self.base.prefix(1500)))
        for i in stride(from: 0, to: 1500, by: 3) { index.remove(VectorID(UInt64(i))) }
        index.compact()
        try index.checkInvariants()
        try withTemporaryDirectory { dir in
            let path = dir.appendingPathComponent("q.snapshot").path
            try index.save(to: path)
            let (loaded, _) = try HNSWIndex.load(from: path)
            #expect(loaded.configuration.storage == index.configuration.storage)
            #expect(loaded.count == 1000)
            for i in [1, 2, 4, 1499] {
                let hit = try loaded.search(Self.base[i], k: 1, parameters: SearchParameters(ef: 32))
                #expect(hit.first?.id == VectorID(UInt64(i)))
            }
            for i in [0, 3, 1497] {
                let hits = try loaded.search(Self.base[i], k: 10, parameters: SearchParameters(ef: 64))
                #expect(!hits.contains { $0.id == VectorID(UInt64(i)) })
            }
        }
    }

    @Test("inserts from several threads at once give the same recall and a consistent graph")
    func concurrentInserts() throws {
        // Purges every 20 tombstones, so some inserts are planned before a purge and linked after it.
        let index = try HNSWIndex(configuration: HNSWConfiguration(dimension: 128, initialCapacity: 64, purgeFraction: 0, purgeMinimum: 20))
        let base = Self.base
        let failures = Failures()
        DispatchQueue.concurrentPerform(iterations: 4) { worker in
            var i = worker
            while i < base.count {
                do { try index.insert(base[i], id: VectorID(UInt64(i))) } catch { failures.add("\(error)") }
                // Some deletes and re-inserts of the same ids race with other threads' inserts.
                if i % 97 == 0 { index.remove(VectorID(UInt64(i))) }
                if i % 194 == 0 {
                    do { try index.insert(base[i], id: VectorID(UInt64(i))) } catch { failures.add("\(error)") }
                }
                i += 4
            }
        }
        #expect(failures.messages.isEmpty)
        try index.checkInvariants()
        let removed = Set(stride(from: 0, to: base.count, by: 97)).subtracting(stride(from: 0, to: base.count, by: 194))
        #expect(index.count == base.count - removed.count)
        let kept = (0..<base.count).filter { !removed.contains($0) }
        let truth = ExactSearch.search(queries: Self.queries, base: kept.map { base[$0] }, k: 10).map { $0.map { VectorID(UInt64(kept[Int($0.id.rawValue)])) } }
        let approx = try Self.queries.map { try index.search($0, k: 10, parameters: SearchParameters(ef: 64)).map(\.id) }
        let r = Recall.atK(10, approximate: approx, truth: truth)
        #expect(r >= 0.95, "recall@10 after concurrent build = \(r)")
        #expect(index.reachableFraction() >= 0.99)
    }
}

private final class Failures: @unchecked Sendable {   // guarded by `lock`
    private let lock = NSLock()
    private var stored: [String] = []
    func add(_ m: String) { lock.lock(); stored.append(m); lock.unlock() }
    var messages: [String] { lock.lock(); defer { lock.unlock() }; return stored }
}
