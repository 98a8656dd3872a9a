import FacetWire

/// A (matcher, partition) pair.
public struct ReplicaKey: Hashable, Sendable {
    public var node: String
    public var partition: UInt32
    public init(_ node: String, _ partition: UInt32) { self.node = node; self.partition = partition }
}

/// What the coordinator knows about one worker.
struct WorkerInfo: Sendable {
    var nodeID: String
    var role: WireNodeRole
    var routing: [UInt8]
    var lastHeard: ContinuousClock.Instant
    var lastHeardUnixMs: Int64
    var alive: Bool
    var generation: Int
    var holdings: [UInt32: UInt64] = [:]
    /// Subjects with templates per partition, as the matcher last reported.
    var subjectCounts: [UInt32: UInt64] = [:]
    /// Partitions the matcher reports neither synced nor being filled, since when (a fill is due after a short wait,
    /// so that reports lagging behind another coordinator's fill do not start a second one).
    var idleUnsynced: [UInt32: ContinuousClock.Instant] = [:]
    /// Partitions whose copy the matcher reports being filled (an open, unexpired fill window).
    var fillingReported: Set<UInt32> = []
    /// Partitions whose copy the matcher reports incomplete (a fill began and did not finish): never adopted.
    var incomplete: Set<UInt32> = []
    /// Holdings reports taken from this worker (a fill waits for one sent after it read the source).
    var reports = 0
    var inFlight = 0
    var model = WireEmbeddingModel()
    var startedUnixMs: Int64 = 0
    var softwareVersion = ""
}

/// Writes that happened to a partition while a replica of it was being filled from another replica: the filler
/// must not delete the templates inserted meanwhile, and must re-apply the subject deletions.
struct SyncWindow: Sendable {
    var insertedIDs: Set<UInt64> = []
    var deletedSubjects: Set<String> = []
    /// Writes to the partition already in flight when the window opened (they may have missed the new replica).
    var writesBefore: Set<UInt64> = []
}

/// The coordinator's mutable state: workers, replica readiness, fill windows and in-flight writes.
/// Guarded by one lock (``LockedValue``); every method is quick and does no I/O.
struct CoordinatorState: Sendable {
    var workers: [String: WorkerInfo] = [:]
    var routingToNode: [[UInt8]: String] = [:]
    /// The shard map in force (see ``ClusterShardMap``); replaced by newer maps from matchers or shard changes.
    var map: ClusterShardMap
    /// Replica copies that are complete (the matcher reports them synced, or this coordinator just filled them).
    var ready: Set<ReplicaKey> = []
    /// Copies this coordinator is filling now (never read from meanwhile).
    var filling: Set<ReplicaKey> = []
    /// Matchers that re-registered with this coordinator (it may have skipped writes to them): filled before reads.
    var mustFill: Set<ReplicaKey> = []
    /// The last fill (or adoption) of a copy this coordinator completed: when, and the matcher's state version it took
    /// effect at. A holdings report read before it (a lower version) may arrive after it and still say unsynced.
    var filled: [ReplicaKey: (at: ContinuousClock.Instant, version: UInt64)] = [:]
    var windows: [ReplicaKey: SyncWindow] = [:]
    var writesInFlight: [UInt32: Set<UInt64>] = [:]
    var nextWriteID: UInt64 = 0
    var rotation = 0
    /// Durable marks the matchers report (``MatcherShardState/ReplicaMarks``): holder → partition → copy that missed a
    /// write the holder took → the holder's mark sequence. Kept when the holder dies (a dead holder's marks still count).
    var staleMarks: [String: [UInt32: [String: UInt64]]] = [:]
    /// Copy's node → partition → holder → the holder's sequence that a fill (or adoption) of the copy made good.
    var coveredMarks: [String: [UInt32: [String: UInt64]]] = [:]

    func isAlive(_ node: String) -> Bool { workers[node]?.alive ?? false }

    init(map: ClusterShardMap) { self.map = map }

    func isReady(_ key: ReplicaKey) -> Bool {
        isAlive(key.node) && ready.contains(key) && !filling.contains(key) && !mustFill.contains(key) && !isMarkedStale(key)
    }

    /// Whether some matcher reported that copy `key` missed a write it took, and no fill made that good since.
    func isMarkedStale(_ key: ReplicaKey) -> Bool {
        !marksAgainst(key).isEmpty
    }

    /// The marks against copy `key` that no fill made good yet: holder → sequence.
    func marksAgainst(_ key: ReplicaKey) -> [String: UInt64] {
        var out: [String: UInt64] = [:]
        for (holder, parts) in staleMarks where holder != key.node {
            guard let seq = parts[key.partition]?[key.node] else { continue }
            if seq > coveredMarks[key.node]?[key.partition]?[holder] ?? 0 { out[holder] = seq }
        }
        return out
    }

    /// Records that a fill or adoption of `key` made good the marks `marks` (holder → sequence).
    mutating func cover(_ key: ReplicaKey, _ marks: [String: UInt64]) {
        for (holder, seq) in marks {
            coveredMarks[key.node, default: [:]][key.partition, default: [:]][holder] =
                max(coveredMarks[key.node]?[key.partition]?[holder] ?? 0, seq)
        }
    }

    /// Whether every copy of `p` in the map (replicas and incoming) has registered with this coordinator, so that
    /// their marks are known.
    func allCopiesKnown(_ p: UInt32) -> Bool {
        map.writeSet(of: p).allSatisfy { workers[$0] != nil }
    }

    /// Live read replicas of `p` whose copy is complete, in map order.
    func readyReplicas(of p: UInt32) -> [String] {
        map.replicas(of: p).filter { isReady(ReplicaKey($0, p)) }
    }

    /// The copy adopted as the partition when no replica is complete (cluster start): the live read replica holding
    /// the most templates (the first in map order among equals) among those no matcher marked stale and whose last fill
    /// did not stop half-way. None when every live copy is marked or incomplete: adopting one could drop acknowledged
    /// writes that only the other copies hold, so the partition waits (logged) for a complete copy to come back.
    func fullestLiveReplica(of p: UInt32) -> String? {
        var fullest: String?
        var most: UInt64 = 0
        for r in map.replicas(of: p) where isAlive(r) {
            let key = ReplicaKey(r, p)
            guard !isMarkedStale(key), workers[r]?.incomplete.contains(p) != true else { continue }
            let n = workers[r]?.holdings[p] ?? 0
            if fullest == nil || n > most { fullest = r; most = n }
        }
        return fullest
    }

    /// Whether a fill of `key` could make progress now: another replica is complete to copy from, or (when
    /// adoption is allowed) `key`'s copy is the one to adopt. Copies that cannot must not take the fill slots.
    func canFill(_ key: ReplicaKey, adoptAllowed: Bool) -> Bool {
        if readyReplicas(of: key.partition).contains(where: { $0 != key.node }) { return true }
        return adoptAllowed && map.replicas(of: key.partition).contains(key.node) && fullestLiveReplica(of: key.partition) == key.node
    }

    /// Write targets: every live replica and incoming replica, complete or being filled.
    func writeTargets(of p: UInt32) -> [String] {
        map.writeSet(of: p).filter { isAlive($0) }
    }

    /// Records that a fill or adoption of `key` completed, at the matcher's state version `version` (0: a matcher
    /// that does not number its state).
    mutating func markFilled(_ key: ReplicaKey, version: UInt64) {
        ready.insert(key)
        filled[key] = (.now, version)
    }

    /// Whether a holdings report of `key`'s matcher read at state version `version` predates the last fill of `key`
    /// (so its "unsynced" is old news). Without versions on both sides (an older matcher), reports arriving within a
    /// second of the fill are taken to predate it.
    func predatesFill(_ key: ReplicaKey, version: UInt64, now: ContinuousClock.Instant) -> Bool {
        guard let f = filled[key] else { return false }
        if version > 0 && f.version > 0 { return version < f.version }
        return f.at.duration(to: now) < .seconds(1)
    }

    /// Takes a matcher's report of which partitions it holds completely, read at its state version `version`
    /// (``MatcherShardState/State/version``; 0 when the matcher does not number its reports).
    mutating func updateHoldings(_ node: String, _ holdings: [WirePartitionHolding], version: UInt64 = 0) {
        workers[node]?.holdings = Dictionary(holdings.map { ($0.partition, $0.templates) }, uniquingKeysWith: { a, _ in a })
        workers[node]?.subjectCounts = Dictionary(holdings.map { ($0.partition, $0.subjects) }, uniquingKeysWith: { a, _ in a })
        let now = ContinuousClock.now
        if var w = workers[node] {
            var idle: [UInt32: ContinuousClock.Instant] = [:]
            for h in holdings where !h.synced && !h.filling { idle[h.partition] = w.idleUnsynced[h.partition] ?? now }
            w.idleUnsynced = idle
            w.fillingReported = Set(holdings.filter(\.filling).map(\.partition))
            w.incomplete = Set(holdings.filter(\.incomplete).map(\.partition))
            w.reports += 1
            workers[node] = w
        }
        // The holder's marks replace what it reported before (they only grow, or vanish with a dropped partition);
        // marks made good are merged (this coordinator may know of a fill the copy has not reported yet).
        var marks: [UInt32: [String: UInt64]] = [:]
        for h in holdings where !h.staleReplicas.isEmpty {
            marks[h.partition] = Dictionary(h.staleReplicas.map { ($0.nodeID, $0.sequence) }, uniquingKeysWith: max)
        }
        staleMarks[node] = marks.isEmpty ? nil : marks
        for h in holdings where !h.covered.isEmpty {
            cover(ReplicaKey(node, h.partition), Dictionary(h.covered.map { ($0.nodeID, $0.sequence) }, uniquingKeysWith: max))
        }
        ready = ready.filter { $0.node != node || predatesFill($0, version: version, now: now) }
        for h in holdings where h.synced { ready.insert(ReplicaKey(node, h.partition)) }
    }

    mutating func beginWrite(_ p: UInt32, inserted: [UInt64], deletedSubject: String?) -> UInt64 {
        nextWriteID += 1
        writesInFlight[p, default: []].insert(nextWriteID)
        for key in windows.keys where key.partition == p {
            windows[key]!.insertedIDs.formUnion(inserted)
            if let s = deletedSubject { windows[key]!.deletedSubjects.insert(s) }
        }
        return nextWriteID
    }

    mutating func endWrite(_ p: UInt32, _ id: UInt64) { writesInFlight[p]?.remove(id) }

    mutating func openWindow(_ key: ReplicaKey) {
        var w = SyncWindow()
        w.writesBefore = writesInFlight[key.partition] ?? []
        windows[key] = w
    }

    func earlierWritesDone(_ key: ReplicaKey) -> Bool {
        guard let w = windows[key] else { return true }
        return w.writesBefore.isDisjoint(with: writesInFlight[key.partition] ?? [])
    }

    /// Marks `node` dead; returns whether it was alive.
    mutating func markDead(_ node: String) -> Bool {
        guard var w = workers[node], w.alive else { return false }
        w.alive = false
        workers[node] = w
        ready = ready.filter { $0.node != node }
        filled = filled.filter { $0.key.node != node }
        windows = windows.filter { $0.key.node != node }
        mustFill = mustFill.filter { $0.node != node }
        return true
    }

    func liveWorkers(role: WireNodeRole) -> [WorkerInfo] {
        workers.values.filter { $0.alive && $0.role == role }.sorted { $0.nodeID < $1.nodeID }
    }
}
