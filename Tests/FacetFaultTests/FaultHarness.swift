import Foundation
import Testing
import FacetClient
import FacetCluster
import FacetTestSupport
import FacetTransport
import FacetWire
#if canImport(Glibc)
import Glibc
#endif

/// The `facet` executable the process tests start.
func facetBinaryPath() throws -> String { try facetExecutablePath() }

struct FaultError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// A cluster of real `facet serve` processes on 127.0.0.1 whose nodes read JSON configurations written by the test
/// (so limits, timeouts and liveness can be set per test). Processes can be killed, stopped and continued, and
/// started under a file-size limit (a full disk without root). ``shutdown()`` SIGKILLs (after SIGCONT) and reaps
/// every process and removes the data; ``withFaultCluster`` always calls it.
final class FaultCluster: @unchecked Sendable {  // driven from one test task at a time
    let binary: String
    let directory: String
    let frontend: String
    let backend: String
    let matchers: [String]
    let embedders: [String]
    let partitions: UInt32
    let replicas: Int
    var coordinatorSettings = NodeConfiguration()
    var workerSettings = NodeConfiguration()
    /// RLIMIT_FSIZE (KiB) per node name, applied through `bash -c 'ulimit -f N; exec facet …'`.
    var fileSizeLimitKiB: [String: Int] = [:]
    let nodes: NodeProcesses

    init(matchers: Int = 3, replicas: Int = 2, partitions: UInt32 = 8, embedders: Int = 0) throws {
        binary = try facetBinaryPath()
        directory = NSTemporaryDirectory() + "facet-fault-test-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory + "/config", withIntermediateDirectories: true)
        let port = LoopbackPorts.reserve(2)
        frontend = "tcp://127.0.0.1:\(port)"
        backend = "tcp://127.0.0.1:\(port + 1)"
        self.matchers = (0..<matchers).map { "matcher-\($0)" }
        self.embedders = (0..<embedders).map { "embedder-\($0)" }
        self.partitions = partitions
        self.replicas = replicas
        coordinatorSettings.heartbeatIntervalMilliseconds = 100
        workerSettings.heartbeatIntervalMilliseconds = 100
        nodes = NodeProcesses(logDirectory: directory)
    }

    func configuration(_ name: String) -> NodeConfiguration {
        var c = name == "coordinator" ? coordinatorSettings : workerSettings
        c.nodeID = name
        c.backendEndpoint = backend
        if name == "coordinator" {
            c.frontendEndpoint = frontend
            c.matchers = matchers
            c.partitionCount = partitions
            c.replicationFactor = replicas
        } else if name.hasPrefix("matcher") {
            c.dataDirectory = directory + "/" + name
        }
        return c
    }

    func role(_ name: String) -> String {
        name == "coordinator" ? "coordinator" : name.hasPrefix("matcher") ? "matcher" : "embedder"
    }

    func start(_ name: String) throws {
        let config = directory + "/config/\(name).json"
        try configuration(name).write(path: config)
        let args = ["serve", role(name), "--config", config, "--log-level", "info", "--insecure-plaintext"]  // CURVE: FacetSecurityTests
        if let kib = fileSizeLimitKiB[name] {
            // bash counts `ulimit -f` in KiB. The matcher ignores SIGXFSZ itself, so writes fail with EFBIG.
            try nodes.start(name, executable: "/bin/bash", arguments: ["-c", "ulimit -f \(kib) && exec \"$0\" \"$@\"", binary] + args)
        } else {
            try nodes.start(name, executable: binary, arguments: args)
        }
    }

    func startAll() throws {
        try start("coordinator")
        for m in matchers { try start(m) }
        for e in embedders { try start(e) }
    }

    func pid(_ name: String) -> pid_t? { nodes.pid(name) }

    /// Sends `sig` (SIGSTOP, SIGCONT, …) to a running node; after SIGSTOP, returns once all its threads are stopped.
    func signal(_ name: String, _ sig: Int32) { nodes.signal(name, sig) }

    /// kill -9 and reap.
    func kill9(_ name: String) { nodes.kill9(name) }

    func isRunning(_ name: String) -> Bool { nodes.isRunning(name) }

    /// Resident set size in KiB (from /proc), nil when the process is gone.
    func rssKiB(_ name: String) -> Int? {
        guard let pid = pid(name), let s = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in s.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ").dropFirst().first ?? "")
        }
        return nil
    }

    func shutdown() {
        nodes.killAll()
        try? FileManager.default.removeItem(atPath: directory)
    }

    func log(_ name: String) -> String { nodes.log(name) }

    /// Waits (bounded) until every partition has `replicas` ready replicas and every embedder is registered.
    func waitUntilHealthy(_ client: FacetClient, seconds: Double = 90) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        var last = "no status"
        while Date() < deadline {
            if let s = try? await client.status(includePartitions: true, timeout: .seconds(2)) {
                let embeddersUp = s.nodes.filter { $0.role == .embedder && $0.state == .ready }.count
                let ok = s.healthy && s.partitions.count == Int(partitions)
                    && s.partitions.allSatisfy { Int($0.liveReplicas) == replicas } && embeddersUp >= embedders.count
                if ok { return }
                last = "healthy \(s.healthy), live replicas \(s.partitions.map(\.liveReplicas)), embedders \(embeddersUp)"
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw FaultError("cluster not healthy after \(seconds) s: \(last)\ncoordinator log:\n\(log("coordinator").suffix(3000))")
    }
}

/// Runs `body` with a started cluster and a client; always kills the processes afterwards.
func withFaultCluster<R>(_ cluster: FaultCluster, _ body: (FaultCluster, FacetClient) async throws -> R) async throws -> R {
    defer { cluster.shutdown() }
    try cluster.startAll()
    let client = try FacetClient(endpoint: cluster.frontend, clientID: "fault-test", timeout: .seconds(20))
    do {
        try await cluster.waitUntilHealthy(client)
        let r = try await body(cluster, client)
        await client.close()
        return r
    } catch {
        await client.close()
        throw error
    }
}

// MARK: expectations shared by the tests

/// One acknowledged template as the test expects the cluster to hold it.
struct Acked: Hashable, Sendable {
    let id: UInt64
    let subject: String
    let vector: [Float]
}

func euclidean(_ a: [Float], _ b: [Float]) -> Float {
    var s: Float = 0
    for i in a.indices { let d = a[i] - b[i]; s += d * d }
    return s.squareRoot()
}

/// Checks that every acknowledged template is still there: each is its own nearest neighbour (k = 1 finds it, at
/// distance 0) and a complete top-k equals the exact top-k over everything acknowledged plus whatever else the
/// cluster may hold (writes that failed may or may not have been applied, never acknowledged ones lost).
func expectNothingLost(_ client: FacetClient, _ acked: [Acked], sourceLocation: SourceLocation = #_sourceLocation) async throws -> Int {
    var lost = 0
    for a in acked {
        let r = try await client.identify(embedding: WireEmbedding(values: a.vector, modelVersion: "1"), k: 3, timeout: .seconds(20))
        #expect(!r.partial, "partial result while checking, missing \(r.missingPartitions)", sourceLocation: sourceLocation)
        if !r.candidates.contains(where: { $0.templateID == a.id && $0.distance <= 1e-3 }) { lost += 1 }
    }
    #expect(lost == 0, "\(lost) of \(acked.count) acknowledged templates lost", sourceLocation: sourceLocation)
    return lost
}

func faceGallery(seed: UInt64, count: Int, queries: Int) throws -> FaceLikeGenerator.Gallery {
    var generator = FaceLikeGenerator(statistics: try FaceEmbeddingStatistics.bundled(), seed: seed)
    return generator.makeGallery(count: count, photosPerIdentity: 3, queryCount: queries)
}

/// The gallery grouped into subjects (sorted by identity, so the order is deterministic).
func subjects(_ g: FaceLikeGenerator.Gallery, prefix: String) -> [(subject: String, vectors: [[Float]])] {
    Dictionary(grouping: 0..<g.count, by: { g.baseIdentities[$0] }).sorted { $0.key < $1.key }
        .map { ("\(prefix)\($0.key)", $0.value.map { g.baseVector($0) }) }
}

/// Expects `body` to fail with a FacetError of `code`; returns it.
@discardableResult
func expectFacetError(_ code: FacetError.Code, sourceLocation: SourceLocation = #_sourceLocation,
                      _ body: () async throws -> Void) async -> FacetError? {
    do {
        try await body()
        Issue.record("expected \(code), got success", sourceLocation: sourceLocation)
    } catch let e as FacetError {
        #expect(e.code == code, "\(e)", sourceLocation: sourceLocation)
        return e
    } catch {
        Issue.record("expected \(code), got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}
