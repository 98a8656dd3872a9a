/// A 2-D affine map `p -> M p + b`, as dlib's `point_transform_affine` (row-major `M`, evaluated in `Double`
/// in the same operation order as dlib, so transforms ported from dlib round the same way).
public struct PointTransformAffine: Sendable, Hashable, Codable {
    public var m00: Double, m01: Double, m10: Double, m11: Double
    public var b0: Double, b1: Double

    public init(m00: Double, m01: Double, m10: Double, m11: Double, b0: Double, b1: Double) {
        self.m00 = m00; self.m01 = m01; self.m10 = m10; self.m11 = m11; self.b0 = b0; self.b1 = b1
    }

    public static let identity = PointTransformAffine(m00: 1, m01: 0, m10: 0, m11: 1, b0: 0, b1: 0)

    @inlinable public func apply(_ x: Double, _ y: Double) -> (x: Double, y: Double) {
        (m00 * x + m01 * y + b0, m10 * x + m11 * y + b1)
    }

    /// The inverse map (nil when `M` is singular).
    public var inverse: PointTransformAffine? {
        let det = m00 * m11 - m01 * m10
        guard det != 0, det.isFinite else { return nil }
        let i00 = m11 / det, i01 = -m01 / det, i10 = -m10 / det, i11 = m00 / det
        return PointTransformAffine(m00: i00, m01: i01, m10: i10, m11: i11,
                                    b0: -(i00 * b0 + i01 * b1), b1: -(i10 * b0 + i11 * b1))
    }

    /// `self ∘ other`: first `other`, then `self`.
    public func composed(after other: PointTransformAffine) -> PointTransformAffine {
        PointTransformAffine(
            m00: m00 * other.m00 + m01 * other.m10, m01: m00 * other.m01 + m01 * other.m11,
            m10: m10 * other.m00 + m11 * other.m10, m11: m10 * other.m01 + m11 * other.m11,
            b0: m00 * other.b0 + m01 * other.b1 + b0, b1: m10 * other.b0 + m11 * other.b1 + b1)
    }

    /// The affine map taking three `from` points exactly onto three `to` points (dlib's `find_affine_transform`
    /// with three points, which is an exact solve). Nil when the points are collinear.
    public static func mapping(from: [(x: Double, y: Double)], to: [(x: Double, y: Double)]) -> PointTransformAffine? {
        precondition(from.count == 3 && to.count == 3, "mapping(from:to:) takes three point pairs")
        // Solve [x y 1] * [a; b; c] = x' for each output coordinate (Cramer's rule on the 3x3 system).
        let (x0, y0) = from[0], (x1, y1) = from[1], (x2, y2) = from[2]
        let det = x0 * (y1 - y2) - y0 * (x1 - x2) + (x1 * y2 - x2 * y1)
        guard det != 0, det.isFinite else { return nil }
        func solve(_ v0: Double, _ v1: Double, _ v2: Double) -> (Double, Double, Double) {
            let a = (v0 * (y1 - y2) - y0 * (v1 - v2) + (v1 * y2 - v2 * y1)) / det
            let b = (x0 * (v1 - v2) - v0 * (x1 - x2) + (x1 * v2 - x2 * v1)) / det
            let c = (x0 * (y1 * v2 - y2 * v1) - y0 * (x1 * v2 - x2 * v1) + v0 * (x1 * y2 - x2 * y1)) / det
            return (a, b, c)
        }
        let (a, b, c) = solve(to[0].x, to[1].x, to[2].x)
        let (d, e, f) = solve(to[0].y, to[1].y, to[2].y)
        return PointTransformAffine(m00: a, m01: b, m10: d, m11: e, b0: c, b1: f)
    }
}
