import Foundation
import Logging
import FacetTransport
import FacetWire

/// Purging a retired embedding model version (`facet purge-model VERSION`).
///
/// After a re-enrolment with a new model and the switch-over (`facet enroll-batch --model-version V --switch-over`),
/// the old version's templates still sit on every replica: queries no longer use them, and the classifier is
/// retrained on the new version, so all they still do is hold biometric data nobody needs. The purge job deletes
/// them partition by partition through the ordinary replicated delete (`PartitionDeleteRequest` with the template
/// ids: durable on the write policy's replicas before the job goes on, copies that are down marked stale and filled
/// later, fills in progress told not to bring the ids back). A subject left with no template at all is erased on
/// the matchers like any deleted subject (key shredded, index compacted and re-snapshotted). The active version
/// cannot be purged; one purge runs at a time per coordinator. A dry run only counts.
extension Coordinator {
    /// Template ids sent per delete (one replicated write each).
    static var purgeBatch: Int { 512 }

    func startPurgeModel(_ r: WireStartPurgeModelRequest, _ ctx: RequestContext) throws(FacetError) -> WireJob {
        let version = r.modelVersion
        guard !version.isEmpty, version.utf8.count <= 64 else {
            throw FacetError(.invalidArgument, "model_version must be 1-64 bytes", field: "model_version")
        }
        guard version != activeModelVersion else {
            throw FacetError(.failedPrecondition, "model version \(version) is the active one; switch to another first (facet switch-model)",
                             field: "model_version")
        }
        var parameters = ["model_version": version, "dry_run": "\(r.dryRun)"]
        if !r.reason.isEmpty { parameters["reason"] = r.reason }
        let job: WireJob
        switch jobs.registry.startAlone(kind: .purgeModel, parameters: parameters, phase: r.dryRun ? "counting" : "purging",
                                        total: UInt64(layout.allPartitions.count)) {
        case .created(let created): job = created
        case .refused(let running):
            throw FacetError(.failedPrecondition, "a purge is already running: \(running.jobID)", retryAfterMilliseconds: 1000)
        }
        ctx.logger.info("purge of a model version queued", metadata: ["job.id": "\(job.jobID)", "model.version": "\(version)",
                                                                      "dry_run": "\(r.dryRun)"])
        Task { await self.runPurge(job.jobID, version: version, dryRun: r.dryRun) }
        return job
    }

    /// What a purge found and did.
    struct PurgeCount: Sendable, Equatable {
        var templates = 0     // of the version, found
        var deleted = 0       // deleted (0 in a dry run)
        var subjects = 0      // with a template of the version
        var emptied = 0       // of those, left with no template of any version (erased)
    }

    private func runPurge(_ id: String, version: String, dryRun: Bool) async {
        let registry = jobs.registry   // the job was registered running, in `phase`, with the partition count as total
        var log = logger
        log[metadataKey: "job.id"] = "\(id)"
        let phase = dryRun ? "counting" : "purging"
        let partitions = layout.allPartitions
        var count = PurgeCount()
        do throws(FacetError) {
            for (i, p) in partitions.enumerated() {
                let doomed = try await readPartition(id, p, phase: phase) { req in
                    req.idsOnly = true
                    req.modelVersion = version
                }
                if !doomed.isEmpty {
                    // The subjects left with nothing: those whose every template is of the version.
                    let all = try await readPartition(id, p, phase: phase) { $0.idsOnly = true }
                    let doomedIDs = Set(doomed.map(\.templateID))
                    let kept = Set(all.lazy.filter { !doomedIDs.contains($0.templateID) }.map(\.subjectID))
                    let touched = Set(doomed.map(\.subjectID))
                    count.templates += doomed.count
                    count.subjects += touched.count
                    count.emptied += touched.subtracting(kept).count
                    if !dryRun {
                        let ids = doomed.map(\.templateID).sorted()
                        for start in stride(from: 0, to: ids.count, by: Self.purgeBatch) {
                            count.deleted += try await purgeDelete(id, p, Array(ids[start..<min(start + Self.purgeBatch, ids.count)]))
                        }
                    }
                }
                registry.progress(id, phase: phase, done: UInt64(i + 1))
            }
        } catch {
            if error.code == .cancelled || registry.isCancelled(id) {
                registry.finish(id, state: .cancelled, result: Self.purgeSummary(count, version: version, dryRun: dryRun))
                log.info("purge cancelled", metadata: ["deleted": "\(count.deleted)"])
            } else {
                registry.finish(id, state: .failed, result: Self.purgeSummary(count, version: version, dryRun: dryRun), error: "\(error)")
                log.warning("purge failed", metadata: ["error": "\(error)", "deleted": "\(count.deleted)"])
            }
            audit?.recordPurge(job: id, version: version, dryRun: dryRun, count: count, outcome: "\(error.code)")
            return
        }
        let summary = Self.purgeSummary(count, version: version, dryRun: dryRun)
        registry.finish(id, state: .succeeded, result: summary)
        audit?.recordPurge(job: id, version: version, dryRun: dryRun, count: count, outcome: "ok")
        log.info("purge done", metadata: ["model.version": "\(version)", "dry_run": "\(dryRun)", "templates": "\(count.templates)",
                                          "deleted": "\(count.deleted)", "subjects": "\(count.subjects)", "emptied": "\(count.emptied)"])
    }

    /// One replicated delete of `ids` in partition `p`; retried while the partition cannot take writes for now
    /// (a fill, a matcher coming back: errors with a retry hint, UNAVAILABLE), up to `jobWaitMilliseconds`.
    /// Deleting is idempotent, so a retry after a partial write is safe. Returns the number of templates deleted.
    private func purgeDelete(_ id: String, _ p: UInt32, _ ids: [UInt64]) async throws(FacetError) -> Int {
        var del = WirePartitionDeleteRequest()
        del.partition = p
        del.templateIds = ids
        let giveUp = ContinuousClock.now + jobs.jobWait
        var attempt = 0
        while true {
            if jobs.registry.isCancelled(id) { throw FacetError(.cancelled, "cancelled") }
            attempt += 1
            let ctx = RequestContext(id: "\(id)-p\(p)-\(ids.first ?? 0)-\(attempt)", deadline: nowMilliseconds() + 30_000, logger: logger)
            do throws(FacetError) {
                let (_, replies) = try await replicate(p, .partitionDeleteRequest(del), insertedIDs: [], deletedSubject: nil,
                                                       policy: .unspecified, ctx)
                return replies.map { if case .partitionDeleteReply(let x) = $0 { return Int(x.deleted) } else { return 0 } }.max() ?? 0
            } catch {
                let transient = error.retryAfterMilliseconds > 0 || error.code.isRetryable
                guard transient, ContinuousClock.now < giveUp else { throw error }
                jobs.registry.progress(id, phase: "purging (partition \(p): \(error.code), retrying)")
                try? await Task.sleep(for: .milliseconds(Int64(max(100, min(error.retryAfterMilliseconds, 2000)))))
            }
        }
    }

    static func purgeSummary(_ c: PurgeCount, version: String, dryRun: Bool) -> String {
        dryRun
            ? "dry run: \(c.templates) templates of model \(version) in \(c.subjects) subjects would be deleted; \(c.emptied) subjects would be left without templates (erased)"
            : "deleted \(c.deleted) of \(c.templates) templates of model \(version) (\(c.subjects) subjects; \(c.emptied) left without templates, erased)"
    }
}
