import Dispatch
import Foundation
import Logging
import FacetClassify
import FacetStore
import FacetTransport
import FacetWire

/// The coordinator's job machinery: the registry, the durable models, and when to retrain.
public final class CoordinatorJobs: Sendable {
    public let registry: JobRegistry
    public let models: ModelStore
    /// Templates enrolled or deleted since the last retraining started (the automatic trigger counts these).
    let changes = LockedValue(0)
    /// Subjects deleted since the active classifier was trained: never returned as its decision, and removed for
    /// good by the retraining their deletion starts.
    let erased: LockedValue<Set<String>>
    let retrainAfter: Int
    let threshold: Float
    let jobWait: Duration
    /// Why the job history file could not be read at start (it was set aside), for the coordinator to log.
    let historyWarning: String?
    /// Training runs here, off the cooperative pool (LIBLINEAR is CPU-bound).
    let trainingQueue = DispatchQueue(label: "facet.coordinator.training")

    init(nodeID: String, configuration: NodeConfiguration) throws {
        models = try ModelStore(directory: configuration.stateDirectory)
        // The job history survives restarts where there is a state directory (one file per coordinator: two
        // coordinators may share the directory for the models, each keeps its own jobs).
        let fileName = "jobs-" + String(nodeID.map { $0.isLetter || $0.isNumber || "._-".contains($0) ? $0 : "_" }) + ".pb"
        let file = configuration.stateDirectory.map { "\($0)/\(fileName)" }
        do {
            registry = try JobRegistry(prefix: nodeID, file: file)
            historyWarning = nil
        } catch {
            // The history is not worth an outage: the unreadable file is kept aside and the coordinator starts without it.
            let aside = file! + ".unreadable-\(wireNowUnixMilliseconds())"
            _ = rename(file!, aside)
            historyWarning = "\(error); kept as \(aside), starting with an empty job history"
            registry = try JobRegistry(prefix: nodeID, file: file)
        }
        erased = LockedValue(models.loadErased())
        retrainAfter = configuration.retrainAfterChanges ?? 100
        threshold = configuration.classifierThreshold ?? 0.5
        jobWait = .milliseconds(configuration.jobWaitMilliseconds ?? 60_000)
    }
}

extension MatcherNode {
    /// `base` narrowed to templates of `version` when the partition holds other versions too (none needed
    /// otherwise, so a single-version gallery searches without a filter).
    static func versionFilter(_ base: TemplateFilter?, version: String, held: Set<String>) -> TemplateFilter? {
        guard !version.isEmpty, !held.isSubset(of: [version]) else { return base }
        var f = base ?? TemplateFilter()
        f.modelVersions = [version]
        return f
    }
}

extension TemplateIdentity {
    /// Template id of a template made by embedding model `modelVersion`: the same image re-enrolled with another
    /// model is another template (side by side). Version "1" (and "") keeps the original ids.
    public static func templateID(subject: String, collection: String, sourceDigest: [UInt8], modelVersion: String) -> UInt64 {
        guard !modelVersion.isEmpty, modelVersion != ModelStore.defaultEmbeddingModelVersion else {
            return templateID(subject: subject, collection: collection, sourceDigest: sourceDigest)
        }
        return templateID(subject: subject, collection: collection + "\u{0}model=" + modelVersion, sourceDigest: sourceDigest)
    }
}

extension Coordinator {
    var activeModelVersion: String { jobs.models.activeEmbeddingModelVersion }

    /// Every second: pick up models another coordinator (or this one before a restart) published.
    func jobsLoop() async {
        // The deletion hook (see ``subjectDeleted(_:templates:)``), run by every DeleteSubject after the replicas
        // deleted the templates.
        erasureHooks.register { [self] subject, _ in
            let id = subjectDeleted(subject, templates: 0)
            return id.isEmpty ? nil : id
        }
        if !jobs.erased.withLock({ $0.isEmpty }), jobs.models.activeClassifier != nil {
            // Deletions whose retraining did not finish before a restart.
            _ = startRetrain(WireStartRetrainRequest.with { $0.activate = true; $0.reason = "subjects deleted before a restart" }, automatic: true)
        }
        if let warning = jobs.historyWarning { logger.warning("job history unreadable", metadata: ["error": "\(warning)"]) }
        var reportedSaveError: String?
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(1))
            metrics.jobCounts(jobs.registry.all())
            let saveError = jobs.registry.saveError
            if saveError != reportedSaveError {
                if let saveError { logger.warning("job history not saved", metadata: ["error": "\(saveError)"]) }
                reportedSaveError = saveError
            }
            do {
                if try jobs.models.reload() {
                    logger.info("models reloaded", metadata: [
                        "classifier": "\(jobs.models.activeClassifier?.metadata.version ?? "none")",
                        "embedding.model": "\(jobs.models.activeEmbeddingModelVersion)"])
                }
            } catch {
                logger.warning("cannot reload models", metadata: ["error": "\(error)"])
            }
        }
    }

    func serveJobs(_ body: WireEnvelope.OneOf_Body, _ ctx: RequestContext) async throws(FacetError) -> WireEnvelope.OneOf_Body {
        switch body {
        case .startRetrainRequest(let r):
            return .job(startRetrain(r, automatic: false))
        case .getJobRequest(let r):
            guard let job = jobs.registry.get(r.jobID) else { throw FacetError(.notFound, "no job \(r.jobID)", field: "job_id") }
            return .job(job)
        case .cancelJobRequest(let r):
            if let running = jobs.registry.get(r.jobID), running.kind == .rebalance, !JobRegistry.isFinished(running.state) {
                throw FacetError(.failedPrecondition, "a shard change cannot be cancelled: it finishes, or is rolled back if it fails",
                                 field: "job_id")
            }
            let job = try jobs.registry.cancel(r.jobID)
            ctx.logger.info("job cancelled", metadata: ["job.id": "\(r.jobID)", "state": "\(job.state)"])
            return .job(job)
        case .listJobsRequest(let r):
            return .listJobsReply(try jobs.registry.list(kind: r.kind, state: r.state, pageSize: r.pageSize, pageToken: r.pageToken))
        case .setActiveModelRequest(let r):
            return .activeModel(try setActiveModel(r, ctx))
        case .startPurgeModelRequest(let r):
            return .job(try startPurgeModel(r, ctx))
        case .startReenrolRequest:
            throw FacetError(.failedPrecondition,
                             "re-enrolment runs client-side and resumably: facet enroll-batch DIR_OR_MANIFEST --model-version V (docs/jobs.md)")
        default:
            throw FacetError(.invalidArgument, "not a job request")
        }
    }

    // MARK: triggers

    /// Counts enrolled/deleted templates; starts a retraining when `retrainAfterChanges` is reached.
    func noteTemplatesChanged(_ n: Int) {
        guard n > 0 else { return }
        let due = jobs.changes.withLock { c -> Bool in
            c += n
            return jobs.retrainAfter > 0 && c >= jobs.retrainAfter
        }
        if due { _ = startRetrain(WireStartRetrainRequest.with { $0.activate = true; $0.reason = "templates changed" }, automatic: true) }
    }

    /// The deletion hook: a deleted subject is excluded from classifier decisions at once, and a retraining
    /// (joined with one already waiting) removes it from the model; older model files that know it are deleted
    /// when that retraining is published. Returns the retraining job id ("" when no classifier exists or is
    /// being trained).
    func subjectDeleted(_ subject: String, templates: Int) -> String {
        let erased = jobs.erased.withLock { s -> Set<String> in _ = s.insert(subject); return s }
        saveErased(erased)
        jobs.changes.withLock { $0 += templates }
        let training = !jobs.registry.active(kind: .retrain).isEmpty
        guard jobs.models.activeClassifier != nil || training else { return "" }
        return startRetrain(WireStartRetrainRequest.with { $0.activate = true; $0.reason = "subject deleted" }, automatic: true).jobID
    }

    private func saveErased(_ subjects: Set<String>) {
        do { try jobs.models.saveErased(subjects) } catch {
            logger.warning("cannot record erased subjects", metadata: ["error": "\(error)"])
        }
    }

    /// The classifier's decision for a query embedding made by `modelVersion` (nil when no classifier of that
    /// embedding model exists).
    func classifierDecision(_ query: [Float], modelVersion: String) -> WireClassifierDecision? {
        guard let c = jobs.models.activeClassifier, c.metadata.embeddingModelVersion == modelVersion else { return nil }
        return ClassifierTraining.decide(c, query: query, threshold: jobs.threshold, excluded: jobs.erased.withLock { $0 })
    }

    // MARK: retraining

    /// Starts (or, for automatic triggers, joins a waiting) retraining job. Jobs run one at a time, oldest first.
    func startRetrain(_ r: WireStartRetrainRequest, automatic: Bool) -> WireJob {
        if automatic, let waiting = jobs.registry.active(kind: .retrain).first(where: { $0.state == .pending }) {
            return waiting
        }
        var parameters: [String: String] = ["activate": "\(r.activate)", "balance_classes": "\(r.balanceClasses)",
                                            "cost": "\(r.cost > 0 ? Double(r.cost) : 1)", "automatic": "\(automatic)"]
        if !r.collections.isEmpty { parameters["collections"] = r.collections.joined(separator: ",") }
        if !r.reason.isEmpty { parameters["reason"] = r.reason }
        let job = jobs.registry.create(kind: .retrain, parameters: parameters)
        logger.info("retraining queued", metadata: ["job.id": "\(job.jobID)", "reason": "\(r.reason)"])
        Task { await self.runRetrain(job.jobID, r) }
        return job
    }

    private func runRetrain(_ id: String, _ r: WireStartRetrainRequest) async {
        let registry = jobs.registry
        // Wait for the turn (older retrainings first).
        while registry.active(kind: .retrain).first?.jobID != id {
            if registry.isCancelled(id) { return }
            try? await Task.sleep(for: .milliseconds(100))
        }
        if registry.isCancelled(id) { return }
        registry.markRunning(id)
        let changesAtStart = jobs.changes.withLock { $0 }
        let erasedAtStart = jobs.erased.withLock { $0 }
        let version = activeModelVersion
        let started = ContinuousClock.now
        var log = logger
        log[metadataKey: "job.id"] = "\(id)"
        do throws(FacetError) {
            let samples = try await gatherTemplates(id, collections: Set(r.collections), modelVersion: version)
            registry.progress(id, phase: "training", done: 0, total: UInt64(samples.count))
            let cost = r.cost > 0 ? Double(r.cost) : 1
            let balance = r.balanceClasses
            let outcome: Result<ClassifierTraining.Outcome, FacetError> = await offload(jobs.trainingQueue) {
                do throws(FacetError) {
                    return .success(try ClassifierTraining.train(samples, cost: cost, balanceClasses: balance,
                                                                  isCancelled: { registry.isCancelled(id) }))
                } catch { return .failure(error) }
            }
            let trained = try outcome.get()
            guard !registry.isCancelled(id) else { throw FacetError(.cancelled, "cancelled") }
            registry.progress(id, phase: "publishing", done: UInt64(samples.count))
            let meta = ClassifierMetadata(version: "", createdUnixMs: nowMilliseconds(), jobID: id, embeddingModelVersion: version,
                                          templates: samples.count, subjects: trained.subjects, collections: r.collections.sorted(),
                                          calibrated: trained.calibrated, cost: cost, balancedClasses: balance)
            let published: ActiveClassifier
            do { published = try jobs.models.publish(trained.model, metadata: meta, activate: r.activate) } catch {
                throw FacetError(.internalError, "cannot publish the classifier: \(error)")
            }
            if r.activate {
                // Subjects erased before the gathering are out of the new model: stop excluding them, and delete old
                // model files that still know them.
                saveErased(jobs.erased.withLock { s -> Set<String> in s.subtract(erasedAtStart); return s })
                let pruned = jobs.models.prune(keep: 3, erased: erasedAtStart)
                if !pruned.isEmpty { log.info("old classifier versions deleted", metadata: ["versions": "\(pruned)"]) }
            }
            registry.finish(id, state: .succeeded, result: published.metadata.version)
            log.info("retraining done", metadata: [
                "classifier": "\(published.metadata.version)", "activated": "\(r.activate)", "templates": "\(samples.count)",
                "subjects": "\(trained.subjects)", "calibrated": "\(trained.calibrated)",
                "elapsed": "\(started.duration(to: .now))"])
        } catch {
            if error.code == .cancelled || registry.isCancelled(id) {
                registry.finish(id, state: .cancelled)
                log.info("retraining cancelled")
            } else {
                registry.finish(id, state: .failed, error: "\(error)")
                log.warning("retraining failed", metadata: ["error": "\(error)"])
            }
        }
        // The changes seen when this job began are dealt with (a failed job is not retried on every later enrolment).
        jobs.changes.withLock { $0 = max(0, $0 - changesAtStart) }
        returnFreeMemoryToTheSystem()
    }

    /// Streams every template of `modelVersion` (in `collections`, empty = all) from one ready replica of each
    /// partition (``readPartition(_:_:phase:configure:)``).
    func gatherTemplates(_ id: String, collections: Set<String>, modelVersion: String) async throws(FacetError) -> [ClassifierTraining.Sample] {
        let registry = jobs.registry
        let partitions = layout.allPartitions
        registry.progress(id, phase: "gathering", done: 0, total: UInt64(partitions.count))
        var samples: [ClassifierTraining.Sample] = []
        for (i, p) in partitions.enumerated() {
            let records = try await readPartition(id, p, phase: "gathering") { req in
                req.embeddingsOnly = true
                req.modelVersion = modelVersion
            }
            for rec in records where collections.isEmpty || collections.contains(rec.collection) {
                samples.append(ClassifierTraining.Sample(templateID: rec.templateID, subject: rec.subjectID, embedding: rec.embedding.values))
            }
            registry.progress(id, phase: "gathering", done: UInt64(i + 1))
        }
        return samples
    }

    /// Every record of partition `p` (as `configure` asks: ids only, one model version, …) from one ready replica,
    /// for job `id`: fails over to another replica (the partition is read again from its start); a partition without
    /// a ready replica is waited for, up to `jobWaitMilliseconds`. Throws `cancelled` once the job is cancelled.
    func readPartition(_ id: String, _ p: UInt32, phase: String,
                       configure: (inout WireStreamRecordsRequest) -> Void) async throws(FacetError) -> [WireTemplateRecord] {
        let registry = jobs.registry
        let waitUntil = ContinuousClock.now + jobs.jobWait
        var attempt = 0
        while true {
            if registry.isCancelled(id) { throw FacetError(.cancelled, "cancelled") }
            let replicas = state.withLock { $0.readyReplicas(of: p) }
            guard !replicas.isEmpty else {
                if ContinuousClock.now >= waitUntil {
                    throw FacetError(.unavailable, "partition \(p) had no ready replica for \(jobs.jobWait)")
                }
                registry.progress(id, phase: "waiting for partition \(p)")
                try? await Task.sleep(for: .milliseconds(100))
                continue
            }
            let node = replicas[attempt % replicas.count]
            attempt += 1
            var page: [WireTemplateRecord] = []
            var after: UInt64 = 0
            var failed = false
            while true {
                if registry.isCancelled(id) { throw FacetError(.cancelled, "cancelled") }
                var req = WireStreamRecordsRequest()
                configure(&req)
                req.partition = p
                req.afterSequence = after
                req.maxRecords = 2048
                guard case .success(.recordBatch(let b)) = await call(node, .streamRecordsRequest(req), timeout: .seconds(10),
                                                                      parent: id) else { failed = true; break }
                page += b.records
                if b.end || b.records.isEmpty { break }
                after = b.nextAfterSequence
            }
            if !failed { return page }
            registry.progress(id, phase: "\(phase) (partition \(p): failing over from \(node))")
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    // MARK: embedding model versions

    func setActiveModel(_ r: WireSetActiveModelRequest, _ ctx: RequestContext) throws(FacetError) -> WireActiveModel {
        let version = r.modelVersion
        guard !version.isEmpty, version.utf8.count <= 64 else {
            throw FacetError(.invalidArgument, "model_version must be 1-64 bytes", field: "model_version")
        }
        let served = state.withLock { $0.liveWorkers(role: .embedder) }.contains { $0.model.version == version }
        guard served || r.force else {
            throw FacetError(.failedPrecondition, "no live embedder serves model version \(version) (force to switch anyway)",
                             field: "model_version")
        }
        var reply = WireActiveModel()
        reply.previousVersion = activeModelVersion
        do { try jobs.models.setEmbeddingModelVersion(version) } catch {
            throw FacetError(.internalError, "cannot record the active model version: \(error)")
        }
        reply.modelVersion = version
        reply.updatedUnixMs = nowMilliseconds()
        ctx.logger.info("active embedding model switched", metadata: ["from": "\(reply.previousVersion)", "to": "\(version)"])
        if reply.previousVersion != version, jobs.models.activeClassifier != nil {
            // The classifier was trained on the other model's embeddings: train one for the new version.
            _ = startRetrain(WireStartRetrainRequest.with { $0.activate = true; $0.reason = "embedding model switched to \(version)" },
                             automatic: true)
        }
        return reply
    }
}
