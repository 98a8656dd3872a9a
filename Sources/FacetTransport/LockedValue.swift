import Foundation

/// A value behind a lock, for state shared between a socket's owner thread and async callers.
final class LockedValue<Value>: @unchecked Sendable {  // @unchecked: every access holds `lock`
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }

    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
