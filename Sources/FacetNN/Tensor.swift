/// A 4-D float tensor laid out like dlib's: `n` samples, each `k` planes of `nr` rows by `nc` columns,
/// planar and row-major (`data[((s*k + c)*nr + r)*nc + x]`).
public struct Tensor: Sendable, Equatable {
    public var n: Int
    public var k: Int
    public var nr: Int
    public var nc: Int
    public var data: [Float]

    public init(n: Int, k: Int, nr: Int, nc: Int, data: [Float]) {
        precondition(data.count == n * k * nr * nc, "Tensor: data does not match \(n)x\(k)x\(nr)x\(nc)")
        self.n = n; self.k = k; self.nr = nr; self.nc = nc; self.data = data
    }

    /// A zero tensor.
    public init(n: Int, k: Int, nr: Int, nc: Int) {
        self.init(n: n, k: k, nr: nr, nc: nc, data: [Float](repeating: 0, count: n * k * nr * nc))
    }

    @inlinable public var count: Int { n * k * nr * nc }
    /// Floats per sample.
    @inlinable public var sampleSize: Int { k * nr * nc }
    @inlinable public var planeSize: Int { nr * nc }

    @inlinable public subscript(s: Int, c: Int, r: Int, x: Int) -> Float {
        get { data[((s * k + c) * nr + r) * nc + x] }
        set { data[((s * k + c) * nr + r) * nc + x] = newValue }
    }

    /// The floats of sample `s`.
    public func sample(_ s: Int) -> ArraySlice<Float> {
        data[s * sampleSize ..< (s + 1) * sampleSize]
    }
}
