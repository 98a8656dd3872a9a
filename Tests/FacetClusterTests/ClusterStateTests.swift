import Testing
import FacetWire
@testable import FacetCluster

@Suite("Shard layout")
struct ShardLayoutTests {
    @Test func replicasAreDistinctAndBalanced() throws {
        let layout = try ShardLayout(partitionCount: 32, replicationFactor: 2, matchers: ["m0", "m1", "m2"])
        var load: [String: Int] = [:]
        for p in layout.allPartitions {
            let r = layout.replicas(of: p)
            #expect(r.count == 2)
            #expect(Set(r).count == 2)
            for m in r { load[m, default: 0] += 1 }
        }
        // 64 replica slots over 3 matchers: 21 or 22 each.
        #expect(load.values.allSatisfy { $0 == 21 || $0 == 22 })
        #expect(load.values.reduce(0, +) == 64)
        for m in layout.matchers {
            #expect(layout.partitions(of: m).count == load[m])
        }
    }

    @Test func everyPartitionSurvivesOneLostMatcherWithTwoReplicas() throws {
        let layout = try ShardLayout(partitionCount: 16, replicationFactor: 2, matchers: ["a", "b", "c", "d"])
        for lost in layout.matchers {
            for p in layout.allPartitions { #expect(layout.replicas(of: p).contains { $0 != lost }) }
        }
    }

    @Test func subjectPartitionIsTheWireHash() throws {
        let layout = try ShardLayout(partitionCount: 7, replicationFactor: 1, matchers: ["a"])
        for s in ["alice", "bob", "Zoë", ""] {
            #expect(layout.partition(of: s) == WirePartitioning.partition(of: s, partitionCount: 7))
        }
    }

    @Test func invalidLayoutsAreRejected() {
        #expect(throws: ShardLayout.LayoutError.noMatchers) { try ShardLayout(partitionCount: 4, replicationFactor: 1, matchers: []) }
        #expect(throws: ShardLayout.LayoutError.noPartitions) { try ShardLayout(partitionCount: 0, replicationFactor: 1, matchers: ["a"]) }
        #expect(throws: ShardLayout.LayoutError.duplicateMatcher("a")) { try ShardLayout(partitionCount: 4, replicationFactor: 1, matchers: ["a", "a"]) }
        #expect(throws: ShardLayout.LayoutError.replicationFactor(3, matchers: 2)) {
            try ShardLayout(partitionCount: 4, replicationFactor: 3, matchers: ["a", "b"])
        }
    }

    @Test func writeQuorum() {
        #expect(WriteQuorum.required(policy: .unspecified, replicationFactor: 2, liveTargets: 2) == 2)
        #expect(WriteQuorum.required(policy: .unspecified, replicationFactor: 2, liveTargets: 1) == 1)
        #expect(WriteQuorum.required(policy: .unspecified, replicationFactor: 2, liveTargets: 0) == 1)
        #expect(WriteQuorum.required(policy: .one, replicationFactor: 3, liveTargets: 3) == 1)
        #expect(WriteQuorum.required(policy: .quorum, replicationFactor: 3, liveTargets: 1) == 2)
        #expect(WriteQuorum.required(policy: .all, replicationFactor: 3, liveTargets: 2) == 3)
    }
}

@Suite("Top-k merge")
struct TopKMergeTests {
    func candidate(_ id: UInt64, _ d: Float) -> WireCandidate {
        var c = WireCandidate()
        c.templateID = id
        c.distance = d
        c.subjectID = "s\(id)"
        return c
    }

    @Test func mergeEqualsSortingEverything() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<50 {
            var all: [WireCandidate] = []
            var lists: [[WireCandidate]] = []
            var next: UInt64 = 1
            for _ in 0..<Int.random(in: 1...8, using: &rng) {
                let n = Int.random(in: 0...12, using: &rng)
                let list = (0..<n).map { _ -> WireCandidate in
                    defer { next += 1 }
                    return candidate(next, Float(Int.random(in: 0...20, using: &rng)) / 10)   // ties on purpose
                }
                all += list
                lists.append(list.sorted(by: TopKMerge.precedes))
            }
            let k = Int.random(in: 1...15, using: &rng)
            let expected = Array(all.sorted(by: TopKMerge.precedes).prefix(k)).map(\.templateID)
            #expect(TopKMerge.merge(lists, k: k).map(\.templateID) == expected)
        }
    }

    @Test func maxDistanceAndDuplicates() {
        let a = [candidate(1, 0.1), candidate(2, 0.5), candidate(3, 0.9)]
        let b = [candidate(2, 0.5), candidate(4, 0.6)]
        #expect(TopKMerge.merge([a, b], k: 10).map(\.templateID) == [1, 2, 4, 3])
        #expect(TopKMerge.merge([a, b], k: 10, maxDistance: 0.55).map(\.templateID) == [1, 2])
        #expect(TopKMerge.merge([a, b], k: 0).isEmpty)
        #expect(TopKMerge.merge([], k: 3).isEmpty)
    }

    @Test func unsortedInputIsSortedFirst() {
        let a = [candidate(3, 0.9), candidate(1, 0.1)]
        #expect(TopKMerge.merge([a], k: 2).map(\.templateID) == [1, 3])
    }
}

@Suite("Scatter plan")
struct ScatterPlanTests {
    let layout = try! ShardLayout(partitionCount: 6, replicationFactor: 2, matchers: ["a", "b", "c"])

    @Test func everyPartitionIsAskedOnceOfAReadyReplica() {
        var plan = ScatterPlan(partitions: layout.allPartitions)
        let groups = plan.nextRound(ready: { layout.replicas(of: $0) })
        let asked = groups.values.flatMap { $0 }.sorted()
        #expect(asked == layout.allPartitions)
        for (node, ps) in groups { for p in ps { #expect(layout.replicas(of: p).contains(node)) } }
        plan.succeeded(asked)
        #expect(plan.isComplete)
        #expect(!plan.isPartial)
        #expect(plan.missing.isEmpty)
    }

    @Test func failedReplicaIsReplacedByTheOther() {
        var plan = ScatterPlan(partitions: layout.allPartitions)
        let first = plan.nextRound(ready: { layout.replicas(of: $0) })
        // Node "a" fails: its partitions stay pending; the next round asks their other replica, never "a" again.
        let failed = first["a"] ?? []
        for (node, ps) in first where node != "a" { plan.succeeded(ps) }
        let second = plan.nextRound(ready: { layout.replicas(of: $0) })
        #expect(second["a"] == nil)
        #expect(second.values.flatMap { $0 }.sorted() == failed.sorted())
        plan.succeeded(second.values.flatMap { $0 })
        #expect(plan.isComplete && !plan.isPartial)
    }

    @Test func noReplicaLeftMakesThePartitionMissing() {
        var plan = ScatterPlan(partitions: [0, 1])
        let round = plan.nextRound(ready: { p in p == 0 ? ["a"] : [] })
        #expect(round == ["a": [0]])
        #expect(plan.exhausted == [1])
        // Were the request to end now, 0 (asked, no answer yet) and 1 (nobody to ask) are missing.
        #expect(plan.missing == [0, 1])
        // "a" fails too: nobody is left for 0 either.
        let next = plan.nextRound(ready: { p in p == 0 ? ["a"] : [] })
        #expect(next.isEmpty)
        #expect(plan.missing == [0, 1])
        #expect(plan.isPartial)
    }

    @Test func inFlightPartitionsAreNotAskedTwice() {
        var plan = ScatterPlan(partitions: [0, 1])
        _ = plan.nextRound(ready: { _ in ["a", "b"] })
        let again = plan.nextRound(ready: { _ in ["a", "b"] }, inFlight: [0, 1])
        #expect(again.isEmpty)
        #expect(!plan.isComplete)
        // A deadline ends the request with whatever has answered.
        plan.succeeded([1])
        #expect(plan.missing == [0])
    }
}

@Suite("Coordinator state")
struct CoordinatorStateTests {
    let layout = try! ShardLayout(partitionCount: 4, replicationFactor: 2, matchers: ["a", "b", "c"])

    func worker(_ id: String) -> WorkerInfo {
        WorkerInfo(nodeID: id, role: .matcher, routing: Array(id.utf8), lastHeard: .now, lastHeardUnixMs: 0, alive: true, generation: 1)
    }

    @Test func readsOnlyFromReadyLiveReplicasWritesToAllLive() {
        var s = CoordinatorState(map: ClusterShardMap(layout: layout))
        for id in ["a", "b", "c"] { s.workers[id] = worker(id) }
        let p: UInt32 = 0
        let replicas = layout.replicas(of: p)
        s.ready.insert(ReplicaKey(replicas[0], p))
        #expect(s.readyReplicas(of: p) == [replicas[0]])
        #expect(s.writeTargets(of: p) == replicas)
        let first = s.markDead(replicas[0])
        let second = s.markDead(replicas[0])
        #expect(first)
        #expect(!second)
        #expect(s.readyReplicas(of: p).isEmpty)
        #expect(s.writeTargets(of: p) == [replicas[1]])
    }

    @Test func incomingReplicasTakeWritesNotReadsAndFillingOrMustFillBlocksReads() {
        var map = ClusterShardMap(layout: layout)
        map.incoming[1] = ["a"]   // partition 1 lives on b, c
        var s = CoordinatorState(map: map)
        for id in ["a", "b", "c"] { s.workers[id] = worker(id) }
        var h = WirePartitionHolding()
        h.partition = 1
        h.synced = true
        s.updateHoldings("a", [h])
        s.updateHoldings("b", [h])
        #expect(s.writeTargets(of: 1) == ["b", "c", "a"])
        #expect(s.readyReplicas(of: 1) == ["b"])          // a is synced but incoming; c not synced
        s.filling.insert(ReplicaKey("b", 1))
        #expect(s.readyReplicas(of: 1).isEmpty)
        s.filling.removeAll()
        s.mustFill.insert(ReplicaKey("b", 1))
        #expect(s.readyReplicas(of: 1).isEmpty)
        s.mustFill.removeAll()
        h.synced = false
        s.updateHoldings("b", [h])
        #expect(s.readyReplicas(of: 1).isEmpty)
    }

    /// A holdings report a matcher read before a fill's `done` can reach the coordinator after the fill's reply (the
    /// heartbeat task reads the state, the write queue answers the fill, then the heartbeat goes out; on a loaded
    /// machine the gap was over a second and the just-filled copy stopped serving reads until the next heartbeat).
    /// Reports are ordered against fills by the matcher's state version, not by time.
    @Test func holdingsReadBeforeAFillDoNotUndoIt() {
        var s = CoordinatorState(map: ClusterShardMap(layout: layout))
        for id in ["a", "b", "c"] { s.workers[id] = worker(id) }
        let p: UInt32 = 1
        let node = layout.replicas(of: p)[0]
        let key = ReplicaKey(node, p)
        var unsynced = WirePartitionHolding()
        unsynced.partition = p
        var synced = unsynced
        synced.synced = true
        s.updateHoldings(node, [unsynced], version: 3)            // the fill's begin took the state to 3
        #expect(!s.isReady(key))
        s.markFilled(key, version: 4)                             // done: version 4
        #expect(s.isReady(key))
        s.updateHoldings(node, [unsynced], version: 3)            // read before done, delivered after
        #expect(s.isReady(key))
        s.filled[key]!.at = .now - .seconds(5)                    // however late it arrives
        s.updateHoldings(node, [unsynced], version: 3)
        #expect(s.isReady(key))
        s.updateHoldings(node, [synced], version: 4)              // read after done
        #expect(s.isReady(key))
        s.updateHoldings(node, [unsynced], version: 5)            // a later change (a new fill began): not ready
        #expect(!s.isReady(key))
        s.updateHoldings(node, [synced], version: 6)
        #expect(s.isReady(key))
        // Other partitions of the node are not protected by this fill.
        let other = ReplicaKey(node, s.map.assigned(to: node).first { $0 != p }!)
        var otherSynced = WirePartitionHolding()
        otherSynced.partition = other.partition
        otherSynced.synced = true
        s.updateHoldings(node, [synced, otherSynced], version: 7)
        #expect(s.isReady(other))
        s.updateHoldings(node, [synced], version: 6)
        #expect(!s.isReady(other))
        #expect(s.isReady(key))
        // A matcher that does not number its reports (version 0): reports within a second of the fill predate it.
        s.markFilled(key, version: 0)
        s.updateHoldings(node, [unsynced], version: 0)
        #expect(s.isReady(key))
        s.filled[key]!.at = .now - .seconds(2)
        s.updateHoldings(node, [unsynced], version: 0)
        #expect(!s.isReady(key))
        // A dead matcher's fills are forgotten (a new incarnation numbers from 1 again).
        s.markFilled(key, version: 9)
        _ = s.markDead(node)
        #expect(s.filled[key] == nil)
    }

    /// Cold start (nobody complete): exactly one copy per partition may be filled (adopted), so copies that can only
    /// wait for it never take the fill slots (a 32-partition `cluster up` once hung on this).
    @Test func onlyFillableCopiesCompeteForFillSlots() throws {
        let big = try ShardLayout(partitionCount: 32, replicationFactor: 2, matchers: ["a", "b", "c"])
        var s = CoordinatorState(map: ClusterShardMap(layout: big))
        for id in ["a", "b", "c"] { s.workers[id] = worker(id) }
        let copies = big.allPartitions.flatMap { p in big.replicas(of: p).map { ReplicaKey($0, p) } }
        #expect(copies.filter { s.canFill($0, adoptAllowed: false) }.isEmpty)
        let adoptable = copies.filter { s.canFill($0, adoptAllowed: true) }
        #expect(adoptable.count == 32)
        #expect(Set(adoptable.map(\.partition)).count == 32)
        #expect(Set(adoptable.map(\.node)) == ["a", "b", "c"])   // not only the first matcher's copies
        // Once one copy is complete the other replica can be filled from it, with or without adoption.
        let p: UInt32 = 5
        let rs = big.replicas(of: p)
        s.ready.insert(ReplicaKey(rs[0], p))
        #expect(s.canFill(ReplicaKey(rs[1], p), adoptAllowed: false))
        #expect(!s.canFill(ReplicaKey(rs[0], p), adoptAllowed: false))
        // A dead complete copy is no source.
        _ = s.markDead(rs[0])
        #expect(!s.canFill(ReplicaKey(rs[1], p), adoptAllowed: false))
    }

    @Test func fillWindowRecordsConcurrentWrites() {
        var s = CoordinatorState(map: ClusterShardMap(layout: layout))
        let key = ReplicaKey("a", 1)
        let early = s.beginWrite(1, inserted: [10], deletedSubject: nil)
        s.openWindow(key)
        #expect(!s.earlierWritesDone(key))
        _ = s.beginWrite(1, inserted: [11, 12], deletedSubject: nil)
        _ = s.beginWrite(1, inserted: [], deletedSubject: "bob")
        _ = s.beginWrite(2, inserted: [99], deletedSubject: "eve")   // another partition
        s.endWrite(1, early)
        #expect(s.earlierWritesDone(key))
        #expect(s.windows[key]?.insertedIDs == [11, 12])
        #expect(s.windows[key]?.deletedSubjects == ["bob"])
    }

    @Test func templateIDsAreDeterministicPerSubjectAndSource() {
        let d = TemplateIdentity.sourceDigest([1, 2, 3])
        let a = TemplateIdentity.templateID(subject: "alice", collection: "default", sourceDigest: d)
        #expect(a == TemplateIdentity.templateID(subject: "alice", collection: "default", sourceDigest: d))
        #expect(a != TemplateIdentity.templateID(subject: "bob", collection: "default", sourceDigest: d))
        #expect(a != TemplateIdentity.templateID(subject: "alice", collection: "other", sourceDigest: d))
        #expect(a < 1 << 63 && a > 0)
    }
}
