import Foundation
import Testing
import FacetClient
import FacetCluster
import FacetTestSupport
import FacetWire
#if canImport(Glibc)
import Glibc
#endif

/// The path by which the soak lost acknowledged enrolments (docs/ops.md, "Soak with faults"), made deterministic with
/// real processes: a coordinator restarts while one replica of a partition is away (SIGSTOP), acknowledges a write on
/// the other replica alone, and the away replica then registers reporting its copy synced. Before the durable replica
/// marks it served reads without the acknowledged write (and could have been the source of a fill); now the replica
/// that took the write marks it stale on disk, so the new coordinator fills it before it serves reads.
@Suite("Replica marks (processes)", .serialized)
struct ReplicaMarkProcessTests {
    @Test("a write acknowledged by a restarted coordinator while a replica was away reaches that replica before it serves reads",
          .timeLimit(.minutes(4)))
    func coordinatorRestartWithAReplicaAway() async throws {
        let cluster = try FaultCluster(matchers: 3, replicas: 2, partitions: 8)
        cluster.coordinatorSettings.liveness = 10
        cluster.workerSettings.liveness = 10
        let layout = try ShardLayout(partitionCount: 8, replicationFactor: 2, matchers: cluster.matchers)
        // A subject whose partition lives on matcher-1 (away during the write) and another matcher (the holder).
        let subject = (0..<1000).map { "away-\($0)" }.first { s in
            layout.replicas(of: WirePartitioning.partition(of: s, partitionCount: 8)).contains("matcher-1")
        }!
        let p = WirePartitioning.partition(of: subject, partitionCount: 8)
        let away = "matcher-1"
        let holder = layout.replicas(of: p).first { $0 != away }!
        let vectors = gaussianClusters(count: 3, dimension: 128, clusters: 1, spread: 0.3, seed: 41)
        try await withFaultCluster(cluster) { c, client in
            // Some data first, so that the partition is not empty.
            _ = try await client.enrol(subjectID: "before", embeddings: [WireEmbedding(values: gaussianClusters(count: 1, dimension: 128, clusters: 1, spread: 0.3, seed: 7)[0], modelVersion: "1")])

            c.kill9("coordinator")
            c.signal(away, SIGSTOP)
            try c.start("coordinator")
            // The new coordinator accepts the write once the holder registered (and, since matcher-1 does not, after
            // its start-up grace): acknowledged on the holder alone.
            var reply: WireEnrolReply?
            var lastError = ""
            let deadline = Date().addingTimeInterval(60)
            while reply == nil && Date() < deadline {
                do {
                    reply = try await client.enrol(subjectID: subject, embeddings: vectors.map { WireEmbedding(values: $0, modelVersion: "1") },
                                                   timeout: .seconds(5))
                } catch {
                    lastError = "\(error)"
                    try await Task.sleep(for: .milliseconds(200))
                }
            }
            guard let reply else {
                c.signal(away, SIGCONT)
                Issue.record("the write was never acknowledged: \(lastError)\n\(c.log("coordinator").suffix(3000))")
                return
            }
            #expect(reply.durability.durableOn == [holder])

            // matcher-1 comes back and registers, reporting its copy synced; it must be filled before it counts.
            c.signal(away, SIGCONT)
            try await c.waitUntilHealthy(client)

            // With the holder away, matcher-1 alone answers for the partition: it has the acknowledged write.
            c.signal(holder, SIGSTOP)
            defer { c.signal(holder, SIGCONT) }
            let notReady = Date().addingTimeInterval(30)
            while Date() < notReady {
                if let s = try? await client.status(timeout: .seconds(2)),
                   !s.nodes.contains(where: { $0.nodeID == holder && $0.state == .ready }) { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            for (i, v) in vectors.enumerated() {
                let r = try await client.identify(embedding: WireEmbedding(values: v, modelVersion: "1"), k: 1, timeout: .seconds(20))
                #expect(!r.missingPartitions.contains(p), "partition \(p) missing")
                #expect(r.candidates.first?.subjectID == subject && (r.candidates.first?.distance ?? 1) <= 1e-3,
                        "template \(i) of \(subject) not on \(away): \(r.candidates)")
            }
            let listed = try await client.listSubjects(prefix: "away-", timeout: .seconds(20))
            #expect(listed.subjects.map(\.subjectID) == [subject])
        }
    }
}
