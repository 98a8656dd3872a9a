/// The state of one scatter-gather over partitions: which partitions have answered, which replicas were
/// tried, and what to ask next. A value type without I/O (the coordinator drives it), so the fail-over,
/// deadline and partial-result rules are unit-tested directly.
///
/// Rules: every partition is asked of one ready replica at a time; a replica that fails (error, timeout, died,
/// or says it does not hold the partition) is not asked again for that partition in this request; the next
/// untried ready replica is. When the deadline passes, or a partition has no untried ready replica left, the
/// partition is missing and the result is partial. Never waits for anything but the deadline.
public struct ScatterPlan: Sendable, Hashable {
    public private(set) var pending: Set<UInt32>
    public private(set) var answered: Set<UInt32> = []
    public private(set) var tried: [UInt32: Set<String>] = [:]
    /// Partitions given up on (no replica left).
    public private(set) var exhausted: Set<UInt32> = []
    private var rotation: Int

    public init(partitions: [UInt32], rotation: Int = 0) {
        pending = Set(partitions)
        self.rotation = rotation
    }

    /// Assigns each pending, not in-flight partition to an untried replica among `ready(p)`, grouped by node.
    /// Partitions with no untried replica become exhausted. `inFlight` partitions are left alone.
    public mutating func nextRound(ready: (UInt32) -> [String], inFlight: Set<UInt32> = []) -> [String: [UInt32]] {
        var groups: [String: [UInt32]] = [:]
        for p in pending.sorted() where !inFlight.contains(p) {
            let candidates = ready(p).filter { !(tried[p]?.contains($0) ?? false) }
            guard !candidates.isEmpty else {
                pending.remove(p)
                exhausted.insert(p)
                continue
            }
            // Spread load: rotate the starting replica per request and per partition.
            let node = candidates[(rotation + Int(p)) % candidates.count]
            tried[p, default: []].insert(node)
            groups[node, default: []].append(p)
        }
        return groups
    }

    /// Records a node's answer: `searched` partitions are done; the others it was asked for stay pending.
    public mutating func succeeded(_ searched: [UInt32]) {
        for p in searched where pending.remove(p) != nil { answered.insert(p) }
    }

    /// The partitions still missing when the request ends (deadline or exhaustion).
    public var missing: [UInt32] { (pending.union(exhausted)).subtracting(answered).sorted() }
    public var isComplete: Bool { pending.isEmpty }
    public var isPartial: Bool { !missing.isEmpty }
}
