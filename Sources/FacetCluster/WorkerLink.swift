import Foundation
import Logging
import FacetTransport
import FacetWire

/// A worker's connection to the coordinator's back end (Paranoid Pirate): a DEALER that registers with its
/// node id, answers requests, sends a heartbeat every interval, and — when it hears nothing from the
/// coordinator for `liveness` intervals (the coordinator died or restarted) — closes the socket and
/// reconnects with exponential backoff, registering again. Requests are handled concurrently by `handle`;
/// replies are posted on the same socket (its owner thread serialises them).
final class WorkerLink: Sendable {
    let context: ZMQContext
    let endpoint: String
    let nodeID: String
    let interval: Duration
    let liveness: Int
    let maxFrameBytes: Int
    let logger: Logger
    let makeRegister: @Sendable () -> WireWorkerRegister
    let makeHeartbeat: @Sendable () -> WireHeartbeat
    let handle: @Sendable (WireEnvelope) async -> WireEnvelope.OneOf_Body
    /// CURVE client settings (or plaintext in development mode).
    let security: SocketSecurity
    /// Sees the coordinator's heartbeats and registration replies (for the shard-map epoch it announces).
    let observe: @Sendable (WireEnvelope) -> Void
    /// Takes a request on the socket's thread when it can answer without a task (it must not block: it hands the
    /// work to a queue and calls the reply function from there); returns false to leave it to `handle`.
    let handleNow: (@Sendable (WireEnvelope, _ reply: @escaping @Sendable (WireEnvelope.OneOf_Body) -> Void) -> Bool)?

    init(context: ZMQContext, endpoint: String, nodeID: String, interval: Duration, liveness: Int, maxFrameBytes: Int,
         logger: Logger, makeRegister: @escaping @Sendable () -> WireWorkerRegister,
         makeHeartbeat: @escaping @Sendable () -> WireHeartbeat,
         handle: @escaping @Sendable (WireEnvelope) async -> WireEnvelope.OneOf_Body, security: SocketSecurity,
         observe: @escaping @Sendable (WireEnvelope) -> Void = { _ in },
         handleNow: (@Sendable (WireEnvelope, _ reply: @escaping @Sendable (WireEnvelope.OneOf_Body) -> Void) -> Bool)? = nil) {
        self.security = security
        self.handleNow = handleNow
        self.context = context; self.endpoint = endpoint; self.nodeID = nodeID; self.interval = interval
        self.liveness = liveness; self.maxFrameBytes = maxFrameBytes; self.logger = logger
        self.makeRegister = makeRegister; self.makeHeartbeat = makeHeartbeat; self.handle = handle; self.observe = observe
    }

    /// Runs until the task is cancelled; then sends WorkerDisconnect and closes.
    func run() async {
        var backoff = Duration.milliseconds(100)
        while !Task.isCancelled {
            let outcome = await session()
            if Task.isCancelled { break }
            logger.warning("coordinator link lost; reconnecting", metadata: ["reason": "\(outcome)", "backoff": "\(backoff)"])
            try? await Task.sleep(for: backoff)
            backoff = min(backoff * 2, .seconds(2))
        }
    }

    private func send(_ channel: ZMQChannel, _ envelope: WireEnvelope) {
        guard let bytes = try? WireFrame.encode(envelope, maxBytes: maxFrameBytes) else {
            logger.error("reply over the frame limit dropped", metadata: ["request.id": "\(envelope.requestID)"])
            return
        }
        do { try channel.post(Multipart([[], bytes])) } catch {
            logger.debug("post failed", metadata: ["error": "\(error)"])
        }
    }

    /// Handles one message from the coordinator; returns the reason when it asks this worker to disconnect (and
    /// register again), nil otherwise.
    private func dispatch(_ message: Multipart, on channel: ZMQChannel, heard: LockedValue<ContinuousClock.Instant>) -> String? {
        heard.withLock { $0 = .now }
        guard let frame = message.routingSplit.body.first else { return nil }
        let env: WireEnvelope
        do { env = try WireFrame.decode(frame: frame, maxBytes: maxFrameBytes) } catch {
            logger.warning("undecodable frame from coordinator", metadata: ["error": "\(error)"])
            return nil
        }
        switch env.body {
        case .heartbeat?, .workerRegistered?:
            observe(env)
        case .workerDisconnect(let d)?:
            return d.reason
        default:
            let reply: @Sendable (WireEnvelope.OneOf_Body) -> Void = { [self] body in
                send(channel, WireEnvelope.reply(to: env, body, senderID: nodeID))
            }
            if let handleNow, handleNow(env, reply) { return nil }
            let handler = handle
            Task { reply(await handler(env)) }
        }
        return nil
    }

    /// One connection: returns why it ended.
    private func session() async -> String {
        var options = SocketOptions()
        options.maxFrameBytes = maxFrameBytes
        options.reconnectInterval = .milliseconds(100)
        options.reconnectIntervalMax = .seconds(1)
        options.security = security
        let channel: ZMQChannel
        do {
            channel = try ZMQChannel(context: context, type: .dealer, options: options, connect: [endpoint], name: "worker.\(nodeID)")
        } catch {
            return "socket: \(error)"
        }
        let heard = LockedValue(ContinuousClock.now)
        let ending = LockedValue<String?>(nil)
        var seq = 0
        func envelope(_ body: WireEnvelope.OneOf_Body) -> WireEnvelope {
            seq += 1
            return WireEnvelope.request(body, id: "\(nodeID)-\(seq)", clientID: nodeID)
        }
        // Requests are taken on the socket's thread (no hop through the task pool on the way in); a disconnect is
        // left to the receiver task, which ends the session.
        channel.setReceiveHandler { [self] message in dispatch(message, on: channel, heard: heard) == nil }
        send(channel, envelope(.workerRegister(makeRegister())))

        await withTaskGroup(of: Void.self) { group in
            // Receiver: messages that arrived before the socket-thread handler was installed, and disconnects.
            group.addTask { [self] in
                while !Task.isCancelled {
                    let message: Multipart
                    do { message = try await channel.receive() } catch { ending.withLock { $0 = $0 ?? "receive: \(error)" }; return }
                    if let reason = dispatch(message, on: channel, heard: heard) {
                        ending.withLock { $0 = "coordinator asked to re-register: \(reason)" }
                        await channel.close()
                        return
                    }
                }
            }
            // Heartbeat and liveness.
            group.addTask { [self] in
                var n = 0
                var lastTick = ContinuousClock.now
                while !Task.isCancelled {
                    try? await Task.sleep(for: interval)
                    if Task.isCancelled || channel.isClosed { break }
                    // Time this process did not run (a late wake-up) is not the coordinator's silence.
                    let now = ContinuousClock.now
                    let stall = Coordinator.stall(since: lastTick, now: now, interval: interval)
                    lastTick = now
                    if stall > .zero { heard.withLock { $0 = min(now, $0.advanced(by: stall)) } }
                    let silent = heard.withLock { $0 }.duration(to: now)
                    if silent > interval * liveness {
                        ending.withLock { $0 = $0 ?? "no word from the coordinator for \(silent)" }
                        break
                    }
                    n += 1
                    let hb = WireEnvelope.request(.heartbeat(makeHeartbeat()), id: "\(nodeID)-hb-\(n)", clientID: nodeID)
                    send(channel, hb)
                }
                await channel.close()
            }
            await group.waitForAll()
        }
        if Task.isCancelled {
            // Graceful: tell the coordinator, on a fresh short-lived socket (the old one is closed).
            var d = WireWorkerDisconnect()
            d.nodeID = nodeID
            d.reason = "shutdown"
            var byeOptions = SocketOptions()
            byeOptions.security = security
            if let bye = try? ZMQChannel(context: context, type: .dealer, options: byeOptions, connect: [endpoint]) {
                if let bytes = try? WireFrame.encode(WireEnvelope.request(.workerDisconnect(d), id: "\(nodeID)-bye", clientID: nodeID)) {
                    try? await bye.send(Multipart([[], bytes]), timeout: .milliseconds(300))
                }
                await bye.close()
            }
        }
        return ending.withLock { $0 } ?? "cancelled"
    }
}
