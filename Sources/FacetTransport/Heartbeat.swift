/// Paranoid-Pirate heartbeating between a worker and the coordinator (zguide ch. 4), as a value
/// type without I/O or clock reads: the owner feeds it the times at which it heard from or sent
/// to the peer and asks what to do now. Any message counts as a sign of life; heartbeats are only
/// needed when a side has been quiet for `interval`. A peer is dead after `liveness` intervals of
/// silence. Used for both directions (`Heartbeat` messages of proto/facet.proto).
public struct HeartbeatState: Sendable, Hashable {
    public typealias Instant = ContinuousClock.Instant

    public let interval: Duration
    public let liveness: Int
    public private(set) var lastHeard: Instant
    public private(set) var lastSent: Instant

    public init(interval: Duration, liveness: Int, now: Instant) {
        precondition(interval > .zero && liveness > 0, "heartbeat interval and liveness must be positive")
        self.interval = interval
        self.liveness = liveness
        self.lastHeard = now
        self.lastSent = now
    }

    /// Any message arrived from the peer.
    public mutating func heard(at now: Instant) { if now > lastHeard { lastHeard = now } }

    /// Any message was sent to the peer.
    public mutating func sent(at now: Instant) { if now > lastSent { lastSent = now } }

    /// Whether a heartbeat should be sent now (nothing sent for an interval).
    public func heartbeatDue(at now: Instant) -> Bool { lastSent.duration(to: now) >= interval }

    /// Whole intervals of silence from the peer.
    public func missedIntervals(at now: Instant) -> Int {
        let quiet = lastHeard.duration(to: now)
        return quiet <= .zero ? 0 : Int(quiet / interval)
    }

    /// Whether the peer counts as dead (silent for `liveness` intervals).
    public func peerIsDead(at now: Instant) -> Bool { missedIntervals(at: now) >= liveness }

    /// The next moment something changes (a heartbeat falls due or the peer dies): the owner's
    /// poll timeout.
    public func nextDeadline() -> Instant {
        min(lastSent.advanced(by: interval), lastHeard.advanced(by: interval * liveness))
    }
}

/// Exponential reconnect back-off (zguide's Paranoid Pirate worker): `initial`, doubling up to
/// `maximum`, back to `initial` after `reset()` (a successful registration).
public struct ReconnectBackoff: Sendable, Hashable {
    public let initial: Duration
    public let maximum: Duration
    public private(set) var current: Duration

    public init(initial: Duration = .milliseconds(100), maximum: Duration = .seconds(5)) {
        precondition(initial > .zero && maximum >= initial, "back-off needs 0 < initial <= maximum")
        self.initial = initial
        self.maximum = maximum
        self.current = initial
    }

    /// The delay to wait before the next attempt; doubles the one after.
    public mutating func nextDelay() -> Duration {
        let d = current
        current = min(current * 2, maximum)
        return d
    }

    public mutating func reset() { current = initial }
}
