import CZeroMQ

/// A socket monitor event (`zmq_socket_monitor`): what happened, libzmq's value for it (an fd,
/// an errno, a reconnect interval, or for HANDSHAKE_FAILED_AUTH the ZAP status code) and the
/// endpoint it concerns.
public struct MonitorEvent: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        case connected, connectDelayed, connectRetried, listening, bindFailed, accepted, acceptFailed
        case closed, closeFailed, disconnected, monitorStopped
        case handshakeFailedNoDetail, handshakeSucceeded, handshakeFailedProtocol, handshakeFailedAuth
        case unknown(UInt16)

        init(raw: UInt16) {
            switch Int32(raw) {
            case ZMQ_EVENT_CONNECTED: self = .connected
            case ZMQ_EVENT_CONNECT_DELAYED: self = .connectDelayed
            case ZMQ_EVENT_CONNECT_RETRIED: self = .connectRetried
            case ZMQ_EVENT_LISTENING: self = .listening
            case ZMQ_EVENT_BIND_FAILED: self = .bindFailed
            case ZMQ_EVENT_ACCEPTED: self = .accepted
            case ZMQ_EVENT_ACCEPT_FAILED: self = .acceptFailed
            case ZMQ_EVENT_CLOSED: self = .closed
            case ZMQ_EVENT_CLOSE_FAILED: self = .closeFailed
            case ZMQ_EVENT_DISCONNECTED: self = .disconnected
            case ZMQ_EVENT_MONITOR_STOPPED: self = .monitorStopped
            case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL: self = .handshakeFailedNoDetail
            case ZMQ_EVENT_HANDSHAKE_SUCCEEDED: self = .handshakeSucceeded
            case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL: self = .handshakeFailedProtocol
            case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH: self = .handshakeFailedAuth
            default: self = .unknown(raw)
            }
        }
    }

    /// Which events to monitor (ZMQ_EVENT_* bits).
    public struct Mask: OptionSet, Sendable, Hashable {
        public let rawValue: Int32
        public init(rawValue: Int32) { self.rawValue = rawValue }
        public static let all = Mask(rawValue: ZMQ_EVENT_ALL)
        public static let connected = Mask(rawValue: ZMQ_EVENT_CONNECTED)
        public static let accepted = Mask(rawValue: ZMQ_EVENT_ACCEPTED)
        public static let disconnected = Mask(rawValue: ZMQ_EVENT_DISCONNECTED)
        public static let handshakes = Mask(rawValue: ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL
            | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
    }

    public let kind: Kind
    public let value: UInt32
    public let endpoint: String

    public init(kind: Kind, value: UInt32, endpoint: String) {
        self.kind = kind
        self.value = value
        self.endpoint = endpoint
    }

    /// Parses a monitor message: frame 0 = uint16 event + uint32 value (host order), frame 1 = endpoint.
    public init?(_ message: Multipart) {
        guard message.frames.count >= 2, message.frames[0].count == 6 else { return nil }
        let f = message.frames[0]
        let raw = f.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 0, as: UInt16.self) }
        let value = f.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 2, as: UInt32.self) }
        self.init(kind: Kind(raw: raw), value: value, endpoint: String(decoding: message.frames[1], as: UTF8.self))
    }

    public var description: String { "\(kind)(\(value)) \(endpoint)" }
}
