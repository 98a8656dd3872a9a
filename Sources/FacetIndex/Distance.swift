import CFacetKernels

/// SIMD distance kernels (AVX2+FMA chosen at load time, portable C otherwise; see `CFacetKernels`).
public enum Distance {
    /// Squared Euclidean distance. The corresponding C function is `facet_l2sq_f32`.
    @inlinable @inline(__always)
    public static func l2Squared(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, dimension: Int) -> Float {
        facet_l2sq_f32(a, b, dimension)
    }
    /// Inner product. The corresponding C function is `facet_dot_f32`.
    @inlinable @inline(__always)
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, dimension: Int) -> Float {
        facet_dot_f32(a, b, dimension)
    }
    /// Distance under `metric` (smaller is closer).
    @inlinable @inline(__always)
    public static func distance(_ metric: Metric, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, dimension: Int) -> Float {
        switch metric {
        case .l2Squared: facet_l2sq_f32(a, b, dimension)
        case .innerProduct: 1 - facet_dot_f32(a, b, dimension)
        }
    }
    /// Distance between two arrays (convenience; checks lengths).
    public static func distance(_ metric: Metric, _ a: [Float], _ b: [Float]) -> Float {
        precondition(a.count == b.count, "vectors of different lengths")
        return a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in
            distance(metric, pa.baseAddress!, pb.baseAddress!, dimension: a.count)
        } }
    }
    /// Whether the AVX2+FMA kernels are in use on this CPU.
    public static var usesAVX2: Bool { facet_kernels_use_avx2() != 0 }

    /// Returns `v / ‖v‖` (unchanged when the norm is zero).
    public static func normalized(_ v: [Float]) -> [Float] {
        let n = v.withUnsafeBufferPointer { facet_dot_f32($0.baseAddress!, $0.baseAddress!, v.count) }.squareRoot()
        return n > 0 ? v.map { $0 / n } : v
    }
}
