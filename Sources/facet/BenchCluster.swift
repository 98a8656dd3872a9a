import ArgumentParser
import Foundation
import FacetClient
import FacetCluster
import FacetIndex
import FacetStore
import FacetTestSupport
import FacetWire
#if canImport(Glibc)
import Glibc
#endif

/// `facet bench cluster`: identify latency through a local cluster of real processes against a direct in-process
/// query of the same partitions, with 1, 2, 4 … matchers; then (with --soak-seconds) a steady identify + enrol load
/// reporting throughput, latency percentiles, errors and every node's memory over time.
struct BenchCluster: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Cluster identify latency (p50/p99) vs a direct in-process query, with 1/2/4 matchers; steady-load soak with memory.",
        discussion: """
        The templates (synthetic face-like embeddings, ≈3 per identity) are written straight into each matcher's
        partitions before the matchers start (the same template ids and layout an enrolment through the cluster
        gives), so loading 100k or 1M does not take an hour of enrolments; the soak enrols through the cluster.
        The direct query searches the same partitions in this process with the same k and ef and merges their
        top-k: the work one matcher does, without sockets or processes. Results go to stdout (--json: one JSON
        object per line); progress to stderr.
        """)

    @Option(help: "Templates to load.") var templates: Int = 100_000
    @Option(help: "Comma-separated matcher counts to measure.") var matchers: String = "1,2,4"
    @Option(help: "Partitions.") var partitions: UInt32 = 16
    @Option(help: "Identify queries measured one at a time (after 10% warm-up).") var queries: Int = 1000
    @Option(help: "Neighbours per query.") var k: Int = 10
    @Option(help: "HNSW search breadth for both the cluster and the direct query.") var ef: Int = 64
    @Option(help: "Concurrent clients for the throughput measurement.") var concurrency: Int = 4
    @Option(help: "Seconds of the throughput measurement per matcher count.") var throughputSeconds: Double = 10
    @Option(help: "Soak: seconds of steady load (0 = no soak), on the last matcher count.") var soakSeconds: Double = 0
    @Option(help: "Soak: identify requests per second.") var identifyRate: Double = 50
    @Option(help: "Soak: enrolments (3 templates each) per second.") var enrolRate: Double = 5
    @Option(help: "Soak: report interval in seconds.") var reportSeconds: Double = 10
    @Option(help: "Data directory (default: a new temporary directory, removed at the end).") var data: String?
    @Option(help: "First TCP port (the coordinator's; +1 for its workers).") var port: Int = 27_555
    @Option(help: "Seed of the synthetic embeddings.") var seed: UInt64 = 7
    @Flag(help: "One JSON object per result line.") var json = false

    var matcherCounts: [Int] { matchers.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } }

    func validate() throws {
        guard templates >= 10 else { throw ValidationError("--templates must be at least 10") }
        guard !matcherCounts.isEmpty, matcherCounts.allSatisfy({ $0 >= 1 }) else { throw ValidationError("--matchers takes counts like 1,2,4") }
        guard queries >= 10, k >= 1, ef >= 1, concurrency >= 1 else { throw ValidationError("--queries ≥ 10, --k, --ef, --concurrency ≥ 1") }
    }

    func say(_ s: String) { FileHandle.standardError.write(Data("[bench cluster] \(s)\n".utf8)) }

    func emit(_ fields: [(String, Any)], text: String) {
        if json {
            let body = fields.map { key, value -> String in
                switch value {
                case let s as String: return "\"\(key)\": \"\(s)\""
                case let d as Double: return "\"\(key)\": \(d.isFinite ? String(format: "%.4f", d) : "null")"
                default: return "\"\(key)\": \(value)"
                }
            }.joined(separator: ", ")
            print("{\(body)}")
        } else {
            print(text)
        }
        fflush(stdout)
    }

    func run() async throws {
        let dir = data ?? (NSTemporaryDirectory() + "facet-bench-cluster-\(getpid())")
        let removeAtEnd = data == nil
        defer { if removeAtEnd { try? FileManager.default.removeItem(atPath: dir) } }
        let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")

        say("generating \(templates) face-like templates and \(queries) queries (seed \(seed))")
        var generator = FaceLikeGenerator(statistics: try FaceEmbeddingStatistics.bundled(), seed: seed)
        let gallery = generator.makeGallery(count: templates, photosPerIdentity: 3, queryCount: queries)
        let soakGallery = generator.makeGallery(count: max(3, Int(soakSeconds * enrolRate * 3) + 30), photosPerIdentity: 3, queryCount: 0)
        var records: [TemplateRecord] = []
        records.reserveCapacity(templates)
        for i in 0..<gallery.count {
            let v = gallery.baseVector(i)
            let subject = "s\(gallery.baseIdentities[i])"
            let digest = TemplateIdentity.sourceDigest(WireEmbedding(values: v, modelVersion: "").littleEndianBytes)
            let id = TemplateIdentity.templateID(subject: subject, collection: "default", sourceDigest: digest)
            records.append(TemplateRecord(id: TemplateID(id), subject: SubjectID(subject), collection: "default", embedding: v,
                                          masked: false, modelVersion: "1", createdAtMilliseconds: 0))
        }
        let queryVectors = (0..<queries).map { gallery.queryVector($0) }

        for (round, n) in matcherCounts.enumerated() {
            let names = (0..<n).map { "matcher-\($0)" }
            let layout = try ShardLayout(partitionCount: partitions, replicationFactor: 1, matchers: names)
            let root = "\(dir)/m\(n)"
            try? FileManager.default.removeItem(atPath: root)
            try FileManager.default.createDirectory(atPath: root + "/config", withIntermediateDirectories: true)

            // 1. Partitions written directly, as the cluster would lay them out; checkpointed so matchers open fast.
            say("\(n) matcher(s): writing \(records.count) templates into \(partitions) partitions")
            var byPartition: [UInt32: [TemplateRecord]] = [:]
            for r in records { byPartition[layout.partition(of: r.subject.rawValue), default: []].append(r) }
            var opened: [Partition] = []
            let t0 = Date()
            for p in layout.allPartitions {
                let owner = layout.replicas(of: p)[0]
                try FileManager.default.createDirectory(atPath: "\(root)/\(owner)", withIntermediateDirectories: true)
                let part = try Partition.open(at: "\(root)/\(owner)/\(String(format: "p-%05u", p))",
                                              configuration: PartitionConfiguration(dimension: 128, metric: .l2Squared))
                let rs = byPartition[p] ?? []
                for start in stride(from: 0, to: rs.count, by: 1000) { try part.insert(Array(rs[start..<min(rs.count, start + 1000)])) }
                try part.checkpoint()
                opened.append(part)
            }
            say("loaded in \(String(format: "%.1f", Date().timeIntervalSince(t0))) s")

            // 2. The direct in-process query over the same partitions.
            let direct = try measure(queryVectors) { q in
                var lists: [[(Float, UInt64)]] = []
                for part in opened {
                    lists.append(try part.search(q, k: k, parameters: SearchParameters(ef: max(ef, k))).map { ($0.distance, $0.template.rawValue) })
                }
                let merged = lists.joined().sorted { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }.prefix(k)
                return merged.count
            }
            opened.removeAll()   // closes the environments before the matchers open them

            // 3. The cluster.
            let cluster = try LocalCluster(executable: executable, directory: root, matchers: names, partitions: partitions,
                                           port: port + 10 * round)
            defer { cluster.stopAll() }
            try cluster.start(defaultEf: ef)
            let client = try FacetClient(endpoint: cluster.frontend, clientID: "bench", timeout: .seconds(30))
            try await cluster.waitUntilReady(client, seconds: 600) { say($0) }
            func identify(_ q: [Float]) async throws -> Int {
                let r = try await client.benchIdentify(q, k: UInt32(k), ef: UInt32(ef))
                if r.partial { throw FacetError(.unavailable, "partial result") }
                return r.candidates.count
            }
            let through = try await measureAsync(queryVectors, identify)
            let qps = try await throughput(queryVectors, seconds: throughputSeconds, concurrency: concurrency, identify)
            let rss = cluster.rssKiB()
            let overhead50 = through.p50 - direct.p50, overhead99 = through.p99 - direct.p99
            emit([("kind", "identify"), ("templates", records.count), ("matchers", n), ("partitions", Int(partitions)), ("k", k), ("ef", ef),
                  ("direct_p50_ms", direct.p50), ("direct_p99_ms", direct.p99), ("cluster_p50_ms", through.p50), ("cluster_p99_ms", through.p99),
                  ("overhead_p50_ms", overhead50), ("overhead_p99_ms", overhead99), ("cluster_qps", qps.qps), ("concurrency", concurrency),
                  ("errors", through.errors + qps.errors), ("rss_kib", rss.map { "\($0.0)=\($0.1)" }.joined(separator: " "))],
                 text: String(format: "%7d templates, %d matcher(s): direct p50 %.3f ms p99 %.3f ms | cluster p50 %.3f ms p99 %.3f ms | overhead p50 %.3f p99 %.3f ms | %.0f q/s at %d clients | errors %d | RSS %@",
                              records.count, n, direct.p50, direct.p99, through.p50, through.p99, overhead50, overhead99, qps.qps, concurrency,
                              through.errors + qps.errors, rss.map { "\($0.0) \($0.1 / 1024) MiB" }.joined(separator: ", ")))

            // 4. Soak on the last configuration.
            if soakSeconds > 0, round == matcherCounts.count - 1 {
                try await soak(client: client, cluster: cluster, queries: queryVectors, enrolments: soakGallery)
            }
            await client.close()
            cluster.stopAll()
        }
    }

    struct Latencies { var p50: Double; var p99: Double; var errors: Int }

    func percentiles(_ ms: [Double], errors: Int) -> Latencies {
        let s = ms.sorted()
        func p(_ q: Double) -> Double { s.isEmpty ? .nan : s[min(s.count - 1, Int((Double(s.count - 1) * q).rounded()))] }
        return Latencies(p50: p(0.5), p99: p(0.99), errors: errors)
    }

    func measure(_ queries: [[Float]], _ body: ([Float]) throws -> Int) throws -> Latencies {
        var ms: [Double] = []
        let warm = queries.count / 10
        for (i, q) in queries.enumerated() {
            let t = DispatchTime.now().uptimeNanoseconds
            _ = try body(q)
            if i >= warm { ms.append(Double(DispatchTime.now().uptimeNanoseconds - t) / 1e6) }
        }
        return percentiles(ms, errors: 0)
    }

    func measureAsync(_ queries: [[Float]], _ body: ([Float]) async throws -> Int) async throws -> Latencies {
        var ms: [Double] = []
        var errors = 0
        let warm = queries.count / 10
        for (i, q) in queries.enumerated() {
            let t = DispatchTime.now().uptimeNanoseconds
            do { _ = try await body(q) } catch { errors += 1; continue }
            if i >= warm { ms.append(Double(DispatchTime.now().uptimeNanoseconds - t) / 1e6) }
        }
        return percentiles(ms, errors: errors)
    }

    func throughput(_ queries: [[Float]], seconds: Double, concurrency: Int,
                    _ body: @escaping @Sendable ([Float]) async throws -> Int) async throws -> (qps: Double, errors: Int) {
        let end = Date().addingTimeInterval(seconds)
        let start = Date()
        let results = await withTaskGroup(of: (Int, Int).self) { group in
            for c in 0..<concurrency {
                group.addTask {
                    var done = 0, errors = 0, i = c
                    while Date() < end {
                        do { _ = try await body(queries[i % queries.count]); done += 1 } catch { errors += 1 }
                        i += concurrency
                    }
                    return (done, errors)
                }
            }
            var total = (0, 0)
            for await r in group { total.0 += r.0; total.1 += r.1 }
            return total
        }
        return (Double(results.0) / Date().timeIntervalSince(start), results.1)
    }

    /// Open-loop steady load: identify and enrol requests are started on a fixed schedule (not when the previous
    /// one finished), so a slow cluster shows as latency and errors rather than as a lower offered rate. Every
    /// report interval prints throughput, latency percentiles, errors and each node's RSS.
    func soak(client: FacetClient, cluster: LocalCluster, queries: [[Float]], enrolments: FaceLikeGenerator.Gallery) async throws {
        say("soak: \(identifyRate) identify/s + \(enrolRate) enrol/s for \(soakSeconds) s")
        let stats = SoakStats()
        let subjects = Dictionary(grouping: 0..<enrolments.count, by: { enrolments.baseIdentities[$0] }).sorted { $0.key < $1.key }
        let startRSS = cluster.rssKiB()
        let begin = Date()
        let duration = soakSeconds, identifyRate = identifyRate, enrolRate = enrolRate, k = UInt32(k), ef = UInt32(ef)
        func schedule(rate: Double, count: Int, _ body: @escaping @Sendable (Int) async -> Void) async {
            await withTaskGroup(of: Void.self) { inner in
                var i = 0
                while Date().timeIntervalSince(begin) < duration, i < count {
                    let wait = begin.addingTimeInterval(Double(i) / rate).timeIntervalSinceNow
                    if wait > 0 { try? await Task.sleep(for: .milliseconds(Int(wait * 1000))) }
                    let n = i
                    inner.addTask { await body(n) }
                    i += 1
                }
            }
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await schedule(rate: identifyRate, count: Int.max) { i in
                    stats.add { $0.identifyAttempted += 1 }
                    let t = DispatchTime.now().uptimeNanoseconds
                    do {
                        let r = try await client.benchIdentify(queries[i % queries.count], k: k, ef: ef)
                        let ms = Double(DispatchTime.now().uptimeNanoseconds - t) / 1e6
                        stats.add { $0.identifyMs.append(ms); if r.partial { $0.partial += 1 } }
                    } catch { stats.add { $0.identifyErrors += 1 } }
                }
            }
            group.addTask {
                await schedule(rate: enrolRate, count: subjects.count) { i in
                    let (identity, rows) = subjects[i]
                    stats.add { $0.enrolAttempted += 1 }
                    let t = DispatchTime.now().uptimeNanoseconds
                    do {
                        let r = try await client.enrol(subjectID: "soak\(identity)",
                                                       embeddings: rows.map { WireEmbedding(values: enrolments.baseVector($0), modelVersion: "1") })
                        let ms = Double(DispatchTime.now().uptimeNanoseconds - t) / 1e6
                        stats.add { $0.enrolMs.append(ms); $0.enrolAcked += 1; $0.acknowledged.append(contentsOf: zip(r.templateIds, rows).map { ($0.0, $0.1) }) }
                    } catch { stats.add { $0.enrolErrors += 1 } }
                }
            }
            group.addTask { [self] in
                var last = Date()
                while Date().timeIntervalSince(begin) < duration + 1 {
                    try? await Task.sleep(for: .milliseconds(Int(reportSeconds * 1000)))
                    let w = stats.takeWindow()
                    let dt = Date().timeIntervalSince(last)
                    last = Date()
                    let i = percentiles(w.identifyMs, errors: w.identifyErrors), e = percentiles(w.enrolMs, errors: w.enrolErrors)
                    let rss = cluster.rssKiB()
                    emit([("kind", "soak"), ("t_s", Date().timeIntervalSince(begin)), ("identify_per_s", Double(w.identifyMs.count) / dt),
                          ("identify_p50_ms", i.p50), ("identify_p99_ms", i.p99), ("identify_errors", w.identifyErrors), ("partial", w.partial),
                          ("enrol_per_s", Double(w.enrolMs.count) / dt), ("enrol_p50_ms", e.p50), ("enrol_p99_ms", e.p99), ("enrol_errors", w.enrolErrors),
                          ("rss_kib", rss.map { "\($0.0)=\($0.1)" }.joined(separator: " "))],
                         text: String(format: "t=%5.0f s  identify %6.1f/s p50 %7.2f ms p99 %7.2f ms err %d partial %d | enrol %5.1f/s p50 %7.2f ms p99 %7.2f ms err %d | RSS %@",
                                      Date().timeIntervalSince(begin), Double(w.identifyMs.count) / dt, i.p50, i.p99, w.identifyErrors, w.partial,
                                      Double(w.enrolMs.count) / dt, e.p50, e.p99, w.enrolErrors,
                                      rss.map { "\($0.0) \($0.1 / 1024) MiB" }.joined(separator: ", ")))
                }
            }
        }
        // Everything acknowledged must be found (nearest neighbour at distance 0).
        let t = stats.snapshot()
        var lost = 0
        for (id, row) in t.acknowledged {
            let r = try? await client.benchIdentify(enrolments.baseVector(row), k: 3, ef: UInt32(max(ef, 64)))
            if r?.candidates.contains(where: { $0.templateID == id }) != true { lost += 1 }
        }
        let endRSS = cluster.rssKiB()
        let all = percentiles(t.allIdentifyMs, errors: t.identifyErrorsTotal)
        emit([("kind", "soak_total"), ("seconds", soakSeconds), ("identify_attempted", t.identifyAttempted), ("identify_ok", t.allIdentifyMs.count),
              ("identify_errors", t.identifyErrorsTotal), ("partial", t.partialTotal), ("identify_p50_ms", all.p50), ("identify_p99_ms", all.p99),
              ("enrol_attempted", t.enrolAttempted), ("enrol_acknowledged", t.enrolAckedTotal), ("enrol_errors", t.enrolErrorsTotal),
              ("templates_acknowledged", t.acknowledged.count), ("templates_lost", lost),
              ("rss_start_kib", startRSS.map { "\($0.0)=\($0.1)" }.joined(separator: " ")), ("rss_end_kib", endRSS.map { "\($0.0)=\($0.1)" }.joined(separator: " "))],
             text: "soak total: \(Int(soakSeconds)) s; identify attempted \(t.identifyAttempted), ok \(t.allIdentifyMs.count), errors \(t.identifyErrorsTotal), partial \(t.partialTotal), "
                 + String(format: "p50 %.2f ms p99 %.2f ms; ", all.p50, all.p99)
                 + "enrol attempted \(t.enrolAttempted), acknowledged \(t.enrolAckedTotal), errors \(t.enrolErrorsTotal); templates acknowledged \(t.acknowledged.count), lost \(lost); "
                 + "RSS start \(startRSS.map { "\($0.0) \($0.1 / 1024) MiB" }.joined(separator: ", ")), end \(endRSS.map { "\($0.0) \($0.1 / 1024) MiB" }.joined(separator: ", "))")
    }
}

/// Counters of a soak, shared by the request tasks (lock-protected).
final class SoakStats: @unchecked Sendable {
    struct Values {
        var identifyAttempted = 0, enrolAttempted = 0
        var identifyMs: [Double] = [], enrolMs: [Double] = [], identifyErrors = 0, enrolErrors = 0, enrolAcked = 0, partial = 0
        var allIdentifyMs: [Double] = [], identifyErrorsTotal = 0, enrolErrorsTotal = 0, enrolAckedTotal = 0, partialTotal = 0
        var acknowledged: [(UInt64, Int)] = []
    }
    private let lock = NSLock()
    private var v = Values()
    func add(_ f: (inout Values) -> Void) { lock.lock(); f(&v); lock.unlock() }
    /// The current interval's values; resets them and folds them into the totals.
    func takeWindow() -> Values {
        lock.lock(); defer { lock.unlock() }
        let w = v
        v.allIdentifyMs += v.identifyMs
        v.identifyErrorsTotal += v.identifyErrors; v.enrolErrorsTotal += v.enrolErrors
        v.enrolAckedTotal += v.enrolAcked; v.partialTotal += v.partial
        v.identifyMs = []; v.enrolMs = []; v.identifyErrors = 0; v.enrolErrors = 0; v.enrolAcked = 0; v.partial = 0
        return w
    }
    func snapshot() -> Values { _ = takeWindow(); lock.lock(); defer { lock.unlock() }; return v }
}

/// A coordinator and matchers as child processes of the benchmark (the same binary, `facet serve …`).
final class LocalCluster: @unchecked Sendable {  // used from the benchmark's task only
    let executable: String
    let directory: String
    let matchers: [String]
    let partitions: UInt32
    let frontend: String
    let backend: String
    private var processes: [(String, Process)] = []

    init(executable: String, directory: String, matchers: [String], partitions: UInt32, port: Int) throws {
        self.executable = executable
        self.directory = directory
        self.matchers = matchers
        self.partitions = partitions
        frontend = "tcp://127.0.0.1:\(port)"
        backend = "tcp://127.0.0.1:\(port + 1)"
    }

    func start(defaultEf: Int) throws {
        var base = NodeConfiguration()
        base.backendEndpoint = backend
        base.heartbeatIntervalMilliseconds = 250
        var c = base
        c.nodeID = "coordinator"
        c.frontendEndpoint = frontend
        c.matchers = matchers
        c.partitionCount = partitions
        c.replicationFactor = 1
        c.maxInFlight = 4096
        var nodes: [(String, String, NodeConfiguration)] = [("coordinator", "coordinator", c)]
        for m in matchers {
            var w = base
            w.nodeID = m
            w.dataDirectory = "\(directory)/\(m)"
            w.defaultEf = defaultEf
            nodes.append((m, "matcher", w))
        }
        for (name, role, config) in nodes {
            let path = "\(directory)/config/\(name).json"
            try config.write(path: path)
            let p = Process()
            p.executableURL = URL(fileURLWithPath: executable)
            p.arguments = ["serve", role, "--config", path, "--log-level", "warning", "--insecure-plaintext"]  // loopback only
            let log = "\(directory)/\(name).log"
            FileManager.default.createFile(atPath: log, contents: nil)
            let h = FileHandle(forWritingAtPath: log)!
            p.standardOutput = h
            p.standardError = h
            try p.run()
            processes.append((name, p))
        }
    }

    func waitUntilReady(_ client: FacetClient, seconds: Double, progress: (String) -> Void) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        var said = Date.distantPast
        while Date() < deadline {
            if let s = try? await client.status(includePartitions: true, timeout: .seconds(5)),
               s.partitions.count == Int(partitions), s.partitions.allSatisfy({ $0.liveReplicas >= 1 }), s.healthy { return }
            if Date().timeIntervalSince(said) > 10 { progress("waiting for the matchers to open their partitions…"); said = Date() }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw ValidationError("the cluster was not ready after \(Int(seconds)) s (logs in \(directory))")
    }

    /// RSS of every node in KiB (from /proc).
    func rssKiB() -> [(String, Int)] {
        processes.compactMap { name, p in
            guard p.isRunning, let s = try? String(contentsOfFile: "/proc/\(p.processIdentifier)/status", encoding: .utf8),
                  let line = s.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
                  let kib = Int(line.split(separator: " ").dropFirst().first ?? "") else { return nil }
            return (name, kib)
        }
    }

    func stopAll() {
        for (_, p) in processes where p.isRunning { kill(p.processIdentifier, SIGTERM) }
        let deadline = Date().addingTimeInterval(15)
        for (_, p) in processes { while p.isRunning && Date() < deadline { usleep(20_000) } }
        for (_, p) in processes where p.isRunning { kill(p.processIdentifier, SIGKILL) }
        for (_, p) in processes { p.waitUntilExit() }
        processes.removeAll()
    }
}

extension FacetClient {
    /// Identify by embedding with an explicit search breadth.
    func benchIdentify(_ query: [Float], k: UInt32, ef: UInt32) async throws(FacetError) -> WireIdentifyReply {
        var r = WireIdentifyRequest()
        r.embedding = WireEmbedding(values: query, modelVersion: "1")
        r.k = k
        r.ef = ef
        guard case .identifyReply(let reply) = try await call(.identifyRequest(r)) else {
            throw FacetError(.internalError, "the coordinator answered identify with another message")
        }
        return reply
    }
}
