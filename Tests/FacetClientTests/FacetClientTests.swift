import FacetClient
import FacetTransport
import FacetWire
import Foundation
import Testing

/// A small coordinator stand-in for client tests (the real coordinator lives in FacetCluster):
/// a ROUTER on 127.0.0.1 that keeps enrolled embeddings in memory and answers enrol, identify
/// (exact search), verify against a subject, delete, list (paged) and status. It can stay silent
/// (timeouts) or hold replies and send them in reverse order (reply matching).
actor TestCoordinator {
    /// `failFirst(n, code, retryAfterMs)`: the first n requests are answered with that error, then as `answer`.
    enum Mode { case answer, silent, reversedBatches(Int), failFirst(Int, FacetError.Code, UInt64) }

    let router: ZMQChannel
    let endpoint: String
    private var gallery: [String: [[Float]]] = [:]
    private var mode: Mode
    private var held: [(routing: [[UInt8]], reply: WireEnvelope)] = []
    private var loop: Task<Void, Never>?
    private(set) var requestsSeen: [String] = []
    private(set) var userIDs: Set<String> = []

    init(context: ZMQContext, mode: Mode = .answer, security: SocketSecurity = .plaintext) throws {
        var o = SocketOptions()
        o.security = security
        router = try ZMQChannel(context: context, type: .router, options: o, bind: ["tcp://127.0.0.1:*"])
        endpoint = router.boundEndpoints[0]
        self.mode = mode
    }

    func start() {
        let router = self.router
        loop = Task {
            while let m = try? await router.receive() { self.handle(m) }
        }
    }

    func stop() async {
        await router.close()
        await loop?.value
    }

    private func handle(_ m: Multipart) {
        let (routing, body) = m.routingSplit
        if let u = m.userID { userIDs.insert(u) }
        let request: WireEnvelope
        do throws(WireDecodingError) {
            request = try WireFrame.decode(frame: body.first ?? [])
        } catch {
            send(routing, .errorReply(requestID: "", error.facetError))
            return
        }
        requestsSeen.append(request.bodyKind)
        if case .failFirst(let n, let code, let retryAfter) = mode, n > 0 {
            mode = .failFirst(n - 1, code, retryAfter)
            send(routing, .errorReply(to: request, FacetError(code, "failing on purpose", retryAfterMilliseconds: retryAfter, nodeID: "test-coordinator")))
            return
        }
        let reply = answer(request)
        switch mode {
        case .silent:
            return
        case .answer, .failFirst:
            send(routing, reply)
        case .reversedBatches(let n):
            held.append((routing, reply))
            if held.count == n {
                for h in held.reversed() { send(h.routing, h.reply) }
                held = []
            }
        }
    }

    private func send(_ routing: [[UInt8]], _ reply: WireEnvelope) {
        try? router.post(.routed(routing, body: [try! WireFrame.encode(reply)]))
    }

    private static func distance(_ a: [Float], _ b: [Float]) -> Float {
        var s: Float = 0
        for i in a.indices { let d = a[i] - b[i]; s += d * d }
        return s.squareRoot()
    }

    private func answer(_ request: WireEnvelope) -> WireEnvelope {
        func fail(_ code: FacetError.Code, _ message: String, field: String = "") -> WireEnvelope {
            .errorReply(to: request, FacetError(code, message, field: field, nodeID: "test-coordinator"))
        }
        switch request.body {
        case .enrolRequest(let r)?:
            guard r.images.isEmpty else { return fail(.unavailable, "no embedder in this test") }
            var ids: [UInt64] = []
            for e in r.embeddings {
                guard let v = try? e.validatedValues(expectedDimension: 128) else { return fail(.invalidArgument, "bad embedding", field: "embeddings") }
                gallery[r.subjectID, default: []].append(v)
                ids.append(UInt64(gallery.values.reduce(0) { $0 + $1.count }))
            }
            var reply = WireEnrolReply()
            reply.subjectID = r.subjectID
            reply.templateIds = ids
            reply.partition = WirePartitioning.partition(of: r.subjectID, partitionCount: 256)
            return .reply(to: request, .enrolReply(reply))
        case .identifyRequest(let r)?:
            guard case .embedding(let e)? = r.query, let q = try? e.validatedValues(expectedDimension: 128) else {
                return fail(.invalidArgument, "embedding required", field: "embedding")
            }
            var all: [(String, Float)] = []
            for (subject, vs) in gallery { for v in vs { all.append((subject, Self.distance(q, v))) } }
            all.sort { $0.1 < $1.1 }
            var reply = WireIdentifyReply()
            reply.candidates = all.prefix(Int(r.k)).map { s, d in WireCandidate.with { $0.subjectID = s; $0.distance = d } }
            return .reply(to: request, .identifyReply(reply))
        case .verifyRequest(let r)?:
            guard case .probeEmbedding(let e)? = r.probe, let q = try? e.validatedValues(),
                  case .subjectID(let subject)? = r.reference else { return fail(.invalidArgument, "embedding and subject required") }
            guard let vs = gallery[subject] else { return fail(.notFound, "no subject \(subject)", field: "subject_id") }
            let d = vs.map { Self.distance(q, $0) }.min()!
            var reply = WireVerifyReply()
            reply.distance = d
            reply.threshold = r.threshold == 0 ? 0.6 : r.threshold
            reply.match = d <= reply.threshold
            return .reply(to: request, .verifyReply(reply))
        case .deleteSubjectRequest(let r)?:
            guard let removed = gallery.removeValue(forKey: r.subjectID) else { return fail(.notFound, "no subject \(r.subjectID)") }
            var reply = WireDeleteSubjectReply()
            reply.subjectID = r.subjectID
            reply.templatesDeleted = UInt32(removed.count)
            return .reply(to: request, .deleteSubjectReply(reply))
        case .listSubjectsRequest(let r)?:
            let size = r.pageSize == 0 ? 10 : Int(r.pageSize)
            let names = gallery.keys.sorted().filter { $0 > r.pageToken }
            var reply = WireListSubjectsReply()
            reply.subjects = names.prefix(size).map { n in WireSubjectSummary.with { $0.subjectID = n; $0.templateCount = UInt32(gallery[n]!.count) } }
            if names.count > size { reply.nextPageToken = names[size - 1] }
            return .reply(to: request, .listSubjectsReply(reply))
        case .statusRequest?:
            var reply = WireStatusReply()
            reply.subjects = UInt64(gallery.count)
            reply.templates = UInt64(gallery.values.reduce(0) { $0 + $1.count })
            reply.protocolVersion = WireProtocol.version
            reply.healthy = true
            return .reply(to: request, .statusReply(reply))
        default:
            return fail(.invalidArgument, "not served by the test coordinator: \(request.bodyKind)")
        }
    }
}

/// Deterministic 128-D vectors: subject s has centre c_s; samples are c_s plus small noise.
func vector(subject: Int, sample: Int) -> [Float] {
    var state = UInt64(subject) &* 0x9E37_79B9_7F4A_7C15 &+ 1
    func next() -> Float {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Float(Int64(bitPattern: state >> 11) % 2001 - 1000) / 1000
    }
    let centre = (0..<128).map { _ in next() * 0.1 }
    var noiseState = UInt64(subject * 1000 + sample + 7)
    return centre.map { c in
        noiseState = noiseState &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return c + Float(Int64(bitPattern: noiseState >> 11) % 201 - 100) / 100_000
    }
}

/// Deadline for calls the test coordinator answers. Its receive loop is a Task on the cooperative pool (2 threads on a
/// 2-core machine), which the compute-bound suites running beside it in a full `swift test` can hold for tens of
/// seconds; the client's deadline thread fires on time regardless, so the default 10 s failed there (CI, session 4).
/// The deadline only bounds the test: the answers are still checked.
let answerDeadline: Duration = .seconds(120)

@Suite("FacetClient against a test coordinator")
struct FacetClientTests {
    let context: ZMQContext
    init() throws { context = try ZMQContext() }

    func withCoordinator(mode: TestCoordinator.Mode = .answer, security: SocketSecurity = .plaintext,
                         _ body: (TestCoordinator) async throws -> Void) async throws {
        let coordinator = try TestCoordinator(context: context, mode: mode, security: security)
        await coordinator.start()
        do { try await body(coordinator) } catch {
            await coordinator.stop()
            throw error
        }
        await coordinator.stop()
    }

    @Test func enrolIdentifyVerifyListDelete() async throws {
        try await withCoordinator { coordinator in
            let client = try FacetClient(endpoint: coordinator.endpoint, timeout: answerDeadline, context: context)
            for s in 0..<25 {
                let r = try await client.enrol(subjectID: "subject-\(s)", embeddings: (0..<2).map {
                    WireEmbedding(values: vector(subject: s, sample: $0), modelVersion: "m")
                })
                #expect(r.subjectID == "subject-\(s)")
                #expect(r.templateIds.count == 2)
            }
            let probe = WireEmbedding(values: vector(subject: 7, sample: 99), modelVersion: "m")
            let found = try await client.identify(embedding: probe, k: 3)
            #expect(found.candidates.count == 3)
            #expect(found.candidates.first?.subjectID == "subject-7")
            #expect(found.candidates[0].distance <= found.candidates[1].distance)

            var v = WireVerifyRequest()
            v.probeEmbedding = probe
            v.subjectID = "subject-7"
            let same = try await client.verify(v)
            #expect(same.match)
            v.subjectID = "subject-8"
            #expect(try await !client.verify(v).match)

            let everyone = try await client.allSubjects()
            #expect(everyone.count == 25)
            #expect(Set(everyone.map(\.subjectID)).count == 25)

            let deleted = try await client.deleteSubject("subject-7", reason: "test erasure")
            #expect(deleted.templatesDeleted == 2)
            #expect(try await client.identify(embedding: probe, k: 1).candidates.first?.subjectID != "subject-7")
            let status = try await client.status()
            #expect(status.subjects == 24)
            #expect(status.templates == 48)
            await client.close()
        }
    }

    @Test("the retry policy sends again what may be sent twice, on retryable codes, within the deadline")
    func retries() async throws {
        let probe = WireEmbedding(values: vector(subject: 1, sample: 0), modelVersion: "m")
        // Two QUEUE_FULL replies, then the answer: enrol succeeds on the third attempt with the standard policy.
        try await withCoordinator(mode: .failFirst(2, .queueFull, 20)) { coordinator in
            let client = try FacetClient(endpoint: coordinator.endpoint, timeout: answerDeadline, retry: .standard, context: context)
            let r = try await client.enrol(subjectID: "s", embeddings: [probe])
            #expect(r.templateIds.count == 1)
            #expect(await coordinator.requestsSeen == ["enrolRequest", "enrolRequest", "enrolRequest"])
            await client.close()
        }
        // Without a policy the first error comes back.
        try await withCoordinator(mode: .failFirst(1, .notDurable, 0)) { coordinator in
            let client = try FacetClient(endpoint: coordinator.endpoint, timeout: answerDeadline, context: context)
            await #expect(throws: FacetError.self) { try await client.enrol(subjectID: "s", embeddings: [probe]) }
            #expect(await coordinator.requestsSeen.count == 1)
            await client.close()
        }
        // Not retryable (INVALID_ARGUMENT), or not to be sent twice (a delete after NOT_DURABLE: it may have been
        // applied): one attempt. A delete refused with QUEUE_FULL is sent again.
        for (code, expectedAttempts, delete) in [(FacetError.Code.invalidArgument, 1, false), (.notDurable, 1, true), (.queueFull, 2, true)] {
            try await withCoordinator(mode: .failFirst(1, code, 0)) { coordinator in
                let client = try FacetClient(endpoint: coordinator.endpoint, timeout: answerDeadline, retry: .standard, context: context)
                do {
                    if delete { _ = try await client.deleteSubject("nobody") } else { _ = try await client.identify(embedding: probe) }
                } catch {
                    // The test coordinator answers NOT_FOUND for the retried delete (nothing enrolled): either way
                    // what counts is how many attempts it saw.
                }
                #expect(await coordinator.requestsSeen.count == expectedAttempts, "\(code)")
                await client.close()
            }
        }
        // Retrying stops at the deadline: every answer is RATE_LIMITED with retry_after 300 ms, deadline 1 s.
        try await withCoordinator(mode: .failFirst(1000, .rateLimited, 300)) { coordinator in
            let client = try FacetClient(endpoint: coordinator.endpoint, timeout: .seconds(1), retry: FacetClient.RetryPolicy(maxAttempts: 100),
                                         context: context)
            let began = ContinuousClock.now
            do throws(FacetError) {
                _ = try await client.status()
                Issue.record("status succeeded")
            } catch {
                #expect(error.code == .rateLimited)
            }
            #expect(began.duration(to: .now) < .seconds(3))
            let attempts = await coordinator.requestsSeen.count
            #expect(attempts >= 2 && attempts <= 4, "\(attempts) attempts")
            await client.close()
        }
        // The backoff: doubling from the initial wait, at least the server's retry_after, at most 25 % jitter on top.
        let policy = FacetClient.RetryPolicy(maxAttempts: 5, initialBackoff: .milliseconds(100), maxBackoff: .seconds(1))
        for (attempt, retryAfter, low) in [(0, UInt64(0), 100.0), (2, 0, 400), (5, 0, 1000), (0, 700, 700)] {
            let d = policy.backoff(attempt: attempt, retryAfterMilliseconds: retryAfter)
            let total = Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
            #expect(total >= low - 0.01 && total <= low * 1.25 + 0.01, "attempt \(attempt), retry_after \(retryAfter): \(total) ms")
        }
    }

    @Test func errorRepliesBecomeFacetErrors() async throws {
        try await withCoordinator { coordinator in
            let client = try FacetClient(endpoint: coordinator.endpoint, timeout: answerDeadline, context: context)
            do throws(FacetError) {
                _ = try await client.deleteSubject("nobody")
                Issue.record("delete of an unknown subject succeeded")
            } catch {
                #expect(error.code == .notFound)
                #expect(error.nodeID == "test-coordinator")
            }
            await #expect(throws: FacetError.self) { try await client.shardMap() }
            await client.close()
        }
    }

    @Test func invalidArgumentsFailBeforeSending() async throws {
        try await withCoordinator { coordinator in
            let client = try FacetClient(endpoint: coordinator.endpoint, timeout: answerDeadline, context: context)
            await #expect(throws: FacetError(.invalidArgument, "subject id is empty", field: "subject_id")) {
                try await client.enrol(subjectID: "", embeddings: [WireEmbedding(values: [1], modelVersion: "m")])
            }
            do throws(FacetError) { _ = try await client.enrol(subjectID: "x") } catch { #expect(error.code == .invalidArgument) }
            #expect(await coordinator.requestsSeen.isEmpty)
            await client.close()
        }
    }

    @Test func silentServerGivesDeadlineExceeded() async throws {
        try await withCoordinator(mode: .silent) { coordinator in
            let client = try FacetClient(endpoint: coordinator.endpoint, context: context)
            do throws(FacetError) {
                _ = try await client.status(timeout: .milliseconds(200))
                Issue.record("a silent server answered")
            } catch {
                #expect(error.code == .deadlineExceeded)
            }
            #expect(await coordinator.requestsSeen == ["statusRequest"])
            await client.close()
        }
    }

    @Test func nobodyListeningGivesDeadlineExceeded() async throws {
        let client = try FacetClient(endpoint: "tcp://127.0.0.1:9", context: context)
        do throws(FacetError) {
            _ = try await client.status(timeout: .milliseconds(200))
            Issue.record("answered with nobody listening")
        } catch {
            #expect(error.code == .deadlineExceeded || error.code == .unavailable)
        }
        await client.close()
    }

    @Test func concurrentCallsGetTheirOwnRepliesInAnyOrder() async throws {
        // The coordinator holds every 8 replies and sends them back in reverse order, so each
        // reply reaches the client while other calls are still waiting for theirs.
        try await withCoordinator(mode: .reversedBatches(8)) { coordinator in
            let client = try FacetClient(endpoint: coordinator.endpoint, timeout: answerDeadline, context: context)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for s in 0..<8 {
                    group.addTask {
                        _ = try await client.enrol(subjectID: "s\(s)", embeddings: [WireEmbedding(values: vector(subject: s, sample: 0), modelVersion: "m")])
                    }
                }
                try await group.waitForAll()
            }
            let results = try await withThrowingTaskGroup(of: (Int, String).self) { group in
                for s in 0..<8 {
                    group.addTask {
                        let r = try await client.identify(embedding: WireEmbedding(values: vector(subject: s, sample: 5), modelVersion: "m"), k: 1)
                        return (s, r.candidates.first?.subjectID ?? "")
                    }
                }
                var out: [(Int, String)] = []
                for try await r in group { out.append(r) }
                return out
            }
            #expect(results.count == 8)
            for (s, subject) in results { #expect(subject == "s\(s)") }
            await client.close()
        }
    }

    @Test func curveClientWithAllowedKeyIsServedAndUnknownKeyIsNot() async throws {
        let server = try CurveKeyPair.generate()
        let allowed = try CurveKeyPair.generate()
        let zap = try ZAPAuthenticator(context: context, allowedClientKeys: [allowed.publicKey])
        try await withCoordinator(security: .curveServer(server, zapDomain: "facet")) { coordinator in
            let client = try FacetClient(endpoint: coordinator.endpoint,
                                         curve: .init(clientKeys: allowed, serverPublicKey: server.publicKey),
                                         timeout: answerDeadline, context: context)
            #expect(try await client.status().healthy)
            #expect(await coordinator.userIDs == [allowed.publicKey.z85])
            await client.close()

            let stranger = try FacetClient(endpoint: coordinator.endpoint,
                                           curve: .init(clientKeys: try CurveKeyPair.generate(), serverPublicKey: server.publicKey),
                                           context: context)
            do throws(FacetError) {
                _ = try await stranger.status(timeout: .milliseconds(800))
                Issue.record("unknown key was answered")
            } catch {
                // No reply by the deadline; or, when libzmq dropped the refused connection's queue
                // and its reconnect was refused again, the request could not even be sent.
                #expect(error.code == .deadlineExceeded || error.code == .unavailable)
            }
            #expect(await coordinator.requestsSeen == ["statusRequest"])  // only the allowed client's
            await stranger.close()
        }
        await zap.stop()
    }

    @Test func cancelledCallEndsWithCancelled() async throws {
        try await withCoordinator(mode: .silent) { coordinator in
            let client = try FacetClient(endpoint: coordinator.endpoint, context: context)
            let call = Task { () -> FacetError.Code? in
                do throws(FacetError) { _ = try await client.status(timeout: .seconds(30)) } catch { return error.code }
                return nil
            }
            call.cancel()
            #expect(await call.value == .cancelled)
            await client.close()
        }
    }
}
