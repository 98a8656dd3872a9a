import Foundation

/// A window of per-pixel coverage values in `[0, 1]`, placed at `(x0, y0)` in an image.
struct CoverageWindow {
    let x0: Int, y0: Int, width: Int, height: Int
    var values: [Float]

    init(x0: Int, y0: Int, width: Int, height: Int) {
        self.x0 = x0; self.y0 = y0; self.width = max(0, width); self.height = max(0, height)
        values = [Float](repeating: 0, count: self.width * self.height)
    }

    /// The pixels of `polygon`'s bounding box that lie in a `imageWidth`×`imageHeight` image.
    static func bounding(_ polygon: [Vec2], imageWidth: Int, imageHeight: Int) -> CoverageWindow {
        guard !polygon.isEmpty else { return CoverageWindow(x0: 0, y0: 0, width: 0, height: 0) }
        let xs = polygon.map(\.x), ys = polygon.map(\.y)
        func clampI(_ v: Double, _ hi: Int) -> Int { Int(max(0, min(Double(hi), v))) }
        let x0 = clampI(floor(xs.min()!), imageWidth), x1 = clampI(ceil(xs.max()!), imageWidth)
        let y0 = clampI(floor(ys.min()!), imageHeight), y1 = clampI(ceil(ys.max()!), imageHeight)
        return CoverageWindow(x0: x0, y0: y0, width: x1 - x0, height: y1 - y0)
    }
}

/// Antialiased polygon fill: the exact horizontal coverage of each pixel on `subRows` sub-scanlines per
/// pixel row (even-odd rule), averaged. Pixel `(x, y)` covers `[x, x+1) × [y, y+1)` in image coordinates.
func rasterize(_ polygon: [Vec2], imageWidth: Int, imageHeight: Int, subRows: Int = 5) -> CoverageWindow {
    var win = CoverageWindow.bounding(polygon, imageWidth: imageWidth, imageHeight: imageHeight)
    guard win.width > 0, win.height > 0, polygon.count >= 3 else { return win }
    let weight = Float(1.0 / Double(subRows))
    var crossings: [Double] = []
    for row in 0..<win.height {
        for s in 0..<subRows {
            let y = Double(win.y0 + row) + (Double(s) + 0.5) / Double(subRows)
            crossings.removeAll(keepingCapacity: true)
            var j = polygon.count - 1
            for i in 0..<polygon.count {
                let a = polygon[j], b = polygon[i]
                if (a.y > y) != (b.y > y) {
                    crossings.append(a.x + (y - a.y) / (b.y - a.y) * (b.x - a.x))
                }
                j = i
            }
            crossings.sort()
            var k = 0
            while k + 1 < crossings.count {
                addSpan(&win, row: row, from: crossings[k], to: crossings[k + 1], weight: weight)
                k += 2
            }
        }
    }
    return win
}

/// Adds `weight` × the covered fraction of each pixel in `[xa, xb)` to one row of the window.
private func addSpan(_ win: inout CoverageWindow, row: Int, from xa: Double, to xb: Double, weight: Float) {
    let lo = max(xa, Double(win.x0)), hi = min(xb, Double(win.x0 + win.width))
    guard hi > lo else { return }
    let first = Int(floor(lo)), last = Int(ceil(hi)) - 1
    let base = row * win.width - win.x0
    if first == last {
        win.values[base + first] += weight * Float(hi - lo)
        return
    }
    win.values[base + first] += weight * Float(Double(first + 1) - lo)
    if last > first + 1 {
        for x in (first + 1)..<last { win.values[base + x] += weight }
    }
    win.values[base + last] += weight * Float(hi - Double(last))
}
