import ArgumentParser
import Foundation
import FacetClient
import FacetCluster
import FacetIndex
import FacetMasking
import FacetStore
import FacetTestSupport
import FacetTransport
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

    @Option(help: "Comma-separated template counts, each measured in turn (e.g. 100000,1000000).") var templates: String = "100000"
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
    @Option(name: .customLong("ef-construction"), help: "HNSW efConstruction of the bulk-loaded partitions (the product default is 200).")
    var efConstruction: Int = 200
    @Option(name: .customLong("load-threads"), help: "Threads of the bulk load (partitions in parallel).")
    var loadThreads: Int = max(1, ProcessInfo.processInfo.activeProcessorCount)
    @Flag(help: "Reuse the partitions a previous run bulk-loaded under --data when they hold exactly the templates asked for (same seed and counts); else load them again.")
    var reuse = false
    @Flag(help: "One JSON object per result line.") var json = false
    @Flag(name: .customLong("masked-probes"), help: "Masked probes with periocular fusion: every template also holds a periocular embedding and every other one is masked; each probe is a masked face (embedding + periocular embedding) sent as IdentifyRequest.face to a coordinator running with --periocular-fusion bundled, so the matchers re-rank max(4k, 50) candidates per partition by the fused distance; the direct query does the same re-rank in-process.")
    var maskedProbes = false

    var templateCounts: [Int] { templates.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } }
    var matcherCounts: [Int] { matchers.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } }

    func validate() throws {
        guard !templateCounts.isEmpty, templateCounts.allSatisfy({ $0 >= 10 }) else { throw ValidationError("--templates takes counts ≥ 10 like 100000,1000000") }
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
        let base = data ?? (NSTemporaryDirectory() + "facet-bench-cluster-\(getpid())")
        let removeAtEnd = data == nil
        defer { if removeAtEnd { try? FileManager.default.removeItem(atPath: base) } }
        var rows: [String] = []
        for (index, count) in templateCounts.enumerated() {
            try await measure(templates: count, directory: "\(base)/n\(count)", port: port + 100 * index,
                              soak: soakSeconds > 0 && index == templateCounts.count - 1, rows: &rows)
            if removeAtEnd { try? FileManager.default.removeItem(atPath: "\(base)/n\(count)") }
        }
        if !json {
            print("")
            print("| templates | matchers | direct p50 / p99 ms | cluster p50 / p99 ms | overhead p50 / p99 ms | paired overhead p50 / p99 ms | CPU ms per query direct / cluster (client + coordinator + matchers) | q/s direct / cluster (\(concurrency) callers) | queries per CPU second direct / cluster | load |")
            print("|---|---|---|---|---|---|---|---|---|---|")
            for r in rows { print(r) }
        }
    }

    /// One template count: bulk load, then every matcher count.
    func measure(templates: Int, directory dir: String, port: Int, soak doSoak: Bool, rows: inout [String]) async throws {
        let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")

        say("generating \(templates) face-like templates and \(queries) queries (seed \(seed))")
        var generator = FaceLikeGenerator(statistics: try FaceEmbeddingStatistics.bundled(), seed: seed)
        let gallery = generator.makeGallery(count: templates, photosPerIdentity: 3, queryCount: queries)
        let soakGallery = generator.makeGallery(count: max(3, Int(soakSeconds * enrolRate * 3) + 30), photosPerIdentity: 3, queryCount: 0)
        let queryVectors = (0..<queries).map { gallery.queryVector($0) }
        // --masked-probes: a periocular embedding per template and per probe (another face-like draw: a stand-in with
        // the statistics of an embedding; what is measured is the work, not the accuracy).
        var eyes = FaceLikeGenerator(statistics: try FaceEmbeddingStatistics.bundled(), seed: seed &+ 1)
        let periocular: FaceLikeGenerator.Gallery? = maskedProbes ? eyes.makeGallery(count: templates, photosPerIdentity: 3, queryCount: queries) : nil
        let fusionWeight = Float(try PeriocularFusion.bundled().fullWeight)

        // 1. The partitions, written once (bulk load, or reused from a previous run with --reuse); each matcher count
        //    then links the partition directories into its matchers' data directories.
        let partsDir = dir + (maskedProbes ? "/partitions-periocular" : "/partitions")
        let configuration = PartitionConfiguration(dimension: 128, metric: .l2Squared, efConstruction: efConstruction)
        var reused: [Partition]?
        if reuse { reused = reusablePartitions(partsDir, templates: templates, configuration: configuration) }
        // Only the partitions this run loads again are removed (the other kind, plain or --masked-probes, stays).
        if reused == nil { try? FileManager.default.removeItem(atPath: partsDir) }
        for round in matcherCounts { try? FileManager.default.removeItem(atPath: "\(dir)/m\(round)") }
        try FileManager.default.createDirectory(atPath: partsDir, withIntermediateDirectories: true)
        let parts: [Partition]
        if let reused {
            say("reusing the \(templates) templates bulk-loaded in \(partsDir)")
            parts = reused
            emit([("kind", "load"), ("templates", templates), ("partitions", Int(partitions)), ("reused", "yes")],
                 text: "bulk load: reused \(templates) templates in \(partitions) partitions from \(partsDir)")
        } else {
            parts = try bulkLoad(gallery, periocular: periocular, into: partsDir, configuration: configuration)
        }

        // The direct query: the same partitions, searched in this process one after the other with the same k and ef,
        // top-k merged: the work of one matcher holding everything, without sockets or processes.
        let k = k, ef = ef
        // With --masked-probes: the matcher's re-rank (MatcherNode.searchNow): max(4k, 50) candidates, their records
        // read in one transaction, the fused distance for every one (the probe is masked), the k best kept.
        let depth = periocular == nil ? k : max(4 * k, 50)
        let probePeriocular = (0..<queries).map { periocular?.queryVector($0) ?? [] }
        @Sendable func direct(_ q: [Float], _ pq: [Float]) throws -> Int {
            var lists: [[WireCandidate]] = []
            lists.reserveCapacity(parts.count)
            for part in parts {
                let matches = try part.search(q, k: depth, parameters: SearchParameters(ef: max(ef, depth)))
                var fused: [TemplateID: [Float]] = [:]
                if !pq.isEmpty {
                    for case .success(let r)? in try part.templates(matches.map(\.template)) { fused[r.id] = r.periocular }
                }
                var list = matches.map { m in
                    var c = WireCandidate()
                    c.templateID = m.template.rawValue
                    c.distance = max(0, m.distance).squareRoot()
                    if let pt = fused[m.template] {
                        c.distance = fusionWeight * c.distance + (1 - fusionWeight) * euclideanDistance(pq, pt)
                    }
                    return c
                }
                if !pq.isEmpty {
                    list.sort(by: TopKMerge.precedes)
                    if list.count > k { list.removeLast(list.count - k) }
                }
                lists.append(list)
            }
            return TopKMerge.merge(lists, k: k, maxDistance: nil).count
        }

        for (round, n) in matcherCounts.enumerated() {
            let names = (0..<n).map { "matcher-\($0)" }
            let layout = try ShardLayout(partitionCount: partitions, replicationFactor: 1, matchers: names)
            let root = "\(dir)/m\(n)"
            try FileManager.default.createDirectory(atPath: root + "/config", withIntermediateDirectories: true)
            for p in layout.allPartitions {
                let owner = "\(root)/\(layout.replicas(of: p)[0])"
                try FileManager.default.createDirectory(atPath: owner, withIntermediateDirectories: true)
                try FileManager.default.createSymbolicLink(atPath: owner + "/" + String(format: "p-%05u", p),
                                                           withDestinationPath: partsDir + "/" + String(format: "p-%05u", p))
            }

            let cluster = try LocalCluster(executable: executable, directory: root, matchers: names, partitions: partitions,
                                           port: port + 10 * round)
            defer { cluster.stopAll() }
            try cluster.start(defaultEf: ef, periocularFusion: periocular != nil)
            let client = try FacetClient(endpoint: cluster.frontend, clientID: "bench", timeout: .seconds(30))
            try await cluster.waitUntilReady(client, seconds: 900) { say($0) }
            @Sendable func identify(_ q: [Float], _ pq: [Float]) async throws -> Int {
                let r = try await client.benchIdentify(q, periocular: pq, k: UInt32(k), ef: UInt32(ef))
                if r.partial { throw FacetError(.unavailable, "partial result") }
                if !pq.isEmpty, !r.candidates.allSatisfy(\.periocularFused) { throw FacetError(.internalError, "a masked probe's candidate was not fused") }
                return r.candidates.count
            }
            // Latency, one request at a time, the direct query and the cluster query of each probe back to back, in alternating order (so a
            // burst of load on the machine hits both); the first 10% are warm-up.
            say("\(n) matcher(s): \(queries) probes, direct and through the cluster, interleaved")
            var directMs: [Double] = [], clusterMs: [Double] = [], differenceMs: [Double] = []
            var errors = 0, mismatches = 0
            // CPU time (user + system) of each side, which machine load does not inflate the way it does wall time:
            // the direct query's own thread; this process minus that (the client); every node process.
            var directCPU = 0.0
            let cpuBefore = CPUSample(cluster)
            for (i, q) in queryVectors.enumerated() {
                // Which side goes first alternates, so that neither always runs right after the other.
                func timedDirect() throws -> (Int, Double) {
                    let t = DispatchTime.now().uptimeNanoseconds
                    let tc = threadCPUSeconds()
                    let expected = try direct(q, probePeriocular[i])
                    directCPU += threadCPUSeconds() - tc
                    return (expected, Double(DispatchTime.now().uptimeNanoseconds - t) / 1e6)
                }
                func timedCluster() async throws -> (Int, Double) {
                    let u = DispatchTime.now().uptimeNanoseconds
                    let got = try await identify(q, probePeriocular[i])
                    return (got, Double(DispatchTime.now().uptimeNanoseconds - u) / 1e6)
                }
                var expected = 0, got = 0, d = 0.0, c = 0.0
                do {
                    if i % 2 == 0 {
                        (expected, d) = try timedDirect()
                        (got, c) = try await timedCluster()
                    } else {
                        (got, c) = try await timedCluster()
                        (expected, d) = try timedDirect()
                    }
                } catch { errors += 1; continue }
                if got != expected { mismatches += 1 }
                if i >= queryVectors.count / 10 { directMs.append(d); clusterMs.append(c); differenceMs.append(c - d) }
            }
            let cpu = CPUSample(cluster).since(cpuBefore)
            let probes = Double(max(1, queryVectors.count - errors))
            let directCPUms = directCPU / Double(queryVectors.count) * 1000
            let clientCPUms = max(0, cpu.this - directCPU) / probes * 1000
            let coordinatorCPUms = cpu.coordinator / probes * 1000, matchersCPUms = cpu.matchers / probes * 1000
            let clusterCPUms = clientCPUms + coordinatorCPUms + matchersCPUms
            let directL = percentiles(directMs, errors: 0), clusterL = percentiles(clusterMs, errors: errors)
            let diff = percentiles(differenceMs, errors: 0)
            // Throughput: `concurrency` callers for `throughputSeconds`, through the cluster and directly; also per CPU
            // second (this process and the nodes for the cluster, this process for the direct query).
            let qps = try await throughput(count: queryVectors.count, seconds: throughputSeconds, concurrency: concurrency, cluster: cluster) { i in
                try await identify(queryVectors[i], probePeriocular[i])
            }
            let directQPS = try await throughput(count: queryVectors.count, seconds: throughputSeconds, concurrency: concurrency, cluster: nil) { i in
                try direct(queryVectors[i], probePeriocular[i])
            }
            let rss = cluster.rssKiB()
            let load = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").first.map(String.init) ?? "?"
            emit([("kind", "identify"), ("templates", templates), ("matchers", n), ("partitions", Int(partitions)), ("k", k), ("ef", ef),
                  ("direct_p50_ms", directL.p50), ("direct_p99_ms", directL.p99), ("cluster_p50_ms", clusterL.p50), ("cluster_p99_ms", clusterL.p99),
                  ("overhead_p50_ms", clusterL.p50 - directL.p50), ("overhead_p99_ms", clusterL.p99 - directL.p99),
                  ("paired_overhead_p50_ms", diff.p50), ("paired_overhead_p99_ms", diff.p99),
                  ("direct_cpu_ms_per_query", directCPUms), ("cluster_cpu_ms_per_query", clusterCPUms),
                  ("client_cpu_ms_per_query", clientCPUms), ("coordinator_cpu_ms_per_query", coordinatorCPUms),
                  ("matchers_cpu_ms_per_query", matchersCPUms),
                  ("cluster_qps", qps.qps), ("direct_qps", directQPS.qps), ("concurrency", concurrency),
                  ("cluster_queries_per_cpu_s", qps.perCPUSecond), ("direct_queries_per_cpu_s", directQPS.perCPUSecond),
                  ("errors", errors + qps.errors), ("count_mismatches", mismatches), ("load1", load),
                  ("rss_kib", rss.map { "\($0.0)=\($0.1)" }.joined(separator: " "))],
                 text: String(format: "%7d templates, %d matcher(s): direct p50 %.3f p99 %.3f ms | cluster p50 %.3f p99 %.3f ms | overhead p50 %.3f p99 %.3f ms (paired p50 %.3f p99 %.3f) | CPU per query direct %.3f ms, cluster %.3f ms (client %.3f, coordinator %.3f, matchers %.3f) | %.0f q/s cluster vs %.0f q/s direct at %d callers (%.0f vs %.0f queries per CPU second) | errors %d | load %@ | RSS %@",
                              templates, n, directL.p50, directL.p99, clusterL.p50, clusterL.p99, clusterL.p50 - directL.p50, clusterL.p99 - directL.p99,
                              diff.p50, diff.p99, directCPUms, clusterCPUms, clientCPUms, coordinatorCPUms, matchersCPUms,
                              qps.qps, directQPS.qps, concurrency, qps.perCPUSecond, directQPS.perCPUSecond, errors + qps.errors, load,
                              rss.map { "\($0.0) \($0.1 / 1024) MiB" }.joined(separator: ", ")))
            rows.append(String(format: "| %d | %d | %.2f / %.2f | %.2f / %.2f | %.2f / %.2f | %.2f / %.2f | %.2f / %.2f (%.2f + %.2f + %.2f) | %.0f / %.0f | %.0f / %.0f | %@ |",
                               templates, n, directL.p50, directL.p99, clusterL.p50, clusterL.p99, clusterL.p50 - directL.p50,
                               clusterL.p99 - directL.p99, diff.p50, diff.p99, directCPUms, clusterCPUms, clientCPUms, coordinatorCPUms,
                               matchersCPUms, directQPS.qps, qps.qps, directQPS.perCPUSecond, qps.perCPUSecond, load))

            // Soak on the last configuration.
            if doSoak, round == matcherCounts.count - 1 {
                try await soak(client: client, cluster: cluster, queries: queryVectors, enrolments: soakGallery)
            }
            await client.close()
            cluster.stopAll()
        }
    }

    /// Bulk load: the same template ids and partition of each subject that an enrolment through the cluster gives,
    /// inserted in batches of 1000 per LMDB transaction, partitions in parallel (`--load-threads`), then checkpointed
    /// (HNSW snapshot) so that the matchers open them without replaying a log.
    func bulkLoad(_ gallery: FaceLikeGenerator.Gallery, periocular: FaceLikeGenerator.Gallery?, into partsDir: String,
                  configuration: PartitionConfiguration) throws -> [Partition] {
        let placement = try ShardLayout(partitionCount: partitions, replicationFactor: 1, matchers: ["m"])
        var rowsOfPartition = [[Int]](repeating: [], count: Int(partitions))
        for i in 0..<gallery.count { rowsOfPartition[Int(placement.partition(of: "s\(gallery.baseIdentities[i])"))].append(i) }
        let byPartition = rowsOfPartition
        say("bulk-loading \(gallery.count) templates into \(partitions) partitions (\(loadThreads) threads, efConstruction \(efConstruction))")
        let t0 = Date()
        let opened = LockedValue<[UInt32: Partition]>([:])
        let failures = LockedValue<[String]>([])
        let progress = LockedValue(0)
        let next = LockedValue(0)
        let say = self.say
        DispatchQueue.concurrentPerform(iterations: loadThreads) { _ in
            while true {
                let p = next.withLock { v -> Int in defer { v += 1 }; return v }
                guard p < Int(partitions) else { return }
                do {
                    let part = try Partition.open(at: partsDir + "/" + String(format: "p-%05u", UInt32(p)), configuration: configuration)
                    let rows = byPartition[p]
                    for start in stride(from: 0, to: rows.count, by: 1000) {
                        let batch = rows[start..<min(rows.count, start + 1000)].map { i -> TemplateRecord in
                            let v = gallery.baseVector(i)
                            let subject = "s\(gallery.baseIdentities[i])"
                            let digest = TemplateIdentity.sourceDigest(WireEmbedding(values: v, modelVersion: "").littleEndianBytes)
                            let id = TemplateIdentity.templateID(subject: subject, collection: "default", sourceDigest: digest)
                            return TemplateRecord(id: TemplateID(id), subject: SubjectID(subject), collection: "default", embedding: v,
                                                  masked: periocular != nil && i % 2 == 0, modelVersion: "1", createdAtMilliseconds: 0,
                                                  periocular: periocular?.baseVector(i))
                        }
                        try part.insert(batch)
                        let done = progress.withLock { v -> Int in v += batch.count; return v }
                        if done / 50_000 != (done - batch.count) / 50_000 {
                            say("  \(done) / \(gallery.count) loaded (\(String(format: "%.0f", Date().timeIntervalSince(t0))) s)")
                        }
                    }
                    try part.checkpoint()
                    opened.withLock { $0[UInt32(p)] = part }
                } catch {
                    failures.withLock { $0.append("partition \(p): \(error)") }
                }
            }
        }
        if let f = failures.withLock({ $0.first }) { throw ValidationError("bulk load failed: \(f)") }
        let loadSeconds = Date().timeIntervalSince(t0)
        say(String(format: "loaded in %.1f s (%.0f templates/s)", loadSeconds, Double(gallery.count) / loadSeconds))
        let held = opened.withLock { $0 }
        let parts = (0..<partitions).map { held[$0]! }
        emit([("kind", "load"), ("templates", gallery.count), ("partitions", Int(partitions)), ("seconds", loadSeconds),
              ("ef_construction", efConstruction), ("threads", loadThreads)],
             text: String(format: "bulk load: %d templates into %d partitions in %.1f s (%d threads, efConstruction %d)",
                          gallery.count, Int(partitions), loadSeconds, loadThreads, efConstruction))
        return parts

    }

    /// The partitions under `partsDir` if all of them open and hold `templates` templates in all (a previous run's bulk
    /// load with the same counts); nil otherwise.
    func reusablePartitions(_ partsDir: String, templates: Int, configuration: PartitionConfiguration) -> [Partition]? {
        var parts: [Partition] = []
        for p in 0..<partitions {
            let path = partsDir + "/" + String(format: "p-%05u", p)
            guard FileManager.default.fileExists(atPath: path), let part = try? Partition.open(at: path, configuration: configuration) else {
                return nil
            }
            parts.append(part)
        }
        let total = parts.reduce(0) { $0 + $1.count }
        guard total == templates else {
            say("\(partsDir) holds \(total) templates, not \(templates): loading again")
            return nil
        }
        return parts
    }

    struct Latencies { var p50: Double; var p99: Double; var errors: Int }

    func percentiles(_ ms: [Double], errors: Int) -> Latencies {
        let s = ms.sorted()
        func p(_ q: Double) -> Double { quantile(ofSorted: s, q) ?? .nan }
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

    /// `concurrency` callers for `seconds`: queries per second, errors, and queries per CPU second (this process's CPU,
    /// plus the nodes' when `cluster` is given).
    /// `body` gets the index of the probe to ask (cycling through `count` probes).
    func throughput(count: Int, seconds: Double, concurrency: Int, cluster: LocalCluster?,
                    _ body: @escaping @Sendable (Int) async throws -> Int) async throws -> (qps: Double, errors: Int, perCPUSecond: Double) {
        let end = Date().addingTimeInterval(seconds)
        let start = Date()
        let cpuBefore = CPUSample(cluster)
        let results = await withTaskGroup(of: (Int, Int).self) { group in
            for c in 0..<concurrency {
                group.addTask {
                    var done = 0, errors = 0, i = c
                    while Date() < end {
                        do { _ = try await body(i % count); done += 1 } catch { errors += 1 }
                        i += concurrency
                    }
                    return (done, errors)
                }
            }
            var total = (0, 0)
            for await r in group { total.0 += r.0; total.1 += r.1 }
            return total
        }
        let cpu = CPUSample(cluster).since(cpuBefore)
        return (Double(results.0) / Date().timeIntervalSince(start), results.1, Double(results.0) / max(1e-9, cpu.this + cpu.coordinator + cpu.matchers))
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

    func start(defaultEf: Int, periocularFusion: Bool = false) throws {
        // Liveness 8 × 250 ms = 2 s: no false deaths while the machine is loaded. Plaintext: loopback only.
        var local = LocalNodes(directory: directory, frontend: frontend, backend: backend, heartbeatMilliseconds: 250, liveness: 8,
                               partitions: partitions, replicas: 1, matchers: matchers)
        local.configure("coordinator") { $0.maxInFlight = 4096 }
        if periocularFusion { local.configure("coordinator") { $0.periocularFusion = "bundled" } }
        local.configure("matcher") { $0.defaultEf = defaultEf }
        try local.secure(false, directory: directory)
        try local.write(directory: directory)
        for (name, role, _) in local.nodes {
            let path = "\(directory)/config/\(name).json"
            let p = Process()
            p.executableURL = URL(fileURLWithPath: executable)
            p.arguments = ["serve", role, "--config", path, "--log-level", "warning", "--insecure-plaintext"]  // loopback only
            let log = "\(directory)/\(name).log"
            _ = FileManager.default.createFile(atPath: log, contents: nil)
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

    /// CPU seconds (user + system) used so far by every running node (from /proc/PID/stat, in clock ticks).
    func cpuSeconds() -> [(String, Double)] {
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        return processes.compactMap { name, p in
            guard p.isRunning, let s = try? String(contentsOfFile: "/proc/\(p.processIdentifier)/stat", encoding: .utf8),
                  let close = s.lastIndex(of: ")") else { return nil }
            // After "pid (comm)": state is field 3, utime field 14, stime field 15.
            let fields = s[s.index(after: close)...].split(separator: " ")
            guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
            return (name, (user + system) / ticks)
        }
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
    /// An identify by embedding, or (with `periocular`) by a masked face with that periocular embedding.
    func benchIdentify(_ query: [Float], periocular: [Float] = [], k: UInt32, ef: UInt32) async throws(FacetError) -> WireIdentifyReply {
        var r = WireIdentifyRequest()
        if periocular.isEmpty {
            r.embedding = WireEmbedding(values: query, modelVersion: "1")
        } else {
            r.face = WireFace.with {
                $0.embedding = WireEmbedding(values: query, modelVersion: "1")
                $0.periocularEmbedding = WireEmbedding(values: periocular, modelVersion: "1")
                $0.masked = true
            }
        }
        r.k = k
        r.ef = ef
        guard case .identifyReply(let reply) = try await call(.identifyRequest(r)) else {
            throw FacetError(.internalError, "the coordinator answered identify with another message")
        }
        return reply
    }
}

/// CPU seconds (user + system) used so far by this process and by a local cluster's nodes.
struct CPUSample {
    var this: Double
    var coordinator: Double
    var matchers: Double

    init(this: Double, coordinator: Double, matchers: Double) {
        self.this = this
        self.coordinator = coordinator
        self.matchers = matchers
    }

    init(_ cluster: LocalCluster?) {
        var u = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &u)
        this = Double(u.ru_utime.tv_sec) + Double(u.ru_utime.tv_usec) / 1e6 + Double(u.ru_stime.tv_sec) + Double(u.ru_stime.tv_usec) / 1e6
        let nodes = cluster?.cpuSeconds() ?? []
        coordinator = nodes.filter { $0.0 == "coordinator" }.reduce(0) { $0 + $1.1 }
        matchers = nodes.filter { $0.0 != "coordinator" }.reduce(0) { $0 + $1.1 }
    }

    func since(_ before: CPUSample) -> CPUSample {
        CPUSample(this: this - before.this, coordinator: coordinator - before.coordinator, matchers: matchers - before.matchers)
    }
}

/// CPU seconds used so far by the calling thread.
func threadCPUSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
