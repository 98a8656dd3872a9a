import Foundation

/// Signals for the process tests and the soak.
///
/// `kill(pid, SIGSTOP)` returns before the process has stopped: the kernel wakes one thread to take the signal, and
/// only when that thread runs does it stop the others. On a busy machine the process's socket threads can go on
/// answering requests for a while after `kill` returned (seen in CI: a matcher answered an identify sent after its
/// SIGSTOP). ``send(_:to:)`` therefore waits, for SIGSTOP, until every thread of the process shows state `T` in
/// /proc, so what a caller does next happens while the process is really stopped.
public enum ProcessSignals {
    /// Sends `signal` to `pid`; for SIGSTOP, returns once every thread is stopped (bounded by `timeout`; false when
    /// the process did not stop by then or is gone).
    @discardableResult
    public static func send(_ signal: Int32, to pid: pid_t, timeout: Duration = .seconds(10)) -> Bool {
        guard kill(pid, signal) == 0 else { return false }
        guard signal == SIGSTOP else { return true }
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let stopped = allThreadsStopped(pid) {
                if stopped { return true }
            } else {
                return false   // gone
            }
            usleep(1_000)
        }
        return false
    }

    /// Whether every thread of `pid` is stopped (state `T` or `t`); nil when the process is gone.
    public static func allThreadsStopped(_ pid: pid_t) -> Bool? {
        guard let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task"), !tasks.isEmpty else { return nil }
        for t in tasks {
            // /proc/PID/task/TID/stat: "TID (comm) S ..."; comm may hold spaces or parentheses, so read after the last ')'.
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/task/\(t)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }   // the thread just exited
            let state = stat[stat.index(after: close)...].drop(while: { $0 == " " }).first
            if state != "T" && state != "t" { return false }
        }
        return true
    }
}
