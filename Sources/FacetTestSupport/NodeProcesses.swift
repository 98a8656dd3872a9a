import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An executable SwiftPM built next to the test bundle (its folder or up to three above it), or the path in the
/// environment variable `override` when that names an executable.
public func builtExecutablePath(_ name: String, override: String? = nil) throws -> String {
    if let override, let p = ProcessInfo.processInfo.environment[override], FileManager.default.isExecutableFile(atPath: p) { return p }
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = dir.appendingPathComponent(name).path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    let fallback = Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent(name).path
    guard FileManager.default.isExecutableFile(atPath: fallback) else {
        throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: "\(name) next to the tests (build it with `swift build`)"])
    }
    return fallback
}

/// The `facet` executable for process tests: $FACET_BINARY, or the one SwiftPM built next to the test bundle.
public func facetExecutablePath() throws -> String { try builtExecutablePath("facet", override: "FACET_BINARY") }

/// The named child processes of a process test (the nodes of a test cluster), each appending its output to
/// `logDirectory/NAME.log`: started, signalled (SIGSTOP waits until every thread stopped, ``ProcessSignals``),
/// stopped gracefully or killed, and always reaped. Used from one test task at a time.
public final class NodeProcesses: @unchecked Sendable {
    public let logDirectory: String
    private var processes: [String: Process] = [:]

    public init(logDirectory: String) { self.logDirectory = logDirectory }

    /// Starts `executable arguments` as node `name` (replacing a reaped one of that name).
    public func start(_ name: String, executable: String, arguments: [String]) throws {
        try FileManager.default.createDirectory(atPath: logDirectory, withIntermediateDirectories: true)
        let path = logPath(name)
        if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
        guard let h = FileHandle(forWritingAtPath: path) else { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path]) }
        h.seekToEndOfFile()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        p.standardOutput = h
        p.standardError = h
        try p.run()
        processes[name] = p
    }

    public func pid(_ name: String) -> pid_t? { processes[name].map(\.processIdentifier) }
    public func isRunning(_ name: String) -> Bool { processes[name]?.isRunning ?? false }

    /// Sends `sig` (SIGSTOP, SIGCONT, …) to a running node; after SIGSTOP, returns once all its threads are stopped.
    public func signal(_ name: String, _ sig: Int32) {
        guard let p = processes[name], p.isRunning else { return }
        ProcessSignals.send(sig, to: p.processIdentifier)
    }

    /// kill -9 (after SIGCONT, so a stopped node dies too) and reap.
    public func kill9(_ name: String) {
        guard let p = processes[name] else { return }
        if p.isRunning { kill(p.processIdentifier, SIGCONT); kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        processes[name] = nil
    }

    /// SIGTERM (graceful), reaped within `seconds`, SIGKILL after that. Returns the exit status.
    @discardableResult
    public func stop(_ name: String, seconds: Double = 15) -> Int32? {
        guard let p = processes[name] else { return nil }
        if p.isRunning { kill(p.processIdentifier, SIGCONT); kill(p.processIdentifier, SIGTERM) }
        let deadline = Date().addingTimeInterval(seconds)
        while p.isRunning && Date() < deadline { usleep(20_000) }
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        processes[name] = nil
        return p.terminationStatus
    }

    /// kill -9 and reap every node.
    public func killAll() { for name in processes.keys.sorted() { kill9(name) } }

    public func logPath(_ name: String) -> String { logDirectory + "/\(name).log" }
    public func log(_ name: String) -> String { (try? String(contentsOfFile: logPath(name), encoding: .utf8)) ?? "" }
}
