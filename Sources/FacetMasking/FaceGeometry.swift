import FacetFace
import Foundation

/// What FacetMasking reads from the 68 dlib landmarks (iBUG 300-W layout: 0–16 jaw from the image-left
/// ear to the image-right ear, 17–26 brows, 27–30 nose bridge from root to tip, 31–35 nostrils,
/// 36–47 eyes, 48–59 outer lip, 60–67 inner lip): the face's axes and size, its yaw, and the jaw contour
/// that the mask anchors are placed on.
public struct FaceGeometry: Sendable {
    public let points: [Vec2]
    /// Unit vector down the face, from the nose root (27) towards the chin (8).
    public let down: Vec2
    /// Unit vector across the face, from the image-left jaw to the image-right jaw (perpendicular to `down`).
    public let across: Vec2
    /// Jaw width measured across the face between points 0 and 16.
    public let width: Double
    /// Nose root (27) to chin (8).
    public let height: Double
    /// Head yaw proxy in `[-1, 1]`: `(dl - dr) / (dl + dr)`, where `dl`, `dr` are the distances across the
    /// face from the nose tip (30) to the jaw points 2 and 14. Positive: the nose is nearer the image-right
    /// jaw, i.e. the face is turned towards image right. About 0 for a frontal face, ±0.6 at roughly 45°.
    public let yaw: Double
    /// Roll: the angle of `down` from the image's vertical, in degrees (positive: chin towards image left).
    public let rollDegrees: Double

    /// The jaw contour 0…16, extended past both ends along its end segments so lines above the ears still
    /// meet it.
    let jaw: [Vec2]

    public init(landmarks: [LandmarkPoint]) throws(MaskingError) {
        guard landmarks.count == 68 else { throw .wrongLandmarkCount(landmarks.count) }
        for (i, p) in landmarks.enumerated() where !p.x.isFinite || !p.y.isFinite {
            throw .nonFiniteLandmark(index: i)
        }
        let p = landmarks.map { Vec2($0.x, $0.y) }
        points = p
        let axis = p[8] - p[27]
        height = axis.length
        guard height > 0.5 else { throw .degenerateFace("nose root and chin coincide") }
        down = axis.normalized
        across = Vec2(down.y, -down.x)
        width = abs((p[16] - p[0]).dot(across))
        guard width > 0.5 else { throw .degenerateFace("the jaw has no width") }
        let dl = max(0, (p[30] - p[2]).dot(across))
        let dr = max(0, (p[14] - p[30]).dot(across))
        yaw = dl + dr > 0 ? (dl - dr) / (dl + dr) : 0
        rollDegrees = atan2(-down.x, down.y) * 180 / .pi
        var contour = Array(p[0...16])
        contour.insert(p[0] + (p[0] - p[1]).normalized * height, at: 0)
        contour.append(p[16] + (p[16] - p[15]).normalized * height)
        jaw = contour
    }

    public subscript(_ i: Int) -> Vec2 { points[i] }

    /// Where the line through `q` with direction `d` crosses the (extended) jaw contour: the parameters
    /// `t` of `q + t·d`, sorted.
    func jawCrossings(through q: Vec2, direction d: Vec2) -> [Double] {
        var ts: [Double] = []
        for i in 0..<(jaw.count - 1) {
            let a = jaw[i], e = jaw[i + 1] - jaw[i]
            let denom = d.cross(e)
            if abs(denom) < 1e-12 { continue }
            let w = a - q
            let t = w.cross(e) / denom
            let s = w.cross(d) / denom
            if s >= 0 && s <= 1 { ts.append(t) }
        }
        return ts.sorted()
    }

    /// The two points where the line across the face through `q` meets the jaw (image-left, image-right).
    /// Falls back to half a face width either side when the line misses the contour.
    public func jawEnds(across q: Vec2) -> (left: Vec2, right: Vec2) {
        let ts = jawCrossings(through: q, direction: across)
        let negative = ts.filter { $0 < 0 }, positive = ts.filter { $0 > 0 }
        let tl = negative.first ?? -width / 2
        let tr = positive.last ?? width / 2
        return (q + across * tl, q + across * tr)
    }

    /// The lowest point of the jaw on the line down the face through `q` (about landmark 8).
    public func chin(below q: Vec2) -> Vec2 {
        let ts = jawCrossings(through: q, direction: down).filter { $0 > 0 }
        guard let t = ts.last else { return points[8] }
        return q + down * t
    }

    /// Centre of the lower face, used as the pivot of tilted masks and to push contours outwards.
    public var lowerFaceCentre: Vec2 { points[33].lerp(points[8], 0.35) }

    /// The region a mask may cover: the convex hull of the jaw (pushed out by `margin`·width), the brows,
    /// and the chin pushed `chinDrop`·height down the neck.
    public func coverableRegion(margin: Double, chinDrop: Double) -> [Vec2] {
        let c = lowerFaceCentre
        var pts: [Vec2] = []
        for i in 0...16 {
            let out = (points[i] - c).normalized
            pts.append(points[i] + out * (margin * width))
        }
        for i in 17...26 { pts.append(points[i]) }
        for i in 4...12 { pts.append(points[i] + down * (chinDrop * height)) }
        return convexHull(pts)
    }
}
