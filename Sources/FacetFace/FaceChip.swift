import Foundation
import FacetImaging

/// dlib's `drectangle`: inclusive Double corners; `width = right - left + 1` (0 when empty).
public struct DoubleRect: Sendable, Hashable, Codable {
    public var left: Double, top: Double, right: Double, bottom: Double
    public init(left: Double, top: Double, right: Double, bottom: Double) {
        self.left = left; self.top = top; self.right = right; self.bottom = bottom
    }
    public var isEmpty: Bool { top > bottom || left > right }
    public var width: Double { isEmpty ? 0 : right - left + 1 }
    public var height: Double { isEmpty ? 0 : bottom - top + 1 }
    public var area: Double { width * height }
    public var center: (x: Double, y: Double) { ((left + right) / 2.0, (top + bottom) / 2.0) }

    /// `pyramid_down<2>::rect_down`.
    func down() -> DoubleRect {
        let a = PyramidDown2.pointDown(left, top), b = PyramidDown2.pointDown(right, bottom)
        return DoubleRect(left: min(a.x, b.x), top: min(a.y, b.y), right: max(a.x, b.x), bottom: max(a.y, b.y))
    }
}

/// Where and how to cut a face chip (dlib's `chip_details`): a rectangle in the image, rotated by `angle`
/// (radians) about its centre, resampled to `rows x cols`.
public struct ChipDetails: Sendable, Hashable, Codable {
    public var rect: DoubleRect
    public var angle: Double
    public var rows: Int
    public var cols: Int

    public init(rect: DoubleRect, angle: Double, rows: Int, cols: Int) {
        self.rect = rect; self.angle = angle; self.rows = rows; self.cols = cols
    }

    /// The five template points of dlib's 5-point alignment (`get_face_chip_details`), in the unit square.
    public static let fivePointTemplate: [(x: Double, y: Double)] = [
        (0.8595674595992, 0.2134981538014), (0.6460604764104, 0.2289674387677), (0.1205750620789, 0.2137274526848),
        (0.3340850613712, 0.2290642403242), (0.4901123135679, 0.6277975316475),
    ]

    /// dlib's `get_face_chip_details(det, size, padding)` for a 5-point shape (`shape_predictor_5_face_landmarks`):
    /// the similarity transform (Umeyama) from the padded template to the landmarks, expressed as a rotated square.
    public static func forFace(landmarks: [LandmarkPoint], size: Int = 150, padding: Double = 0.25) -> ChipDetails {
        precondition(landmarks.count == 5, "ChipDetails.forFace needs the 5 points of shape_predictor_5_face_landmarks")
        precondition(size > 0 && padding >= 0)
        let from = fivePointTemplate.map { p in
            (x: (padding + p.x) / (2 * padding + 1) * Double(size), y: (padding + p.y) / (2 * padding + 1) * Double(size))
        }
        let to = landmarks.map { (x: $0.x, y: $0.y) }
        let t = similarityTransform(from: from, to: to)
        // chip_details(chip_points, img_points, dims)
        let angle = atan2(t.m10, t.m00)
        let scale = (t.m00 * t.m00 + t.m10 * t.m10).squareRoot()
        let c = t.apply(Double(size) / 2.0, Double(size) / 2.0)
        let w = Double(size) * scale - 1, h = Double(size) * scale - 1     // centered_drect: width--, height--
        let rect = DoubleRect(left: c.x - w / 2, top: c.y - h / 2, right: c.x + w / 2, bottom: c.y + h / 2)
        return ChipDetails(rect: rect, angle: angle, rows: size, cols: size)
    }

    /// The five landmarks of a masked face with its nose point (4, the base of the nose, which a mask covers) placed
    /// from the eyes: in the template frame fitted to the four eye points alone, the nose keeps its horizontal place
    /// (it follows the head's turn, and the shape predictor still finds it across) and is set at height `noseY`
    /// (template units: dlib's template nose is at 0.628). On masked faces the predicted nose height carries no
    /// information (measured on LFW: its correlation with the same image's unmasked nose height is 0.04) and the
    /// shape predictor's guess moves the chip; docs/masks.md, session 11. Other point counts are returned unchanged.
    public static func maskedLandmarks(_ landmarks: [LandmarkPoint], noseY: Double) -> [LandmarkPoint] {
        guard landmarks.count == 5, landmarks.allSatisfy({ $0.x.isFinite && $0.y.isFinite }) else { return landmarks }
        let eyes = landmarks[0..<4].map { (x: $0.x, y: $0.y) }
        let templateEyes = Array(fivePointTemplate[0..<4])
        let toTemplate = similarityTransform(from: eyes, to: templateEyes)
        let toImage = similarityTransform(from: templateEyes, to: eyes)
        guard toImage.m00.isFinite, toImage.m10.isFinite, toImage.m00 * toImage.m00 + toImage.m10 * toImage.m10 > 0 else { return landmarks }
        let nose = toTemplate.apply(landmarks[4].x, landmarks[4].y)
        let placed = toImage.apply(nose.x, noseY)
        var out = landmarks
        out[4] = LandmarkPoint(x: placed.x, y: placed.y)
        return out
    }

    /// Maps chip pixel coordinates to image pixel coordinates (inverse of dlib's `get_mapping_to_chip`).
    /// Use it to place anything drawn on the aligned chip (a mask, landmarks) back into the image.
    public var chipToImage: PointTransformAffine {
        let c = rect.center
        let corners = [(rect.left, rect.top), (rect.right, rect.top), (rect.right, rect.bottom)].map {
            rotate(center: c, x: $0.0, y: $0.1, angle: angle)
        }
        let chip: [(x: Double, y: Double)] = [(0, 0), (Double(cols - 1), 0), (Double(cols - 1), Double(rows - 1))]
        return PointTransformAffine.mapping(from: chip, to: corners) ?? .identity
    }

    /// Maps image pixel coordinates to chip pixel coordinates (dlib's `get_mapping_to_chip`).
    public var imageToChip: PointTransformAffine { chipToImage.inverse ?? .identity }
}

/// `rotate_point(center, p, angle)` as dlib's `point_rotator`.
@inline(__always)
func rotate(center: (x: Double, y: Double), x: Double, y: Double, angle: Double) -> (x: Double, y: Double) {
    let s = sin(angle), co = cos(angle)
    let dx = x - center.x, dy = y - center.y
    return (co * dx - s * dy + center.x, s * dx + co * dy + center.y)
}

/// dlib's `find_similarity_transform` (Umeyama): for 2-D points the SVD solution is `cR = [[p, -q], [q, p]] / sigma`.
func similarityTransform(from: [(x: Double, y: Double)], to: [(x: Double, y: Double)]) -> PointTransformAffine {
    let n = Double(from.count)
    var mfx = 0.0, mfy = 0.0, mtx = 0.0, mty = 0.0
    for (f, t) in zip(from, to) { mfx += f.x; mfy += f.y; mtx += t.x; mty += t.y }
    mfx /= n; mfy /= n; mtx /= n; mty /= n
    var sigma = 0.0, p = 0.0, q = 0.0
    for (f, t) in zip(from, to) {
        let fx = f.x - mfx, fy = f.y - mfy, tx = t.x - mtx, ty = t.y - mty
        sigma += fx * fx + fy * fy
        p += tx * fx + ty * fy
        q += ty * fx - tx * fy
    }
    sigma /= n; p /= n; q /= n
    let a = sigma != 0 ? p / sigma : 1, b = sigma != 0 ? q / sigma : 0
    return PointTransformAffine(m00: a, m01: -b, m10: b, m11: a,
                                b0: mtx - (a * mfx + -b * mfy), b1: mty - (b * mfx + a * mfy))
}

/// dlib's `extract_image_chips` for one chip, with bilinear interpolation: while the chip's rectangle is more
/// than one 2x step larger than the chip, the (cropped) image is first shrunk with `pyramid_down<2>`; then the
/// chip is sampled bilinearly through the affine map from chip corners to the rotated rectangle's corners.
/// Outside the image the chip is black. Byte-identical to dlib when given the same `ChipDetails`.
public enum FaceChip {
    public static func extract(_ image: RGBImage, details: ChipDetails) -> RGBImage {
        let rows = details.rows, cols = details.cols
        let size = Double(rows * cols)
        let rect = details.rect
        guard rows > 0, cols > 0, !rect.isEmpty, image.width > 0, image.height > 0 else {
            return RGBImage(width: max(cols, 0), height: max(rows, 0))
        }

        if details.angle == 0, Double(rows) == rect.height, Double(cols) == rect.width {
            return basicCopy(image, rect: rect, rows: rows, cols: cols)
        }

        // Pyramid depth and the cropped region (grown to avoid border effects), as dlib computes them.
        var depth = 0
        var grow = 2.0
        var r = rect.down()
        while r.area > size {
            r = r.down()
            depth += 1
            grow = grow * 2 + 2
        }
        let c = rect.center
        let corners = [(rect.left, rect.top), (rect.right, rect.top), (rect.left, rect.bottom), (rect.right, rect.bottom)]
            .map { rotate(center: c, x: $0.0, y: $0.1, angle: details.angle) }
        let rot = DoubleRect(left: corners.map(\.x).min()!, top: corners.map(\.y).min()!,
                             right: corners.map(\.x).max()!, bottom: corners.map(\.y).max()!)
        // grow_rect(rot_rect, grow).intersect(get_rect(img)), then converted to an integer rectangle (round half up).
        let gl = max(rot.left - grow, 0), gt = max(rot.top - grow, 0)
        let gr = min(rot.right + grow, Double(image.width - 1)), gb = min(rot.bottom + grow, Double(image.height - 1))
        guard gl <= gr, gt <= gb else { return RGBImage(width: cols, height: rows) }
        let bl = Int((gl + 0.5).rounded(.down)), bt = Int((gt + 0.5).rounded(.down))
        let br = Int((gr + 0.5).rounded(.down)), bb = Int((gb + 0.5).rounded(.down))
        var source = image.cropped(left: bl, top: bt, right: br, bottom: bb)

        var local = DoubleRect(left: rect.left - Double(bl), top: rect.top - Double(bt),
                               right: rect.right - Double(bl), bottom: rect.bottom - Double(bt))
        var level = -1
        while local.down().area > size {
            level += 1
            local = local.down()
        }
        if level >= 0 {
            for _ in 0...level { source = PyramidDown2.apply(source) }
        }
        let lc = local.center
        let to = [(local.left, local.top), (local.right, local.top), (local.left, local.bottom)]
            .map { rotate(center: lc, x: $0.0, y: $0.1, angle: details.angle) }
        let from: [(x: Double, y: Double)] = [(0, 0), (Double(cols - 1), 0), (0, Double(rows - 1))]
        guard let map = PointTransformAffine.mapping(from: from, to: to) else { return RGBImage(width: cols, height: rows) }
        return BilinearSampling.transform(source, width: cols, height: rows, outputToInput: map)
    }

    /// Convenience: the 150x150 dlib face chip for 5-point landmarks (`get_face_chip_details(det, 150, 0.25)`).
    public static func extract(_ image: RGBImage, landmarks: [LandmarkPoint], size: Int = 150,
                               padding: Double = 0.25) -> (chip: RGBImage, details: ChipDetails) {
        let details = ChipDetails.forFace(landmarks: landmarks, size: size, padding: padding)
        return (extract(image, details: details), details)
    }

    /// `impl::basic_extract_image_chip`: a plain copy of an axis-aligned rectangle, black outside the image.
    static func basicCopy(_ image: RGBImage, rect: DoubleRect, rows: Int, cols: Int) -> RGBImage {
        let left = Int((rect.left + 0.5).rounded(.down)), top = Int((rect.top + 0.5).rounded(.down))
        var out = RGBImage(width: cols, height: rows)
        for y in 0..<rows {
            let sy = top + y
            guard sy >= 0, sy < image.height else { continue }
            for x in 0..<cols {
                let sx = left + x
                guard sx >= 0, sx < image.width else { continue }
                out[x, y] = image[sx, sy]
            }
        }
        return out
    }
}
