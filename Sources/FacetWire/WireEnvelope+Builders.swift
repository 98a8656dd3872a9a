import Foundation

/// Wall-clock time in Unix milliseconds, the unit of every time field on the wire.
public func wireNowUnixMilliseconds() -> Int64 {
    Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
}

extension WireEnvelope {
    /// A request envelope: current protocol version, the given id, a deadline `timeout` from now
    /// (none when `timeout` is nil) and the caller's self-declared id.
    public static func request(
        _ body: WireEnvelope.OneOf_Body, id: String, timeout: Duration? = nil, clientID: String = "",
        now: Int64 = wireNowUnixMilliseconds()
    ) -> WireEnvelope {
        var e = WireEnvelope()
        e.protocolVersion = WireProtocol.version
        e.requestID = id
        e.clientID = clientID
        e.sentUnixMs = now
        if let timeout { e.deadlineUnixMs = now + timeout.wireMilliseconds }
        e.body = body
        return e
    }

    /// A reply to `request`: same request id and deadline, the replier's id.
    public static func reply(to request: WireEnvelope, _ body: WireEnvelope.OneOf_Body, senderID: String = "",
                             now: Int64 = wireNowUnixMilliseconds()) -> WireEnvelope {
        var e = WireEnvelope()
        e.protocolVersion = WireProtocol.version
        e.requestID = request.requestID
        e.deadlineUnixMs = request.deadlineUnixMs
        e.clientID = senderID
        e.sentUnixMs = now
        e.body = body
        return e
    }

    /// An error reply to `request`.
    public static func errorReply(to request: WireEnvelope, _ error: FacetError, senderID: String = "",
                                  now: Int64 = wireNowUnixMilliseconds()) -> WireEnvelope {
        reply(to: request, .error(error.wire), senderID: senderID, now: now)
    }

    /// An error reply when the request itself could not be decoded (no request id known).
    public static func errorReply(requestID: String, _ error: FacetError, senderID: String = "",
                                  now: Int64 = wireNowUnixMilliseconds()) -> WireEnvelope {
        var e = WireEnvelope()
        e.protocolVersion = WireProtocol.version
        e.requestID = requestID
        e.clientID = senderID
        e.sentUnixMs = now
        e.body = .error(error.wire)
        return e
    }

    /// The error this envelope carries, if it is an error reply.
    public var facetError: FacetError? {
        if case .error(let e)? = body { return FacetError(e) }
        return nil
    }

    /// Whether the deadline has passed (`false` when there is none).
    public func isExpired(now: Int64 = wireNowUnixMilliseconds()) -> Bool {
        deadlineUnixMs != 0 && now >= deadlineUnixMs
    }

    /// Milliseconds left until the deadline: nil when there is none, 0 when it has passed.
    public func remainingMilliseconds(now: Int64 = wireNowUnixMilliseconds()) -> Int64? {
        deadlineUnixMs == 0 ? nil : max(0, deadlineUnixMs - now)
    }

    /// The body's case name ("identifyRequest"), for logs and metrics; never the content.
    public var bodyKind: String {
        guard let body else { return "none" }
        // The case name from reflection: `String(describing: body)` would print the whole message in text format
        // first (every float of an embedding), which cost tens of microseconds per request on the identify path.
        if let label = Mirror(reflecting: body).children.first?.label { return label }
        let s = String(describing: body)
        return s.firstIndex(of: "(").map { String(s[..<$0]) } ?? s
    }
}

extension Duration {
    /// The duration in whole milliseconds, rounded up so that a positive timeout never becomes 0.
    public var wireMilliseconds: Int64 {
        let (s, atto) = components
        let ms = s * 1000 + atto / 1_000_000_000_000_000
        let rest = atto % 1_000_000_000_000_000
        return rest > 0 ? ms + 1 : ms
    }
}
