import Foundation
import Logging
import FacetTransport
import FacetWire

/// The coordinator: a front-end ROUTER for clients and a back-end ROUTER for workers (matchers and embedders).
///
/// - Enrol: embed (embedder worker) or take the given embeddings → template ids from content hashes → write to
///   every live replica of the subject's partition; acknowledged once the write policy's replicas committed.
/// - Identify: scatter to one ready replica of every partition (``ScatterPlan``), fail over to another replica on
///   error or when a replica is slower than `replicaTimeout`, merge the per-partition top-k (``TopKMerge``);
///   partitions without an answer by the deadline make the result partial, never a hang.
/// - Verify, delete, status, shard map.
/// - Worker liveness (Paranoid Pirate): heartbeats both ways; a worker silent for `liveness` intervals is dead,
///   its calls fail at once (so requests fail over), and its replicas stop serving reads. A matcher that
///   (re)registers is filled from a ready replica of each of its partitions before it serves reads again.
///
/// The only state that must survive is the shard layout, which comes from the configuration; everything else is
/// rebuilt from worker registrations, so the coordinator can restart (workers reconnect and re-register).
public final class Coordinator: Sendable {
    public let nodeID: String
    public let layout: ShardLayout
    let configuration: NodeConfiguration
    let logger: Logger
    let front: ZMQChannel
    let back: ZMQChannel
    /// ZAP handler with the client (front end) and worker (back end) allow-lists; nil in plaintext mode.
    let authenticator: ZAPAuthenticator?
    /// The audit trail of client requests (``AuditLog``), when configured.
    let audit: AuditLog?
    /// Called after a subject is erased from every replica (the SVM retraining seam).
    public let erasureHooks = ErasureHooks()
    let state = LockedValue(CoordinatorState())
    let pending = LockedValue<[String: PendingCall]>([:])
    let counter = LockedValue<UInt64>(0)
    let inFlightRequests = LockedValue(0)
    let rateLimiter: LockedValue<RateLimiter>?
    let started = nowMilliseconds()
    /// Jobs (retraining), the durable models and the retraining triggers (`Coordinator+Jobs.swift`).
    let jobs: CoordinatorJobs

    struct PendingCall {
        let node: String
        let continuation: CheckedContinuation<Result<WireEnvelope.OneOf_Body, FacetError>, Never>
    }

    var interval: Duration { configuration.heartbeatInterval }
    var replicaTimeout: Duration { .milliseconds(configuration.replicaTimeoutMilliseconds ?? 1000) }
    var embedTimeout: Duration { .milliseconds(configuration.embedTimeoutMilliseconds ?? 60_000) }
    var defaultDeadline: Duration { .milliseconds(configuration.defaultDeadlineMilliseconds ?? 10_000) }
    var maxFrame: Int { configuration.frameLimit }

    /// Binds both sockets (so the endpoints are known when this returns).
    public init(configuration: NodeConfiguration, context: ZMQContext, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        nodeID = configuration.nodeID ?? "coordinator"
        guard let matchers = configuration.matchers, !matchers.isEmpty else {
            throw ClusterError.configuration("the coordinator needs the list of matcher node ids (\"matchers\")")
        }
        do {
            layout = try ShardLayout(partitionCount: configuration.partitionCount ?? 32,
                                     replicationFactor: configuration.replicationFactor ?? min(2, matchers.count), matchers: matchers)
        } catch { throw ClusterError.configuration("\(error)") }
        jobs = try CoordinatorJobs(nodeID: nodeID, configuration: configuration)
        if let rate = configuration.rateLimitPerSecond, rate > 0 {
            rateLimiter = LockedValue(RateLimiter(ratePerSecond: rate, burst: configuration.rateLimitBurst))
        } else {
            rateLimiter = nil
        }
        var options = SocketOptions()
        options.maxFrameBytes = configuration.frameLimit
        options.routerMandatory = false
        var frontOptions = options, backOptions = options
        let security = configuration.securitySettings
        if let curve = try security.coordinatorSecurity() {
            // The ZAP handler must exist before the server sockets accept handshakes.
            authenticator = try ZAPAuthenticator(context: context, allowedKeysByDomain: curve.allowed, logger: logger)
            frontOptions.security = .curveServer(curve.keys, zapDomain: SecurityConfiguration.frontendDomain)
            backOptions.security = .curveServer(curve.keys, zapDomain: SecurityConfiguration.backendDomain)
        } else {
            authenticator = nil
            logger.warning("INSECURE: plaintext sockets without authentication (development mode)")
        }
        audit = try AuditLog.open(for: configuration, logger: logger)
        front = try ZMQChannel(context: context, type: .router, options: frontOptions, bind: [configuration.frontend], name: "coordinator.front")
        back = try ZMQChannel(context: context, type: .router, options: backOptions, bind: [configuration.backend], name: "coordinator.back")
    }

    public var frontendEndpoint: String { front.boundEndpoints.first ?? configuration.frontend }
    public var backendEndpoint: String { back.boundEndpoints.first ?? configuration.backend }

    /// Serves until cancelled (graceful shutdown), then closes both sockets.
    public func run() async {
        logger.info("coordinator listening", metadata: [
            "frontend": "\(frontendEndpoint)", "backend": "\(backendEndpoint)",
            "partitions": "\(layout.partitionCount)", "replicas": "\(layout.replicationFactor)", "matchers": "\(layout.matchers)"])
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.backLoop() }
            group.addTask { await self.frontLoop() }
            group.addTask { await self.tickLoop() }
            group.addTask { await self.jobsLoop() }
            await group.waitForAll()
        }
        let calls = pending.withLock { p -> [PendingCall] in defer { p = [:] }; return Array(p.values) }
        for c in calls { c.continuation.resume(returning: .failure(FacetError(.cancelled, "coordinator shutting down"))) }
        await front.close()
        await back.close()
        await authenticator?.stop()
        audit?.close()
        logger.info("coordinator stopped")
    }

    // MARK: worker calls

    private func nextRequestID() -> String {
        "\(nodeID)-\(counter.withLock { $0 += 1; return $0 })"
    }

    /// Sends `body` to worker `node` and waits for its reply, at most `timeout`. Fails at once with UNAVAILABLE when
    /// the worker is dead or dies meanwhile. Error replies come back as failures.
    func call(_ node: String, _ body: WireEnvelope.OneOf_Body, timeout: Duration, parent: String = "") async -> Result<WireEnvelope.OneOf_Body, FacetError> {
        let id = nextRequestID()
        guard let routing = state.withLock({ s -> [UInt8]? in
            guard let w = s.workers[node], w.alive else { return nil }
            s.workers[node]!.inFlight += 1
            return w.routing
        }) else { return .failure(.unavailable("node \(node) is not live", node: node)) }
        defer { state.withLock { s in if s.workers[node] != nil { s.workers[node]!.inFlight -= 1 } } }
        var env = WireEnvelope.request(body, id: id, timeout: timeout, clientID: nodeID)
        if !parent.isEmpty { env.clientID = "\(nodeID)/\(parent)" }
        let bytes: [UInt8]
        do { bytes = try WireFrame.encode(env, maxBytes: maxFrame) } catch { return .failure(error.facetError) }
        return await withCheckedContinuation { c in
            pending.withLock { $0[id] = PendingCall(node: node, continuation: c) }
            do { try back.post(Multipart.routed([routing], body: [bytes])) } catch {
                resolve(id, .failure(.unavailable("cannot send to \(node): \(error)", node: node)))
                return
            }
            Task {
                try? await Task.sleep(for: timeout)
                self.resolve(id, .failure(FacetError(.deadlineExceeded, "\(node) did not answer within \(timeout)", nodeID: node)))
            }
        }
    }

    private func resolve(_ id: String, _ result: Result<WireEnvelope.OneOf_Body, FacetError>) {
        guard let p = pending.withLock({ $0.removeValue(forKey: id) }) else { return }
        p.continuation.resume(returning: result)
    }

    private func failCalls(to node: String, _ error: FacetError) {
        let calls = pending.withLock { p -> [PendingCall] in
            let ids = p.filter { $0.value.node == node }.map(\.key)
            return ids.compactMap { p.removeValue(forKey: $0) }
        }
        for c in calls { c.continuation.resume(returning: .failure(error)) }
    }

    // MARK: back end

    private func backLoop() async {
        while !Task.isCancelled {
            let message: Multipart
            do { message = try await back.receive() } catch { break }
            let (routing, body) = message.routingSplit
            guard let peer = routing.first, let frame = body.first else { continue }
            let env: WireEnvelope
            do { env = try WireFrame.decode(frame: frame, maxBytes: maxFrame) } catch {
                logger.warning("bad frame from a worker", metadata: ["error": "\(error)"])
                continue
            }
            let now = ContinuousClock.now, nowMs = nowMilliseconds()
            let known = state.withLock { s -> String? in
                guard let node = s.routingToNode[peer], s.workers[node]?.routing == peer, s.workers[node]?.alive == true else { return nil }
                s.workers[node]!.lastHeard = now
                s.workers[node]!.lastHeardUnixMs = nowMs
                return node
            }
            switch env.body {
            case .workerRegister(let r)?:
                register(r, routing: peer, request: env)
            case .workerDisconnect(let d)?:
                let node = known ?? d.nodeID
                if state.withLock({ $0.markDead(node) }) {
                    logger.info("worker left", metadata: ["node.id": "\(node)", "reason": "\(d.reason)"])
                    failCalls(to: node, .unavailable("node \(node) left", node: node))
                }
            case .heartbeat(let h)?:
                guard let node = known else {
                    // A worker we do not know (we restarted): ask it to register again.
                    var d = WireWorkerDisconnect()
                    d.reason = "unknown worker; register again"
                    postBack(peer, WireEnvelope.reply(to: env, .workerDisconnect(d), senderID: nodeID))
                    continue
                }
                state.withLock { s in
                    s.workers[node]!.inFlight = max(s.workers[node]!.inFlight, 0)
                    s.workers[node]!.holdings = Dictionary(h.holdings.map { ($0.partition, $0.templates) }, uniquingKeysWith: { a, _ in a })
                }
            default:
                guard known != nil, let b = env.body else { continue }
                if case .error(let e) = b {
                    resolve(env.requestID, .failure(FacetError(e)))
                } else {
                    resolve(env.requestID, .success(b))
                }
            }
        }
    }

    private func postBack(_ routing: [UInt8], _ env: WireEnvelope) {
        guard let bytes = try? WireFrame.encode(env, maxBytes: maxFrame) else { return }
        try? back.post(Multipart.routed([routing], body: [bytes]))
    }

    private func register(_ r: WireWorkerRegister, routing: [UInt8], request: WireEnvelope) {
        guard !r.nodeID.isEmpty, r.role == .matcher || r.role == .embedder else {
            var e = FacetError(.invalidArgument, "register needs a node id and the matcher or embedder role")
            e.nodeID = nodeID
            postBack(routing, WireEnvelope.errorReply(to: request, e, senderID: nodeID))
            return
        }
        let now = ContinuousClock.now
        let (generation, replaced) = state.withLock { s -> (Int, Bool) in
            let old = s.workers[r.nodeID]
            if let old { s.routingToNode.removeValue(forKey: old.routing) }
            var w = WorkerInfo(nodeID: r.nodeID, role: r.role, routing: routing, lastHeard: now, lastHeardUnixMs: nowMilliseconds(),
                               alive: true, generation: (old?.generation ?? 0) + 1)
            w.holdings = Dictionary(r.holdings.map { ($0.partition, $0.templates) }, uniquingKeysWith: { a, _ in a })
            w.model = r.model
            w.startedUnixMs = r.startedUnixMs
            w.softwareVersion = r.softwareVersion
            s.workers[r.nodeID] = w
            s.routingToNode[routing] = r.nodeID
            // A re-registering matcher may have missed writes: it serves no reads until filled again.
            s.ready = s.ready.filter { $0.node != r.nodeID }
            s.windows = s.windows.filter { $0.key.node != r.nodeID }
            return (w.generation, old != nil)
        }
        if replaced { failCalls(to: r.nodeID, .unavailable("node \(r.nodeID) re-registered", node: r.nodeID)) }
        var reply = WireWorkerRegistered()
        reply.heartbeatIntervalMs = UInt64(interval.wireMilliseconds)
        reply.liveness = UInt32(configuration.livenessCount)
        reply.coordinatorID = nodeID
        reply.shardMap = shardMap()
        postBack(routing, WireEnvelope.reply(to: request, .workerRegistered(reply), senderID: nodeID))
        logger.info("worker registered", metadata: ["node.id": "\(r.nodeID)", "role": "\(r.role)", "generation": "\(generation)",
                                                    "holdings": "\(r.holdings.count)"])
        if r.role == .matcher {
            if layout.matchers.contains(r.nodeID) {
                Task { await self.fill(r.nodeID, generation: generation) }
            } else {
                logger.warning("matcher is not in the shard map; it holds no partitions", metadata: ["node.id": "\(r.nodeID)"])
            }
        }
    }

    private func tickLoop() async {
        var beat = 0
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            if Task.isCancelled { break }
            beat += 1
            let limit = interval * configuration.livenessCount
            let now = ContinuousClock.now
            let (dead, live) = state.withLock { s -> ([String], [(String, [UInt8])]) in
                var dead: [String] = []
                for (id, w) in s.workers where w.alive && w.lastHeard.duration(to: now) > limit {
                    _ = s.markDead(id)
                    dead.append(id)
                }
                return (dead, s.workers.values.filter(\.alive).map { ($0.nodeID, $0.routing) })
            }
            for node in dead {
                logger.warning("worker missed its heartbeats; marked dead", metadata: ["node.id": "\(node)"])
                failCalls(to: node, .unavailable("node \(node) stopped answering", node: node))
            }
            var hb = WireHeartbeat()
            hb.nodeID = nodeID
            hb.state = .ready
            for (_, routing) in live {
                postBack(routing, WireEnvelope.request(.heartbeat(hb), id: "\(nodeID)-hb-\(beat)", clientID: nodeID))
            }
        }
    }

    // MARK: filling a replica

    /// Brings every partition of `node` up to date from a ready replica, then lets it serve reads.
    private func fill(_ node: String, generation: Int) async {
        func current() -> Bool { state.withLock { $0.workers[node]?.generation == generation && $0.workers[node]?.alive == true } }
        for p in layout.partitions(of: node) {
            let key = ReplicaKey(node, p)
            var attempt = 0
            while current() {
                let sources = state.withLock { $0.readyReplicas(of: p, layout: layout) }.filter { $0 != node }
                if sources.isEmpty {
                    // Nobody has a complete copy to offer (a cluster starting, or every replica was down): this one's
                    // committed data is the partition.
                    state.withLock { _ = $0.ready.insert(key) }
                    break
                }
                let source = sources[attempt % sources.count]
                attempt += 1
                state.withLock { $0.openWindow(key) }
                switch await copy(p, from: source, to: node) {
                case .success(let n):
                    let became = state.withLock { s -> Bool in
                        guard s.workers[node]?.generation == generation, s.workers[node]?.alive == true else { return false }
                        s.windows.removeValue(forKey: key)
                        s.ready.insert(key)
                        return true
                    }
                    if became, n > 0 {
                        logger.info("replica filled", metadata: ["node.id": "\(node)", "partition": "\(p)", "from": "\(source)", "copied": "\(n)"])
                    }
                case .failure(let e):
                    state.withLock { _ = $0.windows.removeValue(forKey: key) }
                    logger.warning("replica fill failed; retrying", metadata: ["node.id": "\(node)", "partition": "\(p)", "error": "\(e)"])
                    try? await Task.sleep(for: .milliseconds(200))
                    continue
                }
                break
            }
        }
    }

    /// Copies partition `p` from `source` to `target`: every source record the target lacks is inserted (idempotent),
    /// records the target has but the source has not (deleted while the target was away) are deleted, except those
    /// written during the copy; subject deletions made during the copy are applied again. Returns records copied.
    private func copy(_ p: UInt32, from source: String, to target: String) async -> Result<Int, FacetError> {
        let key = ReplicaKey(target, p)
        func streamIDs(_ node: String, insertInto: String?, skip: Set<UInt64>) async -> Result<Set<UInt64>, FacetError> {
            var after: UInt64 = 0
            var ids = Set<UInt64>()
            while true {
                var req = WireStreamRecordsRequest()
                req.partition = p
                req.afterSequence = after
                req.maxRecords = 512
                guard case .success(let body) = await call(node, .streamRecordsRequest(req), timeout: .seconds(10)) else {
                    return .failure(.unavailable("stream from \(node) failed", node: node))
                }
                guard case .recordBatch(let batch) = body else { return .failure(FacetError(.internalError, "unexpected reply")) }
                ids.formUnion(batch.records.map(\.templateID))
                if let target = insertInto {
                    let missing = batch.records.filter { !skip.contains($0.templateID) }
                    if !missing.isEmpty {
                        var ins = WirePartitionInsertRequest()
                        ins.partition = p
                        ins.records = missing
                        if case .failure(let e) = await call(target, .partitionInsertRequest(ins), timeout: .seconds(10)) { return .failure(e) }
                    }
                }
                if batch.end || batch.records.isEmpty { return .success(ids) }
                after = batch.nextAfterSequence
            }
        }
        // Pass 1: everything the source holds now.
        guard case .success(let first) = await streamIDs(source, insertInto: target, skip: []) else {
            return .failure(.unavailable("source \(source) failed", node: source))
        }
        // Writes that started before the window opened may have skipped the target; wait for them, then pass 2.
        for _ in 0..<500 where !state.withLock({ $0.earlierWritesDone(key) }) { try? await Task.sleep(for: .milliseconds(20)) }
        guard case .success(let second) = await streamIDs(source, insertInto: target, skip: first) else {
            return .failure(.unavailable("source \(source) failed", node: source))
        }
        let sourceIDs = first.union(second)
        // Pass 3: what the target holds that the source does not.
        guard case .success(let targetIDs) = await streamIDs(target, insertInto: nil, skip: []) else {
            return .failure(.unavailable("target \(target) failed", node: target))
        }
        let window = state.withLock { $0.windows[key] } ?? SyncWindow()
        let extra = targetIDs.subtracting(sourceIDs).subtracting(window.insertedIDs)
        if !extra.isEmpty {
            var del = WirePartitionDeleteRequest()
            del.partition = p
            del.templateIds = extra.sorted()
            if case .failure(let e) = await call(target, .partitionDeleteRequest(del), timeout: .seconds(10)) { return .failure(e) }
        }
        for subject in window.deletedSubjects.sorted() {
            var del = WirePartitionDeleteRequest()
            del.partition = p
            del.subjectID = subject
            if case .failure(let e) = await call(target, .partitionDeleteRequest(del), timeout: .seconds(10)) { return .failure(e) }
        }
        return .success(sourceIDs.subtracting(targetIDs).count)
    }

    // MARK: front end

    private func frontLoop() async {
        let limit = configuration.maxInFlight ?? 256
        while !Task.isCancelled {
            let message: Multipart
            do { message = try await front.receive() } catch { break }
            let (routing, body) = message.routingSplit
            guard !routing.isEmpty else { continue }
            func reply(_ env: WireEnvelope) {
                guard let bytes = try? WireFrame.encode(env, maxBytes: maxFrame) else { return }
                try? front.post(Multipart.routed(routing, body: [bytes]))
            }
            if let violation = message.limitViolation {
                reply(WireEnvelope.errorReply(requestID: "", FacetError(.frameTooLarge, "\(violation)", limit: UInt64(maxFrame), nodeID: nodeID)))
                continue
            }
            guard let frame = body.first else { continue }
            let env: WireEnvelope
            do { env = try WireFrame.decode(frame: frame, maxBytes: maxFrame) } catch {
                reply(WireEnvelope.errorReply(requestID: "", error.facetError, senderID: nodeID))
                continue
            }
            if env.isExpired() {
                reply(WireEnvelope.errorReply(to: env, FacetError(.deadlineExceeded, "deadline passed before the request was read", nodeID: nodeID), senderID: nodeID))
                continue
            }
            // Data-plane requests are rate limited per client; status and the shard map (operators' view) are not.
            if let limiter = rateLimiter, RateLimiter.applies(to: env.body) {
                let key = RateLimiter.clientKey(userID: message.userID, clientID: env.clientID, routing: routing.first ?? [])
                let now = Double(DispatchTime.now().uptimeNanoseconds) / 1e9
                if case .limited(let retry) = limiter.withLock({ $0.admit(key, now: now) }) {
                    let rate = configuration.rateLimitPerSecond ?? 0
                    reply(WireEnvelope.errorReply(to: env, FacetError(.rateLimited, "over \(rate) requests per second for this client",
                                                                      retryAfterMilliseconds: UInt64(retry), limit: UInt64(rate.rounded(.up)),
                                                                      nodeID: nodeID), senderID: nodeID))
                    continue
                }
            }
            let admitted = inFlightRequests.withLock { n -> Bool in
                guard n < limit else { return false }
                n += 1
                return true
            }
            guard admitted else {
                reply(WireEnvelope.errorReply(to: env, FacetError(.queueFull, "\(limit) requests in flight", retryAfterMilliseconds: 50,
                                                                  limit: UInt64(limit), nodeID: nodeID), senderID: nodeID))
                continue
            }
            Task {
                defer { self.inFlightRequests.withLock { $0 -= 1 } }
                let deadline = env.deadlineUnixMs != 0 ? env.deadlineUnixMs : nowMilliseconds() + self.defaultDeadline.wireMilliseconds
                var log = self.logger
                log[metadataKey: "request.id"] = "\(env.requestID)"
                let body: WireEnvelope.OneOf_Body
                do throws(FacetError) {
                    body = try await self.serve(env, deadline: deadline, logger: log)
                } catch {
                    var e = error
                    if e.nodeID.isEmpty { e.nodeID = self.nodeID }
                    log.info("request failed", metadata: ["kind": "\(env.bodyKind)", "error": "\(e)"])
                    body = .error(e.wire)
                }
                self.audit?.record(request: env, reply: body, authenticatedAs: message.userID)
                reply(WireEnvelope.reply(to: env, body, senderID: self.nodeID))
            }
        }
    }

    func serve(_ env: WireEnvelope, deadline: Int64, logger: Logger) async throws(FacetError) -> WireEnvelope.OneOf_Body {
        let ctx = RequestContext(id: env.requestID, deadline: deadline, logger: logger)
        switch env.body {
        case .enrolRequest(let r)?: return .enrolReply(try await enrol(r, ctx))
        case .identifyRequest(let r)?: return .identifyReply(try await identify(r, ctx))
        case .verifyRequest(let r)?: return .verifyReply(try await verify(r, ctx))
        case .deleteSubjectRequest(let r)?: return .deleteSubjectReply(try await deleteSubject(r, ctx))
        case .embedRequest(let r)?: return .embedReply(try await embed(r, ctx))
        case .statusRequest(let r)?: return .statusReply(status(r))
        case .shardMapRequest?: return .shardMap(shardMap())
        case .startRetrainRequest?, .getJobRequest?, .cancelJobRequest?, .listJobsRequest?, .setActiveModelRequest?,
             .startReenrolRequest?:
            return try await serveJobs(env.body!, ctx)
        default:
            throw FacetError(.invalidArgument, "the coordinator does not serve \(env.bodyKind) in this build", field: "body")
        }
    }
}

/// Per-request context: id (for logs and worker calls), absolute deadline.
struct RequestContext: Sendable {
    let id: String
    let deadline: Int64
    let logger: Logger

    var remaining: Duration { .milliseconds(max(0, deadline - nowMilliseconds())) }
    var expired: Bool { nowMilliseconds() >= deadline }
    func within(_ limit: Duration) -> Duration { min(limit, remaining) }
}
