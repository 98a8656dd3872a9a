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

/// What a stream of enrolments and queries saw while faults were injected.
struct LoadReport: CustomStringConvertible {
    var enrolAttempts = 0
    var acknowledged: [Acked] = []
    var enrolErrors: [String] = []        // attempts that failed (retried when retryable)
    var unacknowledgedSubjects: [String] = []   // gave up after the retries
    var queries = 0
    var queryErrors: [FacetError.Code: Int] = [:]
    var partialQueries = 0
    var queryLatencies: [Double] = []     // seconds, every query including failed ones
    var lost = 0

    var description: String {
        let sorted = queryLatencies.sorted()
        func pct(_ p: Double) -> String {
            sorted.isEmpty ? "-" : String(format: "%.0f ms", sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * p))] * 1000)
        }
        let errors = queryErrors.sorted { "\($0.key)" < "\($1.key)" }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
        return "enrol attempts \(enrolAttempts), acknowledged \(acknowledged.count), failed attempts \(enrolErrors.count), "
            + "never acknowledged \(unacknowledgedSubjects.count), lost \(lost); queries \(queries), failed \(queryErrors.values.reduce(0, +)) [\(errors)], "
            + "partial \(partialQueries), latency p50 \(pct(0.5)) p99 \(pct(0.99)) max \(pct(1.0))"
    }
}

/// Enrols `subjects` one at a time (retrying retryable failures with a short back-off, as a client should) while a
/// reader identifies continuously; `fault(i)` runs before enrolment `i`. Every client call has `timeout`, and the
/// test checks that none took much longer (no hang).
func runUnderFaults(_ client: FacetClient, cluster: FaultCluster, subjects: [(subject: String, vectors: [[Float]])],
                    queries: [[Float]], timeout: Duration = .seconds(5), retries: Int = 20,
                    fault: (Int) async throws -> Void) async throws -> LoadReport {
    let report = LockedValue(LoadReport())
    let done = LockedValue(false)
    let reader = Task {
        var i = 0
        while !done.withLock({ $0 }) {
            let start = ContinuousClock.now
            do throws(FacetError) {
                let r = try await client.identify(embedding: WireEmbedding(values: queries[i % queries.count], modelVersion: "1"), k: 5, timeout: timeout)
                if r.partial { report.withLock { $0.partialQueries += 1 } }
            } catch {
                report.withLock { $0.queryErrors[error.code, default: 0] += 1 }
                try? await Task.sleep(for: .milliseconds(50))
            }
            let elapsed = start.duration(to: .now)
            report.withLock { $0.queries += 1; $0.queryLatencies.append(Double(elapsed.components.attoseconds) / 1e18 + Double(elapsed.components.seconds)) }
            i += 1
        }
    }
    for (i, s) in subjects.enumerated() {
        try await fault(i)
        var acked = false
        for attempt in 0..<retries where !acked {
            report.withLock { $0.enrolAttempts += 1 }
            do throws(FacetError) {
                let r = try await client.enrol(subjectID: s.subject, embeddings: s.vectors.map { WireEmbedding(values: $0, modelVersion: "1") },
                                               timeout: timeout)
                report.withLock { rep in for (id, v) in zip(r.templateIds, s.vectors) { rep.acknowledged.append(Acked(id: id, subject: s.subject, vector: v)) } }
                acked = true
            } catch {
                report.withLock { $0.enrolErrors.append("\(s.subject) #\(attempt): \(error)") }
                guard error.code.isRetryable else { break }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        if !acked { report.withLock { $0.unacknowledgedSubjects.append(s.subject) } }
    }
    done.withLock { $0 = true }
    await reader.value
    let r = report.withLock { $0 }
    // No call may hang: each returned within its timeout plus generous slack for a loaded machine.
    let bound = Double(timeout.components.seconds) + 10
    #expect((r.queryLatencies.max() ?? 0) < bound, "a query took \(r.queryLatencies.max() ?? 0) s")
    return r
}

@Suite("Faults with real processes under a stream of enrolments and queries", .serialized)
struct FaultTests {
    @Test("SIGSTOP then SIGCONT of a matcher: no error, nothing lost, it rejoins by itself", .timeLimit(.minutes(5)))
    func matcherStopAndContinue() async throws {
        let cluster = try FaultCluster(matchers: 3, replicas: 2, partitions: 8)
        try await withFaultCluster(cluster) { cluster, client in
            let g = try faceGallery(seed: 41, count: 90, queries: 10)
            let all = subjects(g, prefix: "m")
            var report = try await runUnderFaults(client, cluster: cluster, subjects: all, queries: (0..<10).map { g.queryVector($0) }) { i in
                if i == all.count / 3 { cluster.signal("matcher-1", SIGSTOP) }
                if i == 2 * all.count / 3 { cluster.signal("matcher-1", SIGCONT) }
            }
            #expect(report.unacknowledgedSubjects.isEmpty, "\(report.enrolErrors)")
            #expect(report.queryErrors.isEmpty, "\(report)")
            #expect(report.partialQueries == 0)
            // It re-registers and is filled without any manual step.
            try await cluster.waitUntilHealthy(client)
            report.lost = try await expectNothingLost(client, report.acknowledged)
            #expect(report.acknowledged.count == 90)
            print("FAULT-REPORT matcher SIGSTOP/SIGCONT: \(report)")
        }
    }

    @Test("a partition whose only replica is stopped: identify answers by its deadline, marked partial with exactly those partitions",
          .timeLimit(.minutes(4)))
    func partialResultWhenAPartitionHasNoLiveReplica() async throws {
        let cluster = try FaultCluster(matchers: 2, replicas: 1, partitions: 8)
        try await withFaultCluster(cluster) { cluster, client in
            let g = try faceGallery(seed: 47, count: 40, queries: 4)
            for s in subjects(g, prefix: "p") {
                _ = try await client.enrol(subjectID: s.subject, embeddings: s.vectors.map { WireEmbedding(values: $0, modelVersion: "1") })
            }
            let map = try ClusterShardMap(wire: try await client.shardMap())
            let away = map.assigned(to: "matcher-1")
            #expect(!away.isEmpty && away.count < 8)
            let probe = WireEmbedding(values: g.queryVector(0), modelVersion: "1")
            let whole = try await client.identify(embedding: probe, k: 10)
            #expect(!whole.partial)
            cluster.signal("matcher-1", SIGSTOP)
            defer { cluster.signal("matcher-1", SIGCONT) }
            // First while the coordinator still counts it live (the call to it times out), then once it is dead.
            for round in 0..<2 {
                let r = try await client.identify(embedding: probe, k: 10, timeout: .seconds(5))
                #expect(r.partial, "round \(round)")
                #expect(r.missingPartitions == away, "round \(round)")
                // What the live partitions hold is still answered, in the same order as before.
                let expected = whole.candidates.filter { !away.contains($0.partition) }.map(\.templateID)
                #expect(r.candidates.map(\.templateID).prefix(expected.count) == expected[...], "round \(round)")
                #expect(r.candidates.allSatisfy { !away.contains($0.partition) })
                if round == 0 { try await Task.sleep(for: .seconds(2)) }
            }
            cluster.signal("matcher-1", SIGCONT)
            try await cluster.waitUntilHealthy(client)
            let again = try await client.identify(embedding: probe, k: 10)
            #expect(!again.partial)
            #expect(again.candidates.map(\.templateID) == whole.candidates.map(\.templateID))
        }
    }

    @Test("coordinator SIGSTOP/SIGCONT and kill -9/restart: calls end by their deadline, nothing acknowledged is lost", .timeLimit(.minutes(5)))
    func coordinatorFaults() async throws {
        let cluster = try FaultCluster(matchers: 3, replicas: 2, partitions: 8)
        try await withFaultCluster(cluster) { cluster, client in
            let g = try faceGallery(seed: 43, count: 120, queries: 10)
            let all = subjects(g, prefix: "c")
            var report = try await runUnderFaults(client, cluster: cluster, subjects: all, queries: (0..<10).map { g.queryVector($0) },
                                                  timeout: .seconds(3)) { i in
                if i == all.count / 4 {
                    cluster.signal("coordinator", SIGSTOP)
                    try await Task.sleep(for: .seconds(2))
                    cluster.signal("coordinator", SIGCONT)
                }
                if i == all.count / 2 {
                    cluster.kill9("coordinator")
                    try await Task.sleep(for: .seconds(1))
                    try cluster.start("coordinator")
                }
            }
            #expect(report.unacknowledgedSubjects.isEmpty, "\(report.enrolErrors)")
            // While it is stopped or down, queries fail with a deadline or unavailability, nothing else.
            for code in report.queryErrors.keys { #expect(code == .deadlineExceeded || code == .unavailable || code == .notDurable, "\(report)") }
            try await cluster.waitUntilHealthy(client)
            report.lost = try await expectNothingLost(client, report.acknowledged)
            #expect(report.acknowledged.count == 120)
            print("FAULT-REPORT coordinator SIGSTOP 2 s + kill -9/restart: \(report)")
        }
    }

    @Test("a matcher whose disk fills answers RESOURCE_EXHAUSTED, keeps running, loses nothing acknowledged", .timeLimit(.minutes(4)))
    func diskFull() async throws {
        let cluster = try FaultCluster(matchers: 1, replicas: 1, partitions: 2)
        cluster.fileSizeLimitKiB["matcher-0"] = 512
        try await withFaultCluster(cluster) { cluster, client in
            let g = try faceGallery(seed: 47, count: 1500, queries: 0)
            var acked: [Acked] = []
            var full: FacetError?
            var fullSubject = ""
            for s in subjects(g, prefix: "d") where full == nil {
                do throws(FacetError) {
                    let r = try await client.enrol(subjectID: s.subject, embeddings: s.vectors.map { WireEmbedding(values: $0, modelVersion: "1") })
                    for (id, v) in zip(r.templateIds, s.vectors) { acked.append(Acked(id: id, subject: s.subject, vector: v)) }
                } catch {
                    full = error
                    fullSubject = s.subject
                }
            }
            guard let full else { Issue.record("1500 templates fitted in 512 KiB per file"); return }
            #expect(full.code == .resourceExhausted, "\(full)")
            #expect(full.message.contains("storage full"), "\(full)")
            #expect(!acked.isEmpty)
            #expect(cluster.isRunning("matcher-0"), "the matcher died:\n\(cluster.log("matcher-0").suffix(2000))")
            // Later writes to the full partition (RLIMIT_FSIZE is per file: the same subject's partition) either fit in
            // pages LMDB freed or fail the same way — nothing else; reads still work and nothing acknowledged is lost.
            let more = try faceGallery(seed: 53, count: 30, queries: 0)
            var refused = 0
            for i in 0..<10 {
                let vectors = (3 * i..<3 * i + 3).map { more.baseVector($0) }
                do throws(FacetError) {
                    let r = try await client.enrol(subjectID: fullSubject, embeddings: vectors.map { WireEmbedding(values: $0, modelVersion: "1") })
                    for (id, v) in zip(r.templateIds, vectors) { acked.append(Acked(id: id, subject: fullSubject, vector: v)) }
                } catch {
                    #expect(error.code == .resourceExhausted, "\(error)")
                    refused += 1
                }
            }
            #expect(refused > 0)
            let lostWhileFull = try await expectNothingLost(client, acked)
            // Space is freed (the limit lifted) and the matcher restarted: writes succeed again and everything is there.
            cluster.kill9("matcher-0")
            cluster.fileSizeLimitKiB["matcher-0"] = nil
            try cluster.start("matcher-0")
            try await cluster.waitUntilHealthy(client)
            // The coordinator may still hold the killed process's registration for a few heartbeats: retry what is
            // retryable, as a client should.
            var enrolled = false
            for _ in 0..<50 where !enrolled {
                do throws(FacetError) {
                    _ = try await client.enrol(subjectID: fullSubject, embeddings: (27..<30).map { WireEmbedding(values: more.baseVector($0), modelVersion: "1") })
                    enrolled = true
                } catch {
                    guard error.code.isRetryable else { throw error }
                    try await Task.sleep(for: .milliseconds(200))
                }
            }
            #expect(enrolled)
            try await cluster.waitUntilHealthy(client)
            _ = try await expectNothingLost(client, acked)
            print("FAULT-REPORT disk full (RLIMIT_FSIZE 512 KiB): \(acked.count) templates acknowledged before RESOURCE_EXHAUSTED, \(refused) of 10 later writes refused, \(lostWhileFull) lost")
        }
    }

    @Test("kill -9 of one embedder and SIGSTOP of the other: image requests fail over, then everything recovers", .timeLimit(.minutes(6)))
    func embedderFaults() async throws {
        let cluster = try FaultCluster(matchers: 1, replicas: 1, partitions: 2, embedders: 2)
        cluster.coordinatorSettings.embedTimeoutMilliseconds = 20_000
        try await withFaultCluster(cluster) { cluster, client in
            let names = ["lfw-Aaron_Eckhart_0001.jpg", "lfw-Colin_Powell_0001.jpg", "lfw-Halle_Berry_0001.jpg", "lfw-Tony_Blair_0001.jpg"]
            let images = try names.map { try Data(contentsOf: faceFixtures.appendingPathComponent($0)) }
            for (n, image) in zip(names, images) { _ = try await client.enrol(subjectID: n, images: [image]) }
            var failures: [String] = []
            var served = 0
            /// Identifies each photo (retrying retryable errors a few times): its own subject must come first.
            func round() async throws {
                for (n, image) in zip(names, images) {
                    var ok = false
                    for _ in 0..<10 where !ok {
                        do throws(FacetError) {
                            let r = try await client.identify(image: image, k: 1, timeout: .seconds(30))
                            #expect(r.candidates.first?.subjectID == n)
                            ok = true
                            served += 1
                        } catch {
                            failures.append("\(n): \(error)")
                            guard error.code.isRetryable else { break }
                            try await Task.sleep(for: .milliseconds(300))
                        }
                    }
                    #expect(ok, "\(n) never identified: \(failures)")
                }
            }
            try await round()
            cluster.kill9("embedder-0")          // requests go to embedder-1
            try await round()
            try cluster.start("embedder-0")
            try await cluster.waitUntilHealthy(client)
            cluster.signal("embedder-1", SIGSTOP)   // missed heartbeats: marked dead, requests go to embedder-0
            try await round()
            cluster.signal("embedder-1", SIGCONT)
            try await cluster.waitUntilHealthy(client)
            try await round()
            #expect(served == 16)
            print("FAULT-REPORT embedders kill -9 + SIGSTOP: 16 image identifies served, \(failures.count) retried failures: \(failures)")
        }
    }
}

let faceFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("FacetFaceTests/Fixtures/images")
