import Foundation
import Logging
import Testing
import FacetTestSupport
import FacetWire
@testable import FacetCluster

/// Durable replica marks (the fix for acknowledged writes lost after faults, docs/ops.md "Soak with faults"): a copy
/// that missed a write is marked stale on the copies that took it; every coordinator, including one that restarted,
/// learns the marks from the holders' reports and neither reads from, fills from, nor adopts such a copy until a fill
/// made the marks good.
@Suite("Replica marks")
struct ReplicaMarkTests {
    let layout = try! ShardLayout(partitionCount: 4, replicationFactor: 2, matchers: ["a", "b", "c"])

    func worker(_ id: String) -> WorkerInfo {
        WorkerInfo(nodeID: id, role: .matcher, routing: Array(id.utf8), lastHeard: .now, lastHeardUnixMs: 0, alive: true, generation: 1)
    }

    func mark(_ node: String, _ seq: UInt64) -> WireReplicaMark {
        var m = WireReplicaMark()
        m.nodeID = node
        m.sequence = seq
        return m
    }

    func holding(_ p: UInt32, synced: Bool, stale: [WireReplicaMark] = [], covered: [WireReplicaMark] = [], templates: UInt64 = 0,
                 incomplete: Bool = false) -> WirePartitionHolding {
        var h = WirePartitionHolding()
        h.partition = p
        h.synced = synced
        h.staleReplicas = stale
        h.covered = covered
        h.incomplete = incomplete
        h.templates = templates
        return h
    }

    /// The soak's loss: a coordinator restarts, one replica registers first and takes a write alone; the other
    /// registers later and reports itself synced. The holder's mark (reported in its holdings) keeps the late copy
    /// from serving reads or being a fill source, and makes it due a fill; the fill's DONE covers the mark.
    @Test func aCopyMarkedStaleByAPeerIsNotReadyUntilAFillCoversTheMark() {
        let p: UInt32 = 1
        let rs = layout.replicas(of: p)          // two replicas
        let (holder, late) = (rs[0], rs[1])
        var s = CoordinatorState(map: ClusterShardMap(layout: layout))   // a fresh (restarted) coordinator
        s.workers[holder] = worker(holder)
        s.updateHoldings(holder, [holding(p, synced: true)])
        #expect(!s.allCopiesKnown(p))
        #expect(s.readyReplicas(of: p) == [holder])
        // The write reached only the holder, which marked the late copy (sequence 7) and reports it.
        s.updateHoldings(holder, [holding(p, synced: true, stale: [mark(late, 7)])])
        s.workers[late] = worker(late)
        s.updateHoldings(late, [holding(p, synced: true)])
        #expect(s.allCopiesKnown(p))
        #expect(s.isMarkedStale(ReplicaKey(late, p)))
        #expect(s.marksAgainst(ReplicaKey(late, p)) == [holder: 7])
        #expect(s.readyReplicas(of: p) == [holder])                      // synced report or not, no reads from it
        #expect(s.canFill(ReplicaKey(late, p), adoptAllowed: false))     // filled from the holder
        #expect(!s.canFill(ReplicaKey(holder, p), adoptAllowed: false))  // never the other way round
        // A fill made the mark good: ready (locally at once, and from the copy's own report after a restart).
        s.cover(ReplicaKey(late, p), [holder: 7])
        #expect(s.readyReplicas(of: p) == rs)
        var restarted = CoordinatorState(map: ClusterShardMap(layout: layout))
        for n in rs { restarted.workers[n] = worker(n) }
        restarted.updateHoldings(holder, [holding(p, synced: true, stale: [mark(late, 7)])])
        restarted.updateHoldings(late, [holding(p, synced: true, covered: [mark(holder, 7)])])
        #expect(restarted.readyReplicas(of: p) == rs)
        // A later write that missed it again (sequence 9) is not covered by that fill.
        restarted.updateHoldings(holder, [holding(p, synced: true, stale: [mark(late, 9)])])
        #expect(restarted.readyReplicas(of: p) == [holder])
        #expect(restarted.marksAgainst(ReplicaKey(late, p)) == [holder: 9])
    }

    /// A dead holder's marks still count (the copy it marked lacks what only the holder has), and a copy does not
    /// count its own marks against itself.
    @Test func marksOfADeadHolderStillCount() {
        let p: UInt32 = 2
        let rs = layout.replicas(of: p)
        var s = CoordinatorState(map: ClusterShardMap(layout: layout))
        for n in ["a", "b", "c"] { s.workers[n] = worker(n) }
        s.updateHoldings(rs[0], [holding(p, synced: true, stale: [mark(rs[1], 3), mark(rs[0], 4)])])
        s.updateHoldings(rs[1], [holding(p, synced: true)])
        #expect(!s.isMarkedStale(ReplicaKey(rs[0], p)))
        _ = s.markDead(rs[0])
        #expect(s.isMarkedStale(ReplicaKey(rs[1], p)))
        #expect(s.readyReplicas(of: p).isEmpty)
        #expect(!s.canFill(ReplicaKey(rs[1], p), adoptAllowed: true))   // and it is not adopted either
    }

    /// Adoption (no complete copy anywhere) never picks a copy marked stale or left incomplete by a fill, even when
    /// it holds more templates; with no clean copy, nothing is adopted.
    @Test func adoptionSkipsMarkedAndIncompleteCopies() {
        let big = try! ShardLayout(partitionCount: 4, replicationFactor: 3, matchers: ["a", "b", "c"])
        let p: UInt32 = 0
        var s = CoordinatorState(map: ClusterShardMap(layout: big))
        for n in ["a", "b", "c"] { s.workers[n] = worker(n) }
        s.updateHoldings("a", [holding(p, synced: false, templates: 100, incomplete: true)])
        s.updateHoldings("b", [holding(p, synced: false, stale: [mark("c", 2)], templates: 10)])
        s.updateHoldings("c", [holding(p, synced: false, templates: 50)])
        #expect(s.fullestLiveReplica(of: p) == "b")
        #expect(s.canFill(ReplicaKey("b", p), adoptAllowed: true))
        #expect(!s.canFill(ReplicaKey("a", p), adoptAllowed: true))
        #expect(!s.canFill(ReplicaKey("c", p), adoptAllowed: true))
        // b marked by c as well: no clean copy, no adoption.
        s.updateHoldings("c", [holding(p, synced: false, stale: [mark("b", 5)], templates: 50)])
        #expect(s.fullestLiveReplica(of: p) == nil)
        #expect(!big.replicas(of: p).contains { s.canFill(ReplicaKey($0, p), adoptAllowed: true) })
    }

    /// The soak's heal failure (sessions 7 and 8): copy `filling` of a partition was being filled from `complete`, the
    /// only complete copy, which died during a write that only `filling` took. Had `filling` marked `complete` stale
    /// (for a write that was then refused), the partition would have had no copy to read, fill from or adopt once
    /// `complete` came back. The write path marks missed copies only for a write it acknowledges.
    @Test func aRefusedWriteMarksNothing() {
        let p: UInt32 = 1
        let rs = layout.replicas(of: p)
        let (complete, filling) = (rs[0], rs[1])
        // What marking would have done: no ready copy, nothing fillable, nothing adoptable, for good.
        var s = CoordinatorState(map: ClusterShardMap(layout: layout))
        for n in ["a", "b", "c"] { s.workers[n] = worker(n) }
        s.updateHoldings(complete, [holding(p, synced: true, templates: 40)])
        s.updateHoldings(filling, [holding(p, synced: false, stale: [mark(complete, 1)], templates: 12, incomplete: true)])
        #expect(s.readyReplicas(of: p).isEmpty)
        #expect(!rs.contains { s.canFill(ReplicaKey($0, p), adoptAllowed: true) })
        // Without the mark the restarted complete copy serves reads and is the source of the next fill.
        s.updateHoldings(filling, [holding(p, synced: false, templates: 12, incomplete: true)])
        #expect(s.readyReplicas(of: p) == [complete])
        #expect(s.canFill(ReplicaKey(filling, p), adoptAllowed: false))
        // The rule: the filling copy alone took the write → refused, no marks.
        #expect(!WriteQuorum.marksMissedCopies(durable: [filling], complete: [complete], required: 1,
                                               missed: [complete], skipped: []))
        // The complete copy took it, the filling one did not → acknowledged, the filling copy is marked.
        #expect(WriteQuorum.marksMissedCopies(durable: [complete], complete: [complete], required: 1,
                                              missed: [filling], skipped: []))
        // Too few copies took it (policy ALL), or the first send already named every missed copy → no second round.
        #expect(!WriteQuorum.marksMissedCopies(durable: [complete], complete: [complete], required: 2,
                                               missed: [filling], skipped: []))
        #expect(!WriteQuorum.marksMissedCopies(durable: [complete], complete: [complete], required: 1,
                                               missed: [filling], skipped: [filling]))
    }

    /// The matcher's marks are durable: written before the write they describe, read back after a restart; an
    /// unreadable marks file makes every local copy count as incomplete.
    @Test func matcherMarksSurviveARestart() throws {
        try withTemporaryDirectory(prefix: "facet-marks") { dir in
            let logger = Logger(label: "test")
            let first = MatcherShardState(directory: dir.path, logger: logger)
            try first.updateMarks { m in
                m.counter += 1
                m.stale["3", default: [:]]["matcher-1"] = m.counter
                m.covered["5"] = ["matcher-2": 4]
                m.incomplete.insert(6)
            }
            let again = MatcherShardState(directory: dir.path, logger: logger)
            #expect(again.marks == first.marks)
            #expect(again.marks.stale == ["3": ["matcher-1": 1]])
            #expect(again.marks.incomplete == [6])
            try FileManager.default.createDirectory(atPath: dir.path + "/p-00002", withIntermediateDirectories: true)
            try Data("{not json".utf8).write(to: dir.appendingPathComponent("replica-marks.json"))
            let corrupt = MatcherShardState(directory: dir.path, logger: logger)
            #expect(corrupt.marks.incomplete == [2])
        }
    }
}
