import Foundation
import Logging
import FacetStore

/// Retention periods per collection (`security.retentionSeconds`; the key "*" covers every collection not named).
public struct RetentionPolicy: Sendable, Hashable {
    public var periods: [String: Int64]   // milliseconds

    public init(seconds: [String: Int]) { periods = seconds.mapValues { Int64($0) * 1000 } }

    public var isEmpty: Bool { periods.isEmpty }

    /// The retention period of `collection` in milliseconds, or nil when it is kept indefinitely.
    public func period(of collection: String) -> Int64? { periods[collection] ?? periods["*"] }

    /// Whether a template created at `createdAt` (ms since the epoch) in `collection` has expired at `now`.
    public func expired(collection: String, createdAt: Int64, now: Int64) -> Bool {
        guard let p = period(of: collection) else { return false }
        return createdAt + p <= now
    }

    /// The expired templates of `partition` at `now`, grouped by subject (sorted, for deterministic deletion).
    public func expiredTemplates(in partition: Partition, now: Int64) throws -> [(SubjectID, [TemplateID])] {
        var out: [SubjectID: [TemplateID]] = [:]
        try partition.forEachTemplate { r in
            if expired(collection: r.collection, createdAt: r.createdAtMilliseconds, now: now) { out[r.subject, default: []].append(r.id) }
            return true
        }
        return out.sorted { $0.key < $1.key }
    }
}

/// The periodic retention job of a matcher: every interval, deletes the templates whose collection's retention
/// period has passed (on every partition the matcher holds; each replica applies the same rule to the same
/// `created_at`, so replicas converge). A subject left without templates is erased (its key shredded, the index
/// compacted and re-snapshotted, see ``Partition``). Deletions are written to the matcher's audit trail.
struct RetentionJob: Sendable {
    let matcher: MatcherNode
    let policy: RetentionPolicy
    let interval: Duration

    init(matcher: MatcherNode, settings: SecurityConfiguration) {
        self.matcher = matcher
        policy = RetentionPolicy(seconds: settings.retentionSeconds ?? [:])
        interval = .milliseconds(Int64((settings.retentionIntervalSeconds ?? 60) * 1000))
    }

    func run() async {
        guard !policy.isEmpty else { return }
        matcher.logger.info("retention job running", metadata: ["interval": "\(interval)", "periods.ms": "\(policy.periods)"])
        while !Task.isCancelled {
            await sweep()
            try? await Task.sleep(for: interval)
        }
    }

    /// One pass over every partition; returns the number of templates deleted.
    @discardableResult
    func sweep() async -> Int {
        let parts = matcher.partitions.withLock { $0 }.sorted { $0.key < $1.key }
        var total = 0
        for (p, part) in parts {
            let policy = self.policy, node = matcher.nodeID
            let result: Result<[(SubjectID, Int)], any Error> = await matcher.serialWrite {
                Result {
                    let now = nowMilliseconds()
                    var deleted: [(SubjectID, Int)] = []
                    for (subject, ids) in try policy.expiredTemplates(in: part, now: now) {
                        deleted.append((subject, try part.delete(ids).count))
                    }
                    return deleted
                }
            }
            switch result {
            case .success(let deleted):
                for (subject, n) in deleted where n > 0 {
                    total += n
                    matcher.audit?.recordRetention(subject: subject.rawValue, partition: p, templates: n, node: node)
                }
                if !deleted.isEmpty {
                    matcher.logger.info("retention deleted expired templates", metadata: [
                        "partition": "\(p)", "subjects": "\(deleted.count)", "templates": "\(deleted.map(\.1).reduce(0, +))"])
                }
            case .failure(let e):
                matcher.logger.error("retention pass failed", metadata: ["partition": "\(p)", "error": "\(e)"])
            }
        }
        return total
    }
}
