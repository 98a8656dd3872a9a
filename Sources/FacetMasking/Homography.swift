/// A plane projective transform, `(x, y) ↦ ((h0 x + h1 y + h2) / w, (h3 x + h4 y + h5) / w)` with
/// `w = h6 x + h7 y + h8`.
public struct Homography: Sendable, Hashable {
    public var h: [Double]   // 9, row-major

    public init(_ h: [Double]) { precondition(h.count == 9); self.h = h }

    public static let identity = Homography([1, 0, 0, 0, 1, 0, 0, 0, 1])

    @inlinable public func apply(_ p: Vec2) -> Vec2 {
        let w = h[6] * p.x + h[7] * p.y + h[8]
        return Vec2((h[0] * p.x + h[1] * p.y + h[2]) / w, (h[3] * p.x + h[4] * p.y + h[5]) / w)
    }

    /// The inverse transform, or `nil` when the matrix is singular.
    public var inverse: Homography? {
        let a = h
        let c0 = a[4] * a[8] - a[5] * a[7], c1 = a[5] * a[6] - a[3] * a[8], c2 = a[3] * a[7] - a[4] * a[6]
        let det = a[0] * c0 + a[1] * c1 + a[2] * c2
        guard det.isFinite, abs(det) > 1e-300 else { return nil }
        let inv = [
            c0, a[2] * a[7] - a[1] * a[8], a[1] * a[5] - a[2] * a[4],
            c1, a[0] * a[8] - a[2] * a[6], a[2] * a[3] - a[0] * a[5],
            c2, a[1] * a[6] - a[0] * a[7], a[0] * a[4] - a[1] * a[3],
        ].map { $0 / det }
        return Homography(inv)
    }

    /// Least-squares fit of the homography taking `source[i]` to `target[i]` (≥ 4 pairs), by the
    /// normalised direct linear transform (Hartley & Zisserman, *Multiple View Geometry*, alg. 4.2) with
    /// `h8` fixed to 1 — MaskTheFace does the same with `cv2.findHomography` on its six anchors.
    /// Falls back to a least-squares affine map when the projective system is ill-conditioned
    /// (nearly collinear points on tiny faces). Returns `nil` when even that fails.
    public static func fit(from source: [Vec2], to target: [Vec2]) -> Homography? {
        precondition(source.count == target.count)
        guard source.count >= 3 else { return nil }
        let (ns, ts) = normalizing(source), (nt, tt) = normalizing(target)
        guard let tInv = tt.inverse else { return nil }
        if source.count >= 4, let hn = solveProjective(ns, nt) {
            let full = tInv.composed(with: hn).composed(with: ts)
            if let scaled = full.normalizedScale() { return scaled }
        }
        guard let an = solveAffine(ns, nt) else { return nil }
        return tInv.composed(with: an).composed(with: ts).normalizedScale()
    }

    /// `self ∘ other` (apply `other` first).
    func composed(with other: Homography) -> Homography {
        var r = [Double](repeating: 0, count: 9)
        for i in 0..<3 { for j in 0..<3 { for k in 0..<3 { r[i * 3 + j] += h[i * 3 + k] * other.h[k * 3 + j] } } }
        return Homography(r)
    }

    func normalizedScale() -> Homography? {
        guard h.allSatisfy(\.isFinite), abs(h[8]) > 1e-12 else { return nil }
        return Homography(h.map { $0 / h[8] })
    }

    /// Moves the centroid to the origin and scales the mean distance to √2.
    static func normalizing(_ pts: [Vec2]) -> ([Vec2], Homography) {
        let n = Double(pts.count)
        let c = pts.reduce(Vec2(0, 0), +) * (1 / n)
        let mean = pts.map { ($0 - c).length }.reduce(0, +) / n
        let s = mean > 1e-12 ? 2.0.squareRoot() / mean : 1
        let t = Homography([s, 0, -s * c.x, 0, s, -s * c.y, 0, 0, 1])
        return (pts.map { ($0 - c) * s }, t)
    }

    static func solveProjective(_ s: [Vec2], _ t: [Vec2]) -> Homography? {
        var rows: [[Double]] = [], rhs: [Double] = []
        for (p, q) in zip(s, t) {
            rows.append([p.x, p.y, 1, 0, 0, 0, -q.x * p.x, -q.x * p.y]); rhs.append(q.x)
            rows.append([0, 0, 0, p.x, p.y, 1, -q.y * p.x, -q.y * p.y]); rhs.append(q.y)
        }
        guard let x = leastSquares(rows, rhs, unknowns: 8) else { return nil }
        return Homography(x + [1])
    }

    static func solveAffine(_ s: [Vec2], _ t: [Vec2]) -> Homography? {
        var rows: [[Double]] = [], rhs: [Double] = []
        for (p, q) in zip(s, t) {
            rows.append([p.x, p.y, 1, 0, 0, 0]); rhs.append(q.x)
            rows.append([0, 0, 0, p.x, p.y, 1]); rhs.append(q.y)
        }
        guard let x = leastSquares(rows, rhs, unknowns: 6) else { return nil }
        return Homography(x + [0, 0, 1])
    }

    /// Solves the normal equations by Gaussian elimination with partial pivoting; `nil` when singular.
    static func leastSquares(_ a: [[Double]], _ b: [Double], unknowns n: Int) -> [Double]? {
        var m = [[Double]](repeating: [Double](repeating: 0, count: n + 1), count: n)
        for (row, y) in zip(a, b) {
            for i in 0..<n {
                for j in 0..<n { m[i][j] += row[i] * row[j] }
                m[i][n] += row[i] * y
            }
        }
        let scale = (0..<n).map { abs(m[$0][$0]) }.max() ?? 0
        guard scale > 0 else { return nil }
        for col in 0..<n {
            var pivot = col
            for r in col..<n where abs(m[r][col]) > abs(m[pivot][col]) { pivot = r }
            guard abs(m[pivot][col]) > 1e-10 * scale else { return nil }
            m.swapAt(col, pivot)
            for r in 0..<n where r != col {
                let f = m[r][col] / m[col][col]
                if f == 0 { continue }
                for k in col...n { m[r][k] -= f * m[col][k] }
            }
        }
        return (0..<n).map { m[$0][n] / m[$0][$0] }
    }
}
