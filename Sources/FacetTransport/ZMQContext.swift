import CZeroMQ

/// A ZeroMQ context (`zmq_ctx_new`). Thread-safe, as libzmq's contexts are. It is terminated
/// when the last reference goes away; sockets keep their context alive, so termination never
/// waits on an open socket of ours.
public final class ZMQContext: @unchecked Sendable {  // @unchecked: libzmq contexts are thread-safe
    let handle: UnsafeMutableRawPointer

    /// A context with `ioThreads` background I/O threads.
    public init(ioThreads: Int32 = 1) throws(TransportError) {
        guard let h = zmq_ctx_new() else { throw .zmq(.last("zmq_ctx_new")) }
        handle = h
        if ioThreads != 1 {
            _ = try zmqCall("zmq_ctx_set(ZMQ_IO_THREADS)") { zmq_ctx_set(h, ZMQ_IO_THREADS, ioThreads) }
        }
    }

    deinit {
        while zmq_ctx_term(handle) != 0 && zmq_errno() == EINTR {}
    }

    /// The libzmq version, e.g. (4, 3, 4).
    public static var libraryVersion: (major: Int32, minor: Int32, patch: Int32) {
        var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
        zmq_version(&major, &minor, &patch)
        return (major, minor, patch)
    }

    /// Whether this libzmq supports a capability ("curve", "ipc", ...).
    public static func has(_ capability: String) -> Bool { zmq_has(capability) != 0 }
}
