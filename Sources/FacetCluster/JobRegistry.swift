import Foundation
import FacetTransport
import FacetWire

/// The coordinator's jobs: what was started, its state and progress, and cancellation requests.
///
/// Bookkeeping behind one lock; the work itself runs in tasks of ``Coordinator`` (see `Coordinator+Jobs.swift`)
/// that report here and poll ``isCancelled(_:)`` between steps. At most `retainFinished` finished jobs are kept,
/// oldest dropped first.
///
/// With a `file` (the coordinator's state directory, one file per coordinator node id) the history survives a
/// restart: the file (a `ListJobsReply`, oldest first; written to a temporary file and renamed) is rewritten when a
/// job is created or changes state, and at most every `progressSaveInterval` for progress alone. A job that was
/// pending or running when the process stopped cannot be resumed (its task is gone): on loading it becomes FAILED
/// with the reason and its last progress, so `facet jobs show ID` still answers after a crash. What a job produced
/// (a classifier version, deleted templates) is durable elsewhere either way.
public final class JobRegistry: Sendable {
    struct Entry: Sendable {
        var job: WireJob
        var sequence: UInt64
        var cancelRequested = false
    }

    let prefix: String
    let retainFinished: Int
    let file: String?
    let progressSaveInterval: Int64 = 2_000
    private let entries = LockedValue<[String: Entry]>([:])
    private let counter = LockedValue<UInt64>(0)
    /// Serialises writes of the file (each writes the newest snapshot) and remembers the last one.
    private let saving = LockedValue<(lastUnixMs: Int64, error: String?)>((0, nil))

    /// - Parameters:
    ///   - prefix: put in every job id (the coordinator's node id), so ids of two coordinators differ.
    ///   - file: where the history is kept (nil: memory only). An unreadable file is an error (nothing is overwritten).
    public init(prefix: String, retainFinished: Int = 200, file: String? = nil) throws {
        self.prefix = prefix
        self.retainFinished = retainFinished
        self.file = file
        guard let file, let data = FileManager.default.contents(atPath: file) else { return }
        let stored: WireListJobsReply
        do { stored = try WireListJobsReply(serializedBytes: data) } catch {
            throw FacetError(.internalError, "cannot read the job history \(file): \(error)")
        }
        let now = wireNowUnixMilliseconds()
        var loaded: [String: Entry] = [:]
        for (i, var job) in stored.jobs.enumerated() {
            if !Self.isFinished(job.state) {
                job.error = "the coordinator stopped while the job was \(job.state == .running ? "running" : "waiting") (\(job.progress.phase)); start it again"
                job.state = .failed
                job.finishedUnixMs = now
                job.progress.phase = "failed"
                job.progress.updatedUnixMs = now
            }
            loaded[job.jobID] = Entry(job: job, sequence: UInt64(i + 1))
        }
        entries.withLock { $0 = loaded }
        counter.withLock { $0 = UInt64(stored.jobs.count) }
    }

    /// Memory only.
    public convenience init(prefix: String, retainFinished: Int = 200) {
        try! self.init(prefix: prefix, retainFinished: retainFinished, file: nil)   // no file: cannot throw
    }

    /// The last failure to write the history file (nil when the last write worked).
    public var saveError: String? { saving.withLock { $0.error } }

    /// Writes the history (oldest first) unless `onlyIfDue` and the last write is recent.
    private func save(onlyIfDue: Bool = false) {
        guard let file else { return }
        saving.withLock { s in
            let now = wireNowUnixMilliseconds()
            if onlyIfDue && now - s.lastUnixMs < progressSaveInterval { return }
            var reply = WireListJobsReply()
            reply.jobs = entries.withLock { $0.values.sorted { $0.sequence < $1.sequence }.map(\.job) }
            do {
                try reply.serializedData().write(to: URL(fileURLWithPath: file), options: .atomic)
                s = (now, nil)
            } catch {
                s.error = "cannot write the job history \(file): \(error)"
            }
        }
    }

    /// Registers a new job in state PENDING.
    public func create(kind: WireJobKind, parameters: [String: String] = [:], now: Int64 = wireNowUnixMilliseconds()) -> WireJob {
        switch create(kind: kind, parameters: parameters, now: now, alone: false, running: nil) {
        case .created(let job), .refused(let job): return job
        }
    }

    /// Registers a new job that starts at once: RUNNING in `phase`, `total` items (one write of the history file
    /// instead of one each for creating, starting and the first progress report).
    public func start(kind: WireJobKind, parameters: [String: String] = [:], phase: String, total: UInt64 = 0) -> WireJob {
        switch create(kind: kind, parameters: parameters, now: wireNowUnixMilliseconds(), alone: false, running: (phase, total)) {
        case .created(let job), .refused(let job): return job
        }
    }

    public enum Creation: Sendable {
        case created(WireJob)
        case refused(WireJob)   // the job of the same kind already pending or running
    }

    /// As ``start(kind:parameters:phase:total:)``, unless a job of `kind` is pending or running (checked and
    /// registered under one lock, so two requests at once cannot both start one).
    public func startAlone(kind: WireJobKind, parameters: [String: String] = [:], phase: String, total: UInt64 = 0) -> Creation {
        create(kind: kind, parameters: parameters, now: wireNowUnixMilliseconds(), alone: true, running: (phase, total))
    }

    private func create(kind: WireJobKind, parameters: [String: String], now: Int64, alone: Bool,
                        running start: (phase: String, total: UInt64)?) -> Creation {
        let n = counter.withLock { $0 += 1; return $0 }
        var job = WireJob()
        job.jobID = "\(prefix)-\(Self.kindName(kind))-\(String(now, radix: 36))-\(n)"
        job.kind = kind
        job.state = start == nil ? .pending : .running
        job.createdUnixMs = now
        if start != nil { job.startedUnixMs = now }
        job.parameters = parameters
        job.progress.jobID = job.jobID
        job.progress.phase = start?.phase ?? "pending"
        job.progress.total = start?.total ?? 0
        job.progress.updatedUnixMs = now
        let running = entries.withLock { e -> WireJob? in
            if alone, let other = e.values.filter({ $0.job.kind == kind && !Self.isFinished($0.job.state) }).min(by: { $0.sequence < $1.sequence }) {
                return other.job
            }
            e[job.jobID] = Entry(job: job, sequence: n)
            prune(&e)
            return nil
        }
        if let running { return .refused(running) }
        save()
        return .created(job)
    }

    public static func kindName(_ kind: WireJobKind) -> String {
        switch kind {
        case .retrain: return "retrain"
        case .reenrol: return "reenrol"
        case .rebalance: return "rebalance"
        case .retention: return "retention"
        case .purgeModel: return "purge-model"
        default: return "job"
        }
    }

    public static func stateName(_ state: WireJobState) -> String {
        switch state {
        case .pending: return "pending"
        case .running: return "running"
        case .succeeded: return "succeeded"
        case .failed: return "failed"
        case .cancelled: return "cancelled"
        default: return "unknown"
        }
    }

    /// Every job held, in no order (for metrics).
    func all() -> [WireJob] { entries.withLock { $0.values.map(\.job) } }

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
        let (job, stateChanged) = entries.withLock { e -> (WireJob?, Bool) in
            guard var entry = e[id] else { return (nil, false) }
            guard !Self.isFinished(entry.job.state) else { return (entry.job, false) }
            let before = entry.job.state
            change(&entry.job)
            entry.job.progress.updatedUnixMs = wireNowUnixMilliseconds()
            if Self.isFinished(entry.job.state) && entry.job.finishedUnixMs == 0 {
                entry.job.finishedUnixMs = wireNowUnixMilliseconds()
            }
            e[id] = entry
            if Self.isFinished(entry.job.state) { prune(&e) }
            return (entry.job, entry.job.state != before)
        }
        if job != nil { save(onlyIfDue: !stateChanged) }
        return job
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
        save()
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
