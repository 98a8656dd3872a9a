import FacetWire

/// The fixed assignment of partitions to matchers: `partitionCount` partitions (a subject's partition is
/// `fnv1a64(subject) mod partitionCount`, see ``WirePartitioning``), each held by `replicationFactor`
/// matchers chosen round-robin over the configured matcher list: partition `p` lives on matchers
/// `(p + j) mod N` for `j < R`. Round-robin gives every matcher the same number of partitions and
/// guarantees that the replicas of one partition are distinct matchers.
///
/// A value type without I/O, unit-tested directly.
public struct ShardLayout: Sendable, Hashable {
    public let partitionCount: UInt32
    public let replicationFactor: Int
    public let matchers: [String]

    public enum LayoutError: Error, Sendable, Hashable, CustomStringConvertible {
        case noPartitions
        case noMatchers
        case duplicateMatcher(String)
        case replicationFactor(Int, matchers: Int)
        public var description: String {
            switch self {
            case .noPartitions: return "the partition count must be positive"
            case .noMatchers: return "the shard map needs at least one matcher"
            case .duplicateMatcher(let m): return "matcher \(m) is listed twice"
            case .replicationFactor(let r, let n): return "replication factor \(r) needs 1...\(n) (the number of matchers)"
            }
        }
    }

    public init(partitionCount: UInt32, replicationFactor: Int, matchers: [String]) throws(LayoutError) {
        guard partitionCount > 0 else { throw .noPartitions }
        guard !matchers.isEmpty else { throw .noMatchers }
        var seen = Set<String>()
        for m in matchers where !seen.insert(m).inserted { throw .duplicateMatcher(m) }
        guard replicationFactor >= 1, replicationFactor <= matchers.count else {
            throw .replicationFactor(replicationFactor, matchers: matchers.count)
        }
        self.partitionCount = partitionCount
        self.replicationFactor = replicationFactor
        self.matchers = matchers
    }

    public func partition(of subject: String) -> UInt32 {
        WirePartitioning.partition(of: subject, partitionCount: partitionCount)
    }

    /// The matchers holding partition `p`, primary first.
    public func replicas(of p: UInt32) -> [String] {
        let n = matchers.count
        return (0..<replicationFactor).map { matchers[(Int(p) + $0) % n] }
    }

    /// The partitions `matcher` holds, ascending.
    public func partitions(of matcher: String) -> [UInt32] {
        (0..<partitionCount).filter { replicas(of: $0).contains(matcher) }
    }

    public var allPartitions: [UInt32] { Array(0..<partitionCount) }
}

/// How many replica acknowledgements a write needs.
public enum WriteQuorum {
    /// Acknowledgements required under `policy` when the partition has `replicationFactor` replicas of which
    /// `liveTargets` are live. The default (unspecified) policy is "every live replica, at least one".
    public static func required(policy: WireWritePolicy, replicationFactor: Int, liveTargets: Int) -> Int {
        switch policy {
        case .one: return 1
        case .quorum: return replicationFactor / 2 + 1
        case .all: return replicationFactor
        default: return max(1, liveTargets)
        }
    }

    /// Whether the copies that took a write (`durable`) must durably mark the copies that `missed` it stale: only when
    /// the write will be acknowledged (enough copies took it, one of them a complete copy) and some copy missed it that
    /// the first send did not already name (`skipped`). A write that will be refused marks nothing: its marks would
    /// be held only by copies lacking earlier writes (being filled), against what may be the one complete copy (it
    /// died during the write), and once that copy came back no copy could be read or filled from — the partition
    /// stayed without a ready replica for good (the soak's heal failures in sessions 7 and 8, docs/ops.md).
    public static func marksMissedCopies(durable: [String], complete: Set<String>, required: Int,
                                         missed: [String], skipped: [String]) -> Bool {
        durable.count >= required && durable.contains(where: complete.contains) && missed != skipped
    }
}
