import FacetTransport
import FacetWire
import Foundation
import Testing

@Suite("Channels over real sockets")
struct ChannelTests {
    let context: ZMQContext

    init() throws {
        context = try ZMQContext()
    }

    @Test func dealerRouterRequestReplyOverTCP() async throws {
        let router = try ZMQChannel(context: context, type: .router, bind: ["tcp://127.0.0.1:*"])
        let endpoint = try #require(router.boundEndpoints.first)
        #expect(endpoint.hasPrefix("tcp://127.0.0.1:") && !endpoint.hasSuffix(":*"))
        let server = startEchoServer(router) { req in [bytes("re:")] + req.frames }
        let dealer = try ZMQChannel(context: context, type: .dealer, connect: [endpoint])

        for i in 0..<20 {
            try await dealer.send(Multipart([[], bytes("hello \(i)")]), timeout: generous)
            let reply = try await dealer.receive(timeout: generous)
            #expect(reply.frames == [[], bytes("re:"), bytes("hello \(i)")])
        }
        #expect(dealer.statistics.sent == 20)
        #expect(dealer.statistics.received == 20)
        await dealer.close()
        await router.close()
        server.cancel()
    }

    /// A handler on the socket's thread answers what it consumes right there (a ROUTER posting its reply on the
    /// same channel) and leaves the rest to `receive`, in order.
    @Test func receiveHandlerAnswersOnTheSocketThreadAndLeavesTheRestQueued() async throws {
        let router = try ZMQChannel(context: context, type: .router, bind: ["tcp://127.0.0.1:*"])
        let endpoint = try #require(router.boundEndpoints.first)
        let handled = LockedValue(0)
        router.setReceiveHandler { [router] m in
            let (routing, body) = m.routingSplit
            guard body.last.map({ String(decoding: $0, as: UTF8.self).hasPrefix("fast") }) ?? false else { return false }
            handled.withLock { $0 += 1 }
            try? router.post(Multipart.routed(routing, body: [bytes("now:")] + body))
            return true
        }
        let dealer = try ZMQChannel(context: context, type: .dealer, connect: [endpoint])
        for i in 0..<10 {
            try await dealer.send(Multipart([[], bytes("fast \(i)")]), timeout: generous)
            #expect(try await dealer.receive(timeout: generous).frames == [[], bytes("now:"), bytes("fast \(i)")])
        }
        for i in 0..<3 { try await dealer.send(Multipart([[], bytes("slow \(i)")]), timeout: generous) }
        for i in 0..<3 {
            let got = try await router.receive(timeout: generous)
            #expect(got.routingSplit.body == [bytes("slow \(i)")])
        }
        #expect(handled.withLock { $0 } == 10)
        #expect(router.statistics.received == 13)
        // Removed: everything goes to `receive` again.
        router.setReceiveHandler(nil)
        try await dealer.send(Multipart([[], bytes("fast again")]), timeout: generous)
        #expect(try await router.receive(timeout: generous).routingSplit.body == [bytes("fast again")])
        #expect(handled.withLock { $0 } == 10)
        await dealer.close()
        await router.close()
    }

    /// Two ROUTERs in one group make a broker whose handlers forward requests to a worker and answers back to the
    /// client, both on the one owner thread; closing one channel of the group leaves the other serving.
    @Test func groupedChannelsForwardOnOneThreadAndCloseOneByOne() async throws {
        let channels = try ZMQChannel.group(context: context, [
            ChannelSpec(type: .router, bind: ["tcp://127.0.0.1:*"], name: "front"),
            ChannelSpec(type: .router, bind: ["tcp://127.0.0.1:*"], name: "back"),
        ], name: "broker")
        let (front, back) = (channels[0], channels[1])
        let threads = LockedValue(Set<UInt>())   // pthread ids (thread names are cut to 15 bytes on Linux)
        let worker = LockedValue<[UInt8]?>(nil)
        let client = LockedValue<[UInt8]?>(nil)
        back.setReceiveHandler { [front] m in
            threads.withLock { $0.insert(UInt(bitPattern: Int(bitPattern: pthread_self()))) }
            let (routing, body) = m.routingSplit
            if body.last == bytes("ready") { worker.withLock { $0 = routing.first }; return true }
            guard let c = client.withLock({ $0 }) else { return false }
            try? front.post(Multipart.routed([c], body: body))
            return true
        }
        front.setReceiveHandler { [back] m in
            threads.withLock { $0.insert(UInt(bitPattern: Int(bitPattern: pthread_self()))) }
            let (routing, body) = m.routingSplit
            guard let w = worker.withLock({ $0 }) else { return false }
            client.withLock { $0 = routing.first }
            try? back.post(Multipart.routed([w], body: body))
            return true
        }
        let workerSocket = try ZMQChannel(context: context, type: .dealer, connect: [try #require(back.boundEndpoints.first)])
        try await workerSocket.send(Multipart([[], bytes("ready")]), timeout: generous)
        let deadline = ContinuousClock.now.advanced(by: generous)
        while worker.withLock({ $0 }) == nil && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        let echo = Task {
            for _ in 0..<20 {
                let m = try await workerSocket.receive(timeout: generous)
                try await workerSocket.send(Multipart(m.frames + [bytes("done")]), timeout: generous)
            }
        }
        let clientSocket = try ZMQChannel(context: context, type: .dealer, connect: [try #require(front.boundEndpoints.first)])
        for i in 0..<20 {
            try await clientSocket.send(Multipart([[], bytes("job \(i)")]), timeout: generous)
            #expect(try await clientSocket.receive(timeout: generous).frames == [[], bytes("job \(i)"), bytes("done")])
        }
        try await echo.value
        #expect(threads.withLock { $0.count } == 1)
        // Closing the front leaves the back serving (and its thread running) until it is closed too.
        await front.close()
        #expect(front.isClosed && !back.isClosed)
        back.setReceiveHandler(nil)
        try await workerSocket.send(Multipart([[], bytes("still here")]), timeout: generous)
        #expect(try await back.receive(timeout: generous).routingSplit.body == [bytes("still here")])
        await back.close()
        #expect(back.isClosed)
        await clientSocket.close()
        await workerSocket.close()
    }

    @Test func multipartFramesArriveWholeAndInOrder() async throws {
        let router = try ZMQChannel(context: context, type: .router, bind: ["inproc://multipart"])
        let dealer = try ZMQChannel(context: context, type: .dealer, connect: ["inproc://multipart"])
        let binary = (0...255).map { UInt8($0) }
        let frames: [[UInt8]] = [[], bytes("a"), [], binary, [UInt8](repeating: 7, count: 100_000), bytes("z")]
        try await dealer.send(Multipart(frames), timeout: generous)
        let got = try await router.receive(timeout: generous)
        // ROUTER prepends the peer's routing id.
        #expect(got.frames.count == frames.count + 1)
        #expect(Array(got.frames.dropFirst()) == frames)
        let split = got.routingSplit
        #expect(split.routing.count == 1)
        #expect(split.body == Array(frames.dropFirst()))
        await dealer.close()
        await router.close()
    }

    @Test func concurrentRequestsFromManyTasks() async throws {
        let router = try ZMQChannel(context: context, type: .router, bind: ["inproc://concurrent"])
        let server = startEchoServer(router)
        let dealer = try ZMQChannel(context: context, type: .dealer, connect: ["inproc://concurrent"])
        // 200 sends from 8 tasks at once; each reply is received exactly once.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for t in 0..<8 {
                group.addTask {
                    for i in 0..<25 { try await dealer.send(Multipart([[], bytes("\(t)-\(i)")]), timeout: generous) }
                }
            }
            try await group.waitForAll()
        }
        var seen = Set<String>()
        for _ in 0..<200 {
            let m = try await dealer.receive(timeout: generous)
            seen.insert(String(decoding: m.frames[1], as: UTF8.self))
        }
        #expect(seen.count == 200)
        await dealer.close()
        await router.close()
        server.cancel()
    }

    @Test func receiveTimesOutWhenNothingComes() async throws {
        let dealer = try ZMQChannel(context: context, type: .dealer, connect: ["tcp://127.0.0.1:9"])
        await expectTimedOut { () async throws(TransportError) in try await dealer.receive(timeout: .milliseconds(50)) }
        // The channel still works after a timeout.
        await expectTimedOut { () async throws(TransportError) in try await dealer.receive(timeout: .milliseconds(10)) }
        await dealer.close()
    }

    @Test func sendTimesOutWithoutPeerWhenImmediate() async throws {
        var o = SocketOptions()
        o.immediate = true  // queue only to completed connections: with none, a send cannot be queued
        let dealer = try ZMQChannel(context: context, type: .dealer, options: o, connect: ["tcp://127.0.0.1:9"])
        await expectTimedOut { () async throws(TransportError) in
            try await dealer.send(Multipart([[], bytes("x")]), timeout: .milliseconds(50))
        }
        await dealer.close()
    }

    @Test func cancelledReceiveEndsWithCancelled() async throws {
        let dealer = try ZMQChannel(context: context, type: .dealer, connect: ["inproc://nobody-home"])
        let task = Task { () -> TransportError? in
            do throws(TransportError) { _ = try await dealer.receive() } catch { return error }
            return nil
        }
        task.cancel()
        #expect(await task.value == .cancelled)
        await dealer.close()
    }

    @Test func closeFailsWaitersAndLaterCalls() async throws {
        let dealer = try ZMQChannel(context: context, type: .dealer, connect: ["inproc://closing"])
        let waiting = Task { () -> TransportError? in
            do throws(TransportError) { _ = try await dealer.receive() } catch { return error }
            return nil
        }
        // Whether the receive registers before or after close starts, it must end with .closed.
        await dealer.close()
        #expect(await waiting.value == .closed)
        #expect(dealer.isClosed)
        await #expect(throws: TransportError.closed) { try await dealer.send(Multipart([bytes("late")])) }
        await #expect(throws: TransportError.closed) { try await dealer.receive(timeout: .seconds(1)) }
        await dealer.close()  // idempotent
    }

    @Test func outgoingLimitsAreEnforcedBeforeSending() async throws {
        var o = SocketOptions()
        o.maxFrameBytes = 1024
        o.maxFrames = 3
        let dealer = try ZMQChannel(context: context, type: .dealer, options: o, connect: ["inproc://limits"])
        await #expect(throws: TransportError.frameTooLarge(size: 1025, limit: 1024)) {
            try await dealer.send(Multipart([[UInt8](repeating: 0, count: 1025)]))
        }
        await #expect(throws: TransportError.badFrameCount(4, limit: 3)) {
            try await dealer.send(Multipart([[], [], [], []]))
        }
        await #expect(throws: TransportError.badFrameCount(0, limit: 3)) { try await dealer.send(Multipart([])) }
        await dealer.close()
    }

    @Test func oversizedFrameIsFlaggedSoTheServerCanAnswerFrameTooLarge() async throws {
        var serverOptions = SocketOptions()
        serverOptions.maxFrameBytes = 1024          // our limit: flagged, answered
        serverOptions.disconnectAboveBytes = 1 << 20 // libzmq's limit: far above
        let router = try ZMQChannel(context: context, type: .router, options: serverOptions, bind: ["tcp://127.0.0.1:*"])
        let server = SocketThreadServer(router) { m in
            let (routing, body) = m.routingSplit
            let reply: WireEnvelope
            if let v = m.limitViolation {
                let limit: Int
                if case .frameTooLarge(_, _, let l) = v { limit = l } else { limit = 0 }
                reply = .errorReply(requestID: "", FacetError(.frameTooLarge, "\(v)", limit: UInt64(limit)))
            } else {
                do throws(WireDecodingError) {
                    let request = try WireFrame.decode(frame: body.first ?? [], maxBytes: 1024)
                    reply = .reply(to: request, .statusReply(WireStatusReply()))
                } catch {
                    reply = .errorReply(requestID: "", error.facetError)
                }
            }
            return .routed(routing, body: [try! WireFrame.encode(reply)])
        }
        let dealer = try ZMQChannel(context: context, type: .dealer, connect: [router.boundEndpoints[0]])

        // A small, valid request is answered.
        let ok = WireEnvelope.request(.statusRequest(WireStatusRequest()), id: "small")
        try await dealer.send(Multipart([[], try WireFrame.encode(ok)]), timeout: generous)
        let r1 = try WireFrame.decode(frame: try await dealer.receive(timeout: generous).frames[1])
        #expect(r1.requestID == "small")
        #expect(r1.facetError == nil)

        // A 2000-byte frame is flagged by the transport (content not kept) and answered FRAME_TOO_LARGE.
        var big = WireEnvelope.request(.enrolRequest(WireEnrolRequest()), id: "big")
        big.enrolRequest.images = [WireImage.with { $0.data = Data(repeating: 0xAB, count: 2000) }]
        try await dealer.send(Multipart([[], try WireFrame.encode(big)]), timeout: generous)
        let r2 = try WireFrame.decode(frame: try await dealer.receive(timeout: generous).frames[1])
        #expect(r2.facetError?.code == .frameTooLarge)
        #expect(r2.facetError?.limit == 1024)

        // Garbage that is small enough is answered MALFORMED_MESSAGE, a typed error, not a crash.
        try await dealer.send(Multipart([[], [0x0a, 0xff, 0xff, 0xff]]), timeout: generous)
        let r3 = try WireFrame.decode(frame: try await dealer.receive(timeout: generous).frames[1])
        #expect(r3.facetError?.code == .malformedMessage)
        #expect(router.statistics.limitViolations == 1)

        await dealer.close()
        await router.close()
        server.cancel()
    }

    @Test func frameAboveLibzmqLimitDisconnectsThePeerAndDeliversNothing() async throws {
        var serverOptions = SocketOptions()
        serverOptions.maxFrameBytes = 1024
        serverOptions.disconnectAboveBytes = 4096
        let router = try ZMQChannel(context: context, type: .router, options: serverOptions,
                                    bind: ["tcp://127.0.0.1:*"], monitor: .all)
        let dealer = try ZMQChannel(context: context, type: .dealer, connect: [router.boundEndpoints[0]])
        try await dealer.send(Multipart([[], [UInt8](repeating: 1, count: 10_000)]), timeout: generous)
        let disconnected = await firstEvent(router) { $0.kind == .disconnected }
        #expect(disconnected != nil)
        await expectTimedOut { () async throws(TransportError) in try await router.receive(timeout: quietPeriod) }
        #expect(router.statistics.received == 0)
        await dealer.close()
        await router.close()
    }

    @Test func routerMandatoryReportsUnroutablePeer() async throws {
        var o = SocketOptions()
        o.routerMandatory = true
        let router = try ZMQChannel(context: context, type: .router, options: o, bind: ["inproc://mandatory"])
        do {
            try await router.send(.routed([bytes("nobody")], body: [bytes("x")]), timeout: generous)
            Issue.record("send to an unknown peer succeeded")
        } catch {
            guard case .zmq(let z) = error else { Issue.record("unexpected \(error)"); return }
            #expect(z.hostUnreachable)
            #expect(z.function == "zmq_send")
        }
        await router.close()
    }

    @Test func monitorReportsConnectAcceptAndDisconnect() async throws {
        let router = try ZMQChannel(context: context, type: .router, bind: ["tcp://127.0.0.1:*"], monitor: .all)
        let endpoint = router.boundEndpoints[0]
        let dealer = try ZMQChannel(context: context, type: .dealer, connect: [endpoint], monitor: .all)
        let connected = await firstEvent(dealer) { $0.kind == .connected }
        #expect(connected?.endpoint == endpoint)
        let accepted = await firstEvent(router) { $0.kind == .accepted }
        #expect(accepted != nil)
        let handshake = await firstEvent(dealer) { $0.kind == .handshakeSucceeded }
        #expect(handshake != nil)
        await router.close()
        let gone = await firstEvent(dealer) { $0.kind == .disconnected }
        #expect(gone?.endpoint == endpoint)
        await dealer.close()
    }

    @Test func pubSubDeliversOnlySubscribedTopics() async throws {
        let pub = try ZMQChannel(context: context, type: .pub, bind: ["inproc://events"])
        var o = SocketOptions()
        o.subscriptions = [bytes("shardmap")]
        let sub = try ZMQChannel(context: context, type: .sub, options: o, connect: ["inproc://events"])
        // Subscriptions travel asynchronously (slow joiner): publish until the first one arrives, bounded.
        var first: Multipart?
        for i in 0..<500 where first == nil {
            try await pub.send(Multipart([bytes("other"), bytes("\(i)")]))
            try await pub.send(Multipart([bytes("shardmap"), bytes("\(i)")]))
            first = try? await sub.receive(timeout: .milliseconds(10))
        }
        let m = try #require(first)
        #expect(m.frames[0] == bytes("shardmap"))
        try await pub.send(Multipart([bytes("other"), bytes("x")]))
        try await pub.send(Multipart([bytes("shardmap"), bytes("last")]))
        var lastSeen = false
        for _ in 0..<1000 where !lastSeen {
            let next = try await sub.receive(timeout: generous)
            #expect(next.frames[0] == bytes("shardmap"))
            lastSeen = next.frames[1] == bytes("last")
        }
        #expect(lastSeen)
        await sub.close()
        await pub.close()
    }
}
