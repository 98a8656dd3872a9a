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
    /// Replicas that serve reads (their partition copy is complete).
    var ready: Set<ReplicaKey> = []
    var windows: [ReplicaKey: SyncWindow] = [:]
    var writesInFlight: [UInt32: Set<UInt64>] = [:]
    var nextWriteID: UInt64 = 0
    var rotation = 0

    func isAlive(_ node: String) -> Bool { workers[node]?.alive ?? false }

    func readyReplicas(of p: UInt32, layout: ShardLayout) -> [String] {
        layout.replicas(of: p).filter { isAlive($0) && ready.contains(ReplicaKey($0, p)) }
    }

    /// Write targets: every live replica, ready or being filled.
    func writeTargets(of p: UInt32, layout: ShardLayout) -> [String] {
        layout.replicas(of: p).filter { isAlive($0) }
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
        windows = windows.filter { $0.key.node != node }
        return true
    }

    func liveWorkers(role: WireNodeRole) -> [WorkerInfo] {
        workers.values.filter { $0.alive && $0.role == role }.sorted { $0.nodeID < $1.nodeID }
    }
}
