import FacetTestSupport
import Foundation
import FacetClient
import FacetWire
#if canImport(Glibc)
import Glibc
#endif

/// The `facet` executable the process tests start.
func facetBinaryPath() throws -> String { try facetExecutablePath() }

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// A cluster of real `facet serve` processes on 127.0.0.1 with data in a temporary directory. Every process is
/// killed (SIGKILL) and reaped in `shutdown()`, which `withCluster` always calls, also on failure.
final class ClusterHarness: @unchecked Sendable {  // used from one test task at a time
    let binary: String
    let directory: String
    let frontend: String
    let backend: String
    let matchers: [String]
    let partitions: UInt32
    let replicas: Int
    /// Coordinator names ("coordinator", then "coordinator-1", ...) with their client and worker endpoints.
    let coordinators: [(name: String, frontend: String, backend: String)]
    let nodes: NodeProcesses
    /// Extra command-line arguments per node name (e.g. "coordinator": ["--retrain-after", "10"]).
    var extraArguments: [String: [String]] = [:]

    init(matchers: Int = 3, replicas: Int = 2, partitions: UInt32 = 8, coordinators: Int = 1) throws {
        binary = try facetBinaryPath()
        directory = NSTemporaryDirectory() + "facet-cluster-test-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let port = LoopbackPorts.reserve(2 * coordinators)
        self.coordinators = (0..<coordinators).map { i in
            (i == 0 ? "coordinator" : "coordinator-\(i)", "tcp://127.0.0.1:\(port + 2 * i)", "tcp://127.0.0.1:\(port + 2 * i + 1)")
        }
        frontend = self.coordinators[0].frontend
        backend = self.coordinators[0].backend
        self.matchers = (0..<matchers).map { "matcher-\($0)" }
        self.partitions = partitions
        self.replicas = replicas
        nodes = NodeProcesses(logDirectory: directory)
    }

    func start(_ name: String) throws {
        var args: [String]
        // Plaintext (development mode) here; SecurityProcessTests runs clusters with CURVE and encryption at rest.
        // Every node serves /metrics, /healthz and /readyz on a free port (logged as "http listening on HOST:PORT").
        let common = ["--heartbeat-ms", "100", "--liveness", "10", "--node-id", name, "--log-level", "info", "--http", "127.0.0.1:0",
                      "--insecure-plaintext"]
        let backends = ["--backends", coordinators.map(\.backend).joined(separator: ",")]
        if let c = coordinators.first(where: { $0.name == name }) {
            args = ["serve", "coordinator", "--endpoint", c.frontend, "--backend", c.backend, "--matchers", matchers.joined(separator: ","),
                    "--partitions", "\(partitions)", "--replicas", "\(replicas)", "--state", directory + "/" + c.name + "-state",
                    "--periocular-fusion", "bundled"] + common
        } else if name.hasPrefix("matcher") {
            args = ["serve", "matcher", "--data", directory + "/" + name] + backends + common
        } else {
            args = ["serve", "embedder", "--periocular-fusion", "bundled"] + backends + common
        }
        args += extraArguments[name] ?? []
        try nodes.start(name, executable: binary, arguments: args)
    }

    func startAll(embedder: Bool) throws {
        for c in coordinators { try start(c.name) }
        for m in matchers { try start(m) }
        if embedder { try start("embedder-0") }
    }

    /// kill -9 and reap.
    func kill9(_ name: String) { nodes.kill9(name) }

    /// SIGTERM (graceful), reaped within `seconds`, SIGKILL after that. Returns the exit status.
    @discardableResult
    func stop(_ name: String, seconds: Double = 15) -> Int32? { nodes.stop(name, seconds: seconds) }

    func shutdown() {
        nodes.killAll()
        try? FileManager.default.removeItem(atPath: directory)
    }

    func log(_ name: String) -> String { nodes.log(name) }

    /// The HOST:PORT of a node's HTTP listener, read from its log (bounded wait).
    func httpEndpoint(_ name: String, seconds: Double = 20) async throws -> String {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            for line in log(name).split(separator: "\n").reversed() {
                if let r = line.range(of: "http listening on ") {
                    return String(line[r.upperBound...].prefix { $0 != " " })
                }
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw HarnessError("\(name) never logged its HTTP endpoint:\n\(log(name).suffix(2000))")
    }

    /// Waits (bounded) until every partition has `replicas` ready replicas.
    func waitUntilHealthy(_ client: FacetClient, fullyReplicated: Bool = true, seconds: Double = 60) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        var last = "no status"
        while Date() < deadline {
            if let s = try? await client.status(includePartitions: true, timeout: .seconds(2)) {
                let ok = s.healthy && (!fullyReplicated || s.partitions.allSatisfy { Int($0.liveReplicas) == replicas })
                if ok, s.partitions.count == Int(partitions) { return }
                last = "healthy \(s.healthy), live replicas \(s.partitions.map(\.liveReplicas))"
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw HarnessError("cluster not healthy after \(seconds) s: \(last)\ncoordinator log:\n\(log("coordinator").suffix(3000))")
    }
}

/// Runs `body` with a started cluster and a client; always kills the processes afterwards.
func withCluster<R>(embedder: Bool = false, matchers: Int = 3, coordinators: Int = 1,
                   _ body: (ClusterHarness, FacetClient) async throws -> R) async throws -> R {
    let harness = try ClusterHarness(matchers: matchers, coordinators: coordinators)
    defer { harness.shutdown() }
    try harness.startAll(embedder: embedder)
    let client = try FacetClient(endpoint: harness.frontend, timeout: .seconds(20))
    do {
        try await harness.waitUntilHealthy(client)
        let r = try await body(harness, client)
        await client.close()
        return r
    } catch {
        await client.close()
        throw error
    }
}
