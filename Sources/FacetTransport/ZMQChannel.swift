import Foundation
import Logging

/// One ZeroMQ socket bridged to Swift concurrency.
///
/// libzmq sockets are not thread-safe, and `zmq_poll` blocks, so each channel has an owner
/// thread that is the only user of its socket (and of its monitor socket): its own, or one shared
/// with the other channels of a `group`. Async callers never
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
    public convenience init(
        context: ZMQContext, type: SocketType, options: SocketOptions = SocketOptions(),
        bind: [String] = [], connect: [String] = [], monitor: MonitorEvent.Mask? = nil,
        inboundCapacity: Int = 1024, outboundCapacity: Int = 1024, name: String? = nil,
        logger: Logger = Logger(label: "facet.transport", factory: { _ in SwiftLogNoOpLogHandler() })
    ) throws(TransportError) {
        let spec = ChannelSpec(type: type, options: options, bind: bind, connect: connect, monitor: monitor,
                               inboundCapacity: inboundCapacity, outboundCapacity: outboundCapacity, name: name)
        let pipe = try WakePipe()
        let opened: Opened
        do { opened = try Self.open(spec, context: context, pipe: pipe, logger: logger) } catch {
            pipe.close()
            throw error
        }
        self.init(opened)
        ChannelLoop.start(cores: [opened.core], pipe: pipe, name: opened.core.name)
    }

    /// Opens several sockets served by **one** owner thread (one `zmq_poll` over all of them). A message received on
    /// one of them can be forwarded on another from a receive handler without waking a second thread: a broker
    /// (the coordinator's client and worker ROUTERs) saves two thread wake-ups per forwarded request. Each channel
    /// behaves as one made by `init` (its own queues, limits, handler and `close`); the thread ends when the last
    /// one closes. The work of all of them is serialised on that thread, so group only sockets whose handlers are
    /// short. Throws (and opens nothing) when any socket cannot be opened.
    public static func group(
        context: ZMQContext, _ specs: [ChannelSpec], name: String,
        logger: Logger = Logger(label: "facet.transport", factory: { _ in SwiftLogNoOpLogHandler() })
    ) throws(TransportError) -> [ZMQChannel] {
        guard !specs.isEmpty else { throw .invalidOption("a channel group needs at least one socket") }
        let pipe = try WakePipe()
        var opened: [Opened] = []
        for spec in specs {
            do { opened.append(try open(spec, context: context, pipe: pipe, logger: logger)) } catch {
                for o in opened { o.core.monitor?.close(); o.core.socket.close() }
                pipe.close()
                throw error
            }
        }
        let channels = opened.map { ZMQChannel($0) }
        ChannelLoop.start(cores: opened.map(\.core), pipe: pipe, name: name)
        return channels
    }

    /// What `open` made: the core (socket, monitor, queues) and the public parts of a channel.
    private struct Opened {
        let core: ChannelCore
        let spec: ChannelSpec
        let bound: [String]
        let events: AsyncStream<MonitorEvent>
    }

    private init(_ opened: Opened) {
        type = opened.spec.type
        options = opened.spec.options
        boundEndpoints = opened.bound
        monitorEvents = opened.events
        core = opened.core
    }

    private static func open(_ spec: ChannelSpec, context: ZMQContext, pipe: WakePipe, logger: Logger) throws(TransportError) -> Opened {
        guard spec.inboundCapacity > 0, spec.outboundCapacity > 0 else { throw .invalidOption("channel capacities must be positive") }
        let socket = try ZMQSocket(context: context, type: spec.type, options: spec.options)
        var monitorSocket: ZMQSocket?
        var bound: [String] = []
        do {
            if let monitor = spec.monitor { monitorSocket = try socket.startMonitor(events: monitor) }
            for e in spec.bind { bound.append(try socket.bind(e)) }
            for e in spec.connect { try socket.connect(e) }
        } catch {
            monitorSocket?.close()
            socket.close()
            throw error
        }
        var eventsContinuation: AsyncStream<MonitorEvent>.Continuation!
        let events = AsyncStream(bufferingPolicy: .bufferingNewest(1024)) { eventsContinuation = $0 }
        if monitorSocket == nil { eventsContinuation.finish() }
        let core = ChannelCore(socket: socket, monitor: monitorSocket, pipe: pipe, events: eventsContinuation,
                               inboundCapacity: spec.inboundCapacity, outboundCapacity: spec.outboundCapacity,
                               name: spec.name ?? "\(spec.type)", logger: logger)
        return Opened(core: core, spec: spec, bound: bound, events: events)
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

/// One socket of a channel (`ZMQChannel.init` takes the same values one by one; `ZMQChannel.group` takes several).
public struct ChannelSpec: Sendable {
    public var type: SocketType
    public var options: SocketOptions
    public var bind: [String]
    public var connect: [String]
    public var monitor: MonitorEvent.Mask?
    public var inboundCapacity: Int
    public var outboundCapacity: Int
    public var name: String?

    public init(type: SocketType, options: SocketOptions = SocketOptions(), bind: [String] = [], connect: [String] = [],
                monitor: MonitorEvent.Mask? = nil, inboundCapacity: Int = 1024, outboundCapacity: Int = 1024, name: String? = nil) {
        self.type = type; self.options = options; self.bind = bind; self.connect = connect; self.monitor = monitor
        self.inboundCapacity = inboundCapacity; self.outboundCapacity = outboundCapacity; self.name = name
    }
}

/// The owner thread of one or more channels: one `zmq_poll` over their sockets, their monitor sockets and the wake
/// pipe they share. A channel that is closed is shut down (its socket closed, its waiters failed) while the others
/// go on; the thread ends, and closes the pipe, when the last one is shut down.
final class ChannelLoop: @unchecked Sendable {  // @unchecked: used only by its own thread once started
    private let cores: [ChannelCore]
    private let pipe: WakePipe

    private init(cores: [ChannelCore], pipe: WakePipe) {
        self.cores = cores
        self.pipe = pipe
    }

    static func start(cores: [ChannelCore], pipe: WakePipe, name: String) {
        let loop = ChannelLoop(cores: cores, pipe: pipe)
        let thread = Thread { loop.run() }
        // Linux keeps thread names to 15 bytes (longer ones are refused, leaving the process name): cut to fit.
        thread.name = String("zmq.\(name)".utf8.prefix(15)) ?? "zmq"
        thread.start()
    }

    private func run() {
        var active = cores
        var poller = ZMQPoller()
        var wakeIndex = 0
        var indices: [(socket: Int, monitor: Int?)] = []
        var rebuild = true
        var failure: TransportError?

        while true {
            // A channel being closed is shut down here, on its owner thread; the rest go on.
            let closing = active.filter(\.isClosing)
            if !closing.isEmpty {
                for core in closing { core.shutDown(.closed) }
                active.removeAll { $0.isClosing }
                rebuild = true
            }
            if active.isEmpty { break }
            if rebuild {
                poller = ZMQPoller()
                wakeIndex = poller.add(fileDescriptor: pipe.readFD, events: .readable)
                indices = active.map { core in
                    (poller.add(core.socket, events: []), core.monitor.map { poller.add($0, events: .readable) })
                }
                rebuild = false
            }
            let now = ContinuousClock.now
            var timeout: Duration?
            for (i, core) in active.enumerated() {
                let (interest, wait) = core.prepare(now: now)
                poller.setEvents(interest, at: indices[i].socket)
                if let wait { timeout = timeout.map { min($0, wait) } ?? wait }
            }
            do {
                try poller.poll(timeout: timeout)
            } catch {
                failure = error
                let names = active.map(\.name).joined(separator: ", ")
                active.first?.logger.error("zmq_poll failed; closing channel", metadata: ["channel": "\(names)", "error": "\(error)"])
                break
            }
            if poller.readyEvents(at: wakeIndex).contains(.readable) { pipe.drain() }
            for (i, core) in active.enumerated() {
                core.handle(ready: poller.readyEvents(at: indices[i].socket),
                            monitorReady: indices[i].monitor.map { poller.readyEvents(at: $0).contains(.readable) } ?? false)
            }
        }
        for core in active { core.shutDown(failure ?? .closed) }
        // Every core is finished (each set under its own lock, so no wake is in progress): the pipe can go.
        pipe.close()
    }
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

    // Owner-thread state of the send path (see `prepare`).
    private var sendBlocked = false
    private var sendBackoffUntil: ContinuousClock.Instant?

    var isClosing: Bool { state.withLock { $0.closing } }

    /// Before each poll: flushes queued sends, and says which socket events to wait for and how long the poll may
    /// block (the nearest deadline of a waiting call or a queued send, or the send back-off).
    ///
    /// Sends are tried at once (a ROUTER never reports POLLOUT without peers, yet answers EHOSTUNREACH or drops at
    /// once); only when libzmq says EAGAIN does the loop wait for POLLOUT. If a send still fails right after POLLOUT
    /// was reported (a ROUTER with ROUTER_MANDATORY and one full peer), it backs off a millisecond instead of spinning.
    func prepare(now: ContinuousClock.Instant) -> (ZMQPoller.Events, Duration?) {
        if let until = sendBackoffUntil, until <= now {
            sendBackoffUntil = nil
            sendBlocked = false
        }
        let hasOutbound = state.withLock { !$0.outbox.isEmpty }
        if hasOutbound && !sendBlocked { sendBlocked = !flushSends() }

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
        return (interest, timeout)
    }

    /// After each poll: sends, receives and monitor events as the socket is ready, then expired deadlines.
    func handle(ready: ZMQPoller.Events, monitorReady: Bool) {
        if ready.contains(.writable) {
            sendBlocked = !flushSends()
            if sendBlocked { sendBackoffUntil = ContinuousClock.now.advanced(by: .milliseconds(1)) }
        }
        if ready.contains(.readable) { receiveAvailable() }
        if monitorReady { drainMonitor() }
        expireDeadlines()
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

    /// Closes the socket and fails what is queued; the wake pipe (shared by a group) is closed by the loop.
    func shutDown(_ reason: TransportError) {
        socket.close()
        monitor?.close()
        let (sends, waiters, closers): ([PendingSend], [Waiter], [CheckedContinuation<Void, Never>]) = state.withLock { s in
            s.finished = true
            s.closing = true
            s.handler = nil   // it may hold the channel's owner (a reference cycle otherwise)
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
