import Testing
import FacetWire
@testable import FacetCluster

@Suite("Token-bucket rate limiter (pure)")
struct RateLimiterTests {
    @Test("burst, refusal with a retry hint, refill at the configured rate")
    func bucket() {
        var l = RateLimiter(ratePerSecond: 2, burst: 3)
        for _ in 0..<3 { #expect(l.admit("a", now: 10) == .admitted) }
        #expect(l.admit("a", now: 10) == .limited(retryAfterMilliseconds: 500))
        #expect(l.admit("a", now: 10.25) == .limited(retryAfterMilliseconds: 250))
        #expect(l.admit("a", now: 10.5) == .admitted)        // one token after 0.5 s at 2/s
        #expect(l.admit("a", now: 10.5) == .limited(retryAfterMilliseconds: 500))
        #expect(l.admit("a", now: 100) == .admitted)         // refilled, capped at the burst
        #expect(l.admit("a", now: 100) == .admitted)
        #expect(l.admit("a", now: 100) == .admitted)
        #expect(l.admit("a", now: 100) != .admitted)
    }

    @Test("clients are limited independently; a clock going backwards does not mint tokens")
    func independentClients() {
        var l = RateLimiter(ratePerSecond: 1, burst: 1)
        #expect(l.admit("a", now: 5) == .admitted)
        #expect(l.admit("a", now: 5) != .admitted)
        #expect(l.admit("b", now: 5) == .admitted)
        #expect(l.admit("a", now: 1) != .admitted)
    }

    @Test("memory is bounded: full buckets go first, then the least recently seen")
    func bounded() {
        var l = RateLimiter(ratePerSecond: 1, burst: 2, maxClients: 3)
        for c in ["a", "b", "c"] { _ = l.admit(c, now: 0); _ = l.admit(c, now: 0) }   // all empty
        #expect(l.clientCount == 3)
        _ = l.admit("d", now: 0.5)     // nobody refilled yet: the least recently seen (a, by key on ties) goes
        #expect(l.clientCount == 3)
        #expect(l.admit("b", now: 0.5) != .admitted)    // b kept its empty bucket
        #expect(l.admit("a", now: 0.5) == .admitted)    // a starts over with a full bucket
        _ = l.admit("e", now: 10)      // everyone refilled by t = 10: full buckets are dropped
        #expect(l.clientCount <= 3)
    }

    @Test("client keys: the CURVE key wins over the declared client id, the routing id is the last resort")
    func keys() {
        #expect(RateLimiter.clientKey(userID: "Z85KEY", clientID: "c", routing: [1]) == "key:Z85KEY")
        #expect(RateLimiter.clientKey(userID: nil, clientID: "c", routing: [1]) == "client:c")
        #expect(RateLimiter.clientKey(userID: "", clientID: "", routing: [0xAB, 1]) == "peer:ab01")
        #expect(!RateLimiter.applies(to: .statusRequest(WireStatusRequest())))
        #expect(RateLimiter.applies(to: .identifyRequest(WireIdentifyRequest())))
    }
}
