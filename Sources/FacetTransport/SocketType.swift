import CZeroMQ

/// ZeroMQ socket types used by Facet.
public enum SocketType: Sendable, Hashable, CustomStringConvertible {
    case pair, pub, sub, req, rep, dealer, router, pull, push, xpub, xsub

    var raw: Int32 {
        switch self {
        case .pair: return ZMQ_PAIR
        case .pub: return ZMQ_PUB
        case .sub: return ZMQ_SUB
        case .req: return ZMQ_REQ
        case .rep: return ZMQ_REP
        case .dealer: return ZMQ_DEALER
        case .router: return ZMQ_ROUTER
        case .pull: return ZMQ_PULL
        case .push: return ZMQ_PUSH
        case .xpub: return ZMQ_XPUB
        case .xsub: return ZMQ_XSUB
        }
    }

    public var description: String {
        switch self {
        case .pair: return "PAIR"
        case .pub: return "PUB"
        case .sub: return "SUB"
        case .req: return "REQ"
        case .rep: return "REP"
        case .dealer: return "DEALER"
        case .router: return "ROUTER"
        case .pull: return "PULL"
        case .push: return "PUSH"
        case .xpub: return "XPUB"
        case .xsub: return "XSUB"
        }
    }
}

/// Options applied when a socket is opened. Defaults are Facet's: no linger, bounded frames.
public struct SocketOptions: Sendable, Hashable {
    /// How long unsent messages are kept after close (ZMQ_LINGER). Default 0: close never blocks.
    public var linger: Duration = .zero
    /// High-water marks in messages (ZMQ_SNDHWM / ZMQ_RCVHWM).
    public var sendHighWaterMark: Int32 = 1000
    public var receiveHighWaterMark: Int32 = 1000
    /// Our own per-frame limit: larger inbound frames are emptied and the message flagged with a
    /// `FrameLimitViolation` (so the sender can get FRAME_TOO_LARGE); larger outbound frames are refused.
    public var maxFrameBytes: Int = 16 << 20
    /// Our own limit on frames per message (inbound: flagged; outbound: refused).
    public var maxFrames: Int = 64
    /// libzmq's limit (ZMQ_MAXMSGSIZE): a peer sending a larger frame is disconnected without a
    /// reply. nil = 2 × maxFrameBytes, so frames between the two limits still get an error reply.
    public var disconnectAboveBytes: Int64? = nil
    /// Identity of this socket as seen by a ROUTER (ZMQ_ROUTING_ID).
    public var routingID: [UInt8]? = nil
    /// ROUTER: fail sends to unknown peers with EHOSTUNREACH instead of dropping them (ZMQ_ROUTER_MANDATORY).
    public var routerMandatory: Bool = false
    /// Queue messages only to completed connections (ZMQ_IMMEDIATE).
    public var immediate: Bool = false
    /// Reconnect back-off (ZMQ_RECONNECT_IVL, ZMQ_RECONNECT_IVL_MAX); nil = libzmq's default.
    public var reconnectInterval: Duration? = nil
    public var reconnectIntervalMax: Duration? = nil
    /// Time allowed for the ZMTP/security handshake (ZMQ_HANDSHAKE_IVL); nil = libzmq's 30 s.
    public var handshakeInterval: Duration? = nil
    /// ZMTP heartbeats (ZMQ_HEARTBEAT_IVL / _TIMEOUT / _TTL); nil = off.
    public var heartbeatInterval: Duration? = nil
    public var heartbeatTimeout: Duration? = nil
    public var heartbeatTTL: Duration? = nil
    /// SUB: topic prefixes to subscribe to (ZMQ_SUBSCRIBE); [] subscribes to nothing.
    public var subscriptions: [[UInt8]] = []
    /// Security mechanism.
    public var security: SocketSecurity = .plaintext

    public init() {}

    /// The libzmq limit actually applied.
    public var effectiveDisconnectAboveBytes: Int64 {
        disconnectAboveBytes ?? Int64(maxFrameBytes) * 2
    }
}

extension Duration {
    /// Whole milliseconds as Int32 (libzmq's unit), rounded up; nil if negative or too large.
    var zmqMilliseconds: Int32? {
        let (s, atto) = components
        guard s >= 0 else { return nil }
        var ms = s * 1000 + atto / 1_000_000_000_000_000
        if atto % 1_000_000_000_000_000 != 0 { ms += 1 }
        return ms <= Int64(Int32.max) ? Int32(ms) : nil
    }
}
