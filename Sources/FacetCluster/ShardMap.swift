import FacetWire

/// The versioned assignment of partitions to matchers (the cluster's only shared state).
///
/// Every partition has `replicas` (serve reads, take writes) and `incoming` replicas (being filled: take writes,
/// serve no reads). Each change makes a new `epoch`; maps are ordered by (epoch, changedBy) so that two coordinators
/// that raced to the same epoch still converge on one map. The first map comes from the configuration
/// (``ShardLayout``, epoch 1); later ones are stored by every matcher (`DATA/shard-map.pb`) and by the coordinator's
/// optional `shardMapFile`, and a coordinator adopts the newest map any matcher reports.
///
/// A value type without I/O; the planning functions (``planned(adding:)``, ``planned(removing:)``,
/// ``planned(rebalancing:)``) are unit-tested directly.
public struct ClusterShardMap: Sendable, Hashable {
    public var epoch: UInt64
    public let partitionCount: UInt32
    public let replicationFactor: Int
    /// Matchers in the map (holding partitions or about to), in the order they were added.
    public var matchers: [String]
    /// Per partition: read/write replicas, primary first.
    public var replicas: [[String]]
    /// Per partition: replicas being filled.
    public var incoming: [[String]]
    public var changedBy: String
    public var updatedUnixMs: Int64

    public init(layout: ShardLayout, changedBy: String = "configuration") {
        epoch = 1
        partitionCount = layout.partitionCount
        replicationFactor = layout.replicationFactor
        matchers = layout.matchers
        replicas = layout.allPartitions.map { layout.replicas(of: $0) }
        incoming = Array(repeating: [], count: Int(layout.partitionCount))
        self.changedBy = changedBy
        updatedUnixMs = 0
    }

    public enum MapError: Error, Sendable, Hashable, CustomStringConvertible {
        case malformed(String)
        case unknownMatcher(String)
        case alreadyMember(String)
        case tooFewMatchers(needed: Int, left: Int)
        case changeInProgress
        public var description: String {
            switch self {
            case .malformed(let m): return "malformed shard map: \(m)"
            case .unknownMatcher(let m): return "matcher \(m) is not in the shard map"
            case .alreadyMember(let m): return "matcher \(m) is already in the shard map"
            case .tooFewMatchers(let n, let left): return "\(n) replicas per partition need \(n) matchers; \(left) would be left"
            case .changeInProgress: return "partitions are still moving (a change is in progress)"
            }
        }
    }

    /// Reads a map from the wire, checking that it is complete and consistent.
    public init(wire w: WireShardMap) throws(MapError) {
        guard w.partitionCount > 0, w.replicationFactor > 0 else { throw .malformed("no partitions or no replication factor") }
        guard w.assignments.count == Int(w.partitionCount) else {
            throw .malformed("\(w.assignments.count) assignments for \(w.partitionCount) partitions")
        }
        var replicas = Array(repeating: [String](), count: Int(w.partitionCount))
        var incoming = replicas
        var seen = Set<UInt32>()
        for a in w.assignments {
            guard a.partition < w.partitionCount, seen.insert(a.partition).inserted else { throw .malformed("partition \(a.partition) repeated or out of range") }
            guard !a.replicas.isEmpty, Set(a.replicas + a.incoming).count == a.replicas.count + a.incoming.count else {
                throw .malformed("partition \(a.partition) has no replica or repeats one")
            }
            replicas[Int(a.partition)] = a.replicas
            incoming[Int(a.partition)] = a.incoming
        }
        epoch = w.epoch
        partitionCount = w.partitionCount
        replicationFactor = Int(w.replicationFactor)
        matchers = w.matchers.map(\.nodeID)
        let named = Set(matchers)
        for r in replicas + incoming { for m in r where !named.contains(m) { throw .malformed("replica \(m) is not among the matchers") } }
        self.replicas = replicas
        self.incoming = incoming
        changedBy = w.changedBy
        updatedUnixMs = w.updatedUnixMs
    }

    public var wire: WireShardMap {
        var m = WireShardMap()
        m.epoch = epoch
        m.partitionCount = partitionCount
        m.replicationFactor = UInt32(replicationFactor)
        m.assignments = allPartitions.map { p in
            var a = WirePartitionAssignment()
            a.partition = p
            a.replicas = replicas[Int(p)]
            a.incoming = incoming[Int(p)]
            return a
        }
        m.matchers = matchers.map { var e = WireMatcherEndpoint(); e.nodeID = $0; return e }
        m.updatedUnixMs = updatedUnixMs
        m.changedBy = changedBy
        return m
    }

    /// Whether `self` supersedes `other` (higher epoch; equal epochs ordered by the coordinator that made them).
    public func isNewer(than other: ClusterShardMap) -> Bool {
        epoch != other.epoch ? epoch > other.epoch : changedBy > other.changedBy
    }

    public var allPartitions: [UInt32] { Array(0..<partitionCount) }

    public func partition(of subject: String) -> UInt32 {
        WirePartitioning.partition(of: subject, partitionCount: partitionCount)
    }

    public func replicas(of p: UInt32) -> [String] { replicas[Int(p)] }
    public func incoming(of p: UInt32) -> [String] { incoming[Int(p)] }
    /// Replicas and incoming replicas: where writes go.
    public func writeSet(of p: UInt32) -> [String] { replicas[Int(p)] + incoming[Int(p)] }

    /// Partitions `matcher` serves reads for, ascending.
    public func partitions(of matcher: String) -> [UInt32] { allPartitions.filter { replicas[Int($0)].contains(matcher) } }
    /// Partitions `matcher` holds or is being filled with, ascending.
    public func assigned(to matcher: String) -> [UInt32] { allPartitions.filter { writeSet(of: $0).contains(matcher) } }

    public var isSettled: Bool { incoming.allSatisfy(\.isEmpty) }

    /// Replica counts per matcher (read replicas only).
    public var loads: [String: Int] {
        var l = Dictionary(uniqueKeysWithValues: matchers.map { ($0, 0) })
        for r in replicas { for m in r { l[m, default: 0] += 1 } }
        return l
    }

    /// Same assignment of read replicas (order within a partition ignored), whatever the epoch.
    public func sameReplicas(as other: ClusterShardMap) -> Bool {
        partitionCount == other.partitionCount && zip(replicas, other.replicas).allSatisfy { Set($0) == Set($1) }
    }

    // MARK: planning

    /// One partition replica to move.
    public struct Move: Sendable, Hashable, CustomStringConvertible {
        public var partition: UInt32
        public var from: String
        public var to: String
        public var description: String { "p\(partition): \(from) → \(to)" }
    }

    /// The settled map after adding `matcher` (empty at first) and rebalancing, and the moves to get there.
    public func planned(adding matcher: String) throws(MapError) -> (target: ClusterShardMap, moves: [Move]) {
        guard isSettled else { throw .changeInProgress }
        guard !matchers.contains(matcher) else { throw .alreadyMember(matcher) }
        var t = self
        t.matchers.append(matcher)
        t.balance()
        return (t, moves(to: t))
    }

    /// The settled map after moving every replica off `matcher` (to the least loaded matchers) and forgetting it.
    public func planned(removing matcher: String) throws(MapError) -> (target: ClusterShardMap, moves: [Move]) {
        guard isSettled else { throw .changeInProgress }
        guard matchers.contains(matcher) else { throw .unknownMatcher(matcher) }
        guard matchers.count - 1 >= replicationFactor else { throw .tooFewMatchers(needed: replicationFactor, left: matchers.count - 1) }
        var t = self
        t.matchers.removeAll { $0 == matcher }
        var load = t.loads
        for p in allPartitions {
            guard let i = t.replicas[Int(p)].firstIndex(of: matcher) else { continue }
            let holders = Set(t.replicas[Int(p)])
            let to = t.matchers.filter { !holders.contains($0) }.min { (load[$0]!, $0) < (load[$1]!, $1) }!
            t.replicas[Int(p)][i] = to
            load[to]! += 1
        }
        t.balance()
        return (t, moves(to: t))
    }

    /// The settled map with replicas evened out over `matchers` (every matcher within one of the mean).
    public func planned(rebalancing: Void = ()) throws(MapError) -> (target: ClusterShardMap, moves: [Move]) {
        guard isSettled else { throw .changeInProgress }
        var t = self
        t.balance()
        return (t, moves(to: t))
    }

    /// Moves replicas from the most to the least loaded matcher until loads differ by at most one.
    /// Deterministic: ties go to the matcher whose id sorts first, and the lowest partition moves first.
    mutating func balance() {
        var load = loads
        while true {
            let order = matchers.sorted { (load[$0]!, $0) < (load[$1]!, $1) }
            guard let low = order.first, let high = order.last, load[high]! - load[low]! > 1 else { return }
            // The lowest partition on `high` that some under-loaded matcher (lightest first) does not hold yet.
            var moved = false
            for to in order where load[high]! - load[to]! > 1 {
                if let p = allPartitions.first(where: { replicas[Int($0)].contains(high) && !replicas[Int($0)].contains(to) }) {
                    let i = replicas[Int(p)].firstIndex(of: high)!
                    replicas[Int(p)][i] = to
                    load[high]! -= 1
                    load[to]! += 1
                    moved = true
                    break
                }
            }
            if !moved { return }
        }
    }

    /// The replica moves (per partition, removed replicas paired with added ones) from `self` to `target`.
    public func moves(to target: ClusterShardMap) -> [Move] {
        var out: [Move] = []
        for p in allPartitions {
            let old = replicas[Int(p)], new = target.replicas[Int(p)]
            let removed = old.filter { !new.contains($0) }, added = new.filter { !old.contains($0) }
            for (from, to) in zip(removed, added) { out.append(Move(partition: p, from: from, to: to)) }
        }
        return out
    }
}
