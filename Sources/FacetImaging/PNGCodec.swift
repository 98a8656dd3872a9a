import CPNG

/// PNG decoding through libpng's simplified API (which handles libpng's longjmp error model in C, so a corrupt
/// file becomes an error value, never a jump across Swift frames).
///
/// Conversion to RGB follows Pillow's `convert("RGB")`: gray is replicated, palettes are expanded, and alpha
/// is dropped rather than composited. 16-bit samples are treated as sRGB-encoded and reduced to 8 bits by libpng.
enum PNGCodec {
    static func decode(_ bytes: UnsafeBufferPointer<UInt8>, source: String,
                       limits: ImageDecodingLimits) throws(ImageDecodingError) -> RGBImage {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        defer { png_image_free(&image) }

        guard let base = bytes.baseAddress else {
            throw ImageDecodingError(.empty, source: source, reason: "empty input (0 bytes)")
        }
        if png_image_begin_read_from_memory(&image, base, bytes.count) == 0 {
            throw classify(message(of: image), bytes: bytes, source: source, stage: "header")
        }
        try checkDimensions(width: Int(image.width), height: Int(image.height), format: "PNG", source: source, limits: limits)

        let hasAlpha = (image.format & UInt32(PNG_FORMAT_FLAG_ALPHA)) != 0
        // Request RGBA when there is alpha, so libpng does not composite; the alpha byte is dropped below.
        // (PNG_FORMAT_RGBA / PNG_FORMAT_RGB are composite macros that Swift does not import.)
        image.format = UInt32(PNG_FORMAT_FLAG_COLOR) | (hasAlpha ? UInt32(PNG_FORMAT_FLAG_ALPHA) : 0)
        image.flags |= UInt32(PNG_IMAGE_FLAG_16BIT_sRGB)
        let w = Int(image.width), h = Int(image.height)
        let channels = hasAlpha ? 4 : 3
        var buffer = [UInt8](repeating: 0, count: w * h * channels)
        let ok = buffer.withUnsafeMutableBytes { out in
            png_image_finish_read(&image, nil, out.baseAddress, 0, nil)
        }
        if ok == 0 {
            throw classify(message(of: image), bytes: bytes, source: source, stage: "data")
        }
        if !hasAlpha { return RGBImage(width: w, height: h, pixels: buffer) }

        var rgb = [UInt8](repeating: 0, count: w * h * 3)
        buffer.withUnsafeBufferPointer { src in
            rgb.withUnsafeMutableBufferPointer { dst in
                for i in 0..<(w * h) {
                    dst[3 * i] = src[4 * i]
                    dst[3 * i + 1] = src[4 * i + 1]
                    dst[3 * i + 2] = src[4 * i + 2]
                }
            }
        }
        return RGBImage(width: w, height: h, pixels: rgb)
    }

    private static func message(of image: png_image) -> String {
        withUnsafeBytes(of: image.message) { raw in
            let bytes = raw.prefix { $0 != 0 }
            return bytes.isEmpty ? "unknown PNG error" : String(decoding: bytes, as: UTF8.self)
        }
    }

    private static func classify(_ message: String, bytes: UnsafeBufferPointer<UInt8>, source: String,
                                 stage: String) -> ImageDecodingError {
        let m = message.localizedLowercase
        if m.contains("end of") || m.contains("not enough") || m.contains("truncated") || m.contains("eof")
            || !hasIEND(bytes) {
            return ImageDecodingError(.truncated, source: source,
                                      reason: "PNG data ends early (\(bytes.count) bytes; libpng: \(message))")
        }
        return ImageDecodingError(.corrupt, source: source, reason: "invalid PNG \(stage) (libpng: \(message))")
    }

    /// Whether the IEND chunk type appears near the end; a cut-off file has none.
    private static func hasIEND(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        let n = bytes.count
        guard n >= 12 else { return false }
        let iend: [UInt8] = [0x49, 0x45, 0x4E, 0x44]
        var i = n - 4
        let stop = max(8, n - 64)
        while i >= stop {
            if bytes[i] == iend[0] && bytes[i + 1] == iend[1] && bytes[i + 2] == iend[2] && bytes[i + 3] == iend[3] {
                return true
            }
            i -= 1
        }
        return false
    }
}
