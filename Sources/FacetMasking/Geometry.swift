import Foundation

/// A 2-D point or vector in image pixel coordinates (x right, y down).
public struct Vec2: Sendable, Hashable, Codable {
    public var x: Double
    public var y: Double
    @inlinable public init(_ x: Double, _ y: Double) { self.x = x; self.y = y }

    @inlinable public static func + (a: Vec2, b: Vec2) -> Vec2 { Vec2(a.x + b.x, a.y + b.y) }
    @inlinable public static func - (a: Vec2, b: Vec2) -> Vec2 { Vec2(a.x - b.x, a.y - b.y) }
    @inlinable public static func * (a: Vec2, s: Double) -> Vec2 { Vec2(a.x * s, a.y * s) }
    @inlinable public func dot(_ o: Vec2) -> Double { x * o.x + y * o.y }
    @inlinable public func cross(_ o: Vec2) -> Double { x * o.y - y * o.x }
    @inlinable public var length: Double { (x * x + y * y).squareRoot() }
    @inlinable public var normalized: Vec2 { let l = length; return l > 0 ? Vec2(x / l, y / l) : Vec2(0, 0) }
    @inlinable public func lerp(_ o: Vec2, _ t: Double) -> Vec2 { Vec2(x + (o.x - x) * t, y + (o.y - y) * t) }
    @inlinable public func rotated(by radians: Double, about c: Vec2) -> Vec2 {
        let s = sin(radians), k = cos(radians), d = self - c
        return Vec2(c.x + d.x * k - d.y * s, c.y + d.x * s + d.y * k)
    }
}

/// Convex hull (Andrew's monotone chain), counter-clockwise in a y-down frame is irrelevant here:
/// the rasteriser uses the non-zero/even-odd rule, so orientation does not matter.
func convexHull(_ points: [Vec2]) -> [Vec2] {
    let p = points.sorted { $0.x != $1.x ? $0.x < $1.x : $0.y < $1.y }
    guard p.count > 2 else { return p }
    func turn(_ o: Vec2, _ a: Vec2, _ b: Vec2) -> Double { (a - o).cross(b - o) }
    var lower: [Vec2] = []
    for q in p {
        while lower.count >= 2 && turn(lower[lower.count - 2], lower[lower.count - 1], q) <= 0 { lower.removeLast() }
        lower.append(q)
    }
    var upper: [Vec2] = []
    for q in p.reversed() {
        while upper.count >= 2 && turn(upper[upper.count - 2], upper[upper.count - 1], q) <= 0 { upper.removeLast() }
        upper.append(q)
    }
    return Array(lower.dropLast() + upper.dropLast())
}

/// Whether `q` lies inside `polygon` (even-odd rule).
public func polygonContains(_ polygon: [Vec2], _ q: Vec2) -> Bool {
    var inside = false
    var j = polygon.count - 1
    for i in 0..<polygon.count {
        let a = polygon[i], b = polygon[j]
        if (a.y > q.y) != (b.y > q.y) {
            let x = a.x + (q.y - a.y) / (b.y - a.y) * (b.x - a.x)
            if q.x < x { inside.toggle() }
        }
        j = i
    }
    return inside
}

/// Signed distance from `q` to a convex polygon's boundary (negative inside).
public func distanceToConvexPolygon(_ polygon: [Vec2], _ q: Vec2) -> Double {
    var best = Double.infinity
    var j = polygon.count - 1
    for i in 0..<polygon.count {
        let a = polygon[j], b = polygon[i]
        let ab = b - a
        let t = max(0, min(1, (q - a).dot(ab) / max(ab.dot(ab), 1e-12)))
        best = min(best, (q - (a + ab * t)).length)
        j = i
    }
    return polygonContains(polygon, q) ? -best : best
}
