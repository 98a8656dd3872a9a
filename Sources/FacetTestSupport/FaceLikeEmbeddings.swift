import Foundation
import COpenBLAS
import FacetIndex

/// Statistics of real face embeddings (dlib ResNet, 128-D, LFW): the mean, the covariance of
/// identity centres and the covariance of photos around their centre. See `Resources/face_embedding_stats/README.md`.
public struct FaceEmbeddingStatistics: Sendable {
    public var dimension: Int
    public var mean: [Float]
    public var betweenCovariance: [Float]   // dimension × dimension, row-major
    public var withinCovariance: [Float]

    /// Reads `mean.npy`, `between_cov.npy`, `within_cov.npy` from `directory`.
    public init(directory: URL) throws {
        let mean = try NumpyArray(contentsOf: directory.appendingPathComponent("mean.npy"))
        let between = try NumpyArray(contentsOf: directory.appendingPathComponent("between_cov.npy"))
        let within = try NumpyArray(contentsOf: directory.appendingPathComponent("within_cov.npy"))
        let d = mean.values.count
        guard between.shape == [d, d], within.shape == [d, d] else {
            throw NumpyArray.ReadError.malformed(path: directory.path, reason: "covariances are not \(d)×\(d)")
        }
        dimension = d; self.mean = mean.values; betweenCovariance = between.values; withinCovariance = within.values
    }

    /// The copy committed with this module (measured on LFW; 130 kB).
    public static func bundled() throws -> FaceEmbeddingStatistics {
        guard let url = Bundle.module.url(forResource: "face_embedding_stats", withExtension: nil, subdirectory: "Resources")
                ?? Bundle.module.url(forResource: "face_embedding_stats", withExtension: nil) else {
            throw NumpyArray.ReadError.unreadable(path: "FacetTestSupport resources/face_embedding_stats")
        }
        return try FaceEmbeddingStatistics(directory: url)
    }
}

/// Seeded generator of face-like galleries: identity centres ~ N(mean, between), photos ~ N(centre, within),
/// every vector L2-normalised — the geometry of real galleries (same-person distance ≈ 0.30, different ≈ 0.58).
public struct FaceLikeGenerator {
    public let statistics: FaceEmbeddingStatistics
    private var rng: SplitMix64
    private let betweenFactor: [Float]   // lower-triangular L with L·Lᵀ = Σ_between
    private let withinFactor: [Float]

    public init(statistics: FaceEmbeddingStatistics, seed: UInt64) {
        self.statistics = statistics
        rng = SplitMix64(seed: seed)
        betweenFactor = Self.choleskyFactor(statistics.betweenCovariance, dimension: statistics.dimension)
        withinFactor = Self.choleskyFactor(statistics.withinCovariance, dimension: statistics.dimension)
    }

    /// A gallery: `count` photos of `⌈count / photosPerIdentity⌉` identities, plus `queryCount` further
    /// photos of enrolled identities (chosen uniformly).
    public struct Gallery: Sendable {
        public var dimension: Int
        public var base: [Float]            // count × dimension
        public var baseIdentities: [Int32]
        public var queries: [Float]         // queryCount × dimension
        public var queryIdentities: [Int32]
        public var count: Int { baseIdentities.count }
        public func baseVector(_ i: Int) -> [Float] { Array(base[i * dimension..<(i + 1) * dimension]) }
        public func queryVector(_ i: Int) -> [Float] { Array(queries[i * dimension..<(i + 1) * dimension]) }
    }

    public mutating func makeGallery(count: Int, photosPerIdentity: Int = 3, queryCount: Int) -> Gallery {
        let d = statistics.dimension
        let identities = Swift.max(1, (count + photosPerIdentity - 1) / photosPerIdentity)
        var centres = gaussianRows(identities, factor: betweenFactor)
        for i in 0..<identities { for j in 0..<d { centres[i * d + j] += statistics.mean[j] } }
        var baseIDs = [Int32](repeating: 0, count: count)
        for i in 0..<count { baseIDs[i] = Int32(i / photosPerIdentity) }
        var queryIDs = [Int32](repeating: 0, count: queryCount)
        for i in 0..<queryCount { queryIDs[i] = Int32(Int(rng.next() % UInt64(identities))) }
        let base = photos(of: baseIDs, centres: centres)
        let queries = photos(of: queryIDs, centres: centres)
        return Gallery(dimension: d, base: base, baseIdentities: baseIDs, queries: queries, queryIdentities: queryIDs)
    }

    private mutating func photos(of ids: [Int32], centres: [Float]) -> [Float] {
        let d = statistics.dimension
        var out = gaussianRows(ids.count, factor: withinFactor)
        out.withUnsafeMutableBufferPointer { o in
            for (i, id) in ids.enumerated() {
                let row = o.baseAddress! + i * d
                var norm: Float = 0
                for j in 0..<d { row[j] += centres[Int(id) * d + j]; norm += row[j] * row[j] }
                let inv = norm > 0 ? 1 / norm.squareRoot() : 1
                for j in 0..<d { row[j] *= inv }
            }
        }
        return out
    }

    /// `rows × d` matrix Z·Lᵀ with Z standard normal (chunked sgemm).
    private mutating func gaussianRows(_ rows: Int, factor: [Float]) -> [Float] {
        let d = statistics.dimension
        var out = [Float](repeating: 0, count: rows * d)
        let chunk = 16_384
        var z = [Float](repeating: 0, count: Swift.min(rows, chunk) * d)
        var r0 = 0
        while r0 < rows {
            let n = Swift.min(chunk, rows - r0)
            for i in 0..<(n * d) { z[i] = nextGaussian() }
            z.withUnsafeBufferPointer { zp in factor.withUnsafeBufferPointer { lp in out.withUnsafeMutableBufferPointer { op in
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(d), Int32(d), 1,
                            zp.baseAddress!, Int32(d), lp.baseAddress!, Int32(d), 0, op.baseAddress! + r0 * d, Int32(d))
            } } }
            r0 += n
        }
        return out
    }

    private var spare: Float?
    private mutating func nextGaussian() -> Float {
        if let s = spare { spare = nil; return s }
        var u1 = Double(rng.next() >> 11) * 0x1p-53
        if u1 < 1e-300 { u1 = 1e-300 }
        let u2 = Double(rng.next() >> 11) * 0x1p-53
        let r = (-2 * log(u1)).squareRoot()
        spare = Float(r * sin(2 * .pi * u2))
        return Float(r * cos(2 * .pi * u2))
    }

    /// Cholesky factor of a positive semi-definite matrix; columns with a non-positive pivot are zeroed
    /// (the within-person covariance is rank-deficient).
    static func choleskyFactor(_ a: [Float], dimension n: Int) -> [Float] {
        var l = [Double](repeating: 0, count: n * n)
        let scale = (0..<n).reduce(0.0) { $0 + Double(a[$1 * n + $1]) } / Double(n)
        for j in 0..<n {
            var s = Double(a[j * n + j])
            for k in 0..<j { s -= l[j * n + k] * l[j * n + k] }
            guard s > 1e-9 * scale else { continue }
            let p = s.squareRoot()
            l[j * n + j] = p
            for i in (j + 1)..<n {
                var t = Double(a[i * n + j])
                for k in 0..<j { t -= l[i * n + k] * l[j * n + k] }
                l[i * n + j] = t / p
            }
        }
        return l.map(Float.init)
    }
}

/// Isotropic Gaussian clusters in any dimension (for 512-D tests where no face statistics exist).
public func gaussianClusters(count: Int, dimension: Int, clusters: Int, spread: Float, seed: UInt64, normalise: Bool = true) -> [[Float]] {
    var rng = SplitMix64(seed: seed)
    func gaussian() -> Float {
        let u1 = Swift.max(Double(rng.next() >> 11) * 0x1p-53, 1e-300), u2 = Double(rng.next() >> 11) * 0x1p-53
        return Float((-2 * log(u1)).squareRoot() * cos(2 * .pi * u2))
    }
    let centres = (0..<clusters).map { _ in (0..<dimension).map { _ in gaussian() } }
    return (0..<count).map { i in
        let c = centres[i % clusters]
        let v = c.map { $0 + spread * gaussian() }
        return normalise ? Distance.normalized(v) : v
    }
}
