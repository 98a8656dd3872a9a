import ArgumentParser
import Foundation
import FacetIndex
import FacetStore
import FacetTestSupport

/// `facet bench rerank`: what the matcher's periocular re-rank costs on top of the search. A masked probe's identify
/// searches each partition `--depth` deep and reads every candidate's record (its periocular embedding) to fuse the
/// distances; this measures, on one partition of synthetic face-like templates (each with a periocular embedding),
/// plaintext and encrypted at rest: the search alone, reading the candidates one transaction each (the matcher before
/// session 10) and in one transaction (`Partition.templates(_:)`, the matcher now). Reads are of the same records in
/// the same order, so the two read columns compare the access pattern only.
struct BenchRerank: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rerank",
        abstract: "Cost of the periocular re-rank's record reads per partition search, one read transaction each vs one for all.")

    @Option(help: "Templates in the partition.") var templates: Int = 20_000
    @Option(help: "Queries (the first 10% warm-up).") var queries: Int = 1_000
    @Option(help: "Candidates searched and read per query (the matcher's re-rank depth: max(4k, 50)).") var depth: Int = 50
    @Option(help: "HNSW search breadth (at least --depth is used).") var ef: Int = 64
    @Option(help: "Seed of the synthetic templates.") var seed: UInt64 = 7

    func validate() throws {
        guard templates >= 100, queries >= 10, depth >= 1 else { throw ValidationError("--templates ≥ 100, --queries ≥ 10, --depth ≥ 1") }
    }

    func run() throws {
        var generator = FaceLikeGenerator(statistics: try FaceEmbeddingStatistics.bundled(), seed: seed)
        let g = generator.makeGallery(count: templates, photosPerIdentity: 3, queryCount: queries)
        var eyes = FaceLikeGenerator(statistics: try FaceEmbeddingStatistics.bundled(), seed: seed + 1)
        let h = eyes.makeGallery(count: templates, photosPerIdentity: 3, queryCount: 0)
        let records = (0..<templates).map { i in
            TemplateRecord(id: TemplateID(UInt64(i + 1)), subject: SubjectID("person-\(g.baseIdentities[i])"), embedding: g.baseVector(i),
                           masked: i % 2 == 0, modelVersion: "1", periocular: h.baseVector(i))
        }
        print("| at rest | templates | depth | search p50 / p99 ms | + reads, one transaction each: p50 / p99 ms | + reads, one transaction: p50 / p99 ms | µs per record read: each / batch |")
        print("|---|---|---|---|---|---|---|")
        for encrypted in [false, true] {
            let dir = NSTemporaryDirectory() + "facet-bench-rerank-\(UInt32.random(in: 0...UInt32.max))"
            defer { try? FileManager.default.removeItem(atPath: dir) }
            var configuration = PartitionConfiguration(dimension: g.dimension, metric: .l2Squared)
            if encrypted { configuration.sealer = EncryptedTemplateSealer(master: MasterKey.generate()) }
            let part = try Partition.open(at: dir, configuration: configuration)
            for start in stride(from: 0, to: records.count, by: 1000) {
                try part.insert(Array(records[start..<min(records.count, start + 1000)]))
            }
            FileHandle.standardError.write(Data("[bench rerank] \(encrypted ? "encrypted" : "plaintext") partition of \(templates) loaded\n".utf8))
            let parameters = SearchParameters(ef: max(ef, depth))
            var search: [Double] = [], each: [Double] = [], batch: [Double] = []
            var readCount = 0
            for q in 0..<queries {
                let query = g.queryVector(q)
                let t0 = DispatchTime.now().uptimeNanoseconds
                let matches = try part.search(query, k: depth, parameters: parameters)
                let t1 = DispatchTime.now().uptimeNanoseconds
                var found = 0
                for m in matches where try part.template(m.template)?.periocular != nil { found += 1 }
                let t2 = DispatchTime.now().uptimeNanoseconds
                var foundBatch = 0
                for case .success(let r)? in try part.templates(matches.map(\.template)) where r.periocular != nil { foundBatch += 1 }
                let t3 = DispatchTime.now().uptimeNanoseconds
                guard found == matches.count, foundBatch == found else {
                    throw ValidationError("query \(q): read \(found) / \(foundBatch) of \(matches.count) candidates")
                }
                guard q >= queries / 10 else { continue }
                search.append(Double(t1 - t0) / 1e6)
                each.append(Double(t2 - t1) / 1e6)
                batch.append(Double(t3 - t2) / 1e6)
                readCount += matches.count
            }
            func p(_ v: [Double], _ q: Double) -> Double { quantile(ofSorted: v.sorted(), q) ?? .nan }
            let perEach = each.reduce(0, +) * 1000 / Double(readCount), perBatch = batch.reduce(0, +) * 1000 / Double(readCount)
            print(String(format: "| %@ | %d | %d | %.3f / %.3f | %.3f / %.3f | %.3f / %.3f | %.2f / %.2f |", encrypted ? "encrypted" : "plaintext",
                         templates, depth, p(search, 0.5), p(search, 0.99), p(each, 0.5), p(each, 0.99), p(batch, 0.5), p(batch, 0.99),
                         perEach, perBatch))
        }
    }
}
