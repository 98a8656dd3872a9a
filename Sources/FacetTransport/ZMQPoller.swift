import CZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `zmq_poll` over ZeroMQ sockets and plain file descriptors. Belongs to the thread that owns
/// the sockets it polls.
public struct ZMQPoller {
    public struct Events: OptionSet, Sendable, Hashable {
        public let rawValue: Int16
        public init(rawValue: Int16) { self.rawValue = rawValue }
        public static let readable = Events(rawValue: Int16(ZMQ_POLLIN))
        public static let writable = Events(rawValue: Int16(ZMQ_POLLOUT))
        public static let error = Events(rawValue: Int16(ZMQ_POLLERR))
    }

    private var items: [zmq_pollitem_t] = []
    private var owners: [ZMQSocket?] = []  // keeps polled sockets alive

    public init() {}

    /// Adds a socket; returns its index.
    @discardableResult
    public mutating func add(_ socket: ZMQSocket, events: Events) -> Int {
        items.append(zmq_pollitem_t(socket: socket.handle, fd: -1, events: events.rawValue, revents: 0))
        owners.append(socket)
        return items.count - 1
    }

    /// Adds a file descriptor; returns its index.
    @discardableResult
    public mutating func add(fileDescriptor fd: Int32, events: Events) -> Int {
        items.append(zmq_pollitem_t(socket: nil, fd: fd, events: events.rawValue, revents: 0))
        owners.append(nil)
        return items.count - 1
    }

    /// Changes the events polled for item `index`.
    public mutating func setEvents(_ events: Events, at index: Int) {
        items[index].events = events.rawValue
    }

    /// Waits until an item is ready or `timeout` passes (nil = forever). Returns the number of
    /// ready items (0 on timeout). EINTR counts as a timeout-free wake-up and returns 0.
    @discardableResult
    public mutating func poll(timeout: Duration?) throws(TransportError) -> Int {
        for i in items.indices { items[i].revents = 0 }
        let ms: Int = timeout.map { Int($0.zmqMilliseconds ?? (($0 < .zero) ? 0 : Int32.max)) } ?? -1
        let n = items.count
        let rc = items.withUnsafeMutableBufferPointer { zmq_poll($0.baseAddress, Int32(n), ms) }
        if rc < 0 {
            let err = zmq_errno()
            if err == EINTR { return 0 }
            throw .zmq(ZMQError(function: "zmq_poll", errno: err))
        }
        return Int(rc)
    }

    /// The events that were ready for item `index` in the last poll.
    public func readyEvents(at index: Int) -> Events { Events(rawValue: items[index].revents) }
}
