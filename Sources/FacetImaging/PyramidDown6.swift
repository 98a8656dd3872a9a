import Foundation

/// dlib's `drectangle`: a rectangle with `Double` corners. Its `width` is `right - left + 1`, like dlib's.
public struct DRectangle: Sendable, Hashable {
    public var left: Double
    public var top: Double
    public var right: Double
    public var bottom: Double

    public init(left: Double, top: Double, right: Double, bottom: Double) {
        self.left = left; self.top = top; self.right = right; self.bottom = bottom
    }

    public var width: Double { right < left ? 0 : right - left + 1 }
    public var height: Double { bottom < top ? 0 : bottom - top + 1 }
    /// dlib's `dcenter`.
    public var center: (x: Double, y: Double) { ((left + right) / 2, (top + bottom) / 2) }

    /// dlib's `centered_drect(p, width, height)`.
    public static func centered(x: Double, y: Double, width: Double, height: Double) -> DRectangle {
        let w = width - 1, h = height - 1
        return DRectangle(left: x - w / 2, top: y - h / 2, right: x + w / 2, bottom: y + h / 2)
    }

    /// dlib's conversion to an integer `rectangle`: each corner `floor(v + 0.5)`.
    public var rounded: (left: Int, top: Int, right: Int, bottom: Int) {
        (Int((left + 0.5).rounded(.down)), Int((top + 0.5).rounded(.down)),
         Int((right + 0.5).rounded(.down)), Int((bottom + 0.5).rounded(.down)))
    }
}

/// An integer rectangle with dlib's inclusive corners (`width == right - left + 1`).
public struct IntRect: Sendable, Hashable {
    public var left: Int, top: Int, right: Int, bottom: Int
    public init(left: Int, top: Int, right: Int, bottom: Int) {
        self.left = left; self.top = top; self.right = right; self.bottom = bottom
    }
    /// dlib's `rectangle(width, height)`: top-left at the origin.
    public init(width: Int, height: Int) { self.init(left: 0, top: 0, right: width - 1, bottom: height - 1) }
    public var width: Int { right - left + 1 }
    public var height: Int { bottom - top + 1 }
    public var isEmpty: Bool { left > right || top > bottom }
    public func contains(x: Int, y: Int) -> Bool { left <= x && x <= right && top <= y && y <= bottom }
    public func intersect(_ o: IntRect) -> IntRect {
        IntRect(left: max(left, o.left), top: max(top, o.top), right: min(right, o.right), bottom: min(bottom, o.bottom))
    }
    public func translated(x: Int, y: Int) -> IntRect {
        IntRect(left: left + x, top: top + y, right: right + x, bottom: bottom + y)
    }
}

/// dlib's generic `pyramid_down<N>` (N ≥ 4; dlib specialises 1, 2 and 3): each level is `(N-1)/N` of the last.
/// Used by the MMOD detector's `input_rgb_image_pyramid<pyramid_down<6>>` for the tiled pyramid's layout and
/// for mapping between pyramid levels (the pixels themselves are resampled bilinearly, see `MMODFaceDetector`).
public struct PyramidDown: Sendable, Equatable {
    public let n: Int

    public init(_ n: Int) {
        precondition(n >= 4, "PyramidDown: dlib's generic pyramid_down<N> is for N >= 4")
        self.n = n
    }

    /// dlib's `pyramid_rate`: `(N-1)/N`.
    public var rate: Double { (Double(n) - 1) / Double(n) }

    /// dlib's `find_pyramid_down_output_image_size`: `floor(rate·nr)`, `floor(rate·nc)`.
    public func downSize(rows: Int, cols: Int) -> (rows: Int, cols: Int) {
        (Int((rate * Double(rows)).rounded(.down)), Int((rate * Double(cols)).rounded(.down)))
    }

    public func pointDown(x: Double, y: Double) -> (x: Double, y: Double) {
        let r = (Double(n) - 1) / Double(n)
        return ((x - 0.3) * r, (y - 0.3) * r)
    }

    public func pointUp(x: Double, y: Double) -> (x: Double, y: Double) {
        let r = Double(n) / (Double(n) - 1)
        return (x * r + 0.3, y * r + 0.3)
    }

    public func pointDown(x: Double, y: Double, levels: Int) -> (x: Double, y: Double) {
        var p = (x: x, y: y)
        for _ in 0 ..< levels { p = pointDown(x: p.x, y: p.y) }
        return p
    }

    public func pointUp(x: Double, y: Double, levels: Int) -> (x: Double, y: Double) {
        var p = (x: x, y: y)
        for _ in 0 ..< levels { p = pointUp(x: p.x, y: p.y) }
        return p
    }

    public func rectUp(_ r: DRectangle, levels: Int) -> DRectangle {
        let tl = pointUp(x: r.left, y: r.top, levels: levels), br = pointUp(x: r.right, y: r.bottom, levels: levels)
        return DRectangle(left: tl.x, top: tl.y, right: br.x, bottom: br.y)
    }

    public func rectDown(_ r: DRectangle, levels: Int) -> DRectangle {
        let tl = pointDown(x: r.left, y: r.top, levels: levels), br = pointDown(x: r.right, y: r.bottom, levels: levels)
        return DRectangle(left: tl.x, top: tl.y, right: br.x, bottom: br.y)
    }

    /// dlib's `impl::compute_tiled_image_pyramid_details`: where each pyramid level of a `rows × cols` image sits
    /// in one tiled image (first level on the left, the rest stacked in a column to its right and folded back),
    /// and the tiled image's size.
    public func tiledLayout(rows: Int, cols: Int, padding: Int, outerPadding: Int)
        -> (rects: [IntRect], rows: Int, cols: Int) {
        guard rows * cols != 0 else { return ([], 0, 0) }
        let minHeight = 5
        var rects = [IntRect(width: cols, height: rows)]
        var nr = rows, nc = cols
        while true {
            (nr, nc) = downSize(rows: nr, cols: nc)
            if nr * nc == 0 || nr < minHeight { break }
            rects.append(IntRect(width: nc, height: nr))
        }
        var totalHeight = 0
        for r in rects { totalHeight += r.height + padding }
        totalHeight -= padding * 2
        var height = 0
        var prevWidth = 0
        for r in rects {
            if r.width <= rects[0].width - prevWidth - padding && (height - rects[0].height) * 2 >= (totalHeight - rects[0].height) {
                break
            }
            height += r.height + padding
            prevWidth = r.width
        }
        height -= padding
        let width = rects[0].width
        let outRows = height + outerPadding * 2
        let outCols = width + outerPadding * 2

        var y = outerPadding
        var i = 0
        while y < height + outerPadding && i < rects.count {
            rects[i] = rects[i].translated(x: outerPadding, y: y)
            y += rects[i].height + padding
            i += 1
        }
        y -= padding
        while i < rects.count {
            // point p1(outer_padding+width-1, y-1); p2 = p1 - br_corner; rectangle(p1, p2) spans both corners
            let p1x = outerPadding + width - 1, p1y = y - 1
            let p2x = p1x - rects[i].right, p2y = p1y - rects[i].bottom
            let rect = IntRect(left: min(p1x, p2x), top: min(p1y, p2y), right: max(p1x, p2x), bottom: max(p1y, p2y))
            if !rects[0].intersect(rect).isEmpty { break }
            rects[i] = rect
            y -= rects[i].height + padding
            i += 1
        }
        rects.removeLast(rects.count - i)
        return (rects, outRows, outCols)
    }

    /// dlib's `tiled_pyramid_to_image`: maps a rectangle in the tiled image back to the original image, through
    /// the level whose tile is nearest to the rectangle's centre.
    public func tiledToImage(_ rects: [IntRect], _ r: DRectangle) -> DRectangle {
        let c = r.center
        // dlib converts the dpoint centre to an integer point (rounding) for nearest_rect.
        let px = Int((c.x + 0.5).rounded(.down)), py = Int((c.y + 0.5).rounded(.down))
        let level = Self.nearestRect(rects, x: px, y: py)
        let ox = Double(rects[level].left), oy = Double(rects[level].top)
        let local = DRectangle(left: r.left - ox, top: r.top - oy, right: r.right - ox, bottom: r.bottom - oy)
        return rectUp(local, levels: level)
    }

    /// dlib's `nearest_rect`: the first rectangle containing the point, else the nearest one.
    static func nearestRect(_ rects: [IntRect], x: Int, y: Int) -> Int {
        var best = 0
        var bestDist = Double.infinity
        for (i, r) in rects.enumerated() {
            if r.contains(x: x, y: y) { return i }
            let nx = min(max(x, r.left), r.right), ny = min(max(y, r.top), r.bottom)
            let d = (Double((nx - x) * (nx - x) + (ny - y) * (ny - y))).squareRoot()
            if d < bestDist { bestDist = d; best = i }
        }
        return best
    }
}
