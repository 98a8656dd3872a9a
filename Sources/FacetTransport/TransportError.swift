import CZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failed libzmq call: the function's name and the errno it left (`zmq_errno()`).
public struct ZMQError: Error, Sendable, Hashable, CustomStringConvertible {
    public let function: String
    public let errno: Int32

    public init(function: String, errno: Int32) {
        self.function = function
        self.errno = errno
    }

    /// The error of the last libzmq call on this thread.
    static func last(_ function: String) -> ZMQError {
        ZMQError(function: function, errno: zmq_errno())
    }

    /// libzmq's text for the errno.
    public var message: String { String(cString: zmq_strerror(errno)) }

    public var description: String { "\(function) failed: \(message) (errno \(errno))" }

    /// The resource is temporarily unavailable (EAGAIN): a non-blocking call would block.
    public var wouldBlock: Bool { errno == EAGAIN }
    /// The context was terminated (ETERM).
    public var contextTerminated: Bool { errno == ETERM }
    /// A ROUTER with ROUTER_MANDATORY cannot route the message (EHOSTUNREACH).
    public var hostUnreachable: Bool { errno == EHOSTUNREACH }
}

/// Errors of the transport layer. Every public call of FacetTransport throws only this type.
public enum TransportError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A libzmq call failed.
    case zmq(ZMQError)
    /// The operation did not complete in time (the operation names what was waited for).
    case timedOut(operation: String)
    /// The socket or channel is closed.
    case closed
    /// The waiting task was cancelled.
    case cancelled
    /// An outgoing frame is larger than the socket's own frame limit.
    case frameTooLarge(size: Int, limit: Int)
    /// An outgoing message has more frames than the socket's limit, or none.
    case badFrameCount(Int, limit: Int)
    /// The channel's bounded outgoing queue is full.
    case queueFull(capacity: Int)
    /// A key is not 32 bytes / 40 Z85 characters, or not valid Z85.
    case invalidKey(String)
    /// This libzmq was built without CURVE (libsodium).
    case curveUnavailable
    /// An option value cannot be expressed (e.g. a negative duration).
    case invalidOption(String)

    public var description: String {
        switch self {
        case .zmq(let e): return e.description
        case .timedOut(let op): return "timed out waiting to \(op)"
        case .closed: return "socket closed"
        case .cancelled: return "cancelled"
        case .frameTooLarge(let size, let limit): return "frame of \(size) bytes exceeds the limit of \(limit) bytes"
        case .badFrameCount(let n, let limit): return "message of \(n) frames (allowed 1...\(limit))"
        case .queueFull(let c): return "outgoing queue full (\(c) messages)"
        case .invalidKey(let why): return "invalid CURVE key: \(why)"
        case .curveUnavailable: return "libzmq was built without CURVE support"
        case .invalidOption(let why): return "invalid socket option: \(why)"
        }
    }
}

/// Runs a libzmq call that returns -1 on failure, retrying on EINTR.
@inline(__always)
func zmqCall(_ function: String, _ body: () -> Int32) throws(TransportError) -> Int32 {
    while true {
        let rc = body()
        if rc >= 0 { return rc }
        let err = zmq_errno()
        if err == EINTR { continue }
        throw .zmq(ZMQError(function: function, errno: err))
    }
}
