import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// TCP ports for test clusters on 127.0.0.1. Picking a random port is not enough: tests run side by side in one
/// process (two clusters drew overlapping ports in a CI run: "zmq_bind … Address already in use", and the cluster
/// never came up), and ports in Linux's ephemeral range (32768 and up) may be taken by any outgoing connection.
/// So: consecutive ports below that range, never handed out twice in this process, each checked bindable now.
/// (Another process could still take one before the node binds it; that window is short.)
public enum LoopbackPorts {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var handedOut = Set<Int>()

    /// The first of `count` consecutive free ports (a random start in 20,000–32,000).
    public static func reserve(_ count: Int = 2) -> Int {
        lock.lock()
        defer { lock.unlock() }
        for _ in 0..<1000 {
            let base = Int.random(in: 20_000...(32_000 - count))
            let ports = base..<(base + count)
            guard ports.allSatisfy({ !handedOut.contains($0) && bindable($0) }) else { continue }
            handedOut.formUnion(ports)
            return base
        }
        fatalError("no \(count) free consecutive loopback ports in 20000-32000")
    }

    private static func bindable(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}
