import Foundation
import FacetWire

/// Per-client request rate limit: one token bucket per client key (`ratePerSecond` tokens added per second, at most
/// `burst` kept). A request takes one token; without one it is refused with a retry hint. Times are given by the
/// caller (seconds on any monotonic clock), so the limiter is a pure value and its tests need no clock.
///
/// Memory is bounded: at most `maxClients` buckets are kept. Buckets that have refilled to `burst` are equivalent to
/// absent ones and are dropped first; if that is not enough, the least recently seen are dropped (such a client gets
/// a fresh, full bucket — the limit errs on the side of serving).
public struct RateLimiter: Sendable {
    public let ratePerSecond: Double
    public let burst: Double
    public let maxClients: Int

    struct Bucket: Sendable {
        var tokens: Double
        var updated: Double
    }
    private(set) var buckets: [String: Bucket] = [:]

    public init(ratePerSecond: Double, burst: Double? = nil, maxClients: Int = 100_000) {
        precondition(ratePerSecond > 0 && ratePerSecond.isFinite, "rate must be positive")
        self.ratePerSecond = ratePerSecond
        self.burst = max(1, burst ?? max(1, ratePerSecond))
        self.maxClients = max(1, maxClients)
    }

    public enum Decision: Equatable, Sendable {
        case admitted
        /// Refused; a token will be available after this many milliseconds.
        case limited(retryAfterMilliseconds: Int)
    }

    public var clientCount: Int { buckets.count }

    /// Takes one token from `client`'s bucket at time `now` (seconds).
    public mutating func admit(_ client: String, now: Double) -> Decision {
        var b = buckets[client] ?? Bucket(tokens: burst, updated: now)
        if now > b.updated {
            b.tokens = min(burst, b.tokens + (now - b.updated) * ratePerSecond)
            b.updated = now
        }
        let decision: Decision
        if b.tokens >= 1 {
            b.tokens -= 1
            decision = .admitted
        } else {
            decision = .limited(retryAfterMilliseconds: max(1, Int(((1 - b.tokens) / ratePerSecond * 1000).rounded(.up))))
        }
        if buckets[client] == nil, buckets.count >= maxClients { prune(now: now) }
        buckets[client] = b
        return decision
    }

    private mutating func prune(now: Double) {
        buckets = buckets.filter { $0.value.tokens + max(0, now - $0.value.updated) * ratePerSecond < burst }
        guard buckets.count >= maxClients else { return }
        // Least recently seen first; ties by key so the outcome does not depend on dictionary order.
        let victims = buckets.sorted { $0.value.updated != $1.value.updated ? $0.value.updated < $1.value.updated : $0.key < $1.key }
            .prefix(buckets.count - maxClients + 1)
        for v in victims { buckets.removeValue(forKey: v.key) }
    }

    /// The key a request is limited under: the CURVE public key the ZAP handler authenticated (`User-Id`) when there
    /// is one, else the client id the envelope declares, else the connection's routing id.
    public static func clientKey(userID: String?, clientID: String, routing: [UInt8]) -> String {
        if let u = userID, !u.isEmpty { return "key:" + u }
        if !clientID.isEmpty { return "client:" + clientID }
        return "peer:" + routing.map { String(format: "%02x", $0) }.joined()
    }

    /// Whether a request counts against the rate: everything but status and shard-map reads.
    static func applies(to body: WireEnvelope.OneOf_Body?) -> Bool {
        switch body {
        case .statusRequest?, .shardMapRequest?: return false
        default: return true
        }
    }
}
