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
/// The only state that must survive is the shard map (``ClusterShardMap``): the first one comes from the configuration,
/// newer ones are stored by the matchers (and in the optional `shardMapFile`) and adopted from their registrations and
/// heartbeats; everything else is rebuilt from worker registrations, so the coordinator can restart and several
/// coordinators can serve the same workers (see Coordinator+Shards.swift).
public final class Coordinator: Sendable {
    public let nodeID: String
    /// The configured layout: the first shard map (epoch 1) when no newer one is stored anywhere.
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
    let state: LockedValue<CoordinatorState>
    /// Shard changes, map pushes and fetches in progress (Coordinator+Shards.swift).
    let shardWork = LockedValue(ShardWork())
    public let metrics: NodeMetrics
    let pending = LockedValue<[String: PendingCall]>([:])
    let counter = LockedValue<UInt64>(0)
    let inFlightRequests = LockedValue(0)
    let rateLimiter: LockedValue<RateLimiter>?
    let started = nowMilliseconds()
    /// Jobs (retraining), the durable models and the retraining triggers (`Coordinator+Jobs.swift`).
    let jobs: CoordinatorJobs
    /// The match decision of identify and verify when the request names no threshold.
    public let decisionThresholds: DecisionThresholds

    typealias CallResult = Result<WireEnvelope.OneOf_Body, FacetError>

    struct PendingCall {
        let node: String
        /// Runs once, on the thread that resolves the call (the back end's socket thread for replies, the deadline
        /// thread for timeouts, the heartbeat task for dead workers): it must be short.
        let completion: @Sendable (CallResult) -> Void
        /// Fails the call at its timeout; cancelled when the call is resolved first.
        var timer: DeadlineScheduler.Token?
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
        decisionThresholds = try DecisionThresholds(configuration: configuration)
        if let rate = configuration.rateLimitPerSecond, rate > 0 {
            rateLimiter = LockedValue(RateLimiter(ratePerSecond: rate, burst: configuration.rateLimitBurst))
        } else {
            rateLimiter = nil
        }
        var initial = ClusterShardMap(layout: layout)
        if let file = configuration.shardMapFile, let stored = try Self.loadShardMap(file) {
            guard stored.partitionCount == layout.partitionCount else {
                throw ClusterError.configuration("\(file) has \(stored.partitionCount) partitions, the configuration \(layout.partitionCount)")
            }
            if stored.isNewer(than: initial) { initial = stored }
        }
        state = LockedValue(CoordinatorState(map: initial))
        metrics = NodeMetrics(role: "coordinator")
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
        // Each ROUTER has its own owner thread. FACET_COORDINATOR_SHARED_THREAD=1 puts both on one thread (no thread
        // wake-up between a request and its forward); measured in session 6 it did not lower the identify latency
        // (p50 equal, p99 equal or worse: docs/cluster.md), so it is an experiment switch, off by default.
        let specs = [
            ChannelSpec(type: .router, options: frontOptions, bind: [configuration.frontend], name: "coordinator.front"),
            ChannelSpec(type: .router, options: backOptions, bind: [configuration.backend], name: "coordinator.back"),
        ]
        if ProcessInfo.processInfo.environment["FACET_COORDINATOR_SHARED_THREAD"] == "1" {
            let channels = try ZMQChannel.group(context: context, specs, name: "coordinator")
            front = channels[0]
            back = channels[1]
        } else {
            front = try ZMQChannel.group(context: context, [specs[0]], name: "coord.front")[0]
            back = try ZMQChannel.group(context: context, [specs[1]], name: "coord.back")[0]
        }
    }

    public var frontendEndpoint: String { front.boundEndpoints.first ?? configuration.frontend }
    public var backendEndpoint: String { back.boundEndpoints.first ?? configuration.backend }

    /// Serves until cancelled (graceful shutdown), then closes both sockets.
    public func run() async {
        let map = currentMap
        logger.info("coordinator listening", metadata: [
            "frontend": "\(frontendEndpoint)", "backend": "\(backendEndpoint)", "epoch": "\(map.epoch)",
            "partitions": "\(map.partitionCount)", "replicas": "\(map.replicationFactor)", "matchers": "\(map.matchers)",
            "thresholds": "\(decisionThresholds.summary)"])
        // Client requests and worker replies are handled on the sockets' own threads (see handleFront/handleBack);
        // the loops take what arrived before the handlers were installed.
        back.setReceiveHandler { [self] message in handleBack(message); return true }
        front.setReceiveHandler { [self] message in handleFront(message); return true }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.backLoop() }
            group.addTask { await self.frontLoop() }
            group.addTask { await self.tickLoop() }
            group.addTask { await self.jobsLoop() }
            await group.waitForAll()
        }
        let calls = pending.withLock { p -> [PendingCall] in defer { p = [:] }; return Array(p.values) }
        for c in calls { c.completion(.failure(FacetError(.cancelled, "coordinator shutting down"))) }
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
    func call(_ node: String, _ body: WireEnvelope.OneOf_Body, timeout: Duration, parent: String = "") async -> CallResult {
        await withCheckedContinuation { c in
            startCall(node, body, timeout: timeout, parent: parent) { c.resume(returning: $0) }
        }
    }

    /// `call` without a task: sends `body` and runs `completion` exactly once with the reply, the error reply, or the
    /// failure (at once when the worker is not live). The latency-critical paths (identify) use it so that a reply is
    /// handled on the back end's socket thread without a hop through the task pool.
    func startCall(_ node: String, _ body: WireEnvelope.OneOf_Body, timeout: Duration, parent: String = "",
                   completion: @escaping @Sendable (CallResult) -> Void) {
        let id = nextRequestID()
        guard let routing = state.withLock({ s -> [UInt8]? in
            guard let w = s.workers[node], w.alive else { return nil }
            s.workers[node]!.inFlight += 1
            return w.routing
        }) else { return completion(.failure(.unavailable("node \(node) is not live", node: node))) }
        let done: @Sendable (CallResult) -> Void = { [self] result in
            state.withLock { s in if s.workers[node] != nil { s.workers[node]!.inFlight -= 1 } }
            completion(result)
        }
        var env = WireEnvelope.request(body, id: id, timeout: timeout, clientID: nodeID)
        if !parent.isEmpty { env.clientID = "\(nodeID)/\(parent)" }
        let bytes: [UInt8]
        do { bytes = try WireFrame.encode(env, maxBytes: maxFrame) } catch { return done(.failure(error.facetError)) }
        pending.withLock { $0[id] = PendingCall(node: node, completion: done) }
        do { try back.post(Multipart.routed([routing], body: [bytes])) } catch {
            resolve(id, .failure(.unavailable("cannot send to \(node): \(error)", node: node)))
            return
        }
        // One shared timer thread, not a task per call (see DeadlineScheduler).
        let timer = DeadlineScheduler.shared.schedule(after: timeout) {
            self.resolve(id, .failure(FacetError(.deadlineExceeded, "\(node) did not answer within \(timeout)", nodeID: node)))
        }
        let answered = pending.withLock { p -> Bool in
            guard p[id] != nil else { return true }
            p[id]!.timer = timer
            return false
        }
        if answered { DeadlineScheduler.shared.cancel(timer) }
    }

    private func resolve(_ id: String, _ result: CallResult) {
        guard let p = pending.withLock({ $0.removeValue(forKey: id) }) else { return }
        if let timer = p.timer { DeadlineScheduler.shared.cancel(timer) }
        p.completion(result)
    }

    private func failCalls(to node: String, _ error: FacetError) {
        let calls = pending.withLock { p -> [PendingCall] in
            let ids = p.filter { $0.value.node == node }.map(\.key)
            return ids.compactMap { p.removeValue(forKey: $0) }
        }
        for c in calls { c.completion(.failure(error)) }
    }

    // MARK: back end

    /// Messages that arrived before the socket-thread handler was installed (see `run`).
    private func backLoop() async {
        while !Task.isCancelled {
            let message: Multipart
            do { message = try await back.receive() } catch { break }
            handleBack(message)
        }
    }

    /// One message from a worker, handled on the back end's socket thread: replies resolve their calls at once
    /// (a scatter's next step runs right there), registrations and heartbeats update the worker table. Nothing here
    /// waits; work that must wait (map fetches and pushes, fills) is started as a task.
    func handleBack(_ message: Multipart) {
        let (routing, body) = message.routingSplit
        guard let peer = routing.first, let frame = body.first else { return }
        let env: WireEnvelope
        do { env = try WireFrame.decode(frame: frame, maxBytes: maxFrame) } catch {
            logger.warning("bad frame from a worker", metadata: ["error": "\(error)"])
            return
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
                return
            }
            state.withLock { s in
                s.workers[node]!.inFlight = max(s.workers[node]!.inFlight, 0)
                if s.workers[node]!.role == .matcher { s.updateHoldings(node, h.holdings, version: h.holdingsVersion) }
            }
            if state.withLock({ $0.workers[node]?.role == .matcher }) { compareEpoch(node, h.shardMapEpoch) }
        default:
            guard known != nil, let b = env.body else { return }
            if case .error(let e) = b {
                resolve(env.requestID, .failure(FacetError(e)))
            } else {
                resolve(env.requestID, .success(b))
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
            w.model = r.model
            w.startedUnixMs = r.startedUnixMs
            w.softwareVersion = r.softwareVersion
            s.workers[r.nodeID] = w
            s.routingToNode[routing] = r.nodeID
            s.windows = s.windows.filter { $0.key.node != r.nodeID }
            // A new incarnation numbers its state from 1 again: fills of the old one say nothing about its reports.
            s.filled = s.filled.filter { $0.key.node != r.nodeID }
            if r.role == .matcher {
                s.updateHoldings(r.nodeID, r.holdings, version: r.holdingsVersion)
                // A matcher that re-registers with this coordinator may have missed its writes (it was dead here, or
                // its link was): it serves no reads until filled again, whatever it reports.
                if old != nil {
                    for p in s.map.assigned(to: r.nodeID) { s.mustFill.insert(ReplicaKey(r.nodeID, p)) }
                }
            }
            return (w.generation, old != nil)
        }
        if r.role == .matcher { adoptReported(r.shardMap, from: r.nodeID) }
        if replaced { failCalls(to: r.nodeID, .unavailable("node \(r.nodeID) re-registered", node: r.nodeID)) }
        var reply = WireWorkerRegistered()
        reply.heartbeatIntervalMs = UInt64(interval.wireMilliseconds)
        reply.liveness = UInt32(configuration.livenessCount)
        reply.coordinatorID = nodeID
        reply.shardMap = currentMap.wire
        postBack(routing, WireEnvelope.reply(to: request, .workerRegistered(reply), senderID: nodeID))
        logger.info("worker registered", metadata: ["node.id": "\(r.nodeID)", "role": "\(r.role)", "generation": "\(generation)",
                                                    "holdings": "\(r.holdings.count)"])
        if r.role == .matcher {
            compareEpoch(r.nodeID, r.shardMap.epoch)
            if !currentMap.matchers.contains(r.nodeID) {
                logger.info("matcher is not in the shard map (yet); it holds no partitions", metadata: ["node.id": "\(r.nodeID)"])
            }
        }
    }

    private func tickLoop() async {
        var beat = 0
        var lastTick = ContinuousClock.now
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            if Task.isCancelled { break }
            beat += 1
            let limit = interval * configuration.livenessCount
            let now = ContinuousClock.now
            // A tick that comes late means this process was not running (an overloaded machine): that time is not a
            // worker's silence, so it is added to every worker's last-heard time (capped at now) before judging.
            let stall = Self.stall(since: lastTick, now: now, interval: interval)
            lastTick = now
            let (dead, live) = state.withLock { s -> ([String], [(String, [UInt8])]) in
                if stall > .zero {
                    for id in Array(s.workers.keys) where s.workers[id]!.alive {
                        s.workers[id]!.lastHeard = min(now, s.workers[id]!.lastHeard.advanced(by: stall))
                    }
                }
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
            hb.shardMapEpoch = currentMap.epoch
            reconcile()
            for (_, routing) in live {
                postBack(routing, WireEnvelope.request(.heartbeat(hb), id: "\(nodeID)-hb-\(beat)", clientID: nodeID))
            }
        }
    }

    /// How much later than one `interval` (plus an interval of slack) a periodic task woke up: time during which this
    /// process did not run, which must not count as a peer's silence.
    static func stall(since last: ContinuousClock.Instant, now: ContinuousClock.Instant, interval: Duration) -> Duration {
        let gap = last.duration(to: now)
        return gap > interval * 2 ? gap - interval : .zero
    }

    // MARK: front end

    /// Messages that arrived before the socket-thread handler was installed (see `run`).
    private func frontLoop() async {
        while !Task.isCancelled {
            let message: Multipart
            do { message = try await front.receive() } catch { break }
            handleFront(message)
        }
    }

    /// One client message, on the front end's socket thread: checks (frame limits, decoding, deadline, rate limit,
    /// requests in flight) and their error replies are answered right here; an identify by embedding starts its
    /// scatter right here too (its replies are handled on the back end's socket thread, and the last one sends the
    /// answer), so the identify path has no hop through the task pool. Everything else is served by a task.
    func handleFront(_ message: Multipart) {
        let (routing, body) = message.routingSplit
        guard !routing.isEmpty else { return }
        if body.first.map({ $0.count > Self.inlineDecodeLimit }) ?? false, message.limitViolation == nil {
            // A large request (an image) is decoded off the socket thread, so it does not hold up the small ones.
            Task { self.admitAndServe(message, routing: routing, body: body) }
        } else {
            admitAndServe(message, routing: routing, body: body)
        }
    }

    /// Frames larger than this are decoded by a task rather than on the front end's socket thread.
    static let inlineDecodeLimit = 64 * 1024

    private func admitAndServe(_ message: Multipart, routing: [[UInt8]], body: [[UInt8]]) {
        let limit = configuration.maxInFlight ?? 256
        func reply(_ env: WireEnvelope) {
            guard let bytes = try? WireFrame.encode(env, maxBytes: maxFrame) else { return }
            try? front.post(Multipart.routed(routing, body: [bytes]))
        }
        if let violation = message.limitViolation {
            reply(WireEnvelope.errorReply(requestID: "", FacetError(.frameTooLarge, "\(violation)", limit: UInt64(maxFrame), nodeID: nodeID)))
            return
        }
        guard let frame = body.first else { return }
        let env: WireEnvelope
        do { env = try WireFrame.decode(frame: frame, maxBytes: maxFrame) } catch {
            reply(WireEnvelope.errorReply(requestID: "", error.facetError, senderID: nodeID))
            return
        }
        if env.isExpired() {
            reply(WireEnvelope.errorReply(to: env, FacetError(.deadlineExceeded, "deadline passed before the request was read", nodeID: nodeID), senderID: nodeID))
            return
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
                return
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
            return
        }
        let began = ContinuousClock.now
        let deadline = env.deadlineUnixMs != 0 ? env.deadlineUnixMs : nowMilliseconds() + defaultDeadline.wireMilliseconds
        let ctx = RequestContext(id: env.requestID, deadline: deadline, logger: logger)
        // Exactly once per admitted request: audit, metrics, the reply, and the in-flight count.
        let finish: @Sendable (Result<WireEnvelope.OneOf_Body, FacetError>) -> Void = { [self] result in
            let body: WireEnvelope.OneOf_Body
            switch result {
            case .success(let b): body = b
            case .failure(let error):
                var e = error
                if e.nodeID.isEmpty { e.nodeID = nodeID }
                ctx.logger.info("request failed", metadata: ["kind": "\(env.bodyKind)", "error": "\(e)"])
                body = .error(e.wire)
            }
            audit?.record(request: env, reply: body, authenticatedAs: message.userID)
            let outcome: String
            if case .error(let e) = body { outcome = "\(FacetError(e).code)" } else { outcome = "ok" }
            metrics.request(env.bodyKind, outcome: outcome, duration: began.duration(to: .now))
            inFlightRequests.withLock { $0 -= 1 }
            guard let bytes = try? WireFrame.encode(WireEnvelope.reply(to: env, body, senderID: nodeID), maxBytes: maxFrame) else { return }
            try? front.post(Multipart.routed(routing, body: [bytes]))
        }
        if case .identifyRequest(let r)? = env.body, case .embedding? = r.query {
            identifyNow(r, ctx) { finish($0.map { .identifyReply($0) }) }
            return
        }
        Task {
            do throws(FacetError) {
                finish(.success(try await self.serve(env, ctx)))
            } catch {
                finish(.failure(error))
            }
        }
    }

    func serve(_ env: WireEnvelope, _ ctx: RequestContext) async throws(FacetError) -> WireEnvelope.OneOf_Body {
        switch env.body {
        case .enrolRequest(let r)?: return .enrolReply(try await enrol(r, ctx))
        case .identifyRequest(let r)?: return .identifyReply(try await identify(r, ctx))
        case .verifyRequest(let r)?: return .verifyReply(try await verify(r, ctx))
        case .deleteSubjectRequest(let r)?: return .deleteSubjectReply(try await deleteSubject(r, ctx))
        case .embedRequest(let r)?: return .embedReply(try await embed(r, ctx))
        case .statusRequest(let r)?: return .statusReply(status(r))
        case .shardMapRequest?: return .shardMap(shardMap())
        case .startRetrainRequest?, .getJobRequest?, .cancelJobRequest?, .listJobsRequest?, .setActiveModelRequest?,
             .startReenrolRequest?, .startPurgeModelRequest?:
            return try await serveJobs(env.body!, ctx)
        case .listSubjectsRequest(let r)?: return .listSubjectsReply(try await listSubjects(r, ctx))
        case .shardChangeRequest(let r)?: return .shardChangeReply(try await changeShards(r, ctx))
        default:
            throw FacetError(.invalidArgument, "the coordinator does not serve \(env.bodyKind) in this build", field: "body")
        }
    }
}

/// Per-request context: id (for logs and worker calls), absolute deadline.
struct RequestContext: Sendable {
    let id: String
    let deadline: Int64
    private let base: Logger

    init(id: String, deadline: Int64, logger: Logger) {
        self.id = id
        self.deadline = deadline
        base = logger
    }

    /// The node's logger with the request id, made when something is logged: setting metadata on a logger makes
    /// swift-log's stream handler format all of it again, a cost every request would pay on the identify path.
    var logger: Logger {
        var l = base
        l[metadataKey: "request.id"] = "\(id)"
        return l
    }

    var remaining: Duration { .milliseconds(max(0, deadline - nowMilliseconds())) }
    var expired: Bool { nowMilliseconds() >= deadline }
    func within(_ limit: Duration) -> Duration { min(limit, remaining) }
}
