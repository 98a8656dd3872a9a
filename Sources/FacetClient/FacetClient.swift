// FacetClient: the async Swift client of a Facet coordinator.
import FacetTransport
import FacetWire
import Foundation

/// A connection to a Facet coordinator's client endpoint.
///
/// One DEALER socket (on its own thread, through `ZMQChannel`) carries every request; each
/// request gets an id and a deadline, and replies are matched to callers by id, so many tasks
/// can call concurrently and replies may come back in any order. Every failure is a
/// `FacetError`: error replies keep the server's code; a reply that does not come before the
/// deadline is `.deadlineExceeded`; a transport failure is `.unavailable`.
public final class FacetClient: Sendable {
    /// CURVE settings: this client's key pair and the coordinator's public key.
    public struct Curve: Sendable, Hashable {
        public var clientKeys: CurveKeyPair
        public var serverPublicKey: CurveKey

        public init(clientKeys: CurveKeyPair, serverPublicKey: CurveKey) {
            self.clientKeys = clientKeys
            self.serverPublicKey = serverPublicKey
        }
    }

    /// Which failed requests the client sends again within their deadline, and how long it waits in between.
    ///
    /// Only requests that may be sent twice are retried, and only on retryable codes (`FacetError.Code.isRetryable`):
    /// reads (embed, identify, verify, status, list, shard map) and enrol, whose template ids come from the subject and
    /// the image or embedding, so a second enrolment of the same photo is `already_present`, not a second template.
    /// A delete is retried only on RATE_LIMITED and QUEUE_FULL (refused before anything was done: after a lost reply a
    /// retry would answer NOT_FOUND for a delete that worked); jobs and shard changes are never retried.
    public struct RetryPolicy: Sendable, Hashable {
        /// Attempts in all (1: no retries).
        public var maxAttempts: Int
        public var initialBackoff: Duration
        public var maxBackoff: Duration

        public init(maxAttempts: Int, initialBackoff: Duration = .milliseconds(100), maxBackoff: Duration = .seconds(2)) {
            self.maxAttempts = max(1, maxAttempts)
            self.initialBackoff = initialBackoff
            self.maxBackoff = maxBackoff
        }

        /// One attempt: errors come back as they are.
        public static let none = RetryPolicy(maxAttempts: 1)
        /// Up to 4 attempts, waits from 0.1 s doubling to 2 s (what the `facet` commands use).
        public static let standard = RetryPolicy(maxAttempts: 4)

        /// The wait before retry `attempt` (0-based): the initial backoff doubling per attempt up to the maximum, at
        /// least the server's `retry_after_ms` (capped at 30 s), with up to 25 % random jitter.
        public func backoff(attempt: Int, retryAfterMilliseconds: UInt64) -> Duration {
            let initial = Double(initialBackoff.components.seconds) * 1000 + Double(initialBackoff.components.attoseconds) / 1e15
            let cap = Double(maxBackoff.components.seconds) * 1000 + Double(maxBackoff.components.attoseconds) / 1e15
            let base = min(cap, initial * pow(2, Double(min(attempt, 20))))
            let wait = max(base, Double(min(retryAfterMilliseconds, 30_000)))
            return .microseconds(Int64(wait * 1000 * Double.random(in: 1.0...1.25)))
        }

        /// Whether a request with `body` that failed with `error` may be sent again (see the type's documentation).
        public static func mayRetry(_ body: WireEnvelope.OneOf_Body, after error: FacetError) -> Bool {
            guard error.code.isRetryable else { return false }
            switch body {
            case .embedRequest, .identifyRequest, .verifyRequest, .statusRequest, .listSubjectsRequest, .shardMapRequest, .enrolRequest:
                return true
            case .deleteSubjectRequest:
                return error.code == .rateLimited || error.code == .queueFull
            default:
                return false
            }
        }
    }

    public let endpoint: String
    public let clientID: String
    public let retry: RetryPolicy
    public let defaultTimeout: Duration
    public let maxFrameBytes: Int
    private let channel: ZMQChannel
    private let pending = PendingReplies()
    private let counter = Counter()
    private let reader: Task<Void, Never>

    /// Connects (asynchronously, in the background: the first request waits for the connection
    /// within its deadline) to `endpoint`, e.g. "tcp://127.0.0.1:5555".
    public init(endpoint: String, curve: Curve? = nil, clientID: String? = nil, timeout: Duration = .seconds(10),
                retry: RetryPolicy = .none, maxFrameBytes: Int = WireProtocol.defaultMaxFrameBytes,
                context: ZMQContext? = nil) throws(FacetError) {
        self.endpoint = endpoint
        self.retry = retry
        self.clientID = clientID ?? "client-\(ProcessInfo.processInfo.processIdentifier)-\(UInt32.random(in: 0...UInt32.max))"
        self.defaultTimeout = timeout
        self.maxFrameBytes = maxFrameBytes
        var o = SocketOptions()
        o.maxFrameBytes = maxFrameBytes
        o.maxFrames = 8
        o.reconnectInterval = .milliseconds(100)
        o.reconnectIntervalMax = .seconds(2)
        if let curve { o.security = .curveClient(curve.clientKeys, serverPublicKey: curve.serverPublicKey) }
        do {
            let ctx = try context ?? ZMQContext()
            channel = try ZMQChannel(context: ctx, type: .dealer, options: o, connect: [endpoint], name: "client")
        } catch {
            throw FacetError(.unavailable, "cannot open a client socket to \(endpoint): \(error)")
        }
        let channel = self.channel, pending = self.pending, limit = maxFrameBytes
        let deliver: @Sendable (Multipart) -> Void = { m in
            guard let frame = m.routingSplit.body.first, m.limitViolation == nil,
                  let reply = try? WireFrame.decode(frame: frame, maxBytes: limit) else { return }
            pending.resolve(reply.requestID, with: .success(reply))
        }
        // Replies are matched to their calls on the socket's thread (one hop less than a reader task); the reader
        // only waits for the channel to close, then fails what is still waiting.
        channel.setReceiveHandler { m in deliver(m); return true }
        reader = Task {
            while true {
                do { deliver(try await channel.receive()) } catch { break }
            }
            pending.failAll(FacetError(.unavailable, "client closed"))
        }
    }

    deinit { reader.cancel() }

    /// Closes the socket; requests still waiting fail with `.unavailable`.
    public func close() async {
        await channel.close()
        await reader.value
    }

    // MARK: the general call

    /// Sends `body` and returns the reply's body. Error replies are thrown as `FacetError`. With a ``RetryPolicy``
    /// other than `.none`, a failure it allows is sent again (a new request id) after its backoff, as long as the
    /// whole call stays within `timeout`; the last error is thrown.
    public func call(_ body: WireEnvelope.OneOf_Body, timeout: Duration? = nil) async throws(FacetError) -> WireEnvelope.OneOf_Body {
        let timeout = timeout ?? defaultTimeout
        let deadline = ContinuousClock.now + timeout
        var attempt = 0
        while true {
            do {
                return try await callOnce(body, timeout: ContinuousClock.now.duration(to: deadline))
            } catch {
                attempt += 1
                guard attempt < retry.maxAttempts, RetryPolicy.mayRetry(body, after: error) else { throw error }
                let wait = retry.backoff(attempt: attempt - 1, retryAfterMilliseconds: error.retryAfterMilliseconds)
                // A retry that could not get an answer before the deadline is not sent.
                guard ContinuousClock.now + wait + .milliseconds(10) < deadline else { throw error }
                do { try await Task.sleep(for: wait) } catch { throw FacetError(.cancelled, "request cancelled") }
            }
        }
    }

    private func callOnce(_ body: WireEnvelope.OneOf_Body, timeout: Duration) async throws(FacetError) -> WireEnvelope.OneOf_Body {
        let id = "\(clientID)-\(counter.next())"
        let envelope = WireEnvelope.request(body, id: id, timeout: timeout, clientID: clientID)
        let frame: [UInt8]
        do { frame = try WireFrame.encode(envelope, maxBytes: maxFrameBytes) } catch {
            throw FacetError(.frameTooLarge, "request too large: \(error)", limit: UInt64(maxFrameBytes))
        }
        let channel = self.channel, pending = self.pending, endpoint = self.endpoint
        // The waiter is registered before the request is queued, so a fast reply always finds it.
        // The request is handed to the socket's thread at once (no extra task hop on the way out);
        // the process's deadline thread fails the waiter if no reply came by the deadline (no task
        // or OS timer per request); the deadline is cancelled as soon as the call is answered. A
        // request that could not leave before its deadline (no connection) is answered by the
        // server as expired, if it ever arrives.
        var timer: DeadlineScheduler.Token?
        let result: Result<WireEnvelope, FacetError> = await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Result<WireEnvelope, FacetError>, Never>) in
                pending.register(id, c)
                do { try channel.post(Multipart([[], frame])) } catch {
                    pending.resolve(id, with: .failure(FacetError(.unavailable, "cannot send to \(endpoint): \(error)")))
                    return
                }
                timer = DeadlineScheduler.shared.schedule(after: timeout) {
                    pending.resolve(id, with: .failure(FacetError(.deadlineExceeded, "no reply from \(endpoint) within \(timeout)")))
                }
            }
        } onCancel: {
            pending.resolve(id, with: .failure(FacetError(.cancelled, "request cancelled")))
        }
        if let timer { DeadlineScheduler.shared.cancel(timer) }
        let reply = try result.get()
        guard let replyBody = reply.body else { throw FacetError(.malformedMessage, "reply without a body") }
        if case .error(let e) = replyBody { throw FacetError(e) }
        return replyBody
    }

    private func unexpected(_ body: WireEnvelope.OneOf_Body, _ wanted: String) -> FacetError {
        var e = WireEnvelope()
        e.body = body
        return FacetError(.internalError, "expected \(wanted), got \(e.bodyKind)")
    }

    // MARK: typed requests

    /// Detects faces and computes their embeddings.
    public func embed(image: Data, upsample: UInt32 = 0, jitter: UInt32 = 0, maxFaces: UInt32 = 0,
                      timeout: Duration? = nil) async throws(FacetError) -> WireEmbedReply {
        var r = WireEmbedRequest()
        r.image = WireImage.with { $0.data = image }
        r.upsample = upsample
        r.jitter = jitter
        r.maxFaces = maxFaces
        let reply = try await call(.embedRequest(r), timeout: timeout)
        guard case .embedReply(let v) = reply else { throw unexpected(reply, "embedReply") }
        return v
    }

    /// Enrols a subject from images (each with one face), precomputed embeddings (stored as unmasked faces) and/or
    /// faces as ``embed(image:upsample:jitter:maxFaces:timeout:)`` returned them (their mask state and periocular
    /// embedding are kept, as for an image).
    public func enrol(subjectID: String, images: [Data] = [], embeddings: [WireEmbedding] = [], faces: [WireFace] = [],
                      collection: String = "", metadata: [String: String] = [:], writePolicy: WireWritePolicy = .unspecified,
                      timeout: Duration? = nil) async throws(FacetError) -> WireEnrolReply {
        guard !subjectID.isEmpty else { throw FacetError(.invalidArgument, "subject id is empty", field: "subject_id") }
        guard !images.isEmpty || !embeddings.isEmpty || !faces.isEmpty else {
            throw FacetError(.invalidArgument, "nothing to enrol: give images, embeddings or faces", field: "images")
        }
        var r = WireEnrolRequest()
        r.subjectID = subjectID
        r.collection = collection
        r.images = images.map { d in WireImage.with { $0.data = d } }
        r.embeddings = embeddings
        r.faces = faces
        r.metadata = metadata
        r.writePolicy = writePolicy
        let reply = try await call(.enrolRequest(r), timeout: timeout)
        guard case .enrolReply(let v) = reply else { throw unexpected(reply, "enrolReply") }
        return v
    }

    /// 1:N search with the largest face of an image.
    public func identify(image: Data, k: UInt32 = 5, collections: [String] = [], withClassifier: Bool = false,
                         timeout: Duration? = nil) async throws(FacetError) -> WireIdentifyReply {
        var r = WireIdentifyRequest()
        r.image = WireImage.with { $0.data = image }
        return try await identify(r, k: k, collections: collections, withClassifier: withClassifier, timeout: timeout)
    }

    /// 1:N search with a face as ``embed(image:upsample:jitter:maxFaces:timeout:)`` returned it: the same search as
    /// with the image (its mask state picks the thresholds; its periocular embedding is fused where a side is masked),
    /// without embedding the image again.
    public func identify(face: WireFace, k: UInt32 = 5, collections: [String] = [], withClassifier: Bool = false,
                         timeout: Duration? = nil) async throws(FacetError) -> WireIdentifyReply {
        var r = WireIdentifyRequest()
        r.face = face
        return try await identify(r, k: k, collections: collections, withClassifier: withClassifier, timeout: timeout)
    }

    /// 1:N search with an embedding (an unmasked face without a periocular embedding).
    public func identify(embedding: WireEmbedding, k: UInt32 = 5, collections: [String] = [], withClassifier: Bool = false,
                         timeout: Duration? = nil) async throws(FacetError) -> WireIdentifyReply {
        var r = WireIdentifyRequest()
        r.embedding = embedding
        return try await identify(r, k: k, collections: collections, withClassifier: withClassifier, timeout: timeout)
    }

    private func identify(_ request: WireIdentifyRequest, k: UInt32, collections: [String], withClassifier: Bool,
                          timeout: Duration?) async throws(FacetError) -> WireIdentifyReply {
        var r = request
        r.k = k
        r.collections = collections
        r.withClassifier = withClassifier
        let reply = try await call(.identifyRequest(r), timeout: timeout)
        guard case .identifyReply(let v) = reply else { throw unexpected(reply, "identifyReply") }
        return v
    }

    /// 1:1 comparison of two images.
    public func verify(probe: Data, reference: Data, threshold: Float = 0, timeout: Duration? = nil) async throws(FacetError) -> WireVerifyReply {
        try await verify(.probeImage(WireImage.with { $0.data = probe }), .referenceImage(WireImage.with { $0.data = reference }),
                         threshold: threshold, timeout: timeout)
    }

    /// 1:1 comparison of an image with an enrolled subject.
    public func verify(probe: Data, subjectID: String, collection: String = "", threshold: Float = 0,
                       timeout: Duration? = nil) async throws(FacetError) -> WireVerifyReply {
        try await verify(.probeImage(WireImage.with { $0.data = probe }), .subjectID(subjectID), collection: collection,
                         threshold: threshold, timeout: timeout)
    }

    /// 1:1 comparison of two faces as ``embed(image:upsample:jitter:maxFaces:timeout:)`` returned them (the same
    /// comparison as of their images, periocular fusion included).
    public func verify(probeFace: WireFace, referenceFace: WireFace, threshold: Float = 0, timeout: Duration? = nil) async throws(FacetError) -> WireVerifyReply {
        try await verify(.probeFace(probeFace), .referenceFace(referenceFace), threshold: threshold, timeout: timeout)
    }

    /// 1:1 comparison of a face (from an EmbedReply) with an enrolled subject.
    public func verify(probeFace: WireFace, subjectID: String, collection: String = "", threshold: Float = 0,
                       timeout: Duration? = nil) async throws(FacetError) -> WireVerifyReply {
        try await verify(.probeFace(probeFace), .subjectID(subjectID), collection: collection, threshold: threshold, timeout: timeout)
    }

    private func verify(_ probe: WireVerifyRequest.OneOf_Probe, _ reference: WireVerifyRequest.OneOf_Reference, collection: String = "",
                        threshold: Float, timeout: Duration?) async throws(FacetError) -> WireVerifyReply {
        var r = WireVerifyRequest()
        r.probe = probe
        r.reference = reference
        r.collection = collection
        r.threshold = threshold
        return try await verify(r, timeout: timeout)
    }

    public func verify(_ request: WireVerifyRequest, timeout: Duration? = nil) async throws(FacetError) -> WireVerifyReply {
        let reply = try await call(.verifyRequest(request), timeout: timeout)
        guard case .verifyReply(let v) = reply else { throw unexpected(reply, "verifyReply") }
        return v
    }

    /// Deletes a subject everywhere (LMDB, index, classifier).
    public func deleteSubject(_ subjectID: String, collection: String = "", reason: String = "",
                              timeout: Duration? = nil) async throws(FacetError) -> WireDeleteSubjectReply {
        var r = WireDeleteSubjectRequest()
        r.subjectID = subjectID
        r.collection = collection
        r.reason = reason
        let reply = try await call(.deleteSubjectRequest(r), timeout: timeout)
        guard case .deleteSubjectReply(let v) = reply else { throw unexpected(reply, "deleteSubjectReply") }
        return v
    }

    /// One page of subjects.
    public func listSubjects(collection: String = "", pageSize: UInt32 = 0, pageToken: String = "", prefix: String = "",
                             timeout: Duration? = nil) async throws(FacetError) -> WireListSubjectsReply {
        var r = WireListSubjectsRequest()
        r.collection = collection
        r.pageSize = pageSize
        r.pageToken = pageToken
        r.prefix = prefix
        let reply = try await call(.listSubjectsRequest(r), timeout: timeout)
        guard case .listSubjectsReply(let v) = reply else { throw unexpected(reply, "listSubjectsReply") }
        return v
    }

    /// Every subject, following page tokens (bounded by `maxPages`).
    public func allSubjects(collection: String = "", maxPages: Int = 10_000,
                            timeout: Duration? = nil) async throws(FacetError) -> [WireSubjectSummary] {
        var out: [WireSubjectSummary] = []
        var token = ""
        for _ in 0..<maxPages {
            let page = try await listSubjects(collection: collection, pageToken: token, timeout: timeout)
            out += page.subjects
            if page.nextPageToken.isEmpty { return out }
            if page.nextPageToken == token { throw FacetError(.internalError, "server repeated page token") }
            token = page.nextPageToken
        }
        throw FacetError(.resourceExhausted, "more than \(maxPages) pages of subjects")
    }

    /// Cluster status.
    public func status(includePartitions: Bool = false, timeout: Duration? = nil) async throws(FacetError) -> WireStatusReply {
        var r = WireStatusRequest()
        r.includePartitions = includePartitions
        let reply = try await call(.statusRequest(r), timeout: timeout)
        guard case .statusReply(let v) = reply else { throw unexpected(reply, "statusReply") }
        return v
    }

    /// The current shard map.
    public func shardMap(timeout: Duration? = nil) async throws(FacetError) -> WireShardMap {
        let reply = try await call(.shardMapRequest(WireShardMapRequest()), timeout: timeout)
        guard case .shardMap(let v) = reply else { throw unexpected(reply, "shardMap") }
        return v
    }

    // MARK: jobs

    public func startRetrain(_ request: WireStartRetrainRequest = WireStartRetrainRequest(),
                             timeout: Duration? = nil) async throws(FacetError) -> WireJob {
        try await job(.startRetrainRequest(request), timeout: timeout)
    }

    public func startReenrol(_ request: WireStartReenrolRequest, timeout: Duration? = nil) async throws(FacetError) -> WireJob {
        try await job(.startReenrolRequest(request), timeout: timeout)
    }

    public func job(id: String, timeout: Duration? = nil) async throws(FacetError) -> WireJob {
        try await job(.getJobRequest(WireGetJobRequest.with { $0.jobID = id }), timeout: timeout)
    }

    public func cancelJob(id: String, timeout: Duration? = nil) async throws(FacetError) -> WireJob {
        try await job(.cancelJobRequest(WireCancelJobRequest.with { $0.jobID = id }), timeout: timeout)
    }

    public func listJobs(kind: WireJobKind = .unspecified, state: WireJobState = .unspecified, pageSize: UInt32 = 0,
                         pageToken: String = "", timeout: Duration? = nil) async throws(FacetError) -> WireListJobsReply {
        var r = WireListJobsRequest()
        r.kind = kind
        r.state = state
        r.pageSize = pageSize
        r.pageToken = pageToken
        let reply = try await call(.listJobsRequest(r), timeout: timeout)
        guard case .listJobsReply(let v) = reply else { throw unexpected(reply, "listJobsReply") }
        return v
    }

    private func job(_ body: WireEnvelope.OneOf_Body, timeout: Duration?) async throws(FacetError) -> WireJob {
        let reply = try await call(body, timeout: timeout)
        guard case .job(let v) = reply else { throw unexpected(reply, "job") }
        return v
    }
}

/// Waiting callers by request id. The first resolution wins; later ones (a timeout after the
/// reply, a reply after the timeout) are dropped.
final class PendingReplies: @unchecked Sendable {  // @unchecked: all state behind `lock`
    typealias Waiter = CheckedContinuation<Result<WireEnvelope, FacetError>, Never>
    private let lock = NSLock()
    private var waiters: [String: Waiter] = [:]
    private var early: [String: Result<WireEnvelope, FacetError>] = [:]
    private var closedError: FacetError?

    func register(_ id: String, _ waiter: Waiter) {
        lock.lock()
        if let r = early.removeValue(forKey: id) {
            lock.unlock()
            waiter.resume(returning: r)
            return
        }
        if let e = closedError {
            lock.unlock()
            waiter.resume(returning: .failure(e))
            return
        }
        waiters[id] = waiter
        lock.unlock()
    }

    func resolve(_ id: String, with result: Result<WireEnvelope, FacetError>) {
        lock.lock()
        let w = waiters.removeValue(forKey: id)
        if w == nil, case .failure(let e) = result, e.code == .cancelled {
            // Cancelled before registering: remember, so the registration fails at once.
            early[id] = result
        }
        lock.unlock()
        w?.resume(returning: result)
    }

    func failAll(_ error: FacetError) {
        lock.lock()
        closedError = error
        let all = waiters
        waiters = [:]
        lock.unlock()
        for w in all.values { w.resume(returning: .failure(error)) }
    }
}

final class Counter: @unchecked Sendable {  // @unchecked: all state behind `lock`
    private let lock = NSLock()
    private var value: UInt64 = 0
    func next() -> UInt64 {
        lock.lock()
        defer { lock.unlock() }
        value += 1
        return value
    }
}
