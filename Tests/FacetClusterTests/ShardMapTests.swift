import Testing
import FacetWire
@testable import FacetCluster

@Suite("Shard map")
struct ShardMapTests {
    func map(_ n: Int, partitions: UInt32 = 12, replicas: Int = 2) throws -> ClusterShardMap {
        ClusterShardMap(layout: try ShardLayout(partitionCount: partitions, replicationFactor: replicas, matchers: (0..<n).map { "m\($0)" }))
    }

    func checkValid(_ m: ClusterShardMap, sourceLocation: SourceLocation = #_sourceLocation) {
        for p in m.allPartitions {
            #expect(m.replicas(of: p).count == m.replicationFactor, sourceLocation: sourceLocation)
            #expect(Set(m.replicas(of: p)).count == m.replicationFactor, "replicas of p\(p) repeat", sourceLocation: sourceLocation)
            for r in m.replicas(of: p) { #expect(m.matchers.contains(r), sourceLocation: sourceLocation) }
        }
        let loads = m.loads.values
        #expect(loads.max()! - loads.min()! <= 1, "unbalanced: \(m.loads)", sourceLocation: sourceLocation)
    }

    @Test func wireRoundTripAndValidation() throws {
        var m = try map(3)
        m.epoch = 7
        m.changedBy = "c1"
        m.incoming[2] = m.matchers.filter { !m.replicas(of: 2).contains($0) }   // the third matcher
        #expect(m.incoming[2].count == 1)
        let back = try ClusterShardMap(wire: m.wire)
        #expect(back == m)
        var broken = m.wire
        broken.assignments.removeLast()
        #expect(throws: ClusterShardMap.MapError.self) { try ClusterShardMap(wire: broken) }
        var unknown = m.wire
        unknown.assignments[0].replicas = ["nobody", "m1"]
        #expect(throws: ClusterShardMap.MapError.self) { try ClusterShardMap(wire: unknown) }
        var repeated = m.wire
        repeated.assignments[0].replicas = ["m1", "m1"]
        #expect(throws: ClusterShardMap.MapError.self) { try ClusterShardMap(wire: repeated) }
    }

    @Test func newerOrdersByEpochThenCoordinator() throws {
        var a = try map(3), b = try map(3)
        a.epoch = 3; b.epoch = 4
        #expect(b.isNewer(than: a) && !a.isNewer(than: b))
        a.epoch = 4; a.changedBy = "coord-a"; b.changedBy = "coord-b"
        #expect(b.isNewer(than: a) && !a.isNewer(than: b))
        #expect(!a.isNewer(than: a))
    }

    @Test func addingAMatcherMovesOnlyItsShareAndBalances() throws {
        for (n, partitions, r) in [(3, 12 as UInt32, 2), (3, 8, 2), (2, 32, 2), (4, 7, 3), (1, 5, 1)] {
            let m = try map(n, partitions: partitions, replicas: r)
            let (target, moves) = try m.planned(adding: "new")
            checkValid(target)
            #expect(target.matchers == m.matchers + ["new"])
            // Every move goes to the new matcher, and it gets its fair share.
            #expect(moves.allSatisfy { $0.to == "new" })
            #expect(moves.count == target.loads["new"]!)
            #expect(moves.count == Int(partitions) * r / (n + 1) || moves.count == Int(partitions) * r / (n + 1) + 1)
            #expect(m.moves(to: target) == moves)
            #expect(throws: ClusterShardMap.MapError.alreadyMember("new")) { _ = try target.planned(adding: "new") }
        }
    }

    @Test func removingAMatcherMovesExactlyItsReplicas() throws {
        let m = try map(4, partitions: 16, replicas: 2)
        let (target, moves) = try m.planned(removing: "m1")
        checkValid(target)
        #expect(!target.matchers.contains("m1"))
        #expect(moves.allSatisfy { $0.from == "m1" })
        #expect(moves.count == m.loads["m1"]!)
        #expect(target.allPartitions.allSatisfy { !target.replicas(of: $0).contains("m1") })
        #expect(throws: ClusterShardMap.MapError.tooFewMatchers(needed: 2, left: 1)) { _ = try map(2).planned(removing: "m0") }
        #expect(throws: ClusterShardMap.MapError.unknownMatcher("x")) { _ = try m.planned(removing: "x") }
    }

    @Test func rebalanceEvensOutAndIsANoOpWhenBalanced() throws {
        var m = try map(3, partitions: 12, replicas: 2)
        #expect(try m.planned(rebalancing: ()).moves.isEmpty)
        // Skew: put m0 on every partition it can take.
        for p in m.allPartitions where !m.replicas(of: p).contains("m0") { m.replicas[Int(p)][0] = "m0" }
        let (target, moves) = try m.planned(rebalancing: ())
        checkValid(target)
        #expect(!moves.isEmpty)
        #expect(moves.allSatisfy { $0.from == "m0" })
        // Deterministic.
        #expect(try m.planned(rebalancing: ()).moves == moves)
    }

    @Test func changesNeedASettledMap() throws {
        var m = try map(3)
        m.incoming[0] = m.matchers.filter { !m.replicas(of: 0).contains($0) }
        #expect(throws: ClusterShardMap.MapError.changeInProgress) { _ = try m.planned(adding: "x") }
        #expect(m.writeSet(of: 0).count == 3)
        #expect(m.assigned(to: m.incoming[0][0]).contains(0))
        #expect(!m.partitions(of: m.incoming[0][0]).contains(0))
    }
}
