import Foundation
import Logging
import FacetTransport

/// What else must forget a subject once its templates are deleted from every replica: the seam through which the
/// classifier (SVM) retraining job is started after an erasure (`DeleteSubjectReply.retrain_job_id`).
///
/// The templates, the index entries, the snapshot copies and the subject's data key are removed by the matchers
/// before the delete is acknowledged (see ``FacetStore/Partition``); the coordinator then calls every registered
/// hook, within the delete request's deadline. The SVM retraining job registers itself here
/// (`coordinator.erasureHooks.register { … }`); until it does, no classifier exists that could remember the subject.
public final class ErasureHooks: Sendable {
    public typealias Hook = @Sendable (_ subject: String, _ collection: String) async -> String?
    private let hooks = LockedValue<[Hook]>([])

    public init() {}

    /// Adds a hook; it returns the id of the job it started (e.g. a retraining job), or nil.
    public func register(_ hook: @escaping Hook) { hooks.withLock { $0.append(hook) } }

    public var isEmpty: Bool { hooks.withLock { $0.isEmpty } }

    /// Runs every hook; returns the job ids they started.
    func subjectErased(_ subject: String, collection: String, logger: Logger) async -> [String] {
        var jobs: [String] = []
        for hook in hooks.withLock({ $0 }) {
            if let job = await hook(subject, collection) { jobs.append(job) }
        }
        if jobs.isEmpty { logger.debug("no classifier to retrain after the erasure") }
        return jobs
    }
}
