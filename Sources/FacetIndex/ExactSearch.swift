import COpenBLAS
import CFacetKernels

/// Exact k-nearest-neighbour search: the ground truth for recall and the fallback for small partitions.
///
/// Queries are processed in batches with one `cblas_sgemm` of queries × base block, so the inner
/// products run at BLAS speed; `‖q‖² + ‖x‖² − 2 q·x` gives squared L2.
public enum ExactSearch {
    /// The `k` nearest base rows for each query row.
    ///
    /// - Parameters:
    ///   - queries: `queryCount × dimension` floats, row-major.
    ///   - base: `baseCount × dimension` floats, row-major.
    ///   - ids: the id of each base row (default: the row number).
    ///   - filter: keeps only ids it accepts.
    /// - Returns: one list per query, closest first, ties broken by smaller id.
    /// - Complexity: O(queryCount × baseCount × dimension).
    public static func search(queries: UnsafeBufferPointer<Float>, base: UnsafeBufferPointer<Float>, dimension: Int,
                              k: Int, metric: Metric = .l2Squared, ids: UnsafeBufferPointer<VectorID>? = nil,
                              filter: ((VectorID) -> Bool)? = nil) -> [[Neighbor]] {
        precondition(dimension > 0 && queries.count % dimension == 0 && base.count % dimension == 0)
        let nq = queries.count / dimension, nb = base.count / dimension
        guard nq > 0 else { return [] }
        var heaps = [TopK](repeating: TopK(k: k), count: nq)
        guard nb > 0, k > 0 else { return heaps.map { $0.sorted() } }
        let baseNorms = UnsafeMutablePointer<Float>.allocate(capacity: nb)
        defer { baseNorms.deallocate() }
        facet_row_norms_f32(base.baseAddress!, nb, dimension, dimension, baseNorms)
        let queryNorms = UnsafeMutablePointer<Float>.allocate(capacity: nq)
        defer { queryNorms.deallocate() }
        facet_row_norms_f32(queries.baseAddress!, nq, dimension, dimension, queryNorms)

        let queryBlock = Swift.min(nq, 256)
        let baseBlock = Swift.min(nb, 8192)
        let products = UnsafeMutablePointer<Float>.allocate(capacity: queryBlock * baseBlock)
        defer { products.deallocate() }
        var q0 = 0
        while q0 < nq {
            let qn = Swift.min(queryBlock, nq - q0)
            var b0 = 0
            while b0 < nb {
                let bn = Swift.min(baseBlock, nb - b0)
                // products[qn × bn] = Q[qn × d] · B[bn × d]ᵀ
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(qn), Int32(bn), Int32(dimension), 1,
                            queries.baseAddress! + q0 * dimension, Int32(dimension),
                            base.baseAddress! + b0 * dimension, Int32(dimension), 0, products, Int32(bn))
                for qi in 0..<qn {
                    let row = products + qi * bn
                    let qNorm = queryNorms[q0 + qi]
                    var heap = heaps[q0 + qi]
                    var threshold = heap.threshold
                    for bi in 0..<bn {
                        let distance: Float
                        switch metric {
                        case .l2Squared: distance = Swift.max(0, qNorm + baseNorms[b0 + bi] - 2 * row[bi])
                        case .innerProduct: distance = 1 - row[bi]
                        }
                        if distance > threshold { continue }
                        let id = ids?[b0 + bi] ?? VectorID(UInt64(b0 + bi))
                        if let filter, !filter(id) { continue }
                        heap.consider(id, distance)
                        threshold = heap.threshold
                    }
                    heaps[q0 + qi] = heap
                }
                b0 += bn
            }
            q0 += qn
        }
        return heaps.map { $0.sorted() }
    }

    /// Convenience over arrays of vectors.
    public static func search(queries: [[Float]], base: [[Float]], k: Int, metric: Metric = .l2Squared) -> [[Neighbor]] {
        guard let d = queries.first?.count ?? base.first?.count else { return [] }
        let q = queries.flatMap { $0 }, b = base.flatMap { $0 }
        return q.withUnsafeBufferPointer { qp in b.withUnsafeBufferPointer { bp in
            search(queries: qp, base: bp, dimension: d, k: k, metric: metric)
        } }
    }
}

/// Recall@k: the fraction of the true k nearest ids that an approximate answer found.
public enum Recall {
    /// Mean over queries of `|approx ∩ truth[..k]| / k` (with `min(k, truth.count)` as denominator).
    public static func atK(_ k: Int, approximate: [[VectorID]], truth: [[VectorID]]) -> Double {
        precondition(approximate.count == truth.count, "one answer per query")
        guard !truth.isEmpty else { return 1 }
        var total = 0.0
        for (a, t) in zip(approximate, truth) {
            let want = Set(t.prefix(k))
            guard !want.isEmpty else { total += 1; continue }
            let hit = a.prefix(k).reduce(0) { $0 + (want.contains($1) ? 1 : 0) }
            total += Double(hit) / Double(want.count)
        }
        return total / Double(truth.count)
    }
}
