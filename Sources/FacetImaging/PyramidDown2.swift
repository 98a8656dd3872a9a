/// dlib's `pyramid_down<2>` (`dlib/image_transforms/image_pyramid.h`, `pyramid_down_2_1`, RGB overload):
/// a separable 5-tap [1 4 6 4 1] filter with 2:1 subsampling, integer arithmetic, `sum / 256` truncated.
/// Output size `((h - 3) / 2) x ((w - 3) / 2)`; images of 8 or fewer rows or columns give an empty image.
/// Used by `extract_image_chips` to shrink large faces before bilinear sampling.
public enum PyramidDown2 {
    /// Maps a point of the input image to the output image (dlib's `point_down`).
    @inlinable public static func pointDown(_ x: Double, _ y: Double) -> (x: Double, y: Double) {
        (x / 2.0 - 1.25, y / 2.0 - 0.75)
    }

    /// Maps a point of the output image back to the input image (dlib's `point_up`).
    @inlinable public static func pointUp(_ x: Double, _ y: Double) -> (x: Double, y: Double) {
        ((x + 1.25) * 2, (y + 0.75) * 2)
    }

    public static func apply(_ image: RGBImage) -> RGBImage {
        let w = image.width, h = image.height
        if h <= 8 || w <= 8 { return RGBImage(width: 0, height: 0) }
        let tw = (w - 3) / 2
        let outH = (h - 3) / 2
        // Row filter over every input row (UInt16 as dlib's rgbptype: 16 * 255 fits).
        var temp = [UInt16](repeating: 0, count: h * tw * 3)
        image.pixels.withUnsafeBufferPointer { src in
            temp.withUnsafeMutableBufferPointer { t in
                for r in 0..<h {
                    let row = r * w * 3
                    let trow = r * tw * 3
                    var oc = 0
                    for c in 0..<tw {
                        let p = row + oc * 3
                        for ch in 0..<3 {
                            let v = UInt16(src[p + ch]) + 4 * UInt16(src[p + 3 + ch]) + 6 * UInt16(src[p + 6 + ch])
                                + 4 * UInt16(src[p + 9 + ch]) + UInt16(src[p + 12 + ch])
                            t[trow + c * 3 + ch] = v
                        }
                        oc += 2
                    }
                }
            }
        }
        var out = [UInt8](repeating: 0, count: outH * tw * 3)
        temp.withUnsafeBufferPointer { t in
            out.withUnsafeMutableBufferPointer { dst in
                var dr = 0
                var r = 2
                while r < h - 2 {
                    let stride = tw * 3
                    let base = r * stride
                    for i in 0..<stride {
                        // 16-bit arithmetic as dlib: at most 16 * 16 * 255 = 65280.
                        let v = t[base - 2 * stride + i] &+ t[base - stride + i] &* 4 &+ t[base + i] &* 6
                            &+ t[base + stride + i] &* 4 &+ t[base + 2 * stride + i]
                        dst[dr * stride + i] = UInt8(v / 256)
                    }
                    dr += 1
                    r += 2
                }
            }
        }
        return RGBImage(width: tw, height: outH, pixels: out)
    }
}
