import Foundation
import Logging

/// One ZeroMQ socket bridged to Swift concurrency.
///
/// libzmq sockets are not thread-safe, and `zmq_poll` blocks, so each channel owns a dedicated
/// thread that is the only user of its socket (and of its monitor socket). Async callers never
/// touch the socket: `send` queues a message and suspends until the owner thread has handed it
/// to libzmq; `receive` suspends until the owner thread delivers a message. A self-pipe polled
/// beside the socket wakes the thread when work is queued. Nothing blocks the cooperative pool.
///
/// Everything is bounded: the outgoing queue (`outboundCapacity`; beyond it `send` throws
/// `.queueFull`), the delivered-but-unread messages (`inboundCapacity`; beyond it the thread stops
/// reading, so libzmq's high-water marks push back on the peer), frame sizes and counts
/// (`SocketOptions`), and every wait that is given a timeout.
public final class ZMQChannel: Sendable {
    public let type: SocketType
    /// The endpoints bound, with wildcard ports resolved.
    public let boundEndpoints: [String]
    /// Monitor events of the socket (empty and finished when no monitor was asked for). One consumer.
    public let monitorEvents: AsyncStream<MonitorEvent>
    public let options: SocketOptions
    private let core: ChannelCore

    /// Opens a socket of `type`, applies `options`, starts the monitor (if `monitor` is given,
    /// before any bind/connect so no event is missed), binds and connects, then starts the owner
    /// thread. The socket is created on the calling thread and handed over when the owner thread
    /// starts (a full memory barrier, as libzmq requires for migrating a socket).
    public init(
        context: ZMQContext, type: SocketType, options: SocketOptions = SocketOptions(),
        bind: [String] = [], connect: [String] = [], monitor: MonitorEvent.Mask? = nil,
        inboundCapacity: Int = 1024, outboundCapacity: Int = 1024, name: String? = nil,
        logger: Logger = Logger(label: "facet.transport", factory: { _ in SwiftLogNoOpLogHandler() })
    ) throws(TransportError) {
        guard inboundCapacity > 0, outboundCapacity > 0 else { throw .invalidOption("channel capacities must be positive") }
        let socket = try ZMQSocket(context: context, type: type, options: options)
        var monitorSocket: ZMQSocket?
        var bound: [String] = []
        do {
            if let monitor { monitorSocket = try socket.startMonitor(events: monitor) }
            for e in bind { bound.append(try socket.bind(e)) }
            for e in connect { try socket.connect(e) }
        } catch {
            monitorSocket?.close()
            socket.close()
            throw error
        }
        let pipe: WakePipe
        do { pipe = try WakePipe() } catch {
            monitorSocket?.close()
            socket.close()
            throw error
        }
        var eventsContinuation: AsyncStream<MonitorEvent>.Continuation!
        monitorEvents = AsyncStream(bufferingPolicy: .bufferingNewest(1024)) { eventsContinuation = $0 }
        if monitorSocket == nil { eventsContinuation.finish() }
        self.type = type
        self.options = options
        self.boundEndpoints = bound
        let label = name ?? "\(type)"
        core = ChannelCore(socket: socket, monitor: monitorSocket, pipe: pipe, events: eventsContinuation,
                           inboundCapacity: inboundCapacity, outboundCapacity: outboundCapacity,
                           name: label, logger: logger)
        let core = self.core
        let thread = Thread { core.run() }
        thread.name = "facet.zmq.\(label)"
        thread.start()
    }

    deinit {
        core.requestClose()
    }

    // MARK: sending

    /// Queues `message` and returns once libzmq has accepted it (it is then on its way; ZeroMQ
    /// does not confirm delivery). Throws `.timedOut` if it could not be queued within `timeout`
    /// (e.g. a DEALER with no connected peer, or a full high-water mark), `.queueFull`,
    /// `.frameTooLarge`/`.badFrameCount` for messages over the limits, `.closed`, `.cancelled`,
    /// or `.zmq` (e.g. EHOSTUNREACH from a ROUTER with `routerMandatory`).
    public func send(_ message: Multipart, timeout: Duration? = nil) async throws(TransportError) {
        try core.validateOutgoing(message)
        let deadline = timeout.map { ContinuousClock.now.advanced(by: $0) }
        let id = core.nextID()
        let result: Result<Void, TransportError> = await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Result<Void, TransportError>, Never>) in
                core.enqueueSend(id: id, message: message, deadline: deadline, continuation: c)
            }
        } onCancel: {
            core.cancel(id: id)
        }
        try result.get()
    }

    /// Queues `message` without waiting (fire and forget, e.g. a server's reply). Errors other
    /// than the immediate ones thrown here are logged by the owner thread at debug level.
    public func post(_ message: Multipart) throws(TransportError) {
        try core.validateOutgoing(message)
        try core.enqueuePost(message)
    }

    // MARK: receiving

    /// The next message; waits at most `timeout` (nil = until one arrives, the channel closes or
    /// the task is cancelled). Throws `.timedOut`, `.closed` or `.cancelled`.
    public func receive(timeout: Duration? = nil) async throws(TransportError) -> Multipart {
        let deadline = timeout.map { ContinuousClock.now.advanced(by: $0) }
        let id = core.nextID()
        let result: Result<Multipart, TransportError> = await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Result<Multipart, TransportError>, Never>) in
                core.enqueueReceive(id: id, deadline: deadline, continuation: c)
            }
        } onCancel: {
            core.cancel(id: id)
        }
        return try result.get()
    }

    /// Messages as an async sequence that ends when the channel closes.
    public var messages: AsyncStream<Multipart> {
        AsyncStream { continuation in
            let task = Task {
                while !Task.isCancelled {
                    do { continuation.yield(try await self.receive()) } catch { break }
                }
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    // MARK: handling on the owner thread

    /// Installs (or, with nil, removes) a handler that sees every received message on the channel's owner
    /// thread, before it is queued for `receive`. When it returns true it has consumed the message; otherwise the
    /// message is queued as usual. It saves the hop to an async receiver on latency-critical paths (a broker that
    /// forwards a request or resolves a call at once). It must be short and must not block: posting to channels
    /// (this one included) is fine; waiting for anything is not. Messages that arrived before it was installed
    /// stay queued for `receive`.
    public func setReceiveHandler(_ handler: (@Sendable (Multipart) -> Bool)?) {
        core.setReceiveHandler(handler)
    }

    // MARK: closing

    /// Closes the socket on its owner thread and waits for the thread to finish. Queued sends
    /// and waiting receives fail with `.closed`. Idempotent.
    public func close() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in core.close(continuation: c) }
    }

    /// Whether the owner thread has finished.
    public var isClosed: Bool { core.isFinished }

    /// Counters for metrics and tests.
    public var statistics: ChannelStatistics { core.statistics }
}

/// Counters of a channel.
public struct ChannelStatistics: Sendable, Hashable {
    public var sent = 0
    public var received = 0
    public var sendFailures = 0
    public var limitViolations = 0
}

/// First-in first-out queue with amortised O(1) pops.
struct FIFO<Element> {
    private var items: [Element] = []
    private var head = 0

    var count: Int { items.count - head }
    var isEmpty: Bool { head == items.count }
    var first: Element? { isEmpty ? nil : items[head] }

    mutating func append(_ e: Element) { items.append(e) }

    mutating func popFirst() -> Element? {
        guard !isEmpty else { return nil }
        let e = items[head]
        head += 1
        if head > 64 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
        return e
    }

    /// Removes and returns the elements matching `predicate`, keeping the order of the rest.
    mutating func removeAll(where predicate: (Element) -> Bool) -> [Element] {
        // The owner thread asks on every loop iteration; usually nothing matches: answer without allocating.
        guard items[head...].contains(where: predicate) else { return [] }
        var removed: [Element] = []
        var kept: [Element] = []
        for e in items[head...] {
            if predicate(e) { removed.append(e) } else { kept.append(e) }
        }
        if !removed.isEmpty {
            items = kept
            head = 0
        }
        return removed
    }

    /// Visits the elements in order without removing them.
    func forEach(_ body: (Element) -> Void) {
        for e in items[head...] { body(e) }
    }

    mutating func drain() -> [Element] {
        let all = Array(items[head...])
        items = []
        head = 0
        return all
    }
}

/// The state shared between a channel's owner thread and its async callers.
final class ChannelCore: @unchecked Sendable {
    // @unchecked: `socket`, `monitor` and `pipe`'s read end are used only by the owner thread
    // (after the hand-over in `Thread.start`); everything else shared lives in `state`.
    typealias SendContinuation = CheckedContinuation<Result<Void, TransportError>, Never>
    typealias ReceiveContinuation = CheckedContinuation<Result<Multipart, TransportError>, Never>

    struct PendingSend {
        let id: UInt64
        let message: Multipart
        let deadline: ContinuousClock.Instant?
        let continuation: SendContinuation?
    }

    struct Waiter {
        let id: UInt64
        let deadline: ContinuousClock.Instant?
        let continuation: ReceiveContinuation
    }

    struct State {
        var outbox = FIFO<PendingSend>()
        var inbox = FIFO<Multipart>()
        var waiters = FIFO<Waiter>()
        var cancelledEarly = Set<UInt64>()
        var closing = false
        var finished = false
        var closeWaiters: [CheckedContinuation<Void, Never>] = []
        var nextID: UInt64 = 0
        var stats = ChannelStatistics()
        var handler: (@Sendable (Multipart) -> Bool)?
    }

    let socket: ZMQSocket
    let monitor: ZMQSocket?
    let pipe: WakePipe
    let events: AsyncStream<MonitorEvent>.Continuation
    let inboundCapacity: Int
    let outboundCapacity: Int
    let name: String
    let logger: Logger
    let maxFrames: Int
    let maxFrameBytes: Int
    private let state = LockedValue(State())

    init(socket: ZMQSocket, monitor: ZMQSocket?, pipe: WakePipe, events: AsyncStream<MonitorEvent>.Continuation,
         inboundCapacity: Int, outboundCapacity: Int, name: String, logger: Logger) {
        self.socket = socket
        self.monitor = monitor
        self.pipe = pipe
        self.events = events
        self.inboundCapacity = inboundCapacity
        self.outboundCapacity = outboundCapacity
        self.name = name
        self.logger = logger
        self.maxFrames = socket.options.maxFrames
        self.maxFrameBytes = socket.options.maxFrameBytes
    }

    // MARK: called from any thread

    func nextID() -> UInt64 { state.withLock { $0.nextID += 1; return $0.nextID } }

    func setReceiveHandler(_ handler: (@Sendable (Multipart) -> Bool)?) { state.withLock { $0.handler = handler } }

    var isFinished: Bool { state.withLock { $0.finished } }
    var statistics: ChannelStatistics { state.withLock { $0.stats } }

    func validateOutgoing(_ message: Multipart) throws(TransportError) {
        guard !message.frames.isEmpty, message.frames.count <= maxFrames else {
            throw .badFrameCount(message.frames.count, limit: maxFrames)
        }
        for f in message.frames where f.count > maxFrameBytes {
            throw .frameTooLarge(size: f.count, limit: maxFrameBytes)
        }
    }

    /// Wakes the owner thread; must be called with the lock held (so never after the pipe closed).
    private func wakeLocked(_ s: State) {
        if !s.finished { pipe.wake() }
    }

    func enqueueSend(id: UInt64, message: Multipart, deadline: ContinuousClock.Instant?, continuation: SendContinuation) {
        let failure: TransportError? = state.withLock { s in
            if s.cancelledEarly.remove(id) != nil { return .cancelled }
            if s.closing || s.finished { return .closed }
            if s.outbox.count >= outboundCapacity { return .queueFull(capacity: outboundCapacity) }
            s.outbox.append(PendingSend(id: id, message: message, deadline: deadline, continuation: continuation))
            wakeLocked(s)
            return nil
        }
        if let failure { continuation.resume(returning: .failure(failure)) }
    }

    func enqueuePost(_ message: Multipart) throws(TransportError) {
        let failure: TransportError? = state.withLock { s in
            if s.closing || s.finished { return .closed }
            if s.outbox.count >= outboundCapacity { return .queueFull(capacity: outboundCapacity) }
            s.nextID += 1
            s.outbox.append(PendingSend(id: s.nextID, message: message, deadline: nil, continuation: nil))
            wakeLocked(s)
            return nil
        }
        if let failure { throw failure }
    }

    func enqueueReceive(id: UInt64, deadline: ContinuousClock.Instant?, continuation: ReceiveContinuation) {
        enum Outcome { case message(Multipart), failure(TransportError), waiting }
        let outcome: Outcome = state.withLock { s in
            if s.cancelledEarly.remove(id) != nil { return .failure(.cancelled) }
            if let m = s.inbox.popFirst() {
                // The owner thread stops reading at capacity; tell it there is room again.
                if s.inbox.count == inboundCapacity - 1 { wakeLocked(s) }
                return .message(m)
            }
            if s.closing || s.finished { return .failure(.closed) }
            if let deadline, deadline <= .now { return .failure(.timedOut(operation: "receive on \(name)")) }
            s.waiters.append(Waiter(id: id, deadline: deadline, continuation: continuation))
            if deadline != nil { wakeLocked(s) }  // the owner thread recomputes its poll timeout
            return .waiting
        }
        switch outcome {
        case .message(let m): continuation.resume(returning: .success(m))
        case .failure(let e): continuation.resume(returning: .failure(e))
        case .waiting: break
        }
    }

    /// Cancels a queued send or a waiting receive; if neither is queued yet, remembers the id
    /// so that the enqueue that follows fails at once.
    func cancel(id: UInt64) {
        let (sends, waiters): ([PendingSend], [Waiter]) = state.withLock { s in
            let sends = s.outbox.removeAll { $0.id == id }
            let waiters = s.waiters.removeAll { $0.id == id }
            if sends.isEmpty && waiters.isEmpty && !s.finished { s.cancelledEarly.insert(id) }
            return (sends, waiters)
        }
        for p in sends { p.continuation?.resume(returning: .failure(.cancelled)) }
        for w in waiters { w.continuation.resume(returning: .failure(.cancelled)) }
    }

    func requestClose() {
        state.withLock { s in
            if !s.finished && !s.closing {
                s.closing = true
                wakeLocked(s)
            }
        }
    }

    func close(continuation: CheckedContinuation<Void, Never>) {
        let done: Bool = state.withLock { s in
            if s.finished { return true }
            s.closing = true
            s.closeWaiters.append(continuation)
            wakeLocked(s)
            return false
        }
        if done { continuation.resume() }
    }

    // MARK: owner thread

    func run() {
        var poller = ZMQPoller()
        let socketIndex = poller.add(socket, events: [])
        let wakeIndex = poller.add(fileDescriptor: pipe.readFD, events: .readable)
        let monitorIndex = monitor.map { poller.add($0, events: .readable) }
        // Sends are tried at once (a ROUTER never reports POLLOUT without peers, yet answers
        // EHOSTUNREACH or drops at once); only when libzmq says EAGAIN does the loop wait for
        // POLLOUT. If a send still fails right after POLLOUT was reported (a ROUTER with
        // ROUTER_MANDATORY and one full peer), it backs off a millisecond instead of spinning.
        var sendBlocked = false
        var sendBackoffUntil: ContinuousClock.Instant?
        var failure: TransportError?

        while true {
            if let until = sendBackoffUntil, until <= .now {
                sendBackoffUntil = nil
                sendBlocked = false
            }
            let (closing, hasOutbound) = state.withLock { ($0.closing, !$0.outbox.isEmpty) }
            if closing { break }
            if hasOutbound && !sendBlocked { sendBlocked = !flushSends() }

            let now = ContinuousClock.now
            let (wantsSend, canReceive, nextDeadline) = state.withLock { s in
                var next: ContinuousClock.Instant?
                func consider(_ d: ContinuousClock.Instant?) {
                    if let d, next.map({ d < $0 }) ?? true { next = d }
                }
                s.waiters.forEach { consider($0.deadline) }
                s.outbox.forEach { consider($0.deadline) }
                return (!s.outbox.isEmpty, s.inbox.count < inboundCapacity, next)
            }
            if !wantsSend { sendBlocked = false }

            var interest: ZMQPoller.Events = canReceive ? .readable : []
            var timeout = nextDeadline.map { max(.zero, now.duration(to: $0)) }
            if wantsSend && sendBlocked {
                if let until = sendBackoffUntil {
                    let left = max(.zero, now.duration(to: until))
                    timeout = timeout.map { min($0, left) } ?? left
                } else {
                    interest.insert(.writable)
                }
            }
            poller.setEvents(interest, at: socketIndex)
            do {
                try poller.poll(timeout: timeout)
            } catch {
                failure = error
                logger.error("zmq_poll failed; closing channel", metadata: ["channel": "\(name)", "error": "\(error)"])
                break
            }
            if poller.readyEvents(at: wakeIndex).contains(.readable) { pipe.drain() }
            if poller.readyEvents(at: socketIndex).contains(.writable) {
                sendBlocked = !flushSends()
                if sendBlocked { sendBackoffUntil = ContinuousClock.now.advanced(by: .milliseconds(1)) }
            }
            if poller.readyEvents(at: socketIndex).contains(.readable) { receiveAvailable() }
            if let monitorIndex, poller.readyEvents(at: monitorIndex).contains(.readable) { drainMonitor() }
            expireDeadlines()
        }
        shutDown(failure ?? .closed)
    }

    /// Sends queued messages until the queue is empty or the socket would block. Returns false
    /// if it stopped because the socket would block.
    private func flushSends() -> Bool {
        while let pending = state.withLock({ $0.outbox.first }) {
            var outcome: Result<Void, TransportError>
            do {
                if try socket.send(pending.message, dontWait: true) {
                    outcome = .success(())
                } else {
                    return false
                }
            } catch {
                outcome = .failure(error)
            }
            // Only this thread pops; a concurrent cancel may have removed the item meanwhile.
            let stillQueued: Bool = state.withLock { s in
                guard s.outbox.first?.id == pending.id else { return false }
                _ = s.outbox.popFirst()
                if case .success = outcome { s.stats.sent += 1 } else { s.stats.sendFailures += 1 }
                return true
            }
            guard stillQueued else { continue }
            if let c = pending.continuation {
                c.resume(returning: outcome)
            } else if case .failure(let e) = outcome {
                logger.debug("posted message not sent", metadata: ["channel": "\(name)", "error": "\(e)"])
            }
        }
        return true
    }

    /// Reads whole messages while any are queued in libzmq and the inbox has room (bounded batch).
    private func receiveAvailable() {
        for _ in 0..<256 {
            let room = state.withLock { $0.inbox.count < inboundCapacity }
            guard room else { return }
            let message: Multipart?
            do {
                message = try socket.receive(dontWait: true)
            } catch {
                logger.debug("receive failed", metadata: ["channel": "\(name)", "error": "\(error)"])
                return
            }
            guard let message else { return }
            let handler: (@Sendable (Multipart) -> Bool)? = state.withLock { s in
                s.stats.received += 1
                if message.limitViolation != nil { s.stats.limitViolations += 1 }
                return s.handler
            }
            if let handler, handler(message) { continue }
            let waiter: Waiter? = state.withLock { s in
                if let w = s.waiters.popFirst() { return w }
                s.inbox.append(message)
                return nil
            }
            waiter?.continuation.resume(returning: .success(message))
        }
    }

    private func drainMonitor() {
        guard let monitor else { return }
        for _ in 0..<256 {
            guard let m = try? monitor.receive(dontWait: true) else { return }
            if let e = MonitorEvent(m) { events.yield(e) }
        }
    }

    private func expireDeadlines() {
        let now = ContinuousClock.now
        let (sends, waiters): ([PendingSend], [Waiter]) = state.withLock { s in
            let sends = s.outbox.removeAll { $0.deadline.map { $0 <= now } ?? false }
            let waiters = s.waiters.removeAll { $0.deadline.map { $0 <= now } ?? false }
            s.stats.sendFailures += sends.count
            return (sends, waiters)
        }
        for p in sends { p.continuation?.resume(returning: .failure(.timedOut(operation: "send on \(name)"))) }
        for w in waiters { w.continuation.resume(returning: .failure(.timedOut(operation: "receive on \(name)"))) }
    }

    private func shutDown(_ reason: TransportError) {
        socket.close()
        monitor?.close()
        let (sends, waiters, closers): ([PendingSend], [Waiter], [CheckedContinuation<Void, Never>]) = state.withLock { s in
            s.finished = true
            s.closing = true
            s.handler = nil   // it may hold the channel's owner (a reference cycle otherwise)
            pipe.close()
            let closers = s.closeWaiters
            s.closeWaiters = []
            return (s.outbox.drain(), s.waiters.drain(), closers)
        }
        for p in sends { p.continuation?.resume(returning: .failure(reason)) }
        for w in waiters { w.continuation.resume(returning: .failure(reason)) }
        events.finish()
        for c in closers { c.resume() }
    }
}
