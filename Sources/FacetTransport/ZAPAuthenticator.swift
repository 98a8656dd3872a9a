import Foundation
import Logging

/// A ZAP handler (ZeroMQ RFC 27) for one context: it answers the authentication requests libzmq
/// makes for every CURVE handshake on a socket of that context, allowing only client public keys
/// on an allow-list. An allowed client's messages carry its Z85 public key as `Multipart.userID`.
/// Other mechanisms (NULL, PLAIN) are refused when they reach the handler.
///
/// Runs on its own thread with a REP socket bound to `inproc://zeromq.zap.01` (one handler per
/// context). Bind it before the server sockets accept connections.
public final class ZAPAuthenticator: Sendable {
    public static let endpoint = "inproc://zeromq.zap.01"

    /// Counts of answered requests.
    public struct Statistics: Sendable, Hashable {
        public var allowed = 0
        public var denied = 0
        public var malformed = 0
    }

    private struct State {
        var allowed: Set<CurveKey>
        var domain: String?
        /// When set, one allow-list per ZAP domain (a domain not listed is refused) instead of `allowed`/`domain`.
        var byDomain: [String: Set<CurveKey>]? = nil
        var stats = Statistics()
        var stopping = false
        var finished = false
        var stopWaiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state: LockedValue<State>
    private let pipe: WakePipe
    private let socketBox: SocketBox

    /// Starts the handler. `domain`, if given, must equal the server sockets' ZAP domain.
    public convenience init(context: ZMQContext, allowedClientKeys: Set<CurveKey>, domain: String? = nil,
                logger: Logger = Logger(label: "facet.zap", factory: { _ in SwiftLogNoOpLogHandler() })) throws(TransportError) {
        try self.init(context: context, state: State(allowed: allowedClientKeys, domain: domain), logger: logger)
    }

    /// Starts a handler with one allow-list per ZAP domain: a server socket whose `zapDomain` is a key of
    /// `allowedKeysByDomain` admits only that list's keys (e.g. clients on the front end, workers on the back end);
    /// any other domain is refused.
    public convenience init(context: ZMQContext, allowedKeysByDomain: [String: Set<CurveKey>],
                            logger: Logger = Logger(label: "facet.zap", factory: { _ in SwiftLogNoOpLogHandler() })) throws(TransportError) {
        try self.init(context: context, state: State(allowed: [], domain: nil, byDomain: allowedKeysByDomain), logger: logger)
    }

    private init(context: ZMQContext, state initial: State, logger: Logger) throws(TransportError) {
        var o = SocketOptions()
        o.maxFrames = 16
        o.maxFrameBytes = 4096
        let socket = try ZMQSocket(context: context, type: .rep, options: o)
        do { try socket.bind(Self.endpoint) } catch {
            socket.close()
            throw error
        }
        let pipe: WakePipe
        do { pipe = try WakePipe() } catch {
            socket.close()
            throw error
        }
        self.pipe = pipe
        self.state = LockedValue(initial)
        self.socketBox = SocketBox(socket)
        let state = self.state, box = self.socketBox
        let thread = Thread { Self.run(socket: box.socket, pipe: pipe, state: state, logger: logger) }
        thread.name = "facet.zap"
        thread.start()
    }

    deinit {
        state.withLock { s in
            if !s.finished && !s.stopping {
                s.stopping = true
                pipe.wake()
            }
        }
    }

    /// Adds a client key to the allow-list (takes effect for the next handshake).
    public func allow(_ key: CurveKey) { state.withLock { _ = $0.allowed.insert(key) } }
    /// Removes a client key (existing connections stay; new handshakes are refused).
    public func revoke(_ key: CurveKey) { state.withLock { _ = $0.allowed.remove(key) } }
    /// Replaces the allow-list.
    public func setAllowed(_ keys: Set<CurveKey>) { state.withLock { $0.allowed = keys } }
    /// Replaces the allow-list of one domain (handlers made with `allowedKeysByDomain`).
    public func setAllowed(_ keys: Set<CurveKey>, domain: String) { state.withLock { $0.byDomain?[domain] = keys } }

    public var statistics: Statistics { state.withLock { $0.stats } }

    /// Stops the handler and waits for its thread. New CURVE handshakes then fail (no handler).
    public func stop() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let done: Bool = state.withLock { s in
                if s.finished { return true }
                s.stopping = true
                s.stopWaiters.append(c)
                pipe.wake()
                return false
            }
            if done { c.resume() }
        }
    }

    private final class SocketBox: @unchecked Sendable {  // @unchecked: used by the handler thread only
        let socket: ZMQSocket
        init(_ s: ZMQSocket) { socket = s }
    }

    private static func run(socket: ZMQSocket, pipe: WakePipe, state: LockedValue<State>, logger: Logger) {
        var poller = ZMQPoller()
        let socketIndex = poller.add(socket, events: .readable)
        let wakeIndex = poller.add(fileDescriptor: pipe.readFD, events: .readable)
        while !state.withLock({ $0.stopping }) {
            do { try poller.poll(timeout: nil) } catch {
                logger.error("ZAP handler poll failed", metadata: ["error": "\(error)"])
                break
            }
            if poller.readyEvents(at: wakeIndex).contains(.readable) { pipe.drain() }
            guard poller.readyEvents(at: socketIndex).contains(.readable) else { continue }
            guard let request = try? socket.receive(dontWait: true) else { continue }
            let reply = answer(request, state: state)
            do { try socket.send(reply) } catch {
                logger.error("ZAP reply failed", metadata: ["error": "\(error)"])
            }
        }
        socket.close()
        let waiters: [CheckedContinuation<Void, Never>] = state.withLock { s in
            s.finished = true
            s.stopping = true
            pipe.close()
            defer { s.stopWaiters = [] }
            return s.stopWaiters
        }
        for w in waiters { w.resume() }
    }

    /// Answers one ZAP request: [version, request id, domain, address, identity, mechanism, credentials...].
    private static func answer(_ request: Multipart, state: LockedValue<State>) -> Multipart {
        let f = request.frames
        func reply(_ requestID: [UInt8], _ code: String, _ text: String, user: String = "") -> Multipart {
            Multipart([Array("1.0".utf8), requestID, Array(code.utf8), Array(text.utf8), Array(user.utf8), []])
        }
        guard f.count >= 6, f[0] == Array("1.0".utf8), request.limitViolation == nil else {
            state.withLock { $0.stats.malformed += 1 }
            return reply(f.count > 1 ? f[1] : [], "500", "malformed ZAP request")
        }
        let requestID = f[1]
        let domain = String(decoding: f[2], as: UTF8.self)
        let mechanism = String(decoding: f[5], as: UTF8.self)
        return state.withLock { s in
            let allowed: Set<CurveKey>
            if let lists = s.byDomain {
                guard let list = lists[domain] else {
                    s.stats.denied += 1
                    return reply(requestID, "400", "unknown ZAP domain")
                }
                allowed = list
            } else {
                allowed = s.allowed
            }
            if s.byDomain == nil, let want = s.domain, want != domain {
                s.stats.denied += 1
                return reply(requestID, "400", "unknown ZAP domain")
            }
            guard mechanism == "CURVE", f.count >= 7, let key = try? CurveKey(bytes: f[6]) else {
                s.stats.denied += 1
                return reply(requestID, "400", "mechanism \(mechanism) not allowed")
            }
            guard allowed.contains(key) else {
                s.stats.denied += 1
                return reply(requestID, "400", "client key not allowed")
            }
            s.stats.allowed += 1
            return reply(requestID, "200", "OK", user: key.z85)
        }
    }
}
