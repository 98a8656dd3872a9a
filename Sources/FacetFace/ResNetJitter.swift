import FacetImaging
import Foundation

/// dlib's `dlib::rand` (rand_kernel_1): an MT19937 seeded with 5489 and primed by discarding 10,000 outputs;
/// `get_random_double` builds a 48-bit fraction from two 24-bit draws.
public struct DlibRand: Sendable {
    private var mt = [UInt32](repeating: 0, count: 624)
    private var index = 624
    private let maxVal: Double = 16_777_215.0 * 16_777_216.0 + 16_777_215.0 + 0.05

    public init() {
        mt[0] = 5489
        for i in 1 ..< 624 { mt[i] = 1_812_433_253 &* (mt[i - 1] ^ (mt[i - 1] >> 30)) &+ UInt32(i) }
        for _ in 0 ..< 10_000 { _ = next32() }
    }

    private mutating func twist() {
        for i in 0 ..< 624 {
            let y = (mt[i] & 0x8000_0000) | (mt[(i + 1) % 624] & 0x7FFF_FFFF)
            mt[i] = mt[(i + 397) % 624] ^ (y >> 1) ^ ((y & 1) != 0 ? 0x9908_B0DF : 0)
        }
        index = 0
    }

    public mutating func next32() -> UInt32 {
        if index >= 624 { twist() }
        var z = mt[index]
        index += 1
        z ^= z >> 11
        z ^= (z << 7) & 0x9D2C_5680
        z ^= (z << 15) & 0xEFC6_0000
        z ^= z >> 18
        return z
    }

    public mutating func nextDouble() -> Double {
        var val = Double(next32() & 0xFFFFFF)
        val *= 16_777_216.0
        val += Double(next32() & 0xFFFFFF)
        val /= maxVal
        return val < 1 ? val : 1 - Double.ulpOfOne
    }

    public mutating func double(in begin: Double, _ end: Double) -> Double {
        begin + nextDouble() * (end - begin)
    }
}

/// dlib's `jitter_image` for a square chip: a random crop (±2 % translation, 97–99.999 % scale, ±3° rotation)
/// resampled to the chip size with `extract_image_chip`, mirrored left-right half of the time.
public enum DlibJitter {
    public static func jitter(_ img: RGBImage, rng: inout DlibRand) -> RGBImage {
        precondition(img.width == img.height && img.width > 6)
        // rect = shrink_rect(get_rect(img), 3)
        let rl = 3, rt = 3, rr = img.width - 1 - 3, rb = img.height - 1 - 3
        let rw = Double(rr - rl + 1), rh = Double(rb - rt + 1)
        // point(dpoint(x, y)), each coordinate floor(v + 0.5). dlib writes both draws as constructor arguments,
        // whose order C++ leaves unspecified; GCC (which builds dlib's wheels) evaluates them right to left,
        // so the y offset is drawn first.
        let ty = Int((rng.double(in: -0.02, 0.02) * rh + 0.5).rounded(.down))
        let tx = Int((rng.double(in: -0.02, 0.02) * rw + 0.5).rounded(.down))
        let scale = rng.double(in: 0.97, 0.99999)
        let box = Int(rh / scale)
        // center(rect) for non-negative corners: (l + r + 1) / 2
        let cx = (rl + rr + 1) / 2 + tx, cy = (rt + rb + 1) / 2 + ty
        // centered_rect(p, box, box)
        let left = cx - box / 2, top = cy - box / 2
        let crop = DoubleRect(left: Double(left), top: Double(top), right: Double(left + box - 1), bottom: Double(top + box - 1))
        let angle = rng.double(in: -3, 3) * Double.pi / 180
        var out = FaceChip.extract(img, details: ChipDetails(rect: crop, angle: angle, rows: img.height, cols: img.width))
        if rng.nextDouble() > 0.5 {
            let w = out.width
            out.pixels.withUnsafeMutableBufferPointer { p in
                for y in 0 ..< out.height {
                    var a = y * w * 3, b = (y * w + w - 1) * 3
                    while a < b {
                        for ch in 0 ..< 3 { p.swapAt(a + ch, b + ch) }
                        a += 3; b -= 3
                    }
                }
            }
        }
        return out
    }
}
