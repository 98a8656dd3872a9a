import Dispatch
import Foundation
import Logging
import FacetIndex
import FacetStore
import FacetTransport
import FacetWire

/// A matcher: holds partitions (one durable ``Partition`` — LMDB + HNSW — per partition id, under
/// `dataDirectory/p-NNNNN`), and answers the coordinator's partition inserts (acknowledged only after the LMDB
/// transaction committed), deletes, searches and record streams. Connects to the coordinator's back end through
/// a ``WorkerLink`` (register, heartbeat, reconnect).
public final class MatcherNode: Sendable {
    public let nodeID: String
    public let dataDirectory: String
    let configuration: NodeConfiguration
    let logger: Logger
    let partitions = LockedValue<[UInt32: Partition]>([:])
    /// Identity, start time, CURVE settings and the links to the coordinators (shared with ``EmbedderNode``).
    let links: WorkerLinks
    /// Client writes (and map/fill bookkeeping) run here; replica-fill writes on `fillQueue`. Every write of either
    /// queue holds `writeLock`, so writes stay one at a time (a fill's "skip what was written meanwhile" check and its
    /// insert are atomic with respect to client writes), but a client write waits for at most the one fill batch in
    /// progress instead of every fill batch already queued (a new replica can receive many).
    let writeQueue = DispatchQueue(label: "facet.matcher.write")
    let fillQueue = DispatchQueue(label: "facet.matcher.fill")
    let writeLock = NSLock()

    /// Runs `work` on the write queue (or the fill queue) holding the write lock.
    func serialWrite<T: Sendable>(fill: Bool = false, _ work: @escaping @Sendable () -> T) async -> T {
        let lock = writeLock
        return await offload(fill ? fillQueue : writeQueue) {
            lock.lock()
            defer { lock.unlock() }
            return work()
        }
    }
    /// Searches run here, concurrently.
    let searchQueue = DispatchQueue(label: "facet.matcher.search", attributes: .concurrent)
    let partitionConfiguration: PartitionConfiguration
    /// This matcher's audit trail (retention deletions), when configured.
    let audit: AuditLog?
    /// Stored shard map, synced partitions, fill windows (MatcherNode+Shards.swift).
    let shards: MatcherShardState
    public let metrics = NodeMetrics(role: "matcher")

    public init(configuration: NodeConfiguration, context: ZMQContext, logger: Logger) throws {
        guard let id = configuration.nodeID, !id.isEmpty else { throw ClusterError.configuration("a matcher needs a node id") }
        guard let dir = configuration.dataDirectory else { throw ClusterError.configuration("a matcher needs a data directory") }
        nodeID = id
        dataDirectory = dir
        self.configuration = configuration
        self.logger = logger
        let security = configuration.securitySettings
        links = try WorkerLinks(nodeID: id, role: .matcher, roleName: "matcher", configuration: configuration, context: context, logger: logger)
        var pc = PartitionConfiguration(dimension: 128, metric: .l2Squared)
        if let master = try security.masterKey() {
            pc.sealer = EncryptedTemplateSealer(master: master)
        } else {
            logger.warning("INSECURE: partitions are stored unencrypted (development mode)")
        }
        partitionConfiguration = pc
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        audit = try AuditLog.open(for: configuration, logger: logger)
        shards = MatcherShardState(directory: dir, logger: logger)
        // Open every partition found on disk (recovers after kill -9: snapshot + log replay).
        for name in try FileManager.default.contentsOfDirectory(atPath: dir).sorted() where name.hasPrefix("p-") {
            guard let p = UInt32(name.dropFirst(2)) else { continue }
            let part = try Partition.open(at: dir + "/" + name, configuration: partitionConfiguration)
            logger.info("partition opened", metadata: ["partition": "\(p)", "report": "\(part.openReport)"])
            partitions.withLock { $0[p] = part }
        }
    }

    static func directoryName(_ p: UInt32) -> String { String(format: "p-%05u", p) }

    /// Runs until cancelled (graceful shutdown cancels it), then checkpoints the indexes. Connects to every
    /// configured coordinator (one ``WorkerLink`` each).
    public func run() async {
        ignoreFileSizeSignal()
        logger.info("matcher running", metadata: ["node.id": "\(nodeID)", "coordinators": "\(configuration.backends)",
                                                  "partitions": "\(partitions.withLock { $0.count })"])
        let retention = RetentionJob(matcher: self, settings: configuration.securitySettings)
        await links.run({ self.link(to: $0) }, alongside: [{ await retention.run() }])
        audit?.close()
        for (_, part) in partitions.withLock({ $0 }) { try? part.checkpoint() }
        logger.info("matcher stopped", metadata: ["node.id": "\(nodeID)"])
    }

    private func link(to endpoint: String) -> WorkerLink {
        links.link(
            to: endpoint, capacity: 4,
            register: { [self] r in
                (r.holdings, r.holdingsVersion) = shardHoldings
                if let map = shards.map { r.shardMap = map.wire }
            },
            heartbeat: { [self] h in
                (h.holdings, h.holdingsVersion) = shardHoldings
                h.shardMapEpoch = shards.map?.epoch ?? 0
            },
            handle: { [self] env in await handle(env) },
            observe: { [self] env in noteCoordinator(endpoint, env) },
            handleNow: { [self] env, reply in
                // Searches go straight from the socket's thread to the search queue and answer from there.
                guard case .partitionSearchRequest(let r)? = env.body else { return false }
                let began = ContinuousClock.now
                searchQueue.async { [self] in
                    let body: WireEnvelope.OneOf_Body
                    switch searchNow(r) {
                    case .success(let s): body = .partitionSearchReply(s)
                    case .failure(let e): body = failed(env, e)
                    }
                    record(env, body, since: began)
                    reply(body)
                }
                return true
            })
    }

    /// The metrics of one request served.
    private func record(_ env: WireEnvelope, _ reply: WireEnvelope.OneOf_Body, since began: ContinuousClock.Instant) {
        if case .error(let e) = reply {
            metrics.request(env.bodyKind, outcome: "\(FacetError(e).code)", duration: began.duration(to: .now))
        } else {
            metrics.request(env.bodyKind, outcome: "ok", duration: began.duration(to: .now))
        }
    }

    /// The error reply of a failed request (logged, with this node's id).
    private func failed(_ env: WireEnvelope, _ error: FacetError) -> WireEnvelope.OneOf_Body {
        var log = logger
        log[metadataKey: "request.id"] = "\(env.requestID)"
        log.warning("request failed", metadata: ["error": "\(error)"])
        var e = error
        if e.nodeID.isEmpty { e.nodeID = nodeID }
        return .error(e.wire)
    }

    func handle(_ env: WireEnvelope) async -> WireEnvelope.OneOf_Body {
        let began = ContinuousClock.now
        let reply = await serve(env)
        record(env, reply, since: began)
        return reply
    }

    private func serve(_ env: WireEnvelope) async -> WireEnvelope.OneOf_Body {
        do throws(FacetError) {
            if let reply = try await handleShards(env) { return reply }
            switch env.body {
            case .partitionInsertRequest(let r)?: return .partitionInsertReply(try await insert(r))
            case .partitionDeleteRequest(let r)?: return .partitionDeleteReply(try await delete(r))
            case .partitionSearchRequest(let r)?: return .partitionSearchReply(try await search(r))
            case .streamRecordsRequest(let r)?: return .recordBatch(try await stream(r))
            default:
                throw FacetError(.invalidArgument, "a matcher does not serve \(env.bodyKind)", nodeID: nodeID)
            }
        } catch {
            return failed(env, error)
        }
    }

    private func partition(_ p: UInt32, create: Bool) throws(FacetError) -> Partition? {
        if let part = partitions.withLock({ $0[p] }) { return part }
        guard create else { return nil }
        do {
            let part = try Partition.open(at: dataDirectory + "/" + Self.directoryName(p), configuration: partitionConfiguration)
            return partitions.withLock { $0[p] = $0[p] ?? part; return $0[p]! }
        } catch {
            throw storageFailure(error, "opening partition \(p)", node: nodeID, directory: dataDirectory)
        }
    }

    func insert(_ r: WirePartitionInsertRequest) async throws(FacetError) -> WirePartitionInsertReply {
        let node = nodeID
        let result: Result<WirePartitionInsertReply, FacetError> = await serialWrite(fill: r.fill) { [self] in
            do throws(FacetError) {
                try fence(epoch: r.shardMapEpoch, partition: r.partition)
                if !r.fill { try markStale(r.partition, r.staleReplicas) }
                let records = try r.fill ? fillRecords(r.partition, fillID: r.fillID, r.records) : r.records
                if !r.fill { noteWrite(r.partition, ids: r.records.map(\.templateID), deletedSubject: nil) }
                guard let part = try partition(r.partition, create: true) else { throw FacetError(.internalError, "no partition") }
                var fresh: [TemplateRecord] = []
                var already = r.records.count - records.count
                for w in records {
                    let values: [Float], periocular: [Float]?
                    do throws(WireEmbeddingError) {
                        values = try w.embedding.validatedValues(expectedDimension: partitionConfiguration.dimension)
                        periocular = w.hasPeriocularEmbedding
                            ? try w.periocularEmbedding.validatedValues(expectedDimension: partitionConfiguration.dimension) : nil
                    } catch {
                        throw error.facetError
                    }
                    guard !w.subjectID.isEmpty else { throw FacetError(.invalidArgument, "record without subject", field: "subject_id") }
                    let id = TemplateID(w.templateID)
                    if (try? part.template(id)) ?? nil != nil { already += 1; continue }
                    fresh.append(TemplateRecord(id: id, subject: SubjectID(w.subjectID), collection: w.collection, embedding: values,
                                                masked: w.masked, modelVersion: w.embedding.modelVersion,
                                                createdAtMilliseconds: w.enrolledUnixMs, periocular: periocular))
                }
                do { try part.insert(fresh) } catch { throw storageFailure(error, "insert", node: node, directory: dataDirectory) }
                var reply = WirePartitionInsertReply()
                reply.partition = r.partition
                reply.inserted = UInt32(fresh.count)
                reply.alreadyPresent = UInt32(already)
                reply.durable = true   // Partition.insert returns after the LMDB commit
                return .success(reply)
            } catch { return .failure(error) }
        }
        return try result.get()
    }

    func delete(_ r: WirePartitionDeleteRequest) async throws(FacetError) -> WirePartitionDeleteReply {
        let node = nodeID
        let result: Result<WirePartitionDeleteReply, FacetError> = await serialWrite(fill: r.fill) { [self] in
            var reply = WirePartitionDeleteReply()
            reply.partition = r.partition
            reply.durable = true
            var requested = r.templateIds
            do throws(FacetError) {
                try fence(epoch: r.shardMapEpoch, partition: r.partition)
                if !r.fill { try markStale(r.partition, r.staleReplicas) }
                if r.fill { requested = try fillDeletions(r.partition, fillID: r.fillID, r.templateIds) }
                else { noteWrite(r.partition, ids: r.templateIds, deletedSubject: r.templateIds.isEmpty ? r.subjectID : nil) }
            } catch { return .failure(error) }
            if r.fill && requested.isEmpty { return .success(reply) }
            guard let part = partitions.withLock({ $0[r.partition] }) else { return .success(reply) }
            do {
                var ids: [TemplateID]
                if !requested.isEmpty {
                    ids = requested.map { TemplateID($0) }
                } else if r.collection.isEmpty {
                    let deleted = try part.deleteSubject(SubjectID(r.subjectID))
                    noteWrite(r.partition, ids: deleted.map(\.rawValue), deletedSubject: nil)
                    reply.deleted = UInt32(deleted.count)
                    return .success(reply)
                } else {
                    ids = try part.templates(of: SubjectID(r.subjectID)).filter { $0.collection == r.collection }.map(\.id)
                }
                reply.deleted = UInt32(try part.delete(ids).count)
                return .success(reply)
            } catch {
                return .failure(FacetError(.internalError, "delete failed: \(error)", nodeID: node))
            }
        }
        return try result.get()
    }

    func search(_ r: WirePartitionSearchRequest) async throws(FacetError) -> WirePartitionSearchReply {
        try await offload(searchQueue) { [self] in searchNow(r) }.get()
    }

    /// A partition search on the calling thread (the search queue's): every partition asked for that this node
    /// serves, merged into one top-k.
    func searchNow(_ r: WirePartitionSearchRequest) -> Result<WirePartitionSearchReply, FacetError> {
        let query: [Float], periocularQuery: [Float]?
        do {
            query = try r.query.validatedValues(expectedDimension: partitionConfiguration.dimension)
            periocularQuery = r.hasPeriocularQuery ? try r.periocularQuery.validatedValues(expectedDimension: partitionConfiguration.dimension) : nil
        } catch { return .failure(error.facetError) }
        guard periocularQuery == nil || (0...1).contains(r.periocularFullWeight) else {
            return .failure(FacetError(.invalidArgument, "periocular_full_weight must be in [0, 1]", field: "periocular_full_weight"))
        }
        let k = Int(r.k == 0 ? 5 : min(r.k, 1000))
        // With a periocular probe, a deeper candidate list is re-ranked by the fused distance.
        let depth = periocularQuery == nil ? k : max(k, Int(r.rerankDepth == 0 ? UInt32(max(4 * k, 50)) : min(r.rerankDepth, 4000)))
        let ef = Int(r.ef == 0 ? UInt32(configuration.defaultEf ?? 128) : min(r.ef, 4096))
        let held = partitions.withLock { $0 }
        let node = nodeID
        let filter = r.collections.isEmpty && r.subjectIds.isEmpty ? nil
            : TemplateFilter(subjects: r.subjectIds.isEmpty ? nil : Set(r.subjectIds.map { SubjectID($0) }),
                             collections: r.collections.isEmpty ? nil : Set(r.collections))
        let serving = Set(r.partitions.filter { serves($0, held: held) })
        var reply = WirePartitionSearchReply()
        var lists: [[WireCandidate]] = []
        for p in r.partitions {
            // Not held and not assigned here (moved away): another replica must answer.
            guard serving.contains(p) else { reply.missingPartitions.append(p); continue }
            // Every partition assigned to this node is created on first write; one not on disk is empty here.
            guard let part = held[p] else { reply.searchedPartitions.append(p); continue }
            do {
                let matches = try part.search(query, k: depth, parameters: SearchParameters(ef: max(ef, depth)),
                                              filter: Self.versionFilter(filter, version: r.query.modelVersion, held: part.modelVersions))
                // The candidates to fuse (the probe or the template is masked) are read in one transaction.
                let fused = periocularQuery == nil ? [] : matches.filter { r.queryMasked || $0.masked }.map(\.template)
                var periocular: [TemplateID: [Float]] = [:]
                if !fused.isEmpty, let records = try? part.templates(fused) {
                    for case .success(let record)? in records { periocular[record.id] = record.periocular }
                }
                // Distances first (fused where a periocular embedding was read; a record that cannot be read now,
                // e.g. its subject erased meanwhile, keeps the full distance), re-ranked and cut to k, and only the
                // k kept become candidates (a masked probe's re-rank reads max(4k, 50) matches per partition).
                var ranked = matches.map { m -> (match: TemplateMatch, distance: Float, fused: Bool) in
                    let full = max(0, m.distance).squareRoot()   // the partition stores squared L2
                    guard let pq = periocularQuery, let pt = periocular[m.template] else { return (m, full, false) }
                    let w = r.periocularFullWeight
                    return (m, w * full + (1 - w) * euclideanDistance(pq, pt), true)
                }
                if periocularQuery != nil {
                    ranked.sort { $0.distance != $1.distance ? $0.distance < $1.distance : $0.match.template.rawValue < $1.match.template.rawValue }
                    if ranked.count > k { ranked.removeLast(ranked.count - k) }
                }
                lists.append(ranked.map { m, distance, fused in
                    var c = WireCandidate()
                    c.subjectID = m.subject.rawValue
                    c.templateID = m.template.rawValue
                    c.distance = distance
                    c.partition = p
                    c.nodeID = node
                    c.templateMasked = m.masked
                    c.periocularFused = fused
                    return c
                })
                reply.searchedPartitions.append(p)
            } catch {
                reply.missingPartitions.append(p)
            }
        }
        let maxDistance: Float? = r.maxDistance > 0 ? r.maxDistance : nil
        reply.candidates = TopKMerge.merge(lists, k: k, maxDistance: maxDistance)
        return .success(reply)
    }

    /// Pages over a partition's records in template-id order; `after_sequence` is the last template id of the
    /// previous page (see docs/cluster.md: this build pages by template id, which is stable across replicas).
    /// Each page starts an LMDB cursor at that id, so a whole pass reads every record once.
    func stream(_ r: WireStreamRecordsRequest) async throws(FacetError) -> WireRecordBatch {
        let limit = Int(r.maxRecords == 0 ? 512 : min(r.maxRecords, 4096))
        let node = nodeID
        guard let part = partitions.withLock({ $0[r.partition] }) else {
            var b = WireRecordBatch()
            b.partition = r.partition
            b.end = true
            return b
        }
        let result: Result<WireRecordBatch, FacetError> = await offload(searchQueue) {
            var b = WireRecordBatch()
            b.partition = r.partition
            b.totalRecords = UInt64(part.count)
            var more = false
            do {
                try part.forEachTemplate(after: r.afterSequence == 0 ? nil : TemplateID(r.afterSequence)) { t in
                    if b.records.count == limit { more = true; return false }
                    if !r.modelVersion.isEmpty && t.modelVersion != r.modelVersion { return true }
                    var w = WireTemplateRecord()
                    w.templateID = t.id.rawValue
                    w.subjectID = t.subject.rawValue
                    if r.idsOnly { b.records.append(w); return true }
                    w.collection = t.collection
                    w.embedding = WireEmbedding(values: t.embedding, modelVersion: t.modelVersion)
                    w.masked = t.masked
                    w.enrolledUnixMs = t.createdAtMilliseconds
                    if let p = t.periocular { w.periocularEmbedding = WireEmbedding(values: p, modelVersion: t.modelVersion) }
                    b.records.append(w)
                    return true
                }
            } catch {
                return .failure(FacetError(.internalError, "stream failed: \(error)", nodeID: node))
            }
            b.end = !more
            b.nextAfterSequence = b.records.last?.templateID ?? r.afterSequence
            return .success(b)
        }
        return try result.get()
    }
}

/// Node set-up errors.
public enum ClusterError: Error, Sendable, CustomStringConvertible {
    case configuration(String)
    public var description: String {
        switch self { case .configuration(let m): return "configuration: \(m)" }
    }
}

public enum FacetCluster {
    public static let softwareVersion = "0.1.0"
}
