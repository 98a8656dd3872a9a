import Foundation

/// A progress bar for long jobs: `label [#######.......] 1234/5000 24.7/s ETA 2m33s`.
/// On a terminal it redraws one line (`\r`) at most 10 times a second; otherwise (logs, CI) it prints a plain
/// line at each 10% step. Thread-safe: many workers may call `advance`.
public final class ProgressReporter: @unchecked Sendable {   // mutable state guarded by `lock`
    private let lock = NSLock()
    private let total: Int?
    private let label: String
    private let sink: @Sendable (String) -> Void
    private let interactive: Bool
    private let clock: @Sendable () -> Double
    private let start: Double
    private var done = 0
    private var lastDraw = -Double.infinity
    private var lastDecile = -1
    /// `done` when the last plain (non-interactive) line was printed; `finish()` skips a repeat of it.
    private var lastPrintedDone = -1
    private var finished = false

    /// - Parameters:
    ///   - total: number of items, or nil when unknown (then no bar and no ETA).
    ///   - sink: where text goes (default: standard error).
    ///   - interactive: redraw in place; default: whether standard error is a terminal.
    ///   - clock: seconds, monotonic (injectable for tests).
    public init(total: Int?, label: String, interactive: Bool? = nil,
                sink: @escaping @Sendable (String) -> Void = { FileHandle.standardError.write(Data($0.utf8)) },
                clock: @escaping @Sendable () -> Double = { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }) {
        self.total = total
        self.label = label
        self.sink = sink
        self.interactive = interactive ?? (isatty(2) == 1)
        self.clock = clock
        self.start = clock()
    }

    public var completed: Int {
        lock.lock()
        defer { lock.unlock() }
        return done
    }

    public func advance(by n: Int = 1) {
        lock.lock()
        defer { lock.unlock() }
        guard !finished else { return }
        done += n
        let now = clock()
        if interactive {
            if now - lastDraw >= 0.1 || done == total {
                lastDraw = now
                sink("\r" + Self.line(label: label, done: done, total: total, elapsed: now - start))
            }
        } else if let t = total, t > 0 {
            let decile = min(done * 10 / t, 10)
            if decile > lastDecile {
                lastDecile = decile
                lastPrintedDone = done
                sink(Self.line(label: label, done: done, total: total, elapsed: now - start) + "\n")
            }
        }
    }

    /// Draws the final state and ends the line. Further `advance` calls are ignored. Without a terminal, the final
    /// line is not repeated when the last plain line already showed the same count (e.g. the 100 % line).
    public func finish() {
        lock.lock()
        defer { lock.unlock() }
        guard !finished else { return }
        finished = true
        if !interactive, lastPrintedDone == done, total != nil { return }
        let text = Self.line(label: label, done: done, total: total, elapsed: clock() - start)
        sink(interactive ? "\r" + text + "\n" : text + "\n")
    }

    /// The text of one progress line (pure; exposed for tests).
    public static func line(label: String, done: Int, total: Int?, elapsed: Double, barWidth: Int = 24) -> String {
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        var s = label.isEmpty ? "" : label + " "
        if let t = total, t > 0 {
            let frac = min(max(Double(done) / Double(t), 0), 1)
            let filled = Int((frac * Double(barWidth)).rounded(.down))
            s += "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: barWidth - filled) + "] "
            s += "\(done)/\(t) \(String(format: "%.1f", rate))/s"
            if done >= t {
                s += " done in " + duration(elapsed)
            } else if rate > 0 {
                s += " ETA " + duration(Double(t - done) / rate)
            } else {
                s += " ETA --"
            }
        } else {
            s += "\(done) \(String(format: "%.1f", rate))/s " + duration(elapsed)
        }
        return s
    }

    /// `45s`, `2m05s`, `1h02m`.
    public static func duration(_ seconds: Double) -> String {
        let t = Int(seconds.rounded())
        if t < 60 { return "\(t)s" }
        if t < 3600 { return String(format: "%dm%02ds", t / 60, t % 60) }
        return String(format: "%dh%02dm", t / 3600, (t % 3600) / 60)
    }
}
