import Foundation

/// Request timeouts without a task or an OS timer per request: one thread sleeps until the earliest deadline and
/// runs the actions that are due. Scheduling and cancelling take a lock and a heap or dictionary operation; the
/// thread is woken only when a new deadline is earlier than the one it sleeps until, so a stream of requests that
/// are answered in time costs no wake-ups beyond about one per timeout period.
///
/// (A `Task` that sleeps until the timeout and is cancelled when the reply comes costs a task, a dispatch timer and
/// an extra run of the task on every request, plus the timer firing later anyway: measurable on the identify path.)
/// Actions run on the scheduler's thread, one after the other: they must be short (resume a continuation).
public final class DeadlineScheduler: @unchecked Sendable {  // @unchecked: all state behind `condition`
    /// Identifies a scheduled action, for `cancel`.
    public struct Token: Sendable, Hashable {
        let id: UInt64
    }

    /// The scheduler of this process (its thread starts on first use).
    public static let shared = DeadlineScheduler()

    private struct Entry: Comparable {
        let deadline: ContinuousClock.Instant
        let id: UInt64
        static func < (a: Entry, b: Entry) -> Bool { a.deadline < b.deadline || (a.deadline == b.deadline && a.id < b.id) }
    }

    private let condition = NSCondition()
    private var heap: [Entry] = []
    private var actions: [UInt64: @Sendable () -> Void] = [:]
    private var nextID: UInt64 = 0
    /// The deadline the thread sleeps until (nil: no deadline, or not sleeping).
    private var sleepingUntil: ContinuousClock.Instant?
    private var started = false

    public init() {}

    /// Runs `action` once `delay` has passed, unless cancelled first.
    @discardableResult
    public func schedule(after delay: Duration, _ action: @escaping @Sendable () -> Void) -> Token {
        let deadline = ContinuousClock.now.advanced(by: delay)
        condition.lock()
        defer { condition.unlock() }
        if !started {
            started = true
            let thread = Thread { [self] in run() }
            thread.name = "facet.deadlines"
            thread.start()
        }
        nextID += 1
        let entry = Entry(deadline: deadline, id: nextID)
        actions[entry.id] = action
        push(entry)
        if sleepingUntil.map({ deadline < $0 }) ?? true { condition.signal() }
        return Token(id: entry.id)
    }

    /// Cancels a scheduled action; returns false when it already ran or was cancelled.
    @discardableResult
    public func cancel(_ token: Token) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        return actions.removeValue(forKey: token.id) != nil
    }

    /// Actions scheduled and neither run nor cancelled (for tests).
    public var pendingCount: Int {
        condition.lock()
        defer { condition.unlock() }
        return actions.count
    }

    private func run() {
        condition.lock()
        while true {
            // Drop cancelled entries at the head, so the thread sleeps until a deadline that still matters.
            while let head = heap.first, actions[head.id] == nil { _ = pop() }
            let now = ContinuousClock.now
            var due: [@Sendable () -> Void] = []
            while let head = heap.first, head.deadline <= now {
                _ = pop()
                if let a = actions.removeValue(forKey: head.id) { due.append(a) }
            }
            if !due.isEmpty {
                condition.unlock()
                for a in due { a() }
                condition.lock()
                continue
            }
            if let head = heap.first {
                sleepingUntil = head.deadline
                let seconds = Double(now.duration(to: head.deadline).components.seconds)
                    + Double(now.duration(to: head.deadline).components.attoseconds) / 1e18
                _ = condition.wait(until: Date().addingTimeInterval(max(0.0005, seconds)))
            } else {
                sleepingUntil = nil
                condition.wait()
            }
            sleepingUntil = nil
        }
    }

    // MARK: binary min-heap

    private func push(_ e: Entry) {
        heap.append(e)
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard heap[i] < heap[parent] else { break }
            heap.swapAt(i, parent)
            i = parent
        }
    }

    private func pop() -> Entry {
        let top = heap[0]
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < heap.count && heap[l] < heap[m] { m = l }
                if r < heap.count && heap[r] < heap[m] { m = r }
                if m == i { break }
                heap.swapAt(i, m)
                i = m
            }
        }
        return top
    }
}
