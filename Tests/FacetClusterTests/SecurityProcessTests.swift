import FacetTestSupport
import Foundation
import Testing
import FacetClient
import FacetStore
import FacetTransport
import FacetWire
@testable import FacetCluster
#if canImport(Glibc)
import Glibc
#endif

/// The client CURVE settings `facet cluster up` writes under DATA/keys (waits, bounded, for them to appear).
func clusterUpClientCurve(keys: String) async throws -> FacetClient.Curve {
    // cluster up writes each pair secret first, public second, node by node: wait for both public files.
    let ready = { ["/coordinator.key", "/client.key"].allSatisfy { FileManager.default.fileExists(atPath: keys + $0) } }
    for _ in 0..<600 where !ready() {
        try await Task.sleep(for: .milliseconds(50))
    }
    return FacetClient.Curve(clientKeys: try CurveKeyFiles.readKeyPair(secretKeyAt: keys + "/client.key_secret"),
                             serverPublicKey: try CurveKeyFiles.readKey(at: keys + "/coordinator.key"))
}

/// A cluster of real `facet serve` processes with CURVE on every socket, encrypted partitions, audit trails and
/// (optionally) retention, configured through JSON files the way an operator would.
final class SecureCluster: @unchecked Sendable {   // used from one test task at a time
    let binary: String
    let directory: String
    let keys: String
    let frontend: String
    let backend: String
    let matchers = ["matcher-0", "matcher-1"]
    let clientKeys: CurveKeyPair
    let serverKey: CurveKey
    let auditKey: MasterKey
    let nodes: NodeProcesses

    init(retentionSeconds: [String: Int]? = nil) throws {
        binary = try facetBinaryPath()
        directory = NSTemporaryDirectory() + "facet-secure-test-\(UInt32.random(in: 0...UInt32.max))"
        keys = directory + "/keys"
        nodes = NodeProcesses(logDirectory: directory + "/logs")
        try FileManager.default.createDirectory(atPath: keys, withIntermediateDirectories: true)
        let port = LoopbackPorts.reserve(2)
        frontend = "tcp://127.0.0.1:\(port)"
        backend = "tcp://127.0.0.1:\(port + 1)"
        let server = try CurveKeyPair.generate()
        try CurveKeyFiles.write(server, base: keys + "/coordinator")
        serverKey = server.publicKey
        clientKeys = try CurveKeyPair.generate()
        try CurveKeyFiles.write(clientKeys, base: keys + "/client")
        try "\(clientKeys.publicKey.z85) client\n".write(toFile: keys + "/clients.allow", atomically: true, encoding: .utf8)
        auditKey = MasterKey.generate()
        try auditKey.write(to: keys + "/audit.master")
        var workers = "# workers\n"
        for m in matchers {
            let pair = try CurveKeyPair.generate()
            try CurveKeyFiles.write(pair, base: keys + "/" + m)
            workers += "\(pair.publicKey.z85) \(m)\n"
            try MasterKey.generate().write(to: keys + "/\(m).master")
        }
        try workers.write(toFile: keys + "/workers.allow", atomically: true, encoding: .utf8)

        var base = NodeConfiguration()
        base.frontendEndpoint = frontend
        base.backendEndpoint = backend
        base.heartbeatIntervalMilliseconds = 100
        base.liveness = 10   // 1 s: generous on a loaded machine
        var c = base
        c.nodeID = "coordinator"
        c.partitionCount = 4
        c.replicationFactor = 2
        c.matchers = matchers
        var s = SecurityConfiguration()
        s.secretKeyFile = keys + "/coordinator.key_secret"
        s.clientAllowListFile = keys + "/clients.allow"
        s.workerAllowListFile = keys + "/workers.allow"
        s.auditLogFile = directory + "/audit/coordinator.jsonl"
        s.auditKeyFile = keys + "/audit.master"
        c.security = s
        try c.write(path: directory + "/coordinator.json")
        for m in matchers {
            var mc = base
            mc.nodeID = m
            mc.dataDirectory = directory + "/" + m
            var ms = SecurityConfiguration()
            ms.secretKeyFile = keys + "/\(m).key_secret"
            ms.coordinatorPublicKeyFile = keys + "/coordinator.key"
            ms.masterKeyFile = keys + "/\(m).master"
            ms.auditLogFile = directory + "/audit/\(m).jsonl"
            ms.auditKeyFile = keys + "/audit.master"
            ms.retentionSeconds = retentionSeconds
            ms.retentionIntervalSeconds = 0.25
            mc.security = ms
            try mc.write(path: directory + "/\(m).json")
        }
    }

    var curve: FacetClient.Curve { FacetClient.Curve(clientKeys: clientKeys, serverPublicKey: serverKey) }

    /// Starts `facet serve ROLE --config FILE` (or with `arguments` instead), logging to DIR/logs/NAME.log.
    func start(_ name: String, arguments: [String]? = nil) throws {
        let role = name == "coordinator" ? "coordinator" : "matcher"
        try nodes.start(name, executable: binary, arguments: arguments ?? ["serve", role, "--config", directory + "/\(name).json"])
    }

    func startAll() throws {
        try start("coordinator")
        for m in matchers { try start(m) }
    }

    func log(_ name: String) -> String { nodes.log(name) }

    /// SIGTERM, then SIGKILL after `seconds`; reaped.
    func stop(_ name: String, seconds: Double = 15) { nodes.stop(name, seconds: seconds) }

    func shutdown() {
        nodes.killAll()
        try? FileManager.default.removeItem(atPath: directory)
    }

    func waitUntilHealthy(_ client: FacetClient, seconds: Double = 60) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        var last = "no answer"
        while Date() < deadline {
            if let s = try? await client.status(includePartitions: true, timeout: .seconds(2)) {
                if s.healthy, s.partitions.count == 4, s.partitions.allSatisfy({ $0.liveReplicas == 2 }) { return }
                last = "healthy \(s.healthy), live replicas \(s.partitions.map(\.liveReplicas))"
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw HarnessError("secure cluster not healthy after \(seconds) s: \(last)\ncoordinator:\n\(log("coordinator").suffix(3000))\nmatcher-0:\n\(log("matcher-0").suffix(2000))")
    }

    /// Runs the `facet` binary to completion; returns (status, stdout, stderr).
    func runFacet(_ arguments: [String]) throws -> (Int32, String, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = arguments
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }
}

func withSecureCluster<R>(retentionSeconds: [String: Int]? = nil, _ body: (SecureCluster, FacetClient) async throws -> R) async throws -> R {
    let cluster = try SecureCluster(retentionSeconds: retentionSeconds)
    defer { cluster.shutdown() }
    try cluster.startAll()
    let client = try FacetClient(endpoint: cluster.frontend, curve: cluster.curve, timeout: .seconds(20))
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

/// Expects that a client gets no answer at all (the CURVE handshake is refused, so nothing reaches the server).
func expectNoAnswer(_ client: FacetClient, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) async {
    do {
        let s = try await client.status(timeout: .milliseconds(1500))
        Issue.record("\(what) was answered: \(s.nodes.count) nodes", sourceLocation: sourceLocation)
    } catch {
        #expect(error.code == .deadlineExceeded || error.code == .unavailable, "\(what): \(error)", sourceLocation: sourceLocation)
    }
    await client.close()
}

/// A distinctive unit vector for subject `n` (no other test data shares its bytes).
func distinctVector(_ n: Int, variant: Int = 0) -> [Float] {
    var state = UInt64(0x9E37_79B9_7F4A_7C15) &* UInt64(n * 16 + variant + 1)
    var v = (0..<128).map { _ -> Float in
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Float(Int64(bitPattern: state >> 11) % 2_000_001) / 1_000_000 - 1
    }
    let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
    for i in v.indices { v[i] /= norm }
    return v
}

func littleEndianBytes(_ v: [Float]) -> [UInt8] {
    var out: [UInt8] = []
    for x in v { withUnsafeBytes(of: x.bitPattern.littleEndian) { out.append(contentsOf: $0) } }
    return out
}

func occurs(_ needle: [UInt8], in haystack: [UInt8]) -> Bool {
    guard !needle.isEmpty, haystack.count >= needle.count else { return false }
    return haystack.withUnsafeBytes { h in
        needle.withUnsafeBytes { n in
            let hp = h.bindMemory(to: UInt8.self), first = n[0]
            for i in 0...(h.count - n.count) where hp[i] == first {
                if memcmp(h.baseAddress! + i, n.baseAddress!, n.count) == 0 { return true }
            }
            return false
        }
    }
}

/// Files under `directory` (recursively) that contain any of `needles`.
func filesContaining(_ needles: [[UInt8]], under directory: String) -> [String] {
    var found: [String] = []
    let e = FileManager.default.enumerator(atPath: directory)
    while let name = e?.nextObject() as? String {
        guard let data = FileManager.default.contents(atPath: directory + "/" + name) else { continue }
        let bytes = Array(data)
        if needles.contains(where: { occurs($0, in: bytes) }) { found.append(name) }
    }
    return found.sorted()
}

@Suite("Security with real processes: CURVE, encryption at rest, erasure, retention, audit", .serialized)
struct SecurityProcessTests {
    @Test("CURVE: plaintext, unknown-key, wrong-server-key and worker-key clients get no answer; the allowed client is served; an unknown worker cannot register",
          .timeLimit(.minutes(3)))
    func transportAuthentication() async throws {
        try await withSecureCluster { cluster, client in
            let s = try await client.status()
            #expect(s.healthy)
            #expect(Set(s.nodes.map(\.nodeID)).isSuperset(of: ["matcher-0", "matcher-1"]))

            await expectNoAnswer(try FacetClient(endpoint: cluster.frontend, timeout: .seconds(2)), "a plaintext client")
            let stranger = try CurveKeyPair.generate()
            await expectNoAnswer(try FacetClient(endpoint: cluster.frontend, curve: .init(clientKeys: stranger, serverPublicKey: cluster.serverKey)),
                                 "a client whose key is not on the allow-list")
            await expectNoAnswer(try FacetClient(endpoint: cluster.frontend,
                                                 curve: .init(clientKeys: cluster.clientKeys, serverPublicKey: try CurveKeyPair.generate().publicKey)),
                                 "a client that expects another server key")
            let workerKeys = try CurveKeyFiles.readKeyPair(secretKeyAt: cluster.keys + "/matcher-0.key_secret")
            await expectNoAnswer(try FacetClient(endpoint: cluster.frontend, curve: .init(clientKeys: workerKeys, serverPublicKey: cluster.serverKey)),
                                 "a worker key on the client front end")
            // An allowed client key cannot pose as a worker on the back end either.
            await expectNoAnswer(try FacetClient(endpoint: cluster.backend, curve: cluster.curve), "the client key on the worker back end")

            // A matcher with a key that is not on the worker allow-list never registers.
            let rogueKeys = try CurveKeyPair.generate()
            try CurveKeyFiles.write(rogueKeys, base: cluster.keys + "/rogue")
            try MasterKey.generate().write(to: cluster.keys + "/rogue.master")
            var rogue = try NodeConfiguration.load(path: cluster.directory + "/matcher-0.json")
            rogue.nodeID = "rogue"
            rogue.dataDirectory = cluster.directory + "/rogue"
            rogue.security?.secretKeyFile = cluster.keys + "/rogue.key_secret"
            rogue.security?.masterKeyFile = cluster.keys + "/rogue.master"
            rogue.security?.auditLogFile = cluster.directory + "/audit/rogue.jsonl"
            try rogue.write(path: cluster.directory + "/rogue.json")
            try cluster.start("rogue", arguments: ["serve", "matcher", "--config", cluster.directory + "/rogue.json"])
            try await Task.sleep(for: .seconds(2))
            let after = try await client.status()
            #expect(!after.nodes.map(\.nodeID).contains("rogue"))
            #expect(!cluster.log("coordinator").contains("node.id=rogue"))

            // The allowed client is still served, and the command-line client with the same keys too.
            let (status, out, err) = try cluster.runFacet(["status", "--endpoint", cluster.frontend, "--keys", cluster.keys, "--timeout-ms", "5000"])
            #expect(status == 0, "\(out)\n\(err)")
            let (plainStatus, _, plainErr) = try cluster.runFacet(["status", "--endpoint", cluster.frontend, "--timeout-ms", "1000"])
            #expect(plainStatus != 0)
            #expect(plainErr.contains("no CURVE keys"))
        }
    }

    @Test("at rest, erasure, retention and audit: no vector or subject bytes on disk; a deleted subject is found nowhere; expired templates go; the audit chain verifies and catches tampering",
          .timeLimit(.minutes(4)))
    func atRestErasureRetentionAudit() async throws {
        let cluster = try SecureCluster(retentionSeconds: ["short-term": 2])
        defer { cluster.shutdown() }
        try cluster.startAll()
        let client = try FacetClient(endpoint: cluster.frontend, curve: cluster.curve, timeout: .seconds(20))
        try await cluster.waitUntilHealthy(client)

        let subjects = (0..<6).map { "subject-\($0)-q7Zt" }
        let victim = subjects[2]
        var vectors: [String: [[Float]]] = [:]
        for (n, subject) in subjects.enumerated() {
            let vs = [distinctVector(n), distinctVector(n, variant: 1)]
            vectors[subject] = vs
            _ = try await client.enrol(subjectID: subject, embeddings: vs.map { WireEmbedding(values: $0, modelVersion: "1") })
        }
        let shortLived = ["expiring-0-q7Zt", "expiring-1-q7Zt"]
        for (n, subject) in shortLived.enumerated() {
            vectors[subject] = [distinctVector(100 + n)]
            _ = try await client.enrol(subjectID: subject, embeddings: [WireEmbedding(values: distinctVector(100 + n), modelVersion: "1")],
                                       collection: "short-term")
        }
        let found = try await client.identify(embedding: WireEmbedding(values: vectors[victim]![0], modelVersion: "1"), k: 3)
        #expect(found.candidates.first?.subjectID == victim)
        var verify = WireVerifyRequest()
        verify.probeEmbedding = WireEmbedding(values: vectors[victim]![1], modelVersion: "1")
        verify.subjectID = victim
        #expect(try await client.verify(verify).match)

        // Erasure.
        let deleted = try await client.deleteSubject(victim, reason: "erasure request")
        #expect(deleted.templatesDeleted == 2)
        for v in vectors[victim]! {
            let r = try await client.identify(embedding: WireEmbedding(values: v, modelVersion: "1"), k: 10)
            #expect(!r.partial)
            #expect(!r.candidates.contains { $0.subjectID == victim })
        }
        do {
            let v = try await client.verify(verify)
            #expect(!v.match, "verify against an erased subject matched")
        } catch {
            #expect(error.code == .notFound, "\(error)")
        }

        // Retention: the short-term collection expires after 2 s (job every 0.25 s) on both replicas.
        var expired = false
        let deadline = Date().addingTimeInterval(30)
        while !expired && Date() < deadline {
            var left = 0
            for s in shortLived {
                let r = try await client.identify(embedding: WireEmbedding(values: vectors[s]![0], modelVersion: "1"), k: 10)
                left += r.candidates.filter { $0.subjectID == s }.count
            }
            expired = left == 0
            if !expired { try await Task.sleep(for: .milliseconds(200)) }
        }
        #expect(expired, "short-term templates still found after 30 s")
        // Identify asks one replica per partition (here always the same one: the rotation moves by two per round), so
        // the other replica may not have run its retention yet: wait until every matcher's trail records both.
        let expiredRefs = Set(shortLived.map { AuditLog.subjectReference($0, key: cluster.auditKey.key) })
        var everywhere = false
        let auditDeadline = Date().addingTimeInterval(30)
        while !everywhere && Date() < auditDeadline {
            everywhere = cluster.matchers.allSatisfy { m in
                let trail = (try? AuditLog.read(path: cluster.directory + "/audit/\(m).jsonl")) ?? []
                return expiredRefs.isSubset(of: Set(trail.filter { $0.action == "retention" }.compactMap(\.subject)))
            }
            if !everywhere { try await Task.sleep(for: .milliseconds(200)) }
        }
        #expect(everywhere, "a replica had not expired the short-term templates after 30 s")
        let kept = try await client.identify(embedding: WireEmbedding(values: vectors[subjects[0]]![0], modelVersion: "1"), k: 1)
        #expect(kept.candidates.first?.subjectID == subjects[0])
        await client.close()

        // Stop gracefully (matchers checkpoint their sealed snapshots), then look at every byte on disk.
        for m in cluster.matchers { cluster.stop(m) }
        cluster.stop("coordinator")
        for m in cluster.matchers {
            let dir = cluster.directory + "/" + m
            let partitions = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("p-") }
            #expect(!partitions.isEmpty)
            #expect(partitions.contains { FileManager.default.fileExists(atPath: "\(dir)/\($0)/index.snapshot") })
        }
        let allVectors = vectors.values.flatMap { $0 }.flatMap { v -> [[UInt8]] in
            let b = littleEndianBytes(v)
            return stride(from: 0, to: b.count - 15, by: 16).map { Array(b[$0..<$0 + 16]) }
        }
        #expect(filesContaining(allVectors, under: cluster.directory) == [], "plaintext vector bytes on disk")
        let names = (subjects + shortLived).map { Array($0.utf8) }
        // Subject ids are nowhere on disk: not in LMDB, snapshots, vaults, audit trails, configs or logs.
        #expect(filesContaining(names, under: cluster.directory) == [], "subject ids on disk")

        // Opened directly with the master keys: the victim and the expired subjects are gone from every replica,
        // their data keys shredded; everyone else is there.
        for m in cluster.matchers {
            let master = try MasterKey.read(from: cluster.keys + "/\(m).master")
            var seen = Set<String>()
            let dir = cluster.directory + "/" + m
            for name in try FileManager.default.contentsOfDirectory(atPath: dir).sorted() where name.hasPrefix("p-") {
                var pc = PartitionConfiguration(dimension: 128)
                pc.sealer = EncryptedTemplateSealer(master: master)
                let p = try Partition.open(at: dir + "/" + name, configuration: pc)
                #expect(p.openReport.indexSource == .snapshot)
                seen.formUnion(p.subjectIDs().map(\.rawValue))
                #expect(try p.templates(of: SubjectID(victim)).isEmpty)
                let vault = try SubjectKeyVault(path: dir + "/" + name + "/" + EncryptedTemplateSealer.vaultFileName, master: master, exclusive: false)
                #expect(vault.subjectKeyCount == p.subjectIDs().count)
            }
            #expect(seen == Set(subjects).subtracting([victim]), "\(m) holds \(seen.sorted())")
        }

        // The audit trail: verifies with the key, records who/what/outcome, finds the subject by id, and breaks on edits.
        let trail = cluster.directory + "/audit/coordinator.jsonl"
        let (status, out, err) = try cluster.runFacet(["audit", "--log", trail, "--key", cluster.keys + "/audit.master", "--verify", "--json"])
        #expect(status == 0, "\(err)")
        #expect(err.contains("verified"))
        let entries = out.split(separator: "\n").compactMap { try? JSONDecoder().decode(AuditEntry.self, from: Data($0.utf8)) }
        let actions = entries.map(\.action)
        #expect(actions.filter { $0 == "enrol" }.count == 8)
        #expect(actions.contains("identify") && actions.contains("verify") && actions.contains("delete"))
        #expect(entries.allSatisfy { $0.who == "curve:" + cluster.clientKeys.publicKey.z85 })
        let ref = AuditLog.subjectReference(victim, key: cluster.auditKey.key)
        #expect(entries.contains { $0.action == "delete" && $0.subject == ref && $0.outcome == "ok" && $0.detail == "templates=2" })
        let (_, victimOut, _) = try cluster.runFacet(["audit", "--log", trail, "--key", cluster.keys + "/audit.master", "--subject", victim])
        let victimLines = victimOut.split(separator: "\n")
        #expect(victimLines.contains { $0.contains("\tenrol\t") } && victimLines.contains { $0.contains("\tdelete\t") })
        #expect(!victimOut.contains(victim))

        // Retention deletions are in the matchers' trails.
        for m in cluster.matchers {
            let t = cluster.directory + "/audit/\(m).jsonl"
            let v = try AuditLog.verify(path: t, key: cluster.auditKey)
            #expect(v.ok, "\(m): \(String(describing: v.problem))")
            let retained = try AuditLog.read(path: t).filter { $0.action == "retention" }.compactMap(\.subject)
            #expect(Set(retained) == Set(shortLived.map { AuditLog.subjectReference($0, key: cluster.auditKey.key) }))
        }

        // Tampering: change one outcome in a copy; verification fails and names the line.
        var lines = try String(contentsOfFile: trail, encoding: .utf8).split(separator: "\n").map(String.init)
        let i = lines.firstIndex { $0.contains("\"action\":\"delete\"") }!
        lines[i] = lines[i].replacingOccurrences(of: "\"templates=2\"", with: "\"templates=0\"")
        try (lines.joined(separator: "\n") + "\n").write(toFile: trail + ".tampered", atomically: true, encoding: .utf8)
        let (tamperedStatus, _, tamperedErr) = try cluster.runFacet(["audit", "--log", trail + ".tampered", "--key", cluster.keys + "/audit.master", "--verify"])
        #expect(tamperedStatus == 1)
        #expect(tamperedErr.contains("BROKEN at line \(i + 1)"))
    }
}

