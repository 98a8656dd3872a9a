import FacetImaging
import FacetNN
import Foundation

/// A typed error for images the MMOD detector will not take.
public enum FaceDetectorError: Error, CustomStringConvertible, Equatable, Sendable {
    case invalidUpsample(Int)
    /// The image (after upsampling) would need a pyramid tensor larger than `limit` pixels.
    case imageTooLarge(width: Int, height: Int, limit: Int)

    public var description: String {
        switch self {
        case .invalidUpsample(let n): return "upsample count \(n) must be between 0 and 8"
        case let .imageTooLarge(w, h, limit):
            return "image of \(w)x\(h) pixels (after upsampling) is over the detector's limit of \(limit) pixels"
        }
    }
}

/// dlib's CNN face detector (`mmod_human_face_detector.dat`) in native Swift, reproducing
/// `dlib.cnn_face_detection_model_v1(path)(img, upsample)`:
///
/// 1. the image is upsampled `upsample` times with dlib's `pyramid_up` (`pyramid_down<2>`, bilinear);
/// 2. `input_rgb_image_pyramid<pyramid_down<6>>` tiles the image and its downscaled copies (each level 5/6 of the
///    last, resampled bilinearly in float) into one tensor, normalised as `(pixel - mean)/256`;
/// 3. the network scores every position; each positive score is an 80×80 window mapped back through the layers
///    (`output_tensor_to_input_tensor`) and the pyramid (`tiled_pyramid_to_image`);
/// 4. windows are sorted by score and greedily suppressed (dlib's `test_box_overlap` with the model's thresholds);
/// 5. boxes are mapped back by `pyramid_down<2>::rect_down` for the upsampling and rounded as dlib rounds.
///
/// Thread-safe: the network is immutable and each call uses its own buffers.
public final class MMODFaceDetector: @unchecked Sendable {
    public let network: DlibNetwork
    public let options: MMODOptions
    public let modelPath: String
    /// Largest tiled-pyramid tensor (rows × columns) accepted, to bound memory (≈ 60 bytes per pixel at peak).
    public var maxPyramidPixels = 60_000_000
    private let pyramid = PyramidDown(6)

    public init(modelPath: String) throws {
        self.modelPath = modelPath
        self.network = try DlibNetwork(contentsOf: modelPath, spec: DlibArchitectures.mmodFaceDetector)
        guard case .mmod(let o) = network.loss else {
            throw DlibModelError(.architectureMismatch, offset: 0, "not an MMOD model", path: modelPath)
        }
        guard !o.useBoundingBoxRegression else {
            throw DlibModelError(.architectureMismatch, offset: 0, "MMOD models with bounding box regression are not supported",
                                 path: modelPath)
        }
        self.options = o
    }

    public func detect(_ image: RGBImage, upsample: Int = 0) throws -> [FaceDetection] {
        try detect(image, upsample: upsample, adjustThreshold: 0)
    }

    /// dlib's `net(img, adjust_threshold)`: windows scoring above `adjustThreshold` (0 = the model's own threshold)
    /// are kept before non-maximum suppression. Suppression is greedy in descending score, so the detections above 0
    /// are the same whatever lower `adjustThreshold` is used; weaker ones are added after them.
    public func detect(_ image: RGBImage, upsample: Int, adjustThreshold: Double) throws -> [FaceDetection] {
        let adjustThreshold = adjustThreshold.isFinite ? adjustThreshold : 0
        guard (0 ... 8).contains(upsample) else { throw FaceDetectorError.invalidUpsample(upsample) }
        guard image.width > 0, image.height > 0 else { return [] }
        // Upsampled sizes grow as 2n+1 rows and 2n+2 columns per step (dlib's pyramid_up); check before allocating.
        var w = image.width, h = image.height
        for _ in 0 ..< upsample { w = 2 * w + 2; h = 2 * h + 1 }
        guard w * h * 2 <= maxPyramidPixels else {
            throw FaceDetectorError.imageTooLarge(width: w, height: h, limit: maxPyramidPixels / 2)
        }
        var img = image
        for _ in 0 ..< upsample { img = Self.pyramidUp(img) }

        let inp = network.input
        let layout = pyramid.tiledLayout(rows: img.height, cols: img.width, padding: inp.pyramidPadding,
                                         outerPadding: inp.pyramidOuterPadding)
        guard !layout.rects.isEmpty else { return [] }
        guard layout.rows * layout.cols <= maxPyramidPixels else {
            throw FaceDetectorError.imageTooLarge(width: img.width, height: img.height, limit: maxPyramidPixels / 2)
        }
        let tensor = Self.pyramidTensor(img, layout: layout, means: (inp.avgRed, inp.avgGreen, inp.avgBlue))
        let out = network.forward(tensor)

        // tensor_to_dets with adjust_threshold, then NMS, as loss_mmod_::to_label.
        struct Candidate { var rect: DRectangle; var score: Double; var order: Int }
        var cands: [Candidate] = []
        for k in 0 ..< min(out.k, options.windows.count) {
            let win = options.windows[k]
            for r in 0 ..< out.nr {
                for c in 0 ..< out.nc {
                    let score = Double(out.data[(k * out.nr + r) * out.nc + c])
                    guard score > adjustThreshold else { continue }
                    let p = network.outputToInput(x: Double(c), y: Double(r))
                    var rect = DRectangle.centered(x: p.x, y: p.y, width: Double(win.width), height: Double(win.height))
                    rect = pyramid.tiledToImage(layout.rects, rect)
                    cands.append(Candidate(rect: rect, score: score, order: cands.count))
                }
            }
        }
        cands.sort { $0.score != $1.score ? $0.score > $1.score : $0.order < $1.order }
        var kept: [(rect: IntRect, score: Double)] = []
        for cand in cands {
            let r = cand.rect.rounded
            let rect = IntRect(left: r.left, top: r.top, right: r.right, bottom: r.bottom)
            if kept.contains(where: { overlapsNMS($0.rect, rect) }) { continue }
            kept.append((rect, cand.score))
        }
        let pyr2 = DlibPyramidDown2Mapping()
        return kept.map { k in
            var rect = k.rect
            if upsample > 0 {
                let d = pyr2.rectDown(DRectangle(left: Double(rect.left), top: Double(rect.top),
                                                 right: Double(rect.right), bottom: Double(rect.bottom)), levels: upsample).rounded
                rect = IntRect(left: d.left, top: d.top, right: d.right, bottom: d.bottom)
            }
            return FaceDetection(rect: FaceRect(left: rect.left, top: rect.top, right: rect.right, bottom: rect.bottom),
                                 confidence: k.score)
        }
    }

    /// dlib's `test_box_overlap::operator()` with the model's NMS thresholds.
    func overlapsNMS(_ a: IntRect, _ b: IntRect) -> Bool {
        func area(_ r: IntRect) -> Double { r.isEmpty ? 0 : Double(r.width) * Double(r.height) }
        let inner = area(a.intersect(b))
        if inner == 0 { return false }
        let union = IntRect(left: min(a.left, b.left), top: min(a.top, b.top), right: max(a.right, b.right), bottom: max(a.bottom, b.bottom))
        let outer = area(union)
        return inner / outer > options.nmsIOUThreshold
            || inner / area(a) > options.nmsPercentCoveredThreshold
            || inner / area(b) > options.nmsPercentCoveredThreshold
    }

    // MARK: - the input pyramid

    /// `input_rgb_image_pyramid::to_tensor`: the normalised image at `rects[0]`, each further level resampled from
    /// the previous one with dlib's float bilinear `resize_image` (as `tt::resize_bilinear` on the CPU).
    static func pyramidTensor(_ img: RGBImage, layout: (rects: [IntRect], rows: Int, cols: Int),
                              means: (Float, Float, Float)) -> Tensor {
        var t = Tensor(n: 1, k: 3, nr: layout.rows, nc: layout.cols)
        let r0 = layout.rects[0]
        for r in layout.rects {
            precondition(r.left >= 0 && r.top >= 0 && r.right < layout.cols && r.bottom < layout.rows,
                         "MMOD pyramid: level \(r) outside the \(layout.cols)x\(layout.rows) tensor")
        }
        precondition(r0.width == img.width && r0.height == img.height)
        let plane = layout.rows * layout.cols
        t.data.withUnsafeMutableBufferPointer { d in
            img.pixels.withUnsafeBufferPointer { p in
                let m = [means.0, means.1, means.2]
                for ch in 0 ..< 3 {
                    let mean = m[ch]
                    for y in 0 ..< img.height {
                        let row = d.baseAddress! + ch * plane + (r0.top + y) * layout.cols + r0.left
                        for x in 0 ..< img.width {
                            row[x] = (Float(p[(y * img.width + x) * 3 + ch]) - mean) / 256
                        }
                    }
                }
                for i in 1 ..< layout.rects.count {
                    let s = layout.rects[i - 1], dst = layout.rects[i]
                    for ch in 0 ..< 3 {
                        let base = d.baseAddress! + ch * plane
                        resizeBilinearFloat(src: UnsafePointer(base + s.top * layout.cols + s.left), srcRows: s.height, srcCols: s.width,
                                            srcStride: layout.cols,
                                            dst: base + dst.top * layout.cols + dst.left, dstRows: dst.height, dstCols: dst.width,
                                            dstStride: layout.cols)
                    }
                }
            }
        }
        return t
    }

    /// dlib's `resize_image` for float images with bilinear interpolation (its 4-wide SIMD path, then a scalar tail).
    static func resizeBilinearFloat(src: UnsafePointer<Float>, srcRows: Int, srcCols: Int, srcStride: Int,
                                    dst: UnsafeMutablePointer<Float>, dstRows: Int, dstCols: Int, dstStride: Int) {
        guard srcRows > 0, srcCols > 0, dstRows > 0, dstCols > 0 else { return }
        let xScale = Double(srcCols - 1) / Double(max(dstCols - 1, 1))
        let yScale = Double(srcRows - 1) / Double(max(dstRows - 1, 1))
        var y = -yScale
        for r in 0 ..< dstRows {
            y += yScale
            let top = Int(y.rounded(.down))
            let bottom = min(top + 1, srcRows - 1)
            let tbFrac = y - Double(top)
            let tb = Float(tbFrac), invTb = Float(1 - tbFrac)
            let topRow = src + top * srcStride, botRow = src + bottom * srcStride
            let out = dst + r * dstStride
            let x0 = -4 * xScale
            var xs = SIMD4<Float>(Float(x0), Float(x0 + xScale), Float(x0 + 2 * xScale), Float(x0 + 3 * xScale))
            let step = SIMD4<Float>(repeating: Float(4 * xScale))
            var c = 0
            while true {
                xs += step
                let left = SIMD4<Int32>(Int32(xs.x), Int32(xs.y), Int32(xs.z), Int32(xs.w))
                let lr = xs - SIMD4<Float>(left)
                let invLr = 1 - lr
                if Int(left.w) + 1 >= srcCols { break }
                let tlf = invTb * invLr, trf = invTb * lr, blf = tb * invLr, brf = tb * lr
                for j in 0 ..< 4 {
                    let l = Int(left[j])
                    let v = tlf[j] * topRow[l] + trf[j] * topRow[l + 1] + blf[j] * botRow[l] + brf[j] * botRow[l + 1]
                    out[c + j] = v
                }
                c += 4
            }
            var x = -xScale + Double(c) * xScale
            while c < dstCols {
                x += xScale
                let left = Int(x.rounded(.down))
                let right = min(left + 1, srcCols - 1)
                let lrFrac = Float(x - Double(left))
                let tl = topRow[left], tr = topRow[right], bl = botRow[left], br = botRow[right]
                let temp = (1 - tbFrac) * Double((1 - lrFrac) * tl + lrFrac * tr) + tbFrac * Double((1 - lrFrac) * bl + lrFrac * br)
                out[c] = Float(temp)
                c += 1
            }
        }
    }

    /// dlib's `pyramid_up(img, pyramid_down<2>)`: the output is `rect_up(get_rect(img))` sized (2·rows+1 by
    /// 2·cols+2) and filled by the RGB bilinear `resize_image` (4-wide float SIMD, truncating to bytes, then a
    /// scalar tail in double).
    public static func pyramidUp(_ img: RGBImage) -> RGBImage {
        let up = DlibPyramidDown2Mapping().rectUp(DRectangle(left: 0, top: 0, right: Double(img.width - 1),
                                                             bottom: Double(img.height - 1)), levels: 1).rounded
        let outW = up.right + 1, outH = up.bottom + 1
        var out = RGBImage(width: outW, height: outH)
        let inW = img.width, inH = img.height
        let xScale = Double(inW - 1) / Double(max(outW - 1, 1))
        let yScale = Double(inH - 1) / Double(max(outH - 1, 1))
        img.pixels.withUnsafeBufferPointer { src in
            out.pixels.withUnsafeMutableBufferPointer { dst in
                var y = -yScale
                for r in 0 ..< outH {
                    y += yScale
                    let top = Int(y.rounded(.down))
                    let bottom = min(top + 1, inH - 1)
                    let tbFrac = y - Double(top)
                    let tb = Float(tbFrac), invTb = Float(1 - tbFrac)
                    let topRow = src.baseAddress! + top * inW * 3, botRow = src.baseAddress! + bottom * inW * 3
                    let orow = dst.baseAddress! + r * outW * 3
                    let x0 = -4 * xScale
                    var xs = SIMD4<Float>(Float(x0), Float(x0 + xScale), Float(x0 + 2 * xScale), Float(x0 + 3 * xScale))
                    let step = SIMD4<Float>(repeating: Float(4 * xScale))
                    var c = 0
                    while true {
                        xs += step
                        let left = SIMD4<Int32>(Int32(xs.x), Int32(xs.y), Int32(xs.z), Int32(xs.w))
                        let lr = xs - SIMD4<Float>(left)
                        let invLr = 1 - lr
                        if Int(left.w) + 1 >= inW { break }
                        let tlf = invTb * invLr, trf = invTb * lr, blf = tb * invLr, brf = tb * lr
                        for j in 0 ..< 4 {
                            let l = Int(left[j]) * 3
                            for ch in 0 ..< 3 {
                                let v = tlf[j] * Float(topRow[l + ch]) + trf[j] * Float(topRow[l + 3 + ch])
                                    + blf[j] * Float(botRow[l + ch]) + brf[j] * Float(botRow[l + 3 + ch])
                                orow[(c + j) * 3 + ch] = UInt8(truncatingIfNeeded: Int32(v))
                            }
                        }
                        c += 4
                    }
                    var x = -xScale + Double(c) * xScale
                    while c < outW {
                        x += xScale
                        let left = Int(x.rounded(.down))
                        let right = min(left + 1, inW - 1)
                        let lrFrac = x - Double(left)
                        for ch in 0 ..< 3 {
                            let tl = Double(topRow[left * 3 + ch]), tr = Double(topRow[right * 3 + ch])
                            let bl = Double(botRow[left * 3 + ch]), br = Double(botRow[right * 3 + ch])
                            let v = (1 - tbFrac) * ((1 - lrFrac) * tl + lrFrac * tr) + tbFrac * ((1 - lrFrac) * bl + lrFrac * br)
                            orow[c * 3 + ch] = UInt8(truncatingIfNeeded: Int(v))
                        }
                        c += 1
                    }
                }
            }
        }
        return out
    }
}

/// The point mapping of dlib's `pyramid_down<2>` (`impl::pyramid_down_2_1`): down is `p/2 - (1.25, 0.75)`,
/// up is `(p + (1.25, 0.75))·2` (for `double` points, as `drectangle` corners are).
struct DlibPyramidDown2Mapping {
    func rectDown(_ r: DRectangle, levels: Int) -> DRectangle {
        var q = r
        for _ in 0 ..< levels {
            q = DRectangle(left: q.left / 2 - 1.25, top: q.top / 2 - 0.75, right: q.right / 2 - 1.25, bottom: q.bottom / 2 - 0.75)
        }
        return q
    }

    func rectUp(_ r: DRectangle, levels: Int) -> DRectangle {
        var q = r
        for _ in 0 ..< levels {
            q = DRectangle(left: (q.left + 1.25) * 2, top: (q.top + 0.75) * 2, right: (q.right + 1.25) * 2, bottom: (q.bottom + 0.75) * 2)
        }
        return q
    }
}
