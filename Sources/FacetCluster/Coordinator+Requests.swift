import Foundation
import Logging
import FacetWire

extension Coordinator {
    static let dimension = 128
    /// The flat decision threshold used where no per-type thresholds can be loaded: dlib's 0.6 applies to its raw
    /// descriptors, whose norms are about 1.4 (measured on the demo LFW photos with Python dlib), so it is about 0.42
    /// on the unit sphere. By default the coordinator decides with per-comparison-type thresholds instead
    /// (``DecisionThresholds``).
    public static let defaultThreshold: Float = 0.42

    // MARK: embedding

    /// Sends an image to a live embedder (fewest requests in flight first), failing over to another on UNAVAILABLE
    /// or a timeout.
    func embed(_ r: WireEmbedRequest, _ ctx: RequestContext) async throws(FacetError) -> WireEmbedReply {
        guard !r.image.data.isEmpty else { throw FacetError(.invalidArgument, "image is empty", field: "image") }
        var tried = Set<String>()
        var lastError = FacetError.unavailable("no embedder is live")
        while !ctx.expired {
            let version = r.modelVersion.isEmpty ? activeModelVersion : r.modelVersion
            let candidates = state.withLock { $0.liveWorkers(role: .embedder) }
                .filter { !tried.contains($0.nodeID) && $0.model.version == version }.sorted { $0.inFlight < $1.inFlight }
            guard let node = candidates.first?.nodeID else { break }
            tried.insert(node)
            switch await call(node, .embedRequest(r), timeout: ctx.within(embedTimeout), parent: ctx.id) {
            case .success(.embedReply(let reply)): return reply
            case .success: throw FacetError(.internalError, "embedder \(node) answered with another message", nodeID: node)
            case .failure(let e):
                guard e.code == .unavailable || e.code == .deadlineExceeded else { throw e }
                lastError = e
            }
        }
        throw ctx.expired ? FacetError(.deadlineExceeded, "no embedding before the deadline", nodeID: nodeID) : lastError
    }

    /// The embedding of the largest face in `image`.
    func embedding(of image: WireImage, upsample: UInt32, modelVersion: String = "", _ ctx: RequestContext) async throws(FacetError) -> (WireFace, [Float]) {
        var req = WireEmbedRequest()
        req.image = image
        req.upsample = upsample
        req.modelVersion = modelVersion
        let reply = try await embed(req, ctx)
        guard let face = reply.faces.first else {
            throw FacetError(.noFace, "no face found in \(image.name.isEmpty ? "the image" : image.name)", field: "image")
        }
        return (face, try checked(face.embedding))
    }

    func checked(_ e: WireEmbedding) throws(FacetError) -> [Float] {
        do { return try e.validatedValues(expectedDimension: Self.dimension) } catch { throw error.facetError }
    }

    /// A face a client sends back as an EmbedReply gave it ("embed once, then enrol, identify or verify by it"): its
    /// embedding (required; of model `version` when it names one) and its periocular embedding when it has one, so the
    /// coordinator treats it as it treats the face of an image (mask state, thresholds, periocular fusion). The mask
    /// state is the client's word; a client can set `max_distance`/`threshold` itself anyway, so it gains nothing.
    func checked(_ face: WireFace, field: String, version: String? = nil) throws(FacetError) -> (values: [Float], periocular: [Float]?) {
        guard face.hasEmbedding else { throw FacetError(.invalidArgument, "the face has no embedding", field: field) }
        if let version, !face.embedding.modelVersion.isEmpty, face.embedding.modelVersion != version {
            throw FacetError(.modelMismatch, "a face embedded by model \(face.embedding.modelVersion), not \(version)", field: field)
        }
        let values = try checked(face.embedding)
        guard face.hasPeriocularEmbedding else { return (values, nil) }
        guard face.periocularEmbedding.modelVersion.isEmpty || face.periocularEmbedding.modelVersion == face.embedding.modelVersion else {
            throw FacetError(.modelMismatch, "the face's periocular embedding is of another model than its embedding", field: field)
        }
        return (values, try checked(face.periocularEmbedding))
    }

    // MARK: writes

    /// Writes to every live replica of `p` (ready or being filled); succeeds when the policy's number of replicas
    /// committed. A replica that dies during the write no longer counts towards "every live replica".
    /// A matcher that refuses the write as STALE_SHARD_MAP (the map changed) makes it start again under the newer map.
    func replicate(_ p: UInt32, _ body: WireEnvelope.OneOf_Body, insertedIDs: [UInt64], deletedSubject: String?,
                   policy: WireWritePolicy, _ ctx: RequestContext) async throws(FacetError) -> (WireDurability, [WireEnvelope.OneOf_Body]) {
        var attempt = 0
        while true {
            attempt += 1
            do throws(FacetError) {
                return try await replicateOnce(p, body, insertedIDs: insertedIDs, deletedSubject: deletedSubject, policy: policy, ctx)
            } catch {
                guard error.code == .staleShardMap, attempt < 5, !ctx.expired else { throw error }
                ctx.logger.info("write refused under an old shard map; retrying", metadata: ["partition": "\(p)", "error": "\(error)"])
                if !error.nodeID.isEmpty { await refreshMap(from: error.nodeID) }
            }
        }
    }

    private func replicateOnce(_ p: UInt32, _ body: WireEnvelope.OneOf_Body, insertedIDs: [UInt64], deletedSubject: String?,
                               policy: WireWritePolicy, _ ctx: RequestContext) async throws(FacetError) -> (WireDurability, [WireEnvelope.OneOf_Body]) {
        let startingUp = Duration.milliseconds(nowMilliseconds() - started) < interval * configuration.livenessCount * 2
        let (writeID, assigned, targets, complete, allKnown, epoch, replicationFactor) = state.withLock { s in
            let targets = s.writeTargets(of: p)
            return (s.beginWrite(p, inserted: insertedIDs, deletedSubject: deletedSubject), s.map.writeSet(of: p), targets,
                    Set(targets.filter { s.isReady(ReplicaKey($0, p)) }), s.allCopiesKnown(p), s.map.epoch, s.map.replicationFactor)
        }
        defer { state.withLock { $0.endWrite(p, writeID) } }
        guard !targets.isEmpty else {
            throw FacetError(.notDurable, "no live replica holds partition \(p)", retryAfterMilliseconds: 500)
        }
        // An acknowledged write must be on a copy known to be complete: acknowledging it only on copies that lack
        // earlier writes would leave no copy holding everything. Just after start, the copies that have not
        // registered yet may hold marks against the live ones, so writes wait for them (or for the start-up grace).
        guard !complete.isEmpty, allKnown || !startingUp else {
            throw FacetError(.notDurable, complete.isEmpty ? "no complete copy of partition \(p) is live (being filled)"
                                                          : "partition \(p): waiting for its replicas to register",
                             retryAfterMilliseconds: 200)
        }
        // Copies in the map that this write will not reach are marked stale, durably, on every copy that takes it
        // (before it is applied there), so every coordinator — this one after a restart too — knows they must be
        // filled before they serve reads again.
        let skipped = assigned.filter { !targets.contains($0) }.sorted()
        func withEpochAndMarks(_ body: WireEnvelope.OneOf_Body, _ stale: [String]) -> WireEnvelope.OneOf_Body {
            switch body {
            case .partitionInsertRequest(var r): r.shardMapEpoch = epoch; r.staleReplicas = stale; return .partitionInsertRequest(r)
            case .partitionDeleteRequest(var r): r.shardMapEpoch = epoch; r.staleReplicas = stale; return .partitionDeleteRequest(r)
            default: return body
            }
        }
        let first = withEpochAndMarks(body, skipped)
        let timeout = ctx.within(.seconds(10))
        let results = await withTaskGroup(of: (String, Result<WireEnvelope.OneOf_Body, FacetError>).self) { group in
            for node in targets {
                group.addTask { (node, await self.call(node, first, timeout: timeout, parent: ctx.id)) }
            }
            var out: [(String, Result<WireEnvelope.OneOf_Body, FacetError>)] = []
            for await r in group { out.append(r) }
            return out
        }
        var durable: [String] = [], replies: [WireEnvelope.OneOf_Body] = [], failures: [String] = []
        var storageFull = false
        var stale: FacetError?
        for (node, result) in results {
            switch result {
            case .success(let b):
                if case .partitionInsertReply(let r) = b, !r.durable { failures.append("\(node): not durable"); continue }
                durable.append(node)
                replies.append(b)
            case .failure(let e):
                if e.code == .staleShardMap { stale = e; stale!.nodeID = node }
                failures.append("\(node): \(e)")
                storageFull = storageFull || e.code == .resourceExhausted
            }
        }
        // The map changed under this write: the replicas that took it keep it (idempotent); retry under the new map.
        if let stale { throw stale }
        let stillLive = state.withLock { s in targets.filter { s.isAlive($0) } }
        let required = WriteQuorum.required(policy: policy, replicationFactor: replicationFactor,
                                            liveTargets: Set(stillLive).union(durable).count)
        // Replicas that failed or died during the write missed it too: the copies that took it mark them (the same
        // request again: idempotent, applied as already present); only copies holding the mark count.
        let missed = assigned.filter { !durable.contains($0) }.sorted()
        if WriteQuorum.marksMissedCopies(durable: durable, complete: complete, required: required, missed: missed, skipped: skipped) {
            let again = withEpochAndMarks(body, missed)
            let marking = await withTaskGroup(of: (String, FacetError?).self) { group in
                for node in durable {
                    group.addTask {
                        if case .failure(let e) = await self.call(node, again, timeout: timeout, parent: ctx.id) { return (node, e) }
                        return (node, nil)
                    }
                }
                var out: [String: FacetError?] = [:]
                for await (node, error) in group { out[node] = error }
                return out
            }
            // The map changed between the two rounds (a shard change went on a step): the copies refuse the marks as
            // STALE_SHARD_MAP; the write starts again under the new map, like a refusal in the first round.
            if let (node, e) = marking.first(where: { $0.value?.code == .staleShardMap }), var e {
                e.nodeID = node
                throw e
            }
            for node in durable { if case .some(.some(let e)) = marking[node] { failures.append("\(node): could not mark \(missed) stale: \(e)") } }
            durable = durable.filter { marking[$0] == .some(nil) }
        }
        var d = WireDurability()
        d.policy = policy == .unspecified ? .all : policy
        d.replicasRequired = UInt32(required)
        d.replicasAcknowledged = UInt32(durable.count)
        d.durableOn = durable.sorted()
        d.shardMapEpoch = epoch
        guard durable.count >= required, durable.contains(where: complete.contains) else {
            // A replica out of storage will not recover by retrying: say so rather than NOT_DURABLE (retryable).
            throw FacetError(storageFull ? .resourceExhausted : .notDurable,
                             "partition \(p): \(durable.count) of \(required) replicas committed"
                                + (durable.contains(where: complete.contains) ? "" : ", none of them a complete copy")
                                + " (\(failures.joined(separator: "; ")))",
                             retryAfterMilliseconds: 200)
        }
        if !failures.isEmpty {
            ctx.logger.warning("write skipped replicas that died", metadata: ["partition": "\(p)", "failures": "\(failures)"])
        }
        // This coordinator knows at once (the marks reach it with the holders' next heartbeats).
        if !missed.isEmpty { state.withLock { s in for n in missed { s.mustFill.insert(ReplicaKey(n, p)) } } }
        return (d, replies)
    }

    func enrol(_ r: WireEnrolRequest, _ ctx: RequestContext) async throws(FacetError) -> WireEnrolReply {
        let subject = r.subjectID
        guard !subject.isEmpty, subject.utf8.count <= 255 else {
            throw FacetError(.invalidArgument, "subject_id must be 1-255 UTF-8 bytes", field: "subject_id")
        }
        guard !r.images.isEmpty || !r.embeddings.isEmpty || !r.faces.isEmpty else {
            throw FacetError(.invalidArgument, "give at least one image, embedding or face", field: "images")
        }
        guard r.images.count + r.embeddings.count + r.faces.count <= 256 else {
            throw FacetError(.invalidArgument, "at most 256 templates per enrolment", field: "images", limit: 256)
        }
        let collection = r.collection.isEmpty ? "default" : r.collection
        let version = r.modelVersion.isEmpty ? activeModelVersion : r.modelVersion
        var records: [WireTemplateRecord] = []
        var infos: [WireTemplateInfo] = []
        func add(_ values: [Float], digest: [UInt8], masked: Bool, periocular: [Float]? = nil) {
            var rec = WireTemplateRecord()
            rec.templateID = TemplateIdentity.templateID(subject: subject, collection: collection, sourceDigest: digest, modelVersion: version)
            guard !records.contains(where: { $0.templateID == rec.templateID }) else { return }
            rec.subjectID = subject
            rec.collection = collection
            rec.embedding = WireEmbedding(values: values, modelVersion: version)
            rec.masked = masked
            if let periocular { rec.periocularEmbedding = WireEmbedding(values: periocular, modelVersion: version) }
            rec.sourceSha256 = Data(digest)
            rec.enrolledUnixMs = nowMilliseconds()
            records.append(rec)
            var info = WireTemplateInfo()
            info.templateID = rec.templateID
            info.sourceSha256 = Data(digest)
            info.masked = masked
            infos.append(info)
        }
        for e in r.embeddings {
            guard e.modelVersion.isEmpty || e.modelVersion == version else {
                throw FacetError(.modelMismatch, "embedding of model \(e.modelVersion) enrolled as model \(version)", field: "embeddings")
            }
            let values = try checked(e)
            add(values, digest: TemplateIdentity.sourceDigest(WireEmbedding(values: values, modelVersion: "").littleEndianBytes), masked: false)
        }
        // Faces from an EmbedReply: the template id comes from the embedding (as for embeddings), the mask state and
        // the periocular embedding are kept as an enrolment of the image would keep them.
        for face in r.faces {
            let (values, periocular) = try checked(face, field: "faces", version: version)
            add(values, digest: TemplateIdentity.sourceDigest(WireEmbedding(values: values, modelVersion: "").littleEndianBytes),
                masked: face.masked, periocular: periocular)
        }
        for image in r.images {
            let (face, values) = try await embedding(of: image, upsample: r.upsample, modelVersion: version, ctx)
            // The upper-face embedding is stored with the template when the embedder made one (periocular fusion).
            add(values, digest: TemplateIdentity.sourceDigest(Array(image.data)), masked: face.masked,
                periocular: face.hasPeriocularEmbedding ? try checked(face.periocularEmbedding) : nil)
        }
        let p = currentMap.partition(of: subject)
        var ins = WirePartitionInsertRequest()
        ins.partition = p
        ins.records = records
        let (durability, replies) = try await replicate(p, .partitionInsertRequest(ins), insertedIDs: records.map(\.templateID),
                                                        deletedSubject: nil, policy: r.writePolicy, ctx)
        let alreadyAll = replies.allSatisfy { if case .partitionInsertReply(let x) = $0 { return x.inserted == 0 } else { return false } }
        if alreadyAll { for i in infos.indices { infos[i].alreadyPresent = true } }
        noteTemplatesChanged(replies.map { if case .partitionInsertReply(let x) = $0 { return Int(x.inserted) } else { return 0 } }.max() ?? 0)
        var reply = WireEnrolReply()
        reply.subjectID = subject
        reply.collection = collection
        reply.templateIds = records.map(\.templateID)
        reply.templates = infos
        reply.partition = p
        reply.durability = durability
        reply.model = model
        ctx.logger.info("enrolled", metadata: ["subject.partition": "\(p)", "templates": "\(records.count)",
                                               "durable.on": "\(durability.durableOn)"])
        return reply
    }

    func deleteSubject(_ r: WireDeleteSubjectRequest, _ ctx: RequestContext) async throws(FacetError) -> WireDeleteSubjectReply {
        guard !r.subjectID.isEmpty else { throw FacetError(.invalidArgument, "subject_id is required", field: "subject_id") }
        let p = currentMap.partition(of: r.subjectID)
        var del = WirePartitionDeleteRequest()
        del.partition = p
        del.subjectID = r.subjectID
        del.collection = r.collection
        let (durability, replies) = try await replicate(p, .partitionDeleteRequest(del), insertedIDs: [], deletedSubject: r.subjectID,
                                                        policy: .unspecified, ctx)
        var reply = WireDeleteSubjectReply()
        reply.subjectID = r.subjectID
        reply.templatesDeleted = replies.map { if case .partitionDeleteReply(let x) = $0 { return x.deleted } else { return 0 } }.max() ?? 0
        reply.durability = durability
        // Nothing stored and not a class of the active classifier (or one already erased, its retraining under way):
        // an unknown subject (never enrolled, or erased before: a retried delete). The delete ran on the replicas all
        // the same, so NOT_FOUND means "nothing of it is left"; no retraining is started for it.
        let classifierKnows = (jobs.models.activeClassifier?.model.labels.classes.contains(r.subjectID) ?? false)
            && !jobs.erased.withLock { $0.contains(r.subjectID) }
        guard reply.templatesDeleted > 0 || classifierKnows else {
            throw FacetError(.notFound, "no templates of subject \(r.subjectID)" + (r.collection.isEmpty ? "" : " in collection \(r.collection)")
                             + " (never enrolled, or already erased)", field: "subject_id")
        }
        reply.retrainJobID = await erasureHooks.subjectErased(r.subjectID, collection: r.collection, logger: ctx.logger).joined(separator: ",")
        ctx.logger.info("subject deleted", metadata: ["templates": "\(reply.templatesDeleted)"])
        return reply
    }

    // MARK: reads

    /// Scatter-gather over `partitions` with fail-over (``ScatterRun``): `request` builds the call for one matcher's
    /// share of the partitions, `covered` takes a reply and returns the partitions it answered for (nil: not an
    /// answer). Returns the answers and the partitions that no replica answered for by the deadline.
    func scatter(partitions: [UInt32], _ ctx: RequestContext, request: @escaping @Sendable ([UInt32]) -> WireEnvelope.OneOf_Body,
                 covered: @escaping @Sendable (WireEnvelope.OneOf_Body) -> [UInt32]?) async -> (answers: [WireEnvelope.OneOf_Body], missing: [UInt32]) {
        await withCheckedContinuation { c in
            ScatterRun.start(self, partitions: partitions, ctx, request: request, covered: covered) { c.resume(returning: ($0, $1)) }
        }
    }

    /// The partition search request of every scatter (with this coordinator's shard-map epoch).
    private func searchScatter(_ base: WirePartitionSearchRequest, partitions: [UInt32], _ ctx: RequestContext,
                               then: @escaping @Sendable (_ lists: [[WireCandidate]], _ missing: [UInt32]) -> Void) {
        var base = base
        base.shardMapEpoch = currentMap.epoch
        ScatterRun.start(self, partitions: partitions, ctx, request: { [base] ps in
            var req = base
            req.partitions = ps
            return .partitionSearchRequest(req)
        }, covered: { body in
            guard case .partitionSearchReply(let reply) = body else { return nil }
            return reply.searchedPartitions
        }, finish: { answers, missing in
            then(answers.compactMap { if case .partitionSearchReply(let r) = $0 { return r.candidates } else { return nil } }, missing)
        })
    }

    /// Scatter-gather search over `partitions`; returns the per-node candidate lists and the partitions missing.
    func scatterSearch(_ base: WirePartitionSearchRequest, partitions: [UInt32], _ ctx: RequestContext)
        async -> (lists: [[WireCandidate]], missing: [UInt32])
    {
        await withCheckedContinuation { c in
            searchScatter(base, partitions: partitions, ctx) { c.resume(returning: ($0, $1)) }
        }
    }

    func identify(_ r: WireIdentifyRequest, _ ctx: RequestContext) async throws(FacetError) -> WireIdentifyReply {
        let query: [Float]
        var periocular: [Float]?
        var version = activeModelVersion
        var face: WireFace?
        switch r.query {
        case .embedding(let e)?:
            query = try checked(e)
            if !e.modelVersion.isEmpty { version = e.modelVersion }
        case .image(let image)?:
            let (f, values) = try await embedding(of: image, upsample: r.upsample, ctx)
            face = f
            face!.clearEmbedding()
            face!.clearPeriocularEmbedding()
            query = values
            periocular = f.hasPeriocularEmbedding ? try checked(f.periocularEmbedding) : nil
        case .face(let f)?:
            (query, periocular) = try checked(f, field: "face")
            if !f.embedding.modelVersion.isEmpty { version = f.embedding.modelVersion }
            face = f
            face!.clearEmbedding()
            face!.clearPeriocularEmbedding()
        case nil: throw FacetError(.invalidArgument, "give an image, an embedding or a face", field: "query")
        }
        var search = try identifySearch(r, query: query, version: version)
        fuse(&search, periocular: periocular, probeMasked: face?.masked ?? false)
        let (lists, missing) = await scatterSearch(search, partitions: currentMap.allPartitions, ctx)
        return identifyReply(r, query: query, version: version, face: face, lists: lists, missing: missing, ctx)
    }

    /// Identify by embedding without a task: the scatter starts on the calling thread (the front end's socket
    /// thread) and `completion` runs where the last partition's answer (or the deadline) is handled.
    func identifyNow(_ r: WireIdentifyRequest, _ ctx: RequestContext, completion: @escaping @Sendable (Result<WireIdentifyReply, FacetError>) -> Void) {
        guard case .embedding(let e)? = r.query else {
            return completion(.failure(FacetError(.invalidArgument, "give an embedding", field: "query")))
        }
        let query: [Float], search: WirePartitionSearchRequest
        let version = e.modelVersion.isEmpty ? activeModelVersion : e.modelVersion
        do throws(FacetError) {
            query = try checked(e)
            search = try identifySearch(r, query: query, version: version)
        } catch {
            return completion(.failure(error))
        }
        searchScatter(search, partitions: currentMap.allPartitions, ctx) { [self] lists, missing in
            completion(.success(identifyReply(r, query: query, version: version, face: nil, lists: lists, missing: missing, ctx)))
        }
    }

    /// Periocular fusion (docs/masks.md): with fusion configured and the probe's upper-face embedding, the matchers
    /// re-rank their nearest templates by the fused distance where the probe or the template is masked.
    private func fuse(_ search: inout WirePartitionSearchRequest, periocular: [Float]?, probeMasked: Bool) {
        guard let fusion = decisionThresholds.fusion, let periocular else { return }
        search.periocularQuery = WireEmbedding(values: periocular, modelVersion: search.query.modelVersion)
        search.queryMasked = probeMasked
        search.periocularFullWeight = Float(fusion.fullWeight)
    }

    private func identifySearch(_ r: WireIdentifyRequest, query: [Float], version: String) throws(FacetError) -> WirePartitionSearchRequest {
        let k = r.k == 0 ? 5 : r.k
        guard k <= 1000 else { throw FacetError(.invalidArgument, "k must be at most 1000", field: "k", limit: 1000) }
        var req = WirePartitionSearchRequest()
        req.query = WireEmbedding(values: query, modelVersion: version)
        req.k = k
        req.ef = r.ef
        req.collections = r.collections
        req.maxDistance = r.maxDistance
        return req
    }

    /// The global top-k of the per-partition lists, with scores, decisions and the classifier's decision.
    private func identifyReply(_ r: WireIdentifyRequest, query: [Float], version: String, face: WireFace?,
                               lists: [[WireCandidate]], missing: [UInt32], _ ctx: RequestContext) -> WireIdentifyReply {
        var reply = WireIdentifyReply()
        if let face { reply.face = face }
        let k = Int(r.k == 0 ? 5 : r.k)
        // Each candidate is decided at the threshold of its own comparison type (the probe's mask state against the
        // template's); an identify by embedding carries no mask state and counts as unmasked.
        let probeMasked = face?.masked ?? false
        let threshold = decisionThresholds.maxDistance(probeMasked: probeMasked, referenceMasked: false)
        reply.candidates = TopKMerge.merge(lists, k: k, maxDistance: r.maxDistance > 0 ? r.maxDistance : nil).map { c in
            var c = c
            c.score = max(0, 1 - c.distance / 2)
            let fused = c.periocularFused ? decisionThresholds.maxFusedDistance(probeMasked: probeMasked, referenceMasked: c.templateMasked) : nil
            c.match = c.distance <= fused ?? decisionThresholds.maxDistance(probeMasked: probeMasked, referenceMasked: c.templateMasked)
            return c
        }
        let map = currentMap
        reply.partial = !missing.isEmpty
        reply.missingPartitions = missing
        reply.partitionCount = map.partitionCount
        reply.shardMapEpoch = map.epoch
        reply.threshold = r.maxDistance > 0 ? r.maxDistance : threshold
        reply.comparison = reply.face.masked ? .maskedUnmasked : .unmaskedUnmasked
        reply.model = model
        if r.withClassifier, let decision = classifierDecision(query, modelVersion: version) { reply.decision = decision }
        if reply.partial { ctx.logger.warning("partial identify", metadata: ["missing": "\(missing)"]) }
        return reply
    }

    /// The template of `subject` nearest to `probe`: one exact search (subject filter) in the subject's partition on a
    /// ready replica, with fail-over.
    func nearestTemplate(of subject: String, collection: String, to probe: [Float], modelVersion: String? = nil, periocular: [Float]? = nil,
                         probeMasked: Bool = false, _ ctx: RequestContext) async throws(FacetError) -> WireCandidate? {
        var req = WirePartitionSearchRequest()
        req.query = WireEmbedding(values: probe, modelVersion: modelVersion ?? activeModelVersion)   // templates of that model only
        fuse(&req, periocular: periocular, probeMasked: probeMasked)
        req.k = 1
        req.subjectIds = [subject]
        if !collection.isEmpty { req.collections = [collection] }
        let p = currentMap.partition(of: subject)
        let (lists, missing) = await scatterSearch(req, partitions: [p], ctx)
        guard missing.isEmpty else { throw FacetError(.unavailable, "no replica of partition \(p) answered", retryAfterMilliseconds: 200) }
        return TopKMerge.merge(lists, k: 1, maxDistance: nil).first
    }

    func verify(_ r: WireVerifyRequest, _ ctx: RequestContext) async throws(FacetError) -> WireVerifyReply {
        var reply = WireVerifyReply()
        let probe: [Float]
        var probePeriocular: [Float]?
        // Two sides given as embeddings or faces must come from the same model (distances across models mean nothing).
        func stated(_ e: WireEmbedding?) -> String? { e.flatMap { $0.modelVersion.isEmpty ? nil : $0.modelVersion } }
        let probeModel: String? = switch r.probe {
        case .probeEmbedding(let e)?: stated(e)
        case .probeFace(let f)?: stated(f.embedding)
        default: nil
        }
        let referenceModel: String? = switch r.reference {
        case .referenceEmbedding(let e)?: stated(e)
        case .referenceFace(let f)?: stated(f.embedding)
        default: nil
        }
        if let a = probeModel, let b = referenceModel, a != b {
            throw FacetError(.modelMismatch, "the probe is of embedding model \(a), the reference of \(b)", field: "reference")
        }
        switch r.probe {
        case .probeEmbedding(let e)?: probe = try checked(e)
        case .probeFace(let f)?:
            (probe, probePeriocular) = try checked(f, field: "probe_face")
            reply.probeMasked = f.masked
        case .probeImage(let image)?:
            let (face, values) = try await embedding(of: image, upsample: r.upsample, ctx)
            reply.probeMasked = face.masked
            probe = values
            probePeriocular = face.hasPeriocularEmbedding ? try checked(face.periocularEmbedding) : nil
        case nil: throw FacetError(.invalidArgument, "give a probe image, embedding or face", field: "probe")
        }
        /// The distance to a reference face; periocular fusion (docs/masks.md) when a side is masked, both faces have
        /// periocular embeddings and fusion is configured.
        func compare(_ face: WireFace, _ values: [Float], _ periocular: [Float]?) {
            reply.referenceMasked = face.masked
            reply.distance = euclideanDistance(probe, values)
            if let fusion = decisionThresholds.fusion, reply.probeMasked || reply.referenceMasked, let pp = probePeriocular, let rp = periocular {
                reply.distance = Float(fusion.fuse(fullDistance: Double(reply.distance), periocularDistance: Double(euclideanDistance(pp, rp))))
                reply.periocularFused = true
            }
        }
        switch r.reference {
        case .referenceEmbedding(let e)?:
            reply.distance = euclideanDistance(probe, try checked(e))
        case .referenceImage(let image)?:
            let (face, values) = try await embedding(of: image, upsample: r.upsample, ctx)
            compare(face, values, face.hasPeriocularEmbedding ? try checked(face.periocularEmbedding) : nil)
        case .referenceFace(let face)?:
            let (values, periocular) = try checked(face, field: "reference_face")
            compare(face, values, periocular)
        case .subjectID(let subject)?:
            // Compared with the subject's templates of the probe's model (as identify searches them; versions are
            // stored side by side): a probe of a model the subject has no templates of is a mismatch, not a miss.
            let active = activeModelVersion, version = probeModel ?? active
            guard let best = try await nearestTemplate(of: subject, collection: r.collection, to: probe, modelVersion: version,
                                                       periocular: probePeriocular, probeMasked: reply.probeMasked, ctx) else {
                if version != active {
                    throw FacetError(.modelMismatch, "the probe is of embedding model \(version), the subject has no templates of it (active model \(active))",
                                     field: "subject_id")
                }
                throw FacetError(.notFound, "the subject has no templates", field: "subject_id")
            }
            reply.distance = best.distance
            reply.templateID = best.templateID
            reply.referenceMasked = best.templateMasked
            reply.periocularFused = best.periocularFused
        case nil: throw FacetError(.invalidArgument, "give a reference image, embedding, face or subject", field: "reference")
        }
        let fusedThreshold = reply.periocularFused
            ? decisionThresholds.maxFusedDistance(probeMasked: reply.probeMasked, referenceMasked: reply.referenceMasked) : nil
        reply.threshold = r.threshold > 0 ? r.threshold
            : fusedThreshold ?? decisionThresholds.maxDistance(probeMasked: reply.probeMasked, referenceMasked: reply.referenceMasked)
        reply.match = reply.distance <= reply.threshold
        reply.score = max(0, 1 - reply.distance / 2)
        reply.comparison = reply.probeMasked && reply.referenceMasked ? .maskedMasked
            : (reply.probeMasked || reply.referenceMasked ? .maskedUnmasked : .unmaskedUnmasked)
        return reply
    }

    // MARK: status

    var model: WireEmbeddingModel {
        let version = activeModelVersion
        if let m = state.withLock({ $0.liveWorkers(role: .embedder).first { $0.model.version == version }?.model }), !m.name.isEmpty { return m }
        var m = WireEmbeddingModel()
        m.name = "dlib_face_recognition_resnet_model_v1"
        m.version = version
        m.dimension = UInt32(Self.dimension)
        return m
    }

    func shardMap() -> WireShardMap { currentMap.wire }

    func status(_ r: WireStatusRequest) -> WireStatusReply {
        let s = state.withLock { $0 }
        let layout = s.map
        var reply = WireStatusReply()
        var coordinator = WireNodeStatus()
        coordinator.nodeID = nodeID
        coordinator.role = .coordinator
        coordinator.state = .ready
        coordinator.endpoint = frontendEndpoint
        coordinator.softwareVersion = FacetCluster.softwareVersion
        coordinator.startedUnixMs = started
        reply.nodes.append(coordinator)
        let known = Set(s.workers.keys).union(layout.matchers).union(layout.allPartitions.flatMap { layout.incoming(of: $0) })
        for id in known.sorted() {
            var n = WireNodeStatus()
            n.nodeID = id
            guard let w = s.workers[id] else {
                n.role = .matcher
                n.state = .dead
                n.partitions = layout.partitions(of: id)
                reply.nodes.append(n)
                continue
            }
            n.role = w.role
            let assigned = w.role == .matcher ? layout.partitions(of: id) : []
            n.state = !w.alive ? .dead : (layout.assigned(to: id).allSatisfy { s.isReady(ReplicaKey(id, $0)) } ? .ready : .joining)
            n.lastHeartbeatUnixMs = w.lastHeardUnixMs
            n.partitions = assigned
            n.templates = w.holdings.values.reduce(0, +)
            n.inFlight = UInt32(max(0, w.inFlight))
            n.softwareVersion = w.softwareVersion
            n.model = w.model
            n.startedUnixMs = w.startedUnixMs
            reply.nodes.append(n)
        }
        var healthy = true
        var templates: UInt64 = 0, subjects: UInt64 = 0
        for p in layout.allPartitions {
            let ready = s.readyReplicas(of: p)
            if ready.isEmpty { healthy = false }
            // The fullest copy's counts (a copy being filled holds fewer); a subject lives in one partition only.
            let count = layout.replicas(of: p).compactMap { s.workers[$0]?.holdings[p] }.max() ?? 0
            let people = layout.replicas(of: p).compactMap { s.workers[$0]?.subjectCounts[p] }.max() ?? 0
            templates += count
            subjects += people
            if r.includePartitions {
                var ps = WirePartitionStatus()
                ps.partition = p
                ps.replicas = layout.replicas(of: p)
                ps.liveReplicas = UInt32(ready.count)
                ps.templates = count
                ps.subjects = people
                reply.partitions.append(ps)
            }
        }
        reply.templates = templates
        reply.subjects = subjects
        reply.softwareVersion = FacetCluster.softwareVersion
        reply.protocolVersion = WireProtocol.version
        reply.shardMapEpoch = layout.epoch
        reply.model = model
        reply.classifierVersion = jobs.models.activeClassifier?.metadata.version ?? ""
        reply.healthy = healthy
        reply.partitionCount = layout.partitionCount
        reply.replicationFactor = UInt32(layout.replicationFactor)
        reply.lastShardChange = shardWork.withLock { $0.lastChange }
        return reply
    }
}
