/// dlib's `transform_image(in, out, interpolate_bilinear(), map)` with a black background: every output pixel
/// `(c, r)` samples the input at `map(c, r)`; pixels whose 2x2 neighbourhood leaves the input stay black.
/// The arithmetic (Double, same operation order, truncation to UInt8) follows `interpolate_bilinear` in
/// `dlib/image_transforms/interpolation.h`, so outputs match dlib byte for byte.
public enum BilinearSampling {
    public static func transform(_ image: RGBImage, width outW: Int, height outH: Int,
                                 outputToInput map: PointTransformAffine) -> RGBImage {
        var out = [UInt8](repeating: 0, count: outW * outH * 3)
        let w = image.width, h = image.height
        image.pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for r in 0..<outH {
                    for c in 0..<outW {
                        let (px, py) = map.apply(Double(c), Double(r))
                        let fl = px.rounded(.down), ft = py.rounded(.down)
                        guard fl.isFinite, ft.isFinite, fl >= 0, ft >= 0, fl < Double(w - 1), ft < Double(h - 1) else { continue }
                        let left = Int(fl), top = Int(ft)
                        let lr = px - Double(left), tb = py - Double(top)
                        let tl = (top * w + left) * 3, tr = tl + 3
                        let bl = tl + w * 3, br = bl + 3
                        let o = (r * outW + c) * 3
                        for ch in 0..<3 {
                            let v = (1 - tb) * ((1 - lr) * Double(src[tl + ch]) + lr * Double(src[tr + ch]))
                                + tb * ((1 - lr) * Double(src[bl + ch]) + lr * Double(src[br + ch]))
                            dst[o + ch] = UInt8(truncatingIfNeeded: Int(v))
                        }
                    }
                }
            }
        }
        return RGBImage(width: outW, height: outH, pixels: out)
    }
}

extension RGBImage {
    /// The pixels inside the inclusive rectangle `left...right`, `top...bottom`, which must lie inside the image.
    public func cropped(left: Int, top: Int, right: Int, bottom: Int) -> RGBImage {
        precondition(left >= 0 && top >= 0 && right < width && bottom < height, "cropped: rectangle outside the image")
        let cw = max(0, right - left + 1), ch = max(0, bottom - top + 1)
        var out = [UInt8](repeating: 0, count: cw * ch * 3)
        for y in 0..<ch {
            let s = ((top + y) * width + left) * 3
            out.replaceSubrange((y * cw * 3)..<((y + 1) * cw * 3), with: pixels[s..<(s + cw * 3)])
        }
        return RGBImage(width: cw, height: ch, pixels: out)
    }
}
