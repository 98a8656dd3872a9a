import FacetFace
import FacetImaging

/// Where a mask was drawn: its per-pixel opacity over the whole image and an outline polygon.
public struct MaskRegion: Sendable, Equatable {
    public let width: Int
    public let height: Int
    /// Opacity of the mask per pixel, row-major, 0 (face untouched) … 255 (mask only).
    public var alpha: [UInt8]
    /// A polygon around the mask in image coordinates: the warped anchors a, b, c, f, e, d for template
    /// masks, the filled polygon for procedural ones (before clipping to the face).
    public var outline: [LandmarkPoint]

    public init(width: Int, height: Int, alpha: [UInt8], outline: [LandmarkPoint]) {
        precondition(alpha.count == width * height)
        self.width = width; self.height = height; self.alpha = alpha; self.outline = outline
    }

    /// Opacity in `[0, 1]` at pixel `(x, y)`; 0 outside the image.
    public func opacity(x: Int, y: Int) -> Double {
        guard x >= 0, y >= 0, x < width, y < height else { return 0 }
        return Double(alpha[y * width + x]) / 255
    }

    /// Opacity at the pixel containing the point (landmark coordinates are pixel indices, as in dlib).
    public func opacity(at p: LandmarkPoint) -> Double {
        opacity(x: Int(p.x.rounded()), y: Int(p.y.rounded()))
    }

    /// The number of pixels at least half covered.
    public var coveredPixelCount: Int { alpha.reduce(0) { $0 + ($1 >= 128 ? 1 : 0) } }
}

/// A masked image and where the mask is.
public struct MaskedImage: Sendable, Equatable {
    public var image: RGBImage
    public var maskRegion: MaskRegion
    /// The template drawn (`surgical`, `surgical_right`, …), or the procedural type's name.
    public var variant: String
}
