import FacetImaging

/// A rectangle in dlib's convention: inclusive `left...right`, `top...bottom` in pixel coordinates,
/// so `width == right - left + 1`. Coordinates may lie outside the image (detections near the border).
public struct FaceRect: Sendable, Hashable, Codable {
    public var left: Int
    public var top: Int
    public var right: Int
    public var bottom: Int

    public init(left: Int, top: Int, right: Int, bottom: Int) {
        self.left = left; self.top = top; self.right = right; self.bottom = bottom
    }

    @inlinable public var width: Int { right - left + 1 }
    @inlinable public var height: Int { bottom - top + 1 }
    @inlinable public var area: Int { max(0, width) * max(0, height) }
    /// Centre as dlib's `center(rect)` (integer division of the corner sum, as dlib rounds).
    public var centerX: Double { Double(left + right + 1) / 2 }
    public var centerY: Double { Double(top + bottom + 1) / 2 }
}

/// One detected face: its box and the detector's confidence (MMOD: the raw detection score).
public struct FaceDetection: Sendable, Hashable, Codable {
    public var rect: FaceRect
    public var confidence: Double

    public init(rect: FaceRect, confidence: Double) {
        self.rect = rect; self.confidence = confidence
    }
}

/// A 2-D point in image pixel coordinates (dlib's shape predictors return integer points; stored as Double
/// so that other landmarkers and transforms fit too).
public struct LandmarkPoint: Sendable, Hashable, Codable {
    public var x: Double
    public var y: Double
    public init(x: Double, y: Double) { self.x = x; self.y = y }
}
