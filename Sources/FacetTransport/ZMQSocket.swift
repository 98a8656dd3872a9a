import CZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A ZeroMQ socket with a synchronous, typed API. Not thread-safe (libzmq sockets are not): one
/// thread owns it. `ZMQChannel` wraps one in a dedicated thread for Swift concurrency; use
/// `ZMQSocket` directly only from a thread you own (tests, tools, C-style loops).
public final class ZMQSocket {
    public let type: SocketType
    public let context: ZMQContext
    let handle: UnsafeMutableRawPointer
    public private(set) var options: SocketOptions
    private var closed = false
    private var monitorEndpoint: String?

    /// Opens a socket and applies `options`.
    public init(context: ZMQContext, type: SocketType, options: SocketOptions = SocketOptions()) throws(TransportError) {
        guard let h = zmq_socket(context.handle, type.raw) else { throw .zmq(.last("zmq_socket")) }
        self.type = type
        self.context = context
        self.handle = h
        self.options = options
        do {
            try apply(options)
        } catch {
            _ = zmq_close(h)
            closed = true
            throw error
        }
    }

    deinit { close() }

    // MARK: options

    func setInt(_ option: Int32, _ value: Int32, _ name: String) throws(TransportError) {
        var v = value
        _ = try zmqCall("zmq_setsockopt(\(name))") { zmq_setsockopt(handle, option, &v, MemoryLayout<Int32>.size) }
    }

    func setInt64(_ option: Int32, _ value: Int64, _ name: String) throws(TransportError) {
        var v = value
        _ = try zmqCall("zmq_setsockopt(\(name))") { zmq_setsockopt(handle, option, &v, MemoryLayout<Int64>.size) }
    }

    func setBytes(_ option: Int32, _ value: [UInt8], _ name: String) throws(TransportError) {
        _ = try zmqCall("zmq_setsockopt(\(name))") {
            value.withUnsafeBufferPointer { zmq_setsockopt(handle, option, $0.baseAddress, $0.count) }
        }
    }

    func setDuration(_ option: Int32, _ value: Duration, _ name: String) throws(TransportError) {
        guard let ms = value.zmqMilliseconds else { throw .invalidOption("\(name) = \(value)") }
        try setInt(option, ms, name)
    }

    private func apply(_ o: SocketOptions) throws(TransportError) {
        try setDuration(ZMQ_LINGER, o.linger, "ZMQ_LINGER")
        try setInt(ZMQ_SNDHWM, o.sendHighWaterMark, "ZMQ_SNDHWM")
        try setInt(ZMQ_RCVHWM, o.receiveHighWaterMark, "ZMQ_RCVHWM")
        guard o.maxFrameBytes > 0, o.maxFrames > 0 else { throw .invalidOption("frame limits must be positive") }
        try setInt64(ZMQ_MAXMSGSIZE, o.effectiveDisconnectAboveBytes, "ZMQ_MAXMSGSIZE")
        if let id = o.routingID { try setBytes(ZMQ_ROUTING_ID, id, "ZMQ_ROUTING_ID") }
        if o.routerMandatory { try setInt(ZMQ_ROUTER_MANDATORY, 1, "ZMQ_ROUTER_MANDATORY") }
        if o.immediate { try setInt(ZMQ_IMMEDIATE, 1, "ZMQ_IMMEDIATE") }
        if let v = o.reconnectInterval { try setDuration(ZMQ_RECONNECT_IVL, v, "ZMQ_RECONNECT_IVL") }
        if let v = o.reconnectIntervalMax { try setDuration(ZMQ_RECONNECT_IVL_MAX, v, "ZMQ_RECONNECT_IVL_MAX") }
        if let v = o.handshakeInterval { try setDuration(ZMQ_HANDSHAKE_IVL, v, "ZMQ_HANDSHAKE_IVL") }
        if let v = o.heartbeatInterval { try setDuration(ZMQ_HEARTBEAT_IVL, v, "ZMQ_HEARTBEAT_IVL") }
        if let v = o.heartbeatTimeout { try setDuration(ZMQ_HEARTBEAT_TIMEOUT, v, "ZMQ_HEARTBEAT_TIMEOUT") }
        if let v = o.heartbeatTTL { try setDuration(ZMQ_HEARTBEAT_TTL, v, "ZMQ_HEARTBEAT_TTL") }
        for topic in o.subscriptions { try setBytes(ZMQ_SUBSCRIBE, topic, "ZMQ_SUBSCRIBE") }
        switch o.security {
        case .plaintext:
            break
        case .curveServer(let pair, let domain):
            guard ZMQContext.has("curve") else { throw .curveUnavailable }
            try setInt(ZMQ_CURVE_SERVER, 1, "ZMQ_CURVE_SERVER")
            try setBytes(ZMQ_CURVE_SECRETKEY, pair.secretKey.bytes, "ZMQ_CURVE_SECRETKEY")
            try setBytes(ZMQ_CURVE_PUBLICKEY, pair.publicKey.bytes, "ZMQ_CURVE_PUBLICKEY")
            try setBytes(ZMQ_ZAP_DOMAIN, Array(domain.utf8), "ZMQ_ZAP_DOMAIN")
        case .curveClient(let pair, let server):
            guard ZMQContext.has("curve") else { throw .curveUnavailable }
            try setBytes(ZMQ_CURVE_SERVERKEY, server.bytes, "ZMQ_CURVE_SERVERKEY")
            try setBytes(ZMQ_CURVE_PUBLICKEY, pair.publicKey.bytes, "ZMQ_CURVE_PUBLICKEY")
            try setBytes(ZMQ_CURVE_SECRETKEY, pair.secretKey.bytes, "ZMQ_CURVE_SECRETKEY")
        }
    }

    /// Subscribes a SUB socket to a topic prefix after opening.
    public func subscribe(_ topic: [UInt8]) throws(TransportError) {
        try setBytes(ZMQ_SUBSCRIBE, topic, "ZMQ_SUBSCRIBE")
    }

    // MARK: endpoints

    /// Binds to `endpoint` and returns the endpoint actually bound (wildcard ports resolved,
    /// e.g. "tcp://127.0.0.1:*" -> "tcp://127.0.0.1:41234").
    @discardableResult
    public func bind(_ endpoint: String) throws(TransportError) -> String {
        _ = try zmqCall("zmq_bind(\(endpoint))") { zmq_bind(handle, endpoint) }
        return try lastEndpoint()
    }

    public func connect(_ endpoint: String) throws(TransportError) {
        _ = try zmqCall("zmq_connect(\(endpoint))") { zmq_connect(handle, endpoint) }
    }

    public func unbind(_ endpoint: String) throws(TransportError) {
        _ = try zmqCall("zmq_unbind(\(endpoint))") { zmq_unbind(handle, endpoint) }
    }

    public func disconnect(_ endpoint: String) throws(TransportError) {
        _ = try zmqCall("zmq_disconnect(\(endpoint))") { zmq_disconnect(handle, endpoint) }
    }

    /// ZMQ_LAST_ENDPOINT.
    public func lastEndpoint() throws(TransportError) -> String {
        var buf = [CChar](repeating: 0, count: 1024)
        var size = buf.count
        _ = try zmqCall("zmq_getsockopt(ZMQ_LAST_ENDPOINT)") { zmq_getsockopt(handle, ZMQ_LAST_ENDPOINT, &buf, &size) }
        return String(cString: buf)
    }

    /// ZMQ_EVENTS: whether a receive (`readable`) or a send (`writable`) would succeed now.
    public func pendingEvents() throws(TransportError) -> (readable: Bool, writable: Bool) {
        var v: Int32 = 0
        var size = MemoryLayout<Int32>.size
        _ = try zmqCall("zmq_getsockopt(ZMQ_EVENTS)") { zmq_getsockopt(handle, ZMQ_EVENTS, &v, &size) }
        return (v & Int32(ZMQ_POLLIN) != 0, v & Int32(ZMQ_POLLOUT) != 0)
    }

    // MARK: send and receive

    /// Checks an outgoing message against this socket's limits.
    func validateOutgoing(_ message: Multipart) throws(TransportError) {
        guard !message.frames.isEmpty, message.frames.count <= options.maxFrames else {
            throw .badFrameCount(message.frames.count, limit: options.maxFrames)
        }
        for f in message.frames where f.count > options.maxFrameBytes {
            throw .frameTooLarge(size: f.count, limit: options.maxFrameBytes)
        }
    }

    /// Sends all frames as one message. With `dontWait`, returns false (nothing sent) when the
    /// message cannot be queued now; otherwise blocks until queued. libzmq checks the high-water
    /// mark on the first frame only, so a message is either queued whole or not at all.
    @discardableResult
    public func send(_ message: Multipart, dontWait: Bool = false) throws(TransportError) -> Bool {
        guard !closed else { throw .closed }
        try validateOutgoing(message)
        let last = message.frames.count - 1
        for (i, frame) in message.frames.enumerated() {
            var flags: Int32 = i < last ? ZMQ_SNDMORE : 0
            if dontWait { flags |= ZMQ_DONTWAIT }
            while true {
                let rc = frame.withUnsafeBufferPointer { zmq_send(handle, $0.baseAddress, $0.count, flags) }
                if rc >= 0 { break }
                let err = zmq_errno()
                if err == EINTR { continue }
                if err == EAGAIN && dontWait && i == 0 { return false }
                throw .zmq(ZMQError(function: "zmq_send", errno: err))
            }
        }
        return true
    }

    /// Receives one whole message. With `dontWait`, returns nil when none is queued; otherwise
    /// blocks until one arrives. Frames over `options.maxFrameBytes` are not copied (left empty)
    /// and frames past `options.maxFrames` are drained and dropped; `limitViolation` says so.
    public func receive(dontWait: Bool = false) throws(TransportError) -> Multipart? {
        guard !closed else { throw .closed }
        var frames: [[UInt8]] = []
        var violation: FrameLimitViolation?
        var userID: String?
        var peer: String?
        var index = 0
        var msg = zmq_msg_t()
        zmq_msg_init(&msg)
        defer { zmq_msg_close(&msg) }
        while true {
            let flags: Int32 = (dontWait && index == 0) ? ZMQ_DONTWAIT : 0
            let rc = zmq_msg_recv(&msg, handle, flags)
            if rc < 0 {
                let err = zmq_errno()
                if err == EINTR { continue }
                if err == EAGAIN && dontWait && index == 0 { return nil }
                throw .zmq(ZMQError(function: "zmq_msg_recv", errno: err))
            }
            let size = zmq_msg_size(&msg)
            // A ROUTER's routing-id frame is made locally and has no metadata; the peer's frames do.
            if userID == nil, let p = zmq_msg_gets(&msg, "User-Id") { userID = String(cString: p) }
            if peer == nil, let p = zmq_msg_gets(&msg, "Peer-Address") { peer = String(cString: p) }
            if index >= options.maxFrames {
                if violation == nil { violation = .tooManyFrames(count: index + 1, limit: options.maxFrames) }
            } else if size > options.maxFrameBytes {
                if violation == nil { violation = .frameTooLarge(index: index, size: size, limit: options.maxFrameBytes) }
                frames.append([])
            } else if size == 0 {
                frames.append([])
            } else {
                let data = zmq_msg_data(&msg)!.assumingMemoryBound(to: UInt8.self)
                frames.append(Array(UnsafeBufferPointer(start: data, count: size)))
            }
            index += 1
            if zmq_msg_more(&msg) == 0 { break }
        }
        if case .tooManyFrames = violation { violation = .tooManyFrames(count: index, limit: options.maxFrames) }
        var m = Multipart(frames)
        m.userID = userID
        m.peerAddress = peer
        m.limitViolation = violation
        return m
    }

    /// Receives one message, waiting at most `timeout`; throws `.timedOut` when none arrived.
    public func receive(timeout: Duration) throws(TransportError) -> Multipart {
        var poller = ZMQPoller()
        poller.add(self, events: .readable)
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while true {
            if let m = try receive(dontWait: true) { return m }
            let left = clock.now.duration(to: deadline)
            if left <= .zero { throw .timedOut(operation: "receive on \(type)") }
            _ = try poller.poll(timeout: left)
        }
    }

    // MARK: monitor

    /// Starts libzmq's monitor for `events` (ZMQ_EVENT_* bits) and returns a PAIR socket that
    /// receives them; parse each message with `MonitorEvent(_:)`. Call before bind/connect to see
    /// every event. The returned socket belongs to the same owner thread as this one.
    public func startMonitor(events: MonitorEvent.Mask = .all) throws(TransportError) -> ZMQSocket {
        let endpoint = "inproc://facet-monitor-\(MonitorIDs.next())"
        _ = try zmqCall("zmq_socket_monitor(\(endpoint))") { zmq_socket_monitor(handle, endpoint, events.rawValue) }
        monitorEndpoint = endpoint
        var o = SocketOptions()
        o.maxFrames = 4
        o.maxFrameBytes = 4096
        let pair = try ZMQSocket(context: context, type: .pair, options: o)
        try pair.connect(endpoint)
        return pair
    }

    /// Stops the monitor started by `startMonitor`.
    public func stopMonitor() {
        if monitorEndpoint != nil {
            _ = zmq_socket_monitor(handle, nil, 0)
            monitorEndpoint = nil
        }
    }

    /// Closes the socket (pending messages are kept for `options.linger`). Idempotent.
    public func close() {
        if closed { return }
        stopMonitor()
        closed = true
        _ = zmq_close(handle)
    }

    public var isClosed: Bool { closed }
}

/// Unique suffixes for monitor endpoints.
enum MonitorIDs {
    private static let counter = LockedValue<UInt64>(0)
    static func next() -> UInt64 { counter.withLock { $0 += 1; return $0 } }
}
