/// The EXIF orientation tag (0x0112): how the stored pixels must be transformed to appear upright.
/// Raw values 1...8 as in the EXIF/TIFF specification; the transforms match Pillow's `ImageOps.exif_transpose`.
public enum EXIFOrientation: Int, Sendable, Hashable, CaseIterable {
    case up = 1              // as stored
    case upMirrored = 2      // flip left-right
    case down = 3            // rotate 180
    case downMirrored = 4    // flip top-bottom
    case leftMirrored = 5    // transpose
    case right = 6           // rotate 90 clockwise
    case rightMirrored = 7   // transverse
    case left = 8            // rotate 90 counter-clockwise

    /// Finds the orientation in a JPEG's APP1 "Exif" segment. Returns nil when there is none or it is
    /// malformed (a malformed EXIF block never fails the decode: the pixels are still valid).
    public static func read(fromJPEG bytes: UnsafeBufferPointer<UInt8>) -> EXIFOrientation? {
        let n = bytes.count
        guard n >= 4, bytes[0] == 0xFF, bytes[1] == 0xD8 else { return nil }
        var i = 2
        while i + 4 <= n {
            guard bytes[i] == 0xFF else { return nil }
            let marker = bytes[i + 1]
            if marker == 0xFF { i += 1; continue }            // fill byte
            if marker == 0xD8 || (0xD0...0xD7).contains(marker) || marker == 0x01 { i += 2; continue }
            if marker == 0xDA || marker == 0xD9 { return nil } // start of scan / end: no EXIF before the image data
            let length = Int(bytes[i + 2]) << 8 | Int(bytes[i + 3])
            guard length >= 2, i + 2 + length <= n else { return nil }
            let segment = i + 4
            let segmentEnd = i + 2 + length
            if marker == 0xE1, segmentEnd - segment >= 14,
               bytes[segment] == 0x45, bytes[segment + 1] == 0x78, bytes[segment + 2] == 0x69,
               bytes[segment + 3] == 0x66, bytes[segment + 4] == 0, bytes[segment + 5] == 0 {
                if let o = parseTIFF(bytes, start: segment + 6, end: segmentEnd) { return o }
            }
            i = segmentEnd
        }
        return nil
    }

    /// Reads tag 0x0112 from IFD0 of the TIFF structure in `bytes[start..<end]`.
    static func parseTIFF(_ bytes: UnsafeBufferPointer<UInt8>, start: Int, end: Int) -> EXIFOrientation? {
        guard end - start >= 8 else { return nil }
        let little: Bool
        if bytes[start] == 0x49 && bytes[start + 1] == 0x49 { little = true }
        else if bytes[start] == 0x4D && bytes[start + 1] == 0x4D { little = false }
        else { return nil }
        func u16(_ off: Int) -> Int? {
            let p = start + off
            guard off >= 0, p + 2 <= end else { return nil }
            return little ? Int(bytes[p]) | Int(bytes[p + 1]) << 8 : Int(bytes[p]) << 8 | Int(bytes[p + 1])
        }
        func u32(_ off: Int) -> Int? {
            guard let a = u16(off), let b = u16(off + 2) else { return nil }
            return little ? a | b << 16 : a << 16 | b
        }
        guard u16(2) == 42, let ifd = u32(4), let count = u16(ifd) else { return nil }
        for k in 0..<count {
            let entry = ifd + 2 + 12 * k
            guard let tag = u16(entry) else { return nil }
            if tag == 0x0112 {
                guard let type = u16(entry + 2) else { return nil }
                let value: Int?
                switch type {
                case 3: value = u16(entry + 8)                  // SHORT, stored left-justified in the value field
                case 4: value = u32(entry + 8)                  // LONG (non-standard but seen)
                default: value = nil
                }
                return value.flatMap { EXIFOrientation(rawValue: $0) }
            }
        }
        return nil
    }
}

extension RGBImage {
    /// The image transformed so that a picture stored with `orientation` appears upright
    /// (same pixel permutation as Pillow's `ImageOps.exif_transpose`).
    public func oriented(_ orientation: EXIFOrientation) -> RGBImage {
        let ws = width, hs = height
        let swaps = orientation.rawValue >= 5
        let wo = swaps ? hs : ws, ho = swaps ? ws : hs
        if orientation == .up { return self }
        var out = [UInt8](repeating: 0, count: wo * ho * 3)
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for y in 0..<ho {
                    for x in 0..<wo {
                        let sx: Int, sy: Int
                        switch orientation {
                        case .up: sx = x; sy = y
                        case .upMirrored: sx = ws - 1 - x; sy = y
                        case .down: sx = ws - 1 - x; sy = hs - 1 - y
                        case .downMirrored: sx = x; sy = hs - 1 - y
                        case .leftMirrored: sx = y; sy = x
                        case .right: sx = y; sy = hs - 1 - x
                        case .rightMirrored: sx = ws - 1 - y; sy = hs - 1 - x
                        case .left: sx = ws - 1 - y; sy = x
                        }
                        let s = (sy * ws + sx) * 3, d = (y * wo + x) * 3
                        dst[d] = src[s]; dst[d + 1] = src[s + 1]; dst[d + 2] = src[s + 2]
                    }
                }
            }
        }
        return RGBImage(width: wo, height: ho, pixels: out)
    }
}
