import FacetTransport
import Foundation
import Testing

/// Records what ran, in order, and lets a test wait (bounded) until a given number of actions ran.
private final class Log: @unchecked Sendable {  // @unchecked: all state behind `condition`
    private let condition = NSCondition()
    private var names: [String] = []

    func add(_ name: String) {
        condition.lock()
        names.append(name)
        condition.broadcast()
        condition.unlock()
    }

    /// The names recorded once `count` are there, or nil after `seconds` (generous: a loaded machine).
    func wait(for count: Int, seconds: Double = 20) -> [String]? {
        let until = Date().addingTimeInterval(seconds)
        condition.lock()
        defer { condition.unlock() }
        while names.count < count {
            if !condition.wait(until: until) { return nil }
        }
        return names
    }
}

@Suite("Deadline scheduler (request timeouts)")
struct DeadlineSchedulerTests {
    @Test func actionsRunInDeadlineOrderAndCancelledOnesNever() throws {
        let scheduler = DeadlineScheduler()
        let log = Log()
        // Scheduled out of order; "cancelled" is due before "last" and must never run (it is cancelled long before
        // its deadline, even on a stalled machine).
        scheduler.schedule(after: .milliseconds(60)) { log.add("second") }
        let cancelled = scheduler.schedule(after: .seconds(2)) { log.add("cancelled") }
        scheduler.schedule(after: .milliseconds(2200)) { log.add("last") }
        scheduler.schedule(after: .milliseconds(20)) { log.add("first") }
        #expect(scheduler.cancel(cancelled))
        #expect(!scheduler.cancel(cancelled))
        let ran = try #require(log.wait(for: 3))
        #expect(ran == ["first", "second", "last"])
        #expect(scheduler.pendingCount == 0)
    }

    @Test func anEarlierDeadlineWakesTheSleepingThread() throws {
        let scheduler = DeadlineScheduler()
        let log = Log()
        // The thread sleeps until the far deadline; a nearer one scheduled afterwards must still run first.
        let far = scheduler.schedule(after: .seconds(600)) { log.add("far") }
        scheduler.schedule(after: .milliseconds(10)) { log.add("near") }
        let ran = try #require(log.wait(for: 1))
        #expect(ran == ["near"])
        #expect(scheduler.cancel(far))
        #expect(scheduler.pendingCount == 0)
    }

    @Test func manyCallsAnsweredBeforeTheirDeadlineLeaveNothingBehind() throws {
        let scheduler = DeadlineScheduler()
        let log = Log()
        let tokens = (0..<10_000).map { i in scheduler.schedule(after: .seconds(30)) { log.add("timeout \(i)") } }
        for t in tokens { #expect(scheduler.cancel(t)) }
        scheduler.schedule(after: .milliseconds(5)) { log.add("done") }
        let ran = try #require(log.wait(for: 1))
        #expect(ran == ["done"])
        #expect(scheduler.pendingCount == 0)
    }
}
