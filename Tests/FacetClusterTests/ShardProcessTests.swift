import Foundation
import Testing
import FacetClient
import FacetStore
import FacetTestSupport
import FacetTransport
import FacetWire
@testable import FacetCluster
#if canImport(Glibc)
import Glibc
#endif

/// Continuous identify queries (each must succeed, complete, with k candidates) and enrolments (each must be
/// acknowledged) while `body` runs; returns what was acknowledged and the failures seen.
struct LoadResult {
    var acknowledged: [Expected]
    var enrolFailures: [String]
    var queryFailures: [String]
    var queries: Int
}

func underLoad(_ client: FacetClient, queries g: FaceLikeGenerator.Gallery, enrol stream: FaceLikeGenerator.Gallery, prefix: String,
               minimumEnrolments: Int, _ body: () async throws -> Void) async throws -> LoadResult {
    let done = LockedValue(false)
    let queryFailures = LockedValue<[String]>([])
    let queries = LockedValue(0)
    let reader = Task {
        var i = 0
        while !done.withLock({ $0 }) {
            let query = g.queryVector(i % g.queryIdentities.count)
            do {
                let r = try await client.identify(embedding: WireEmbedding(values: query, modelVersion: "1"), k: 5)
                if r.partial { queryFailures.withLock { $0.append("partial: \(r.missingPartitions)") } }
                if r.candidates.count != 5 { queryFailures.withLock { $0.append("\(r.candidates.count) candidates") } }
            } catch {
                queryFailures.withLock { $0.append("\(error)") }
            }
            queries.withLock { $0 += 1 }
            i += 1
        }
    }
    let acknowledged = LockedValue<[Expected]>([])
    let enrolFailures = LockedValue<[String]>([])
    let enrolled = LockedValue(0)
    let writer = Task {
        let identities = Dictionary(grouping: 0..<stream.count, by: { stream.baseIdentities[$0] }).sorted { $0.key < $1.key }
        for (identity, rows) in identities {
            if done.withLock({ $0 }) { break }
            let subject = "\(prefix)\(identity)"
            let vectors = rows.map { stream.baseVector($0) }
            do {
                let r = try await client.enrol(subjectID: subject, embeddings: vectors.map { WireEmbedding(values: $0, modelVersion: "1") })
                acknowledged.withLock { a in for (id, v) in zip(r.templateIds, vectors) { a.append(Expected(id: id, subject: subject, vector: v)) } }
            } catch {
                enrolFailures.withLock { $0.append("\(subject): \(error)") }
            }
            enrolled.withLock { $0 += 1 }
        }
    }
    do {
        try await body()
    } catch {
        done.withLock { $0 = true }
        await reader.value
        await writer.value
        throw error
    }
    // Let the writer reach its minimum (bounded), then stop both.
    let deadline = Date().addingTimeInterval(60)
    while enrolled.withLock({ $0 }) < minimumEnrolments, Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
    done.withLock { $0 = true }
    await reader.value
    await writer.value
    return LoadResult(acknowledged: acknowledged.withLock { $0 }, enrolFailures: enrolFailures.withLock { $0 },
                      queryFailures: queryFailures.withLock { $0 }, queries: queries.withLock { $0 })
}

func changeShards(_ client: FacetClient, _ op: WireShardChangeRequest.Operation, _ node: String) async throws -> WireShardChangeReply {
    var r = WireShardChangeRequest()
    r.operation = op
    r.nodeID = node
    guard case .shardChangeReply(let reply) = try await client.call(.shardChangeRequest(r)) else { throw HarnessError("unexpected reply") }
    return reply
}

/// A rebalance, retried (bounded) while a change is still finishing: a change ends by dropping the old copies after the
/// map settled, and until then another change is refused (FAILED_PRECONDITION).
func rebalanceWhenSettled(_ client: FacetClient, seconds: Double = 90) async throws -> WireShardChangeReply {
    try await changeWhenSettled(client, .rebalance, "", seconds: seconds)
}

/// A shard change, retried (bounded) while another is still finishing or being rolled back (FAILED_PRECONDITION).
func changeWhenSettled(_ client: FacetClient, _ op: WireShardChangeRequest.Operation, _ node: String,
                       seconds: Double = 90) async throws -> WireShardChangeReply {
    let deadline = Date().addingTimeInterval(seconds)
    while true {
        do { return try await changeShards(client, op, node) } catch let e as FacetError where e.code == .failedPrecondition && Date() < deadline {
            try await Task.sleep(for: .milliseconds(200))
        }
    }
}

/// Enrols the gallery (one subject per identity) with 4 writers side by side; returns what was acknowledged.
func enrolConcurrently(_ client: FacetClient, _ g: FaceLikeGenerator.Gallery, prefix: String) async throws -> [Expected] {
    try await enrolConcurrently(client, g, prefix: prefix, refusing: []).acknowledged
}

/// As above; an enrolment refused with one of `refusing` (and a retry hint) is not acknowledged: its identity is
/// returned in `refused` (the caller enrols it again later) instead of failing the test.
func enrolConcurrently(_ client: FacetClient, _ g: FaceLikeGenerator.Gallery, prefix: String, refusing: Set<FacetError.Code>,
                       only: Set<Int32>? = nil) async throws -> (acknowledged: [Expected], refused: [Int32]) {
    let grouped: [Int32: [Int]] = Dictionary(grouping: 0..<g.count, by: { g.baseIdentities[$0] })
    var identities: [(key: Int32, value: [Int])] = grouped.sorted { $0.key < $1.key }
    if let only { identities = identities.filter { only.contains($0.key) } }
    let collected = LockedValue<[Expected]>([]), refused = LockedValue<[Int32]>([])
    try await withThrowingTaskGroup(of: Void.self) { group in
        for w in 0..<4 {
            group.addTask {
                for (n, (identity, rows)) in identities.enumerated() where n % 4 == w {
                    let vectors = rows.map { g.baseVector($0) }
                    do {
                        let r = try await client.enrol(subjectID: "\(prefix)\(identity)", embeddings: vectors.map { WireEmbedding(values: $0, modelVersion: "1") })
                        collected.withLock { a in for (id, v) in zip(r.templateIds, vectors) { a.append(Expected(id: id, subject: "\(prefix)\(identity)", vector: v)) } }
                    } catch let e as FacetError where refusing.contains(e.code) && e.retryAfterMilliseconds > 0 {
                        refused.withLock { $0.append(identity) }
                    }
                }
            }
        }
        try await group.waitForAll()
    }
    return (collected.withLock { $0 }, refused.withLock { $0 })
}

/// The first `count` query vectors of `g`: each identify (k 10) equals an exact search over `all`.
func expectQueriesExact(_ client: FacetClient, _ g: FaceLikeGenerator.Gallery, _ all: [Expected], count: Int,
                        sourceLocation: SourceLocation = #_sourceLocation) async throws {
    for q in 0..<count {
        let query = g.queryVector(q)
        expectEqualsExact(try await client.identify(embedding: WireEmbedding(values: query, modelVersion: "1"), k: 10), query, all, k: 10,
                          sourceLocation: sourceLocation)
    }
}

/// While a shard change that began at map `start` runs: polls the map (bounded, 30 s) until it has incoming replicas
/// and `pick` names a node in it, kills that node (kill -9) and returns its name; nil when the change finished before
/// a poll saw it.
func killDuringChange(_ client: FacetClient, _ harness: ClusterHarness, start: WireShardMap,
                      pick: (WireShardMap) -> String?) async throws -> String? {
    let deadline = Date().addingTimeInterval(30)
    while Date() < deadline {
        let m = try await client.shardMap()
        if m.epoch > start.epoch, m.assignments.contains(where: { !$0.incoming.isEmpty }), let node = pick(m) {
            harness.kill9(node)
            return node
        }
        if m.epoch > start.epoch + 1 { return nil }   // the change finished before the poll saw it: nothing to kill during
        try await Task.sleep(for: .milliseconds(5))
    }
    return nil
}

/// After a node was killed during an add of `adding`: waits (bounded) until the map has no incoming replicas. Either
/// the change went on (its fills are retried) or it failed and was rolled back (the map without `adding`); then the
/// last change says so and the operator adds `adding` again. Returns the map the add is to reach.
func targetAfterAnInterruptedAdd(_ client: FacetClient, _ harness: ClusterHarness, start: WireShardMap, target: WireShardMap,
                                 adding node: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> WireShardMap {
    var settled = WireShardMap()
    let settledBy = Date().addingTimeInterval(120)
    while Date() < settledBy {
        settled = try await client.shardMap()
        if settled.epoch > start.epoch && settled.assignments.allSatisfy({ $0.incoming.isEmpty }) { break }
        try await Task.sleep(for: .milliseconds(100))
    }
    #expect(settled.assignments.allSatisfy { $0.incoming.isEmpty }, "map not settled: epoch \(settled.epoch)\n\(harness.log("coordinator").suffix(3000))",
            sourceLocation: sourceLocation)
    guard !settled.assignments.contains(where: { $0.replicas.contains(node) }) else { return target }
    print("the add was rolled back; adding \(node) again")
    #expect(try await lastShardChange(client, containing: "rolled back").contains("failed: "), sourceLocation: sourceLocation)
    try await waitRegistered(client, node)
    let again = try await changeWhenSettled(client, .addMatcher, node).target
    #expect(harness.log("coordinator").contains("rolled back a shard change"), sourceLocation: sourceLocation)
    return again
}

/// The coordinator's `StatusReply.last_shard_change`, once it contains `text` (bounded wait; the last value otherwise).
func lastShardChange(_ client: FacetClient, containing text: String, seconds: Double = 60) async throws -> String {
    let deadline = Date().addingTimeInterval(seconds)
    var last = ""
    while Date() < deadline {
        last = try await client.status().lastShardChange
        if last.contains(text) { return last }
        try await Task.sleep(for: .milliseconds(100))
    }
    return last
}

/// Waits (bounded) until `node` has registered with the coordinator.
func waitRegistered(_ client: FacetClient, _ node: String) async throws {
    for _ in 0..<300 {
        if let s = try? await client.status(), s.nodes.contains(where: { $0.nodeID == node && $0.state != .dead }) { return }
        try await Task.sleep(for: .milliseconds(100))
    }
    throw HarnessError("\(node) never registered")
}

/// Waits (bounded) until each matcher reports exactly the templates of its partitions in `final` (old copies dropped),
/// then stops the matchers and opens their LMDB partitions: each holds exactly the acknowledged templates of its
/// partitions and no other partition.
func expectExactlyOnDisk(_ client: FacetClient, _ harness: ClusterHarness, _ final: ClusterShardMap, _ all: [Expected],
                         matchers: [String], sourceLocation: SourceLocation = #_sourceLocation) async throws {
    func expectedCount(_ m: String) -> UInt64 {
        let mine = Set(final.partitions(of: m))
        return UInt64(all.filter { mine.contains(final.partition(of: $0.subject)) }.count)
    }
    let settleUntil = Date().addingTimeInterval(60)
    while Date() < settleUntil {
        let s = try await client.status()
        let held = Dictionary(s.nodes.map { ($0.nodeID, $0.templates) }, uniquingKeysWith: { a, _ in a })
        if matchers.allSatisfy({ held[$0] == expectedCount($0) }) { break }
        try await Task.sleep(for: .milliseconds(200))
    }
    for m in matchers { #expect(harness.stop(m) == 0, sourceLocation: sourceLocation) }
    for m in matchers {
        let stored = try storedTemplates(harness, m)
        #expect(Set(stored.keys).isSubset(of: Set(final.partitions(of: m))), "\(m) keeps partitions it does not hold: \(stored.keys.sorted())",
                sourceLocation: sourceLocation)
        for p in final.partitions(of: m) {
            let expected = Set(all.filter { final.partition(of: $0.subject) == p }.map(\.id))
            #expect((stored[p] ?? []) == expected, "\(m) p\(p): \(stored[p]?.count ?? 0) stored, \(expected.count) expected",
                    sourceLocation: sourceLocation)
        }
    }
}

/// Waits (bounded) until the coordinator's map has the target's replicas and nothing incoming.
func waitForMap(_ client: FacetClient, _ target: WireShardMap, seconds: Double = 120, harness: ClusterHarness) async throws -> WireShardMap {
    let deadline = Date().addingTimeInterval(seconds)
    var last = WireShardMap()
    while Date() < deadline {
        last = try await client.shardMap()
        let done = last.assignments.count == target.assignments.count
            && zip(last.assignments, target.assignments).allSatisfy { Set($0.replicas) == Set($1.replicas) && $0.incoming.isEmpty }
            && Set(last.matchers.map(\.nodeID)) == Set(target.matchers.map(\.nodeID))
        if done { return last }
        try await Task.sleep(for: .milliseconds(100))
    }
    throw HarnessError("shard map did not reach the target in \(seconds) s: epoch \(last.epoch)\n\(harness.log("coordinator").suffix(4000))")
}

/// The template ids stored in a matcher's partition directories (opened directly; the matcher must be stopped).
func storedTemplates(_ harness: ClusterHarness, _ matcher: String) throws -> [UInt32: Set<UInt64>] {
    var out: [UInt32: Set<UInt64>] = [:]
    let dir = harness.directory + "/" + matcher
    for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] where name.hasPrefix("p-") {
        guard let p = UInt32(name.dropFirst(2)) else { continue }
        let part = try Partition.open(at: dir + "/" + name)
        var ids = Set<UInt64>()
        try part.forEachTemplate { ids.insert($0.id.rawValue); return true }
        out[p] = ids
    }
    return out
}

/// A GET over a plain socket: (status code, body).
func httpGet(_ endpoint: String, _ path: String) throws -> (Int, String) {
    let parts = endpoint.split(separator: ":")
    guard parts.count == 2, let port = UInt16(parts[1]) else { throw HarnessError("bad endpoint \(endpoint)") }
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw HarnessError("socket failed") }
    defer { close(fd) }
    var timeout = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = port.bigEndian
    inet_pton(AF_INET, String(parts[0]), &addr.sin_addr)
    let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard ok == 0 else { throw HarnessError("connect \(endpoint) failed: errno \(errno)") }
    let request = Array("GET \(path) HTTP/1.1\r\nHost: \(endpoint)\r\n\r\n".utf8)
    _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
    var response: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { break }
        response += buffer[0..<n]
    }
    let text = String(decoding: response, as: UTF8.self)
    guard let headerEnd = text.range(of: "\r\n\r\n") else { throw HarnessError("no HTTP response: \(text)") }
    let status = text.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
    return (status, String(text[headerEnd.upperBound...]))
}

/// Sums the samples of metric `name` whose labels include every pair in `labels`, from a Prometheus text exposition.
func metricValue(_ text: String, _ name: String, _ labels: [String: String] = [:]) -> Double? {
    var total: Double?
    for line in text.split(separator: "\n") where !line.hasPrefix("#") {
        let parts = line.split(separator: " ")
        guard parts.count >= 2, let value = Double(parts[parts.count - 1]) else { continue }
        let series = String(parts[0])
        let metric = series.prefix { $0 != "{" }
        guard metric == name else { continue }
        var found: [String: String] = [:]
        if let open = series.firstIndex(of: "{"), let close = series.lastIndex(of: "}") {
            for pair in series[series.index(after: open)..<close].split(separator: ",") {
                let kv = pair.split(separator: "=", maxSplits: 1)
                if kv.count == 2 { found[String(kv[0])] = String(kv[1]).trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
            }
        }
        guard labels.allSatisfy({ found[$0.key] == $0.value }) else { continue }
        total = (total ?? 0) + value
    }
    return total
}

@Suite("Shard map changes and operations with real processes on 127.0.0.1", .serialized)
struct ShardProcessTests {
    @Test("add a fourth matcher and rebalance, then remove one, under enrolments and queries: nothing lost, no query fails",
          .timeLimit(.minutes(8)))
    func addAndRemoveMatcherUnderLoad() async throws {
        try await withCluster { harness, client in
            let g = try gallery(seed: 31, count: 60, queries: 20)
            var all = try await enrolGallery(client, g, prefix: "b")
            let before = try await client.shardMap()
            #expect(before.epoch == 1)

            // A fourth matcher starts, registers, and holds nothing until it is added.
            try harness.start("matcher-3")
            var registered = false
            for _ in 0..<300 where !registered {
                if let s = try? await client.status(), s.nodes.contains(where: { $0.nodeID == "matcher-3" && $0.state != .dead }) { registered = true }
                else { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(registered, "matcher-3 never registered:\n\(harness.log("matcher-3").suffix(2000))")

            // Add it under load.
            let added = try await underLoad(client, queries: g, enrol: try gallery(seed: 37, count: 90, queries: 0), prefix: "a",
                                            minimumEnrolments: 10) {
                let reply = try await changeShards(client, .addMatcher, "matcher-3")
                #expect(!reply.moves.isEmpty)
                #expect(reply.moves.allSatisfy { $0.toNodeID == "matcher-3" })
                // The change is a job; it cannot be cancelled while it runs (a cancel that lands after it finished
                // returns the finished job).
                do {
                    let j = try await client.cancelJob(id: reply.jobID)
                    #expect(j.state == .succeeded, "a running shard change was cancelled: \(j)")
                } catch let e as FacetError {
                    #expect(e.code == .failedPrecondition, "\(e)")
                }
                _ = try await waitForMap(client, reply.target, harness: harness)
                let job = try await client.waitForJob(id: reply.jobID, interval: .milliseconds(100), timeout: .seconds(60))
                #expect(job.kind == .rebalance && job.state == .succeeded, "\(job)")
                #expect(job.parameters["operation"] == "add" && job.parameters["node_id"] == "matcher-3")
                #expect(job.progress.done == UInt64(reply.moves.count) && job.progress.total == UInt64(reply.moves.count))
                #expect(job.result.hasPrefix("done: shard map epoch "), "\(job.result)")
            }
            #expect(added.enrolFailures.isEmpty, "\(added.enrolFailures)")
            #expect(added.queryFailures.isEmpty, "\(added.queryFailures)")
            #expect(added.queries > 0)
            all += added.acknowledged
            let afterAdd = try await client.shardMap()
            #expect(afterAdd.epoch > before.epoch)
            let addedLoad = afterAdd.assignments.filter { $0.replicas.contains("matcher-3") }.count
            #expect(addedLoad == Int(harness.partitions) * harness.replicas / 4)
            // Adding balanced the map (every matcher within one of the mean): a rebalance has nothing left to move.
            let loads = Dictionary(grouping: afterAdd.assignments.flatMap(\.replicas), by: { $0 }).mapValues(\.count)
            #expect(loads.count == 4 && (loads.values.max()! - loads.values.min()!) <= 1, "\(loads)")
            let rebalance = try await rebalanceWhenSettled(client)
            #expect(rebalance.moves.isEmpty)
            #expect(try await client.shardMap().epoch == afterAdd.epoch)
            try await harness.waitUntilHealthy(client)
            for q in 0..<20 {
                let query = g.queryVector(q)
                expectEqualsExact(try await client.identify(embedding: WireEmbedding(values: query, modelVersion: "1"), k: 10), query, all, k: 10)
            }

            // Remove matcher-0 under load.
            let removed = try await underLoad(client, queries: g, enrol: try gallery(seed: 41, count: 90, queries: 0), prefix: "r",
                                              minimumEnrolments: 10) {
                // Through the CLI: `facet shards remove --wait` follows the change's job to its end.
                let run = try await runFacet(["shards", "remove", "matcher-0", "--wait", "--json", "--endpoint", harness.frontend,
                                              "--insecure-plaintext", "--timeout-ms", "300000"])
                #expect(run.status == 0, "\(run.output)")
                let printed = try jsonObject(run.output)
                let moves = try #require(printed["moves"] as? [[String: Any]])
                #expect(!moves.isEmpty && moves.allSatisfy { $0["from"] as? String == "matcher-0" })
                let job = try await client.job(id: try #require(printed["job_id"] as? String))
                #expect(job.kind == .rebalance && job.state == .succeeded && job.parameters["operation"] == "remove", "\(job)")
            }
            #expect(removed.enrolFailures.isEmpty, "\(removed.enrolFailures)")
            #expect(removed.queryFailures.isEmpty, "\(removed.queryFailures)")
            all += removed.acknowledged
            // The removal ends by dropping matcher-0's copies; a (no-op) rebalance is accepted once it has finished.
            #expect(try await rebalanceWhenSettled(client).moves.isEmpty)
            let afterRemove = try await client.shardMap()
            #expect(!afterRemove.matchers.contains { $0.nodeID == "matcher-0" })
            #expect(afterRemove.assignments.allSatisfy { !$0.replicas.contains("matcher-0") })

            // matcher-0 is no longer needed: kill it; every acknowledged template is still found, results exact.
            harness.kill9("matcher-0")
            for q in 0..<20 {
                let query = g.queryVector(q)
                expectEqualsExact(try await client.identify(embedding: WireEmbedding(values: query, modelVersion: "1"), k: 10), query, all, k: 10)
            }
            for e in all.filter({ !$0.subject.hasPrefix("b") }) {
                let reply = try await client.identify(embedding: WireEmbedding(values: e.vector, modelVersion: "1"), k: 1)
                #expect(reply.candidates.first?.templateID == e.id, "template of \(e.subject) not found first")
            }
            // On disk: each remaining matcher holds exactly the acknowledged templates of its partitions (old copies dropped).
            try await expectExactlyOnDisk(client, harness, try ClusterShardMap(wire: afterRemove), all, matchers: ["matcher-1", "matcher-2", "matcher-3"])
        }
    }

    /// The coordinator dies (kill -9) while an add moves partitions: the map it left has incoming replicas that nothing
    /// will ever switch in (what each was to replace lived in that process), and every later change would be refused.
    /// Its restart rolls the change back (a map without the incoming replicas, their copies dropped); the operator's
    /// second add then completes. Nothing acknowledged is lost and no matcher keeps a copy that is not its own.
    @Test("kill -9 of the coordinator during an add: the restarted coordinator rolls the change back, the add is run again, nothing lost",
          .timeLimit(.minutes(8)))
    func coordinatorKilledDuringAChange() async throws {
        try await withCluster { harness, client in
            // Enough templates that filling the moved partitions takes a while (4 writers side by side).
            let g = try gallery(seed: 53, count: 4_500, queries: 20)
            let all = try await enrolConcurrently(client, g, prefix: "k")
            #expect(all.count == g.count)
            try harness.start("matcher-3")
            try await waitRegistered(client, "matcher-3")
            let before = try await client.shardMap()

            // Add matcher-3 and kill the coordinator as soon as the map with the incoming replicas is stored on a
            // matcher (up to 3 tries: a fast fill may switch them in before the poll sees them; then matcher-3 is
            // removed again and re-added). Not merely when the coordinator answers with it: it adopts a map before
            // it pushes it, and a map that died with the process before reaching any matcher is no change at all —
            // the restarted coordinator learns the old map from the matchers, and there is nothing to roll back.
            var caught: WireShardMap?
            var killedJob = ""
            for attempt in 0..<3 where caught == nil {
                let start = try await client.shardMap()
                killedJob = try await changeShards(client, .addMatcher, "matcher-3").jobID
                let deadline = Date().addingTimeInterval(30)
                while Date() < deadline {
                    let m = try await client.shardMap()
                    if m.epoch > start.epoch && m.assignments.contains(where: { !$0.incoming.isEmpty })
                        && harness.log("matcher-3").split(separator: "\n").contains(where: { $0.contains("shard map stored") && $0.contains("epoch=\(m.epoch) ") }) {
                        harness.kill9("coordinator")
                        caught = m
                        break
                    }
                    if m.epoch > start.epoch && m.assignments.allSatisfy({ $0.incoming.isEmpty }) && m.matchers.contains(where: { $0.nodeID == "matcher-3" })
                        && m.assignments.contains(where: { $0.replicas.contains("matcher-3") }) { break }   // missed it: done already
                    try await Task.sleep(for: .milliseconds(5))
                }
                if caught == nil {
                    print("coordinator kill during a change: attempt \(attempt) missed the incoming map; removing matcher-3 again")
                    let back = try await changeWhenSettled(client, .removeMatcher, "matcher-3")
                    _ = try await waitForMap(client, back.target, harness: harness)
                }
            }
            let unsettled = try #require(caught, "never saw a map with incoming replicas")
            #expect(unsettled.epoch > before.epoch)
            try harness.start("coordinator")
            try await harness.waitUntilHealthy(client, fullyReplicated: false, seconds: 90)

            // The restarted coordinator rolls the change back: a newer, settled map without matcher-3's copies.
            var rolled = WireShardMap()
            let deadline = Date().addingTimeInterval(90)
            while Date() < deadline {
                rolled = try await client.shardMap()
                if rolled.epoch > unsettled.epoch && rolled.assignments.allSatisfy({ $0.incoming.isEmpty }) { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(rolled.epoch == unsettled.epoch + 1, "map not rolled back: epoch \(rolled.epoch)\n\(harness.log("coordinator").suffix(3000))")
            #expect(rolled.assignments.allSatisfy { $0.incoming.isEmpty && !$0.replicas.contains("matcher-3") })
            // The status says so once the roll-back has dropped the incoming copies (`facet shards show` prints it).
            #expect(try await lastShardChange(client, containing: "rolled back").contains("an earlier run of this coordinator stopped during it"))
            // The killed change's job is in the restarted coordinator's history (its state directory), failed.
            let lost = try await client.job(id: killedJob)
            #expect(lost.kind == .rebalance && lost.state == .failed, "\(lost)")
            #expect(lost.error.hasPrefix("the coordinator stopped while the job was running"), "\(lost.error)")
            // The roll-back is a job of its own (finished just after the status says "rolled back").
            let rollBacks = try await client.listJobs(kind: .rebalance).jobs.filter { $0.parameters["operation"] == "roll-back" }
            #expect(rollBacks.count == 1, "\(rollBacks)")
            if let rb = rollBacks.first {
                let ended = try await client.waitForJob(id: rb.jobID, interval: .milliseconds(50), timeout: .seconds(30))
                #expect(ended.state == .succeeded && ended.result.hasPrefix("rolled back"), "\(ended)")
            }
            try await harness.waitUntilHealthy(client)
            try await expectQueriesExact(client, g, all, count: 20)

            // The operator runs the add again: it completes; results exact; on disk every matcher holds exactly the
            // acknowledged templates of its partitions and nothing else (matcher-3's rolled-back copies are gone).
            let reply = try await changeWhenSettled(client, .addMatcher, "matcher-3")
            #expect(!reply.moves.isEmpty && reply.moves.allSatisfy { $0.toNodeID == "matcher-3" })
            // (logged once the rolled-back map is stored on the matchers, which is after the coordinator answers with it)
            #expect(harness.log("coordinator").contains("rolled back a shard change"))
            let final = try ClusterShardMap(wire: try await waitForMap(client, reply.target, harness: harness))
            try await harness.waitUntilHealthy(client)
            try await expectQueriesExact(client, g, all, count: 20)
            // The old copies are dropped by the change itself (after every coordinator uses the new map); give it time.
            try await expectExactlyOnDisk(client, harness, final, all, matchers: ["matcher-0", "matcher-1", "matcher-2", "matcher-3"])
        }
    }

    /// The matcher being added dies (kill -9) while its copies are filled: the change retries the fill (up to 10
    /// minutes), the restarted matcher registers again, and the add completes. Nothing lost, results exact.
    @Test("kill -9 of the incoming matcher during an add: after its restart the add completes, nothing lost", .timeLimit(.minutes(6)))
    func incomingMatcherKilledDuringAChange() async throws {
        try await withCluster { harness, client in
            let g = try gallery(seed: 61, count: 3_000, queries: 20)
            let all = try await enrolConcurrently(client, g, prefix: "i")
            try harness.start("matcher-3")
            try await waitRegistered(client, "matcher-3")
            let start = try await client.shardMap()
            let reply = try await changeShards(client, .addMatcher, "matcher-3")
            let killed = try await killDuringChange(client, harness, start: start) { _ in "matcher-3" } != nil
            print("incoming matcher killed during the add: \(killed)")
            var target = reply.target
            if killed {
                try await Task.sleep(for: .seconds(2))
                try harness.start("matcher-3")
                target = try await targetAfterAnInterruptedAdd(client, harness, start: start, target: target, adding: "matcher-3")
            }
            let final = try ClusterShardMap(wire: try await waitForMap(client, target, seconds: 180, harness: harness))
            try await harness.waitUntilHealthy(client, seconds: 120)
            try await expectQueriesExact(client, g, all, count: 20)
            try await expectExactlyOnDisk(client, harness, final, all, matchers: ["matcher-0", "matcher-1", "matcher-2", "matcher-3"])
        }
    }

    /// A matcher that is giving up a partition to the one being added (the move's source; with R = 2 the partition's
    /// other replica can still be the fill source) dies (kill -9) while the copies are filled, and enrolments go on
    /// while it is down: the change completes or is rolled back and run again, the restarted matcher catches up on
    /// the writes it missed, and every acknowledged template is found, on exactly the replicas the final map names.
    @Test("kill -9 of a move's source matcher during an add, enrolments while it is down: nothing lost", .timeLimit(.minutes(6)))
    func sourceMatcherKilledDuringAMove() async throws {
        try await withCluster { harness, client in
            let g = try gallery(seed: 67, count: 3_000, queries: 20)
            var all = try await enrolConcurrently(client, g, prefix: "m")
            try harness.start("matcher-3")
            try await waitRegistered(client, "matcher-3")
            let start = try await client.shardMap()
            let reply = try await changeShards(client, .addMatcher, "matcher-3")
            let wanted = try ClusterShardMap(wire: reply.target)
            // A partition being moved: a replica it has now that the target does not give it is the move's source.
            let source = try await killDuringChange(client, harness, start: start) { m in
                m.assignments.first { !$0.incoming.isEmpty }.flatMap { moving in
                    moving.replicas.first { !wanted.replicas(of: moving.partition).contains($0) }
                }
            }
            print("source matcher killed during the add: \(source ?? "none")")
            var target = reply.target
            var later: FaceLikeGenerator.Gallery?
            if let source {
                // Enrolments go on while the source is down (every live copy takes them, the incoming ones too). A
                // partition whose only complete copy was the source refuses them (NOT_DURABLE with a retry hint: no
                // acknowledged write may live on copies still being filled); those are enrolled after its restart.
                let h = try gallery(seed: 71, count: 300, queries: 5)
                let during = try await enrolConcurrently(client, h, prefix: "n", refusing: [.notDurable])
                all += during.acknowledged
                print("enrolments while the source was down: \(during.acknowledged.count) templates acknowledged, \(during.refused.count) identities refused")
                later = h
                try harness.start(source)
                target = try await targetAfterAnInterruptedAdd(client, harness, start: start, target: target, adding: "matcher-3")
                if !during.refused.isEmpty {
                    try await harness.waitUntilHealthy(client, fullyReplicated: false, seconds: 120)
                    all += try await enrolConcurrently(client, h, prefix: "n", refusing: [], only: Set(during.refused)).acknowledged
                }
            }
            let final = try ClusterShardMap(wire: try await waitForMap(client, target, seconds: 180, harness: harness))
            try await harness.waitUntilHealthy(client, seconds: 120)
            if let later { try await expectQueriesExact(client, later, all, count: 5) }
            try await expectQueriesExact(client, g, all, count: 20)
            try await expectExactlyOnDisk(client, harness, final, all, matchers: ["matcher-0", "matcher-1", "matcher-2", "matcher-3"])
        }
    }

    /// A copy a matcher keeps of a partition that is not its own (a change stopped before its last step, or a drop
    /// timed out) would keep templates of subjects deleted since: the coordinator drops it.
    @Test("a copy of a partition that is not the matcher's own is dropped from its disk", .timeLimit(.minutes(4)))
    func leftoverCopyIsDropped() async throws {
        try await withCluster { harness, client in
            let g = try gallery(seed: 59, count: 60, queries: 5)
            let all = try await enrolGallery(client, g, prefix: "l")
            let map = try ClusterShardMap(wire: try await client.shardMap())
            let p = try #require(map.partitions(of: "matcher-1").first { !map.writeSet(of: $0).contains("matcher-0") })
            let name = String(format: "p-%05u", p)
            let leftover = harness.directory + "/matcher-0/" + name
            // matcher-0 gets a copy of matcher-1's partition p on its disk (both stopped for the copy).
            #expect(harness.stop("matcher-0") == 0)
            #expect(harness.stop("matcher-1") == 0)
            try FileManager.default.copyItem(atPath: harness.directory + "/matcher-1/" + name, toPath: leftover)
            #expect(try storedTemplates(harness, "matcher-0")[p]?.isEmpty == false)
            try harness.start("matcher-1")
            try harness.start("matcher-0")
            try await harness.waitUntilHealthy(client)
            let deadline = Date().addingTimeInterval(60)
            while FileManager.default.fileExists(atPath: leftover), Date() < deadline { try await Task.sleep(for: .milliseconds(100)) }
            #expect(!FileManager.default.fileExists(atPath: leftover), "\(leftover) still there\n\(harness.log("coordinator").suffix(2000))")
            #expect(harness.log("coordinator").contains("dropping a copy of a partition the matcher no longer holds"))
            // Both replicas of some partitions were restarted: wait (bounded) until one of each is filled or adopted.
            try await harness.waitUntilHealthy(client)
            let whole = Date().addingTimeInterval(30)
            while Date() < whole, (try? await client.identify(embedding: WireEmbedding(values: g.queryVector(0), modelVersion: "1"), k: 10))?.partial != false {
                try await Task.sleep(for: .milliseconds(100))
            }
            try await expectQueriesExact(client, g, all, count: 5)
        }
    }

    @Test("two coordinators serve the same matchers; a shard change made through one reaches the other", .timeLimit(.minutes(6)))
    func twoCoordinators() async throws {
        try await withCluster(coordinators: 2) { harness, clientA in
            let clientB = try FacetClient(endpoint: harness.coordinators[1].frontend, timeout: .seconds(20))
            defer { Task { await clientB.close() } }
            try await harness.waitUntilHealthy(clientB)
            let g = try gallery(seed: 43, count: 90, queries: 20)
            // Enrol half through each coordinator.
            let identities = Dictionary(grouping: 0..<g.count, by: { g.baseIdentities[$0] }).sorted { $0.key < $1.key }
            var all: [Expected] = []
            for (n, (identity, rows)) in identities.enumerated() {
                let client = n % 2 == 0 ? clientA : clientB
                let vectors = rows.map { g.baseVector($0) }
                let r = try await client.enrol(subjectID: "s\(identity)", embeddings: vectors.map { WireEmbedding(values: $0, modelVersion: "1") })
                for (id, v) in zip(r.templateIds, vectors) { all.append(Expected(id: id, subject: "s\(identity)", vector: v)) }
            }
            // Both answer exactly.
            for q in 0..<20 {
                let query = g.queryVector(q)
                for client in [clientA, clientB] {
                    expectEqualsExact(try await client.identify(embedding: WireEmbedding(values: query, modelVersion: "1"), k: 10), query, all, k: 10)
                }
            }
            // Verify against a subject: one exact search with a subject filter, same answer from both.
            let subject = "s\(g.queryIdentities[3])"
            var v = WireVerifyRequest()
            v.probeEmbedding = WireEmbedding(values: g.queryVector(3), modelVersion: "1")
            v.subjectID = subject
            let nearest = all.filter { $0.subject == subject }.map { (euclideanDistance(g.queryVector(3), $0.vector), $0.id) }.min { $0.0 < $1.0 }!
            for client in [clientA, clientB] {
                let verdict = try await client.verify(v)
                #expect(abs(verdict.distance - nearest.0) < 1e-4)
                #expect(verdict.templateID == nearest.1)
            }
            // List subjects, paged, through both: every subject once, in order, with its template count.
            let expectedSubjects = Dictionary(grouping: all, by: \.subject).mapValues(\.count)
            for client in [clientA, clientB] {
                var listed: [WireSubjectSummary] = []
                var token = ""
                var pages = 0
                repeat {
                    let page = try await client.listSubjects(pageSize: 7, pageToken: token)
                    #expect(page.subjects.count <= 7)
                    listed += page.subjects
                    token = page.nextPageToken
                    pages += 1
                } while !token.isEmpty && pages < 100
                #expect(listed.map(\.subjectID) == expectedSubjects.keys.sorted())
                #expect(listed.allSatisfy { Int($0.templateCount) == expectedSubjects[$0.subjectID] })
                let prefixed = try await client.listSubjects(pageSize: 1000, prefix: "s1")
                #expect(prefixed.subjects.map(\.subjectID) == expectedSubjects.keys.filter { $0.hasPrefix("s1") }.sorted())
            }

            // A rebalance through A (after a skew: add a matcher) while B keeps answering and enrolling.
            try harness.start("matcher-3")
            for _ in 0..<300 {
                if let s = try? await clientA.status(), s.nodes.contains(where: { $0.nodeID == "matcher-3" && $0.state != .dead }) { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            let load = try await underLoad(clientB, queries: g, enrol: try gallery(seed: 47, count: 60, queries: 0), prefix: "x",
                                           minimumEnrolments: 10) {
                let reply = try await changeShards(clientA, .addMatcher, "matcher-3")
                let reached = try await waitForMap(clientA, reply.target, harness: harness)
                // B adopts the new map (from the matchers' heartbeats or a refused write), bounded.
                let deadline = Date().addingTimeInterval(30)
                var epochB: UInt64 = 0
                while Date() < deadline {
                    epochB = try await clientB.shardMap().epoch
                    if epochB >= reached.epoch { break }
                    try await Task.sleep(for: .milliseconds(100))
                }
                #expect(epochB >= reached.epoch)
            }
            #expect(load.enrolFailures.isEmpty, "\(load.enrolFailures)")
            #expect(load.queryFailures.isEmpty, "\(load.queryFailures)")
            all += load.acknowledged
            for q in 0..<20 {
                let query = g.queryVector(q)
                for client in [clientA, clientB] {
                    expectEqualsExact(try await client.identify(embedding: WireEmbedding(values: query, modelVersion: "1"), k: 10), query, all, k: 10)
                }
            }
            for e in load.acknowledged {
                let reply = try await clientA.identify(embedding: WireEmbedding(values: e.vector, modelVersion: "1"), k: 1)
                #expect(reply.candidates.first?.templateID == e.id)
            }
            // A restarted coordinator takes the newest map from the matchers.
            harness.kill9("coordinator")
            try harness.start("coordinator")
            try await harness.waitUntilHealthy(clientA)
            let mapA = try await clientA.shardMap(), mapB = try await clientB.shardMap()
            #expect(mapA.epoch == mapB.epoch)
            #expect(mapA.assignments == mapB.assignments)
        }
    }

    @Test("metrics and health endpoints of real nodes: request counters, partition sizes, readiness", .timeLimit(.minutes(4)))
    func metricsAndHealth() async throws {
        try await withCluster { harness, client in
            let g = try gallery(seed: 53, count: 30, queries: 10)
            _ = try await enrolGallery(client, g, prefix: "m")
            for q in 0..<10 {
                _ = try await client.identify(embedding: WireEmbedding(values: g.queryVector(q), modelVersion: "1"), k: 3)
            }
            await expectError(.invalidArgument) { _ = try await client.identify(embedding: WireEmbedding(values: [1, 2], modelVersion: "1")) }

            let coordinator = try await harness.httpEndpoint("coordinator")
            let (code, text) = try httpGet(coordinator, "/metrics")
            #expect(code == 200)
            #expect(metricValue(text, "facet_requests_total", ["role": "coordinator", "kind": "identifyRequest", "outcome": "ok"]) == 10)
            #expect(metricValue(text, "facet_requests_total", ["kind": "identifyRequest", "outcome": "INVALID_ARGUMENT"]) == 1, "\(text.prefix(3000))")
            #expect(metricValue(text, "facet_requests_total", ["kind": "enrolRequest", "outcome": "ok"]) == 10)
            #expect(metricValue(text, "facet_request_duration_seconds_count", ["kind": "identifyRequest"]) == 11)
            #expect(metricValue(text, "facet_live_workers", ["role": "matcher"]) == 3)
            #expect(metricValue(text, "facet_shard_map_epoch") == 1)
            #expect(metricValue(text, "facet_partitions_servable") == Double(harness.partitions))
            #expect(try httpGet(coordinator, "/healthz").0 == 200)
            #expect(try httpGet(coordinator, "/readyz").0 == 200)
            #expect(try httpGet(coordinator, "/nothing").0 == 404)

            // Matchers: partition sizes add up to every template on R replicas.
            var stored = 0.0
            for m in harness.matchers {
                let endpoint = try await harness.httpEndpoint(m)
                let (mc, mt) = try httpGet(endpoint, "/metrics")
                #expect(mc == 200)
                stored += metricValue(mt, "facet_partition_templates") ?? 0
                #expect((metricValue(mt, "facet_requests_total", ["kind": "partitionSearchRequest", "outcome": "ok"]) ?? 0) > 0)
                #expect(try httpGet(endpoint, "/readyz").0 == 200)
            }
            #expect(stored == Double(30 * harness.replicas))

            // Readiness follows the cluster: with both replicas of some partition gone, the coordinator is not ready.
            harness.kill9("matcher-0")
            harness.kill9("matcher-1")
            var notReady = false
            for _ in 0..<100 where !notReady {
                if try httpGet(coordinator, "/readyz").0 == 503 { notReady = true } else { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(notReady)
            #expect(try httpGet(coordinator, "/healthz").0 == 200)
        }
    }
}
