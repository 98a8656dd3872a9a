import ArgumentParser
import Foundation
import FacetIndex
import FacetTestSupport
import FacetStore

/// `facet bench index`: build an HNSW index on a base set, find the smallest ef reaching a target
/// recall@k against exact ground truth, and report queries per second, build time and memory.
struct BenchIndex: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "index",
        abstract: "Recall, QPS, build time and memory of the HNSW index on .fvecs data or synthetic face-like embeddings.",
        discussion: """
        With --json prints one line per thread count:
        {"n": N, "dim": D, "k": K, "recall": R, "ef": EF, "qps": Q, "build_seconds": S, "memory_bytes": M, "threads": T}
        Progress goes to standard error.
        """
    )

    @Option(help: "Base vectors (.fvecs).") var base: String?
    @Option(help: "Query vectors (.fvecs).") var query: String?
    @Option(help: "Ground-truth neighbour ids (.ivecs); computed exactly (OpenBLAS) when absent.") var groundtruth: String?
    @Option(help: "Generate N face-like base vectors (≈3 photos per identity) instead of reading files.") var synthetic: Int?
    @Option(help: "Queries to generate with --synthetic.") var syntheticQueries: Int = 10_000
    @Option(help: "Directory with mean.npy, between_cov.npy, within_cov.npy (default: the copy bundled with Facet).") var stats: String?
    @Option(help: "Seed for --synthetic.") var seed: UInt64 = 7
    @Option(help: "With --synthetic: write base.fvecs, query.fvecs and groundtruth.ivecs (k=100) into this directory.") var saveDir: String?
    @Option(help: "Neighbours per query.") var k: Int = 10
    @Option(help: "Smallest recall@k the reported ef must reach.") var targetRecall: Double = 0.95
    @Option(help: "Links per node (M).") var m: Int = 16
    @Option(help: "Candidate list size while building.") var efConstruction: Int = 200
    @Option(help: "Search threads for the QPS measurement; a comma-separated list gives one result per value.") var threads: String = "1"
    @Option(help: "Threads inserting concurrently while building (the other libraries get the same number).") var buildThreads: Int = 1
    @Option(help: "Vector storage in the graph: float32, float16 or int8 (quantised storage re-ranks on the full vectors).") var storage: String = "float32"
    @Option(help: "With quantised storage: candidates re-ranked on full vectors (default: ef).") var rerank: Int?
    @Option(help: "Use only the first N base vectors.") var limit: Int?
    @Option(help: "Use only the first N queries.") var queryLimit: Int?
    @Flag(help: "Print the result as one JSON object per thread count.") var json = false
    @Flag(help: "With --synthetic and --save-dir: write the data and ground truth, then stop.") var generateOnly = false
    @Option(help: "Instead of the index benchmark: store the base vectors in a durable partition at this directory (batches of 1000), then measure reopening it.") var partitionStartup: String?

    func validate() throws {
        if synthetic == nil && (base == nil || query == nil) { throw ValidationError("give --base and --query, or --synthetic N") }
        if let n = synthetic, n < 10 { throw ValidationError("--synthetic needs at least 10 vectors") }
        if k < 1 { throw ValidationError("--k must be positive") }
        if !(0...1).contains(targetRecall) { throw ValidationError("--target-recall is a fraction in 0...1") }
        if !["float32", "float16", "int8"].contains(storage) { throw ValidationError("--storage is float32, float16 or int8") }
        if let r = rerank, r < 1 { throw ValidationError("--rerank must be positive") }
        if buildThreads < 1 { throw ValidationError("--build-threads must be positive") }
        if threadCounts.isEmpty || threadCounts.contains(where: { $0 < 1 }) { throw ValidationError("--threads takes positive integers, e.g. 1 or 1,2") }
    }

    var threadCounts: [Int] { threads.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } }

    func run() throws {
        let progress = Progress()
        // 1. data
        var dimension: Int
        var baseValues: [Float], queryValues: [Float]
        var truth: [[Int32]]? = nil
        if let n = synthetic {
            let statistics = try stats.map { try FaceEmbeddingStatistics(directory: URL(fileURLWithPath: $0)) } ?? FaceEmbeddingStatistics.bundled()
            progress.say("generating \(n) face-like vectors and \(syntheticQueries) queries (seed \(seed))")
            var generator = FaceLikeGenerator(statistics: statistics, seed: seed)
            let gallery = generator.makeGallery(count: n, queryCount: syntheticQueries)
            dimension = gallery.dimension; baseValues = gallery.base; queryValues = gallery.queries
        } else {
            let b = try VectorFiles.readFvecs(base!, limit: limit)
            let q = try VectorFiles.readFvecs(query!, limit: queryLimit)
            guard b.dimension == q.dimension else { throw ValidationError("base is \(b.dimension)-d, queries are \(q.dimension)-d") }
            dimension = b.dimension; baseValues = b.values; queryValues = q.values
            if let g = groundtruth, limit == nil { truth = try VectorFiles.readIvecs(g, limit: queryLimit) }
        }
        if let limit, synthetic != nil { baseValues = Array(baseValues.prefix(limit * dimension)) }
        if let queryLimit { queryValues = Array(queryValues.prefix(queryLimit * dimension)) }
        let n = baseValues.count / dimension, nq = queryValues.count / dimension
        progress.say("\(n) base and \(nq) query vectors, \(dimension)-d")

        // 2. ground truth
        if truth == nil || truth!.count < nq || (truth!.first?.count ?? 0) < k {
            let kTruth = saveDir != nil ? Swift.max(k, 100) : k
            progress.say("exact ground truth (k=\(kTruth)) with OpenBLAS…")
            let t0 = now()
            let exact = queryValues.withUnsafeBufferPointer { q in baseValues.withUnsafeBufferPointer { b in
                ExactSearch.search(queries: q, base: b, dimension: dimension, k: kTruth)
            } }
            truth = exact.map { $0.map { Int32(truncatingIfNeeded: $0.id.rawValue) } }
            progress.say(String(format: "ground truth in %.1f s", now() - t0))
        }
        if let dir = saveDir {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try VectorFiles.writeFvecs(dir + "/base.fvecs", dimension: dimension, values: baseValues)
            try VectorFiles.writeFvecs(dir + "/query.fvecs", dimension: dimension, values: queryValues)
            try VectorFiles.writeIvecs(dir + "/groundtruth.ivecs", rows: truth!)
            progress.say("wrote \(dir)/{base,query}.fvecs and groundtruth.ivecs")
            if generateOnly { return }
        }
        if let dir = partitionStartup {
            try measurePartitionStartup(directory: dir, base: baseValues, dimension: dimension, progress: progress)
            return
        }
        let truthIDs = truth!.prefix(nq).map { $0.prefix(k).map { VectorID(UInt64(UInt32(bitPattern: $0))) } }

        // 3. build
        let rssBefore = residentBytes()
        let vectorStorage: VectorStorage
        switch storage {
        case "float16": vectorStorage = .float16
        case "int8":   // ranges from (at most) the first 10,000 base vectors
            vectorStorage = .int8(ScalarQuantizer.fit(sample: Array(baseValues.prefix(Swift.min(n, 10_000) * dimension)), dimension: dimension))
        default: vectorStorage = .float32
        }
        let index = try HNSWIndex(configuration: HNSWConfiguration(dimension: dimension, m: m, efConstruction: efConstruction,
                                                                    initialCapacity: n, storage: vectorStorage))
        // Re-ranking reads full vectors from outside the index (here the loaded base set; in a partition, LMDB).
        let fullVector: ((VectorID, UnsafeMutableBufferPointer<Float>) -> Bool)? = storage == "float32" ? nil : { id, out in
            let row = Int(id.rawValue)
            guard row < n else { return false }
            baseValues.withUnsafeBufferPointer { b in _ = out.update(fromContentsOf: b[row * dimension..<(row + 1) * dimension]) }
            return true
        }
        let t0 = now(), c0 = cpuNow()
        let reportEvery = Swift.max(n / 20, 1)
        let built = Counter()
        let failures = ErrorBox()
        baseValues.withUnsafeBufferPointer { b in
            DispatchQueue.concurrentPerform(iterations: buildThreads) { worker in
                var i = worker
                while i < n {
                    do {
                        try index.insert(UnsafeBufferPointer(rebasing: b[i * dimension..<(i + 1) * dimension]), id: VectorID(UInt64(i)))
                    } catch { failures.set(error); return }
                    let done = built.increment()
                    if done % reportEvery == 0 && n >= 20_000 {
                        let elapsed = now() - t0
                        progress.say(String(format: "built %d/%d (%.0f%%) in %.1f s, ~%.0f s left", done, n, 100 * Double(done) / Double(n),
                                            elapsed, elapsed / Double(done) * Double(n - done)))
                    }
                    i += buildThreads
                }
            }
        }
        if let e = failures.error { throw e }
        let buildSeconds = now() - t0, buildCPUSeconds = cpuNow() - c0
        let rssDelta = residentBytes() - rssBefore
        let memory = index.memoryBytes
        progress.say(String(format: "build %.2f s (%.2f s CPU); index memory %d bytes (rss delta %d)", buildSeconds, buildCPUSeconds, memory, rssDelta))

        // 4. smallest ef reaching the target recall
        func recall(ef: Int) throws -> Double {
            var answers = [[VectorID]](repeating: [], count: nq)
            try queryValues.withUnsafeBufferPointer { q in
                for i in 0..<nq {
                    answers[i] = try index.search(UnsafeBufferPointer(rebasing: q[i * dimension..<(i + 1) * dimension]), k: k,
                                                  parameters: SearchParameters(ef: ef, rerank: rerank), filter: nil,
                                                  fullVector: fullVector).map(\.id)
                }
            }
            return Recall.atK(k, approximate: answers, truth: truthIDs)
        }
        let ladder = [10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 4096].filter { $0 >= k } + [n]
        var lowFail = k - 1
        var chosen = ladder.last!
        var chosenRecall = 0.0
        for ef in ladder {
            let r = try recall(ef: ef)
            progress.say(String(format: "ef %d: recall@%d %.4f", ef, k, r))
            if r >= targetRecall { chosen = ef; chosenRecall = r; break }
            lowFail = ef
            chosenRecall = r
        }
        var lo = lowFail, hi = chosen   // refine: smallest ef in (lo, hi] reaching the target
        while hi - lo > Swift.max(1, hi / 16) {
            let mid = (lo + hi) / 2
            let r = try recall(ef: mid)
            progress.say(String(format: "ef %d: recall@%d %.4f", mid, k, r))
            if r >= targetRecall { hi = mid; chosenRecall = r } else { lo = mid }
        }
        chosen = hi
        if chosenRecall < targetRecall || hi != chosen { chosenRecall = try recall(ef: chosen) }
        chosenRecall = try recall(ef: chosen)

        // 5. throughput at that ef
        for t in threadCounts {
            var best = 0.0, bestCPU = 0.0
            for _ in 0..<2 {
                let start = now(), cpuStart = cpuNow()
                try runQueries(index: index, queries: queryValues, dimension: dimension, k: k,
                               parameters: SearchParameters(ef: chosen, rerank: rerank), fullVector: fullVector, threads: t)
                best = Swift.max(best, Double(nq) / (now() - start))
                bestCPU = Swift.max(bestCPU, Double(nq) / (cpuNow() - cpuStart))
            }
            progress.say(String(format: "threads %d: %.0f queries/s at ef %d (%.0f per CPU second)", t, best, chosen, bestCPU))
            if json {
                print("{\"n\": \(n), \"dim\": \(dimension), \"k\": \(k), \"recall\": \(String(format: "%.4f", chosenRecall)), \"ef\": \(chosen), "
                      + "\"qps\": \(String(format: "%.1f", best)), \"build_seconds\": \(String(format: "%.3f", buildSeconds)), "
                      + "\"cpu_qps\": \(String(format: "%.1f", bestCPU)), \"build_cpu_seconds\": \(String(format: "%.3f", buildCPUSeconds)), "
                      + "\"memory_bytes\": \(memory), \"threads\": \(t), \"build_threads\": \(buildThreads), \"storage\": \"\(storage)\"}")
            } else {
                print(String(format: "n=%d dim=%d k=%d recall@%d=%.4f ef=%d qps=%.1f build=%.2fs memory=%.1fMB threads=%d",
                             n, dimension, k, k, chosenRecall, chosen, best, buildSeconds, Double(memory) / 1e6, t))
            }
        }
        progress.say("rss_delta_bytes=\(rssDelta)")
    }

    /// Loads `base` into a durable partition and times reopening it (snapshot + log replay).
    private func measurePartitionStartup(directory: String, base: [Float], dimension: Int, progress: Progress) throws {
        let n = base.count / dimension
        var config = PartitionConfiguration(dimension: dimension, m: m, efConstruction: efConstruction)
        config.snapshotInterval = Swift.max(50_000, n / 4)
        var t0 = now()
        do {
            let partition = try Partition.open(at: directory, configuration: config)
            var i = 0
            while i < n {
                let records = (i..<Swift.min(i + 1000, n)).map { j in
                    TemplateRecord(id: TemplateID(UInt64(j)), subject: SubjectID("s\(j / 3)"),
                                   embedding: Array(base[j * dimension..<(j + 1) * dimension]), modelVersion: "bench")
                }
                try partition.insert(records)
                i += records.count
                if (i / 1000) % 50 == 0 { progress.say("stored \(i)/\(n) templates in \(String(format: "%.1f", now() - t0)) s") }
            }
            progress.say(String(format: "stored %d templates durably in %.1f s", n, now() - t0))
        }
        for round in 1...2 {
            t0 = now()
            let reopened = try Partition.open(at: directory, configuration: config)
            let seconds = now() - t0
            progress.say("reopen \(round): \(reopened.openReport)")
            print("{\"n\": \(n), \"dim\": \(dimension), \"startup_seconds\": \(String(format: "%.3f", seconds)), "
                  + "\"index_source\": \"\(reopened.openReport.indexSource.rawValue)\", \"replayed\": \(reopened.openReport.replayedChanges)}")
        }
    }

    private func runQueries(index: HNSWIndex, queries: [Float], dimension: Int, k: Int, parameters: SearchParameters,
                            fullVector: ((VectorID, UnsafeMutableBufferPointer<Float>) -> Bool)?, threads: Int) throws {
        let nq = queries.count / dimension
        let failures = ErrorBox()
        queries.withUnsafeBufferPointer { q in
            DispatchQueue.concurrentPerform(iterations: threads) { worker in
                var i = worker
                var sink = 0
                while i < nq {
                    do {
                        sink &+= try index.search(UnsafeBufferPointer(rebasing: q[i * dimension..<(i + 1) * dimension]), k: k,
                                                  parameters: parameters, filter: nil, fullVector: fullVector).count
                    } catch { failures.set(error) }
                    i += threads
                }
                if sink < 0 { print(sink) }
            }
        }
        if let e = failures.error { throw e }
    }
}

private final class Counter: @unchecked Sendable {   // guarded by `lock`
    private let lock = NSLock()
    private var value = 0
    func increment() -> Int { lock.lock(); defer { lock.unlock() }; value += 1; return value }
}

private final class ErrorBox: @unchecked Sendable {   // guarded by `lock`
    private let lock = NSLock()
    private var stored: Error?
    var error: Error? { lock.lock(); defer { lock.unlock() }; return stored }
    func set(_ e: Error) { lock.lock(); stored = e; lock.unlock() }
}

private struct Progress {
    let start = now()
    func say(_ message: String) {
        FileHandle.standardError.write(Data((String(format: "[bench index %7.1fs] ", now() - start) + message + "\n").utf8))
    }
}

/// CPU time used by the whole process (all threads), in seconds: on a loaded machine, queries per CPU second
/// are a steadier measure than queries per wall-clock second.
private func cpuNow() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

private func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// Resident set size from /proc/self/statm (Linux); 0 elsewhere.
func residentBytes() -> Int {
    guard let s = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = s.split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}
