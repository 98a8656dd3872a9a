import Foundation
import FacetTransport
import FacetWire

/// The coordinator's jobs: what was started, its state and progress, and cancellation requests.
///
/// Pure bookkeeping (no I/O) behind one lock; the work itself runs in tasks of ``Coordinator`` (see
/// `Coordinator+Jobs.swift`) that report here and poll ``isCancelled(_:)`` between steps. Jobs live in the
/// memory of the coordinator that runs them (a restarted coordinator forgets its job history; what a job
/// produced — a classifier version, templates — is durable elsewhere). At most `retainFinished` finished
/// jobs are kept, oldest dropped first.
public final class JobRegistry: Sendable {
    struct Entry: Sendable {
        var job: WireJob
        var sequence: UInt64
        var cancelRequested = false
    }

    let prefix: String
    let retainFinished: Int
    private let entries = LockedValue<[String: Entry]>([:])
    private let counter = LockedValue<UInt64>(0)

    /// - Parameter prefix: put in every job id (the coordinator's node id), so ids of two coordinators differ.
    public init(prefix: String, retainFinished: Int = 200) {
        self.prefix = prefix
        self.retainFinished = retainFinished
    }

    /// Registers a new job in state PENDING.
    public func create(kind: WireJobKind, parameters: [String: String] = [:], now: Int64 = wireNowUnixMilliseconds()) -> WireJob {
        let n = counter.withLock { $0 += 1; return $0 }
        var job = WireJob()
        job.jobID = "\(prefix)-\(Self.kindName(kind))-\(String(now, radix: 36))-\(n)"
        job.kind = kind
        job.state = .pending
        job.createdUnixMs = now
        job.parameters = parameters
        job.progress.jobID = job.jobID
        job.progress.phase = "pending"
        job.progress.updatedUnixMs = now
        entries.withLock { e in
            e[job.jobID] = Entry(job: job, sequence: n)
            prune(&e)
        }
        return job
    }

    static func kindName(_ kind: WireJobKind) -> String {
        switch kind {
        case .retrain: return "retrain"
        case .reenrol: return "reenrol"
        case .rebalance: return "rebalance"
        case .retention: return "retention"
        case .purgeModel: return "purge-model"
        default: return "job"
        }
    }

    static func isFinished(_ state: WireJobState) -> Bool {
        state == .succeeded || state == .failed || state == .cancelled
    }

    private func prune(_ e: inout [String: Entry]) {
        let finished = e.values.filter { Self.isFinished($0.job.state) }.sorted { $0.sequence < $1.sequence }
        guard finished.count > retainFinished else { return }
        for old in finished.prefix(finished.count - retainFinished) { e.removeValue(forKey: old.job.jobID) }
    }

    public func get(_ id: String) -> WireJob? { entries.withLock { $0[id]?.job } }

    /// Applies `change` to a job that is not finished yet; returns the job afterwards (nil if unknown).
    /// A finished job is never changed again (a cancelled job stays cancelled even if its task completes).
    @discardableResult
    public func update(_ id: String, _ change: (inout WireJob) -> Void) -> WireJob? {
        entries.withLock { e in
            guard var entry = e[id] else { return nil }
            guard !Self.isFinished(entry.job.state) else { return entry.job }
            change(&entry.job)
            entry.job.progress.updatedUnixMs = wireNowUnixMilliseconds()
            if Self.isFinished(entry.job.state) && entry.job.finishedUnixMs == 0 {
                entry.job.finishedUnixMs = wireNowUnixMilliseconds()
            }
            e[id] = entry
            if Self.isFinished(entry.job.state) { prune(&e) }
            return entry.job
        }
    }

    /// Progress report: phase, done/total and counters.
    public func progress(_ id: String, phase: String? = nil, done: UInt64? = nil, total: UInt64? = nil,
                         failed: UInt64? = nil, skipped: UInt64? = nil) {
        update(id) { j in
            if let phase { j.progress.phase = phase }
            if let done { j.progress.done = done }
            if let total { j.progress.total = total }
            if let failed { j.progress.failed = failed }
            if let skipped { j.progress.skipped = skipped }
        }
    }

    public func markRunning(_ id: String) {
        update(id) { j in
            j.state = .running
            j.startedUnixMs = wireNowUnixMilliseconds()
        }
    }

    public func finish(_ id: String, state: WireJobState, result: String = "", error: String = "") {
        update(id) { j in
            j.state = state
            j.result = result
            j.error = error
            j.progress.phase = state == .succeeded ? "done" : (state == .cancelled ? "cancelled" : "failed")
        }
    }

    /// Requests cancellation. A pending or running job becomes CANCELLED at once (its task notices at its next
    /// step and stops without publishing anything); a finished job is returned unchanged.
    public func cancel(_ id: String) throws(FacetError) -> WireJob {
        let job = entries.withLock { e -> WireJob? in
            guard var entry = e[id] else { return nil }
            if !Self.isFinished(entry.job.state) {
                entry.cancelRequested = true
                entry.job.state = .cancelled
                entry.job.progress.phase = "cancelled"
                entry.job.finishedUnixMs = wireNowUnixMilliseconds()
                entry.job.progress.updatedUnixMs = entry.job.finishedUnixMs
                e[id] = entry
            }
            return entry.job
        }
        guard let job else { throw FacetError(.notFound, "no job \(id)", field: "job_id") }
        return job
    }

    public func isCancelled(_ id: String) -> Bool { entries.withLock { $0[id]?.cancelRequested ?? true } }

    /// Jobs of `kind`/`state` (unspecified = any), newest first, in pages of `pageSize` (0 = 100, at most 1000);
    /// the page token is the offset of the next page.
    public func list(kind: WireJobKind = .unspecified, state: WireJobState = .unspecified, pageSize: UInt32 = 0,
                     pageToken: String = "") throws(FacetError) -> WireListJobsReply {
        let size = Int(pageSize == 0 ? 100 : min(pageSize, 1000))
        let offset: Int
        if pageToken.isEmpty { offset = 0 } else {
            guard let o = Int(pageToken), o >= 0 else { throw FacetError(.invalidArgument, "bad page token", field: "page_token") }
            offset = o
        }
        let all = entries.withLock { $0.values }
            .filter { (kind == .unspecified || $0.job.kind == kind) && (state == .unspecified || $0.job.state == state) }
            .sorted { $0.sequence > $1.sequence }
        var reply = WireListJobsReply()
        reply.jobs = Array(all.dropFirst(offset).prefix(size).map(\.job))
        if offset + size < all.count { reply.nextPageToken = String(offset + size) }
        return reply
    }

    /// The first job of `kind` that is pending or running (oldest first).
    func active(kind: WireJobKind) -> [WireJob] {
        entries.withLock { $0.values }.filter { $0.job.kind == kind && !Self.isFinished($0.job.state) }
            .sorted { $0.sequence < $1.sequence }.map(\.job)
    }
}
