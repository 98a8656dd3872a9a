import FacetTransport
import Testing

@Suite("Heartbeats and back-off (no clock reads: times are given)")
struct HeartbeatTests {
    let t0 = ContinuousClock.now

    @Test func silentPeerDiesAfterLivenessIntervals() {
        var h = HeartbeatState(interval: .seconds(1), liveness: 3, now: t0)
        #expect(!h.peerIsDead(at: t0.advanced(by: .milliseconds(2999))))
        #expect(h.missedIntervals(at: t0.advanced(by: .milliseconds(2999))) == 2)
        #expect(h.peerIsDead(at: t0.advanced(by: .seconds(3))))
        // A message resets the count.
        h.heard(at: t0.advanced(by: .milliseconds(2500)))
        #expect(!h.peerIsDead(at: t0.advanced(by: .seconds(5))))
        #expect(h.peerIsDead(at: t0.advanced(by: .milliseconds(5500))))
        // Out-of-order reports never move time backwards.
        h.heard(at: t0)
        #expect(h.lastHeard == t0.advanced(by: .milliseconds(2500)))
    }

    @Test func heartbeatFallsDueAfterAQuietInterval() {
        var h = HeartbeatState(interval: .milliseconds(500), liveness: 3, now: t0)
        #expect(!h.heartbeatDue(at: t0.advanced(by: .milliseconds(499))))
        #expect(h.heartbeatDue(at: t0.advanced(by: .milliseconds(500))))
        h.sent(at: t0.advanced(by: .milliseconds(400)))  // a reply counts as a sign of life
        #expect(!h.heartbeatDue(at: t0.advanced(by: .milliseconds(800))))
        #expect(h.nextDeadline() == t0.advanced(by: .milliseconds(900)))
        h.sent(at: t0.advanced(by: .seconds(2)))
        #expect(h.nextDeadline() == t0.advanced(by: .milliseconds(1500)))  // peer's death comes first
    }

    @Test func backoffDoublesToItsMaximumAndResets() {
        var b = ReconnectBackoff(initial: .milliseconds(100), maximum: .milliseconds(1000))
        let delays = (0..<6).map { _ in b.nextDelay() }
        #expect(delays == [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800),
                           .milliseconds(1000), .milliseconds(1000)])
        b.reset()
        #expect(b.nextDelay() == .milliseconds(100))
    }
}
