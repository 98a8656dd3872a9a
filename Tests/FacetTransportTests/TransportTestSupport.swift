import FacetTransport
import Foundation
import Testing

/// The bound every wait in these tests is given. It only bounds a test that would otherwise
/// hang; nothing asserts how fast anything happens.
let generous: Duration = .seconds(30)

/// How long a test waits to be sure that something does NOT arrive (unauthenticated client,
/// oversized frame). Long enough for a loopback handshake many times over.
let quietPeriod: Duration = .milliseconds(800)

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// Waits for the first monitor event matching `predicate`, or nil after `timeout`.
func firstEvent(_ channel: ZMQChannel, within timeout: Duration = generous,
                where predicate: @escaping @Sendable (MonitorEvent) -> Bool) async -> MonitorEvent? {
    let events = channel.monitorEvents
    return await withTaskGroup(of: MonitorEvent?.self) { group in
        group.addTask {
            for await e in events where predicate(e) { return e }
            return nil
        }
        group.addTask {
            try? await Task.sleep(for: timeout)
            return nil
        }
        let first = await group.next() ?? nil
        group.cancelAll()
        return first
    }
}

/// Expects `body` to throw `.timedOut`.
func expectTimedOut<T>(_ body: () async throws(TransportError) -> T, sourceLocation: SourceLocation = #_sourceLocation) async {
    do {
        _ = try await body()
        Issue.record("expected a timeout, got a result", sourceLocation: sourceLocation)
    } catch {
        guard case .timedOut = error else {
            Issue.record("expected .timedOut, got \(error)", sourceLocation: sourceLocation)
            return
        }
    }
}

/// A ROUTER that answers every request with `reply(request body frames)` until closed.
func startEchoServer(_ router: ZMQChannel,
                     reply: @escaping @Sendable (Multipart) -> [[UInt8]] = { $0.routingSplit.body }) -> SocketThreadServer {
    SocketThreadServer(router) { m in
        let (routing, body) = m.routingSplit
        var request = Multipart(body)
        request.userID = m.userID
        request.peerAddress = m.peerAddress
        request.limitViolation = m.limitViolation
        return .routed(routing, body: reply(request))
    }
}

/// A test server that answers on the ROUTER's own socket thread (`setReceiveHandler`), not in a task: in a full
/// test run compute-bound suites can hold the cooperative pool for longer than a test's timeout, and a server
/// task starved that long made clients time out (a CI run, session 5). `cancel()` stops answering.
struct SocketThreadServer: Sendable {
    let router: ZMQChannel

    init(_ router: ZMQChannel, answer: @escaping @Sendable (Multipart) -> Multipart) {
        self.router = router
        router.setReceiveHandler { [router] m in
            try? router.post(answer(m))
            return true
        }
    }

    func cancel() { router.setReceiveHandler(nil) }
}

/// Sends from a client the server refuses (wrong key, plaintext, revoked). Its DEALER may never get a
/// completed connection, so the send may block until the timeout: that is allowed; any other error is not.
func sendFromRefusedClient(_ channel: ZMQChannel, _ message: Multipart, sourceLocation: SourceLocation = #_sourceLocation) async {
    do {
        try await channel.send(message, timeout: quietPeriod)
    } catch {
        if case .timedOut = error { return }
        Issue.record("refused client's send failed with \(error)", sourceLocation: sourceLocation)
    }
}
