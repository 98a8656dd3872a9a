import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A minimal HTTP/1.1 listener for operations: `GET /metrics` (Prometheus text format), `GET /healthz` (liveness:
/// the process answers) and `GET /readyz` (readiness: the node can do its work), as Kubernetes probes and Prometheus
/// scrapers use them. One thread accepts and answers one short request per connection (`Connection: close`),
/// with a 2 s read timeout and an 8 KiB request limit; anything else gets 404/405/400.
public final class HTTPStatusServer: @unchecked Sendable {  // `listener` and `stopped` are guarded by `lock`
    public struct Readiness: Sendable {
        public var ready: Bool
        public var detail: String
        public init(ready: Bool, detail: String) { self.ready = ready; self.detail = detail }
    }

    public let host: String
    public private(set) var port: Int = 0
    private let metrics: @Sendable () -> String
    private let readiness: @Sendable () -> Readiness
    private let lock = NSLock()
    private var listener: Int32 = -1
    private var stopped = false
    private var thread: Thread?

    public enum ServerError: Error, CustomStringConvertible {
        case badEndpoint(String)
        case socket(String, Int32)
        public var description: String {
            switch self {
            case .badEndpoint(let e): return "HTTP endpoint must look like HOST:PORT (got \(e))"
            case .socket(let call, let e): return "\(call) failed: \(String(cString: strerror(e)))"
            }
        }
    }

    /// Binds `endpoint` ("127.0.0.1:9100"; port 0 = any free port) and starts answering.
    public init(endpoint: String, metrics: @escaping @Sendable () -> String, readiness: @escaping @Sendable () -> Readiness) throws {
        guard let colon = endpoint.lastIndex(of: ":"), let port = Int(endpoint[endpoint.index(after: colon)...]), (0...65535).contains(port) else {
            throw ServerError.badEndpoint(endpoint)
        }
        host = String(endpoint[..<colon])
        self.metrics = metrics
        self.readiness = readiness
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw ServerError.socket("socket", errno) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host.isEmpty || host == "*" ? "0.0.0.0" : host, &addr.sin_addr) == 1 else {
            close(fd)
            throw ServerError.badEndpoint(endpoint)
        }
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0 else { let e = errno; close(fd); throw ServerError.socket("bind \(endpoint)", e) }
        guard listen(fd, 64) == 0 else { let e = errno; close(fd); throw ServerError.socket("listen", e) }
        var actual = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        self.port = Int(UInt16(bigEndian: actual.sin_port))
        listener = fd
        let t = Thread { [weak self] in self?.serve() }
        t.name = "facet.http"
        thread = t
        t.start()
    }

    public var endpoint: String { "\(host):\(port)" }

    /// Stops accepting and closes the socket (the thread notices within 200 ms).
    public func stop() {
        lock.withLock { stopped = true }
    }

    deinit { stop() }

    private func serve() {
        let fd = lock.withLock { listener }
        defer { close(fd) }
        while !lock.withLock({ stopped }) {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 200) > 0 else { continue }
            let client = accept(fd, nil, nil)
            guard client >= 0 else { continue }
            answer(client)
            close(client)
        }
    }

    private func answer(_ fd: Int32) {
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var request: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 2048)
        let end: [UInt8] = Array("\r\n\r\n".utf8)
        while request.count < 8192 {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            request += buffer[0..<n]
            if request.count >= 4, request.suffix(4).elementsEqual(end) || request.firstRange(of: end) != nil { break }
        }
        let line = String(decoding: request.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self).split(separator: " ")
        let status: String, type: String, body: String
        if line.count < 2 {
            (status, type, body) = ("400 Bad Request", "text/plain", "bad request\n")
        } else if line[0] != "GET" && line[0] != "HEAD" {
            (status, type, body) = ("405 Method Not Allowed", "text/plain", "only GET\n")
        } else {
            let path = line[1].split(separator: "?", maxSplits: 1).first.map(String.init) ?? ""
            switch path {
            case "/metrics": (status, type, body) = ("200 OK", "text/plain; version=0.0.4; charset=utf-8", metrics())
            case "/healthz", "/livez": (status, type, body) = ("200 OK", "text/plain", "ok\n")
            case "/readyz":
                let r = readiness()
                (status, type, body) = (r.ready ? "200 OK" : "503 Service Unavailable", "text/plain", (r.ready ? "ready" : "not ready") + ": \(r.detail)\n")
            default: (status, type, body) = ("404 Not Found", "text/plain", "not found; try /metrics, /healthz or /readyz\n")
            }
        }
        let payload = Array(body.utf8)
        var out = Array("HTTP/1.1 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(payload.count)\r\nConnection: close\r\n\r\n".utf8)
        if line.first != "HEAD" { out += payload }
        var sent = 0
        while sent < out.count {
            let n = out[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { break }
            sent += n
        }
    }
}
