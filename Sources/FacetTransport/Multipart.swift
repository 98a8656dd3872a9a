/// How a received message broke the receiving socket's own limits. The message is still
/// delivered (with the offending frames emptied), so that a server can answer the sender with an
/// error reply instead of dropping it silently.
public enum FrameLimitViolation: Sendable, Hashable, CustomStringConvertible {
    case frameTooLarge(index: Int, size: Int, limit: Int)
    case tooManyFrames(count: Int, limit: Int)

    public var description: String {
        switch self {
        case .frameTooLarge(let i, let size, let limit): return "frame \(i) of \(size) bytes exceeds \(limit) bytes"
        case .tooManyFrames(let n, let limit): return "\(n) frames exceed the limit of \(limit)"
        }
    }
}

/// A ZeroMQ multipart message: frames plus the connection metadata libzmq attaches.
public struct Multipart: Sendable, Hashable {
    public var frames: [[UInt8]]
    /// The identity ZAP authenticated (our handler sets the client's Z85 public key); nil if none.
    public var userID: String?
    /// The peer's address (TCP), when libzmq knows it.
    public var peerAddress: String?
    /// Set when the message broke the receiving socket's limits; oversized frames are then empty.
    public var limitViolation: FrameLimitViolation?

    public init(_ frames: [[UInt8]]) {
        self.frames = frames
    }

    public init(strings: [String]) {
        self.frames = strings.map { Array($0.utf8) }
    }

    /// Total payload bytes.
    public var byteCount: Int { frames.reduce(0) { $0 + $1.count } }

    /// Splits a ROUTER-side message at the first empty delimiter frame: routing frames (peer
    /// identities) before it, body frames after it. Without a delimiter, everything is body.
    public var routingSplit: (routing: [[UInt8]], body: [[UInt8]]) {
        if let i = frames.firstIndex(where: { $0.isEmpty }) {
            return (Array(frames[..<i]), Array(frames[(i + 1)...]))
        }
        return ([], frames)
    }

    /// A reply for the same route: `routing` frames, the empty delimiter, then `body`.
    public static func routed(_ routing: [[UInt8]], body: [[UInt8]]) -> Multipart {
        Multipart(routing + [[]] + body)
    }
}
