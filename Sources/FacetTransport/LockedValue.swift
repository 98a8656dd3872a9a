import Foundation

/// A value behind a lock, for state shared between a socket's owner thread and async callers
/// (also used by FacetCluster's nodes).
public final class LockedValue<Value>: @unchecked Sendable {  // @unchecked: every access holds `lock`
    private let lock = NSLock()
    private var value: Value

    public init(_ value: Value) { self.value = value }

    public func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
