import CTurboJPEG

/// JPEG decoding through libjpeg-turbo's TurboJPEG API with default flags, which decodes byte-identically
/// to Pillow (same ISLOW DCT and fancy upsampling), so goldens made in Python match pixel for pixel.
enum JPEGCodec {
    static func decode(_ bytes: UnsafeBufferPointer<UInt8>, source: String,
                       limits: ImageDecodingLimits) throws(ImageDecodingError) -> RGBImage {
        guard let handle = tjInitDecompress() else {
            throw ImageDecodingError(.corrupt, source: source, reason: "cannot initialise the JPEG decoder")
        }
        defer { tjDestroy(handle) }
        guard let base = bytes.baseAddress else {
            throw ImageDecodingError(.empty, source: source, reason: "empty input (0 bytes)")
        }
        let size = UInt(bytes.count)

        var width: Int32 = 0, height: Int32 = 0, subsampling: Int32 = 0, colorspace: Int32 = 0
        if tjDecompressHeader3(handle, base, size, &width, &height, &subsampling, &colorspace) != 0 {
            let message = errorString(handle)
            throw classify(message, bytes: bytes, source: source, stage: "header")
        }
        try checkDimensions(width: Int(width), height: Int(height), format: "JPEG", source: source, limits: limits)
        if colorspace == Int32(TJCS_CMYK.rawValue) || colorspace == Int32(TJCS_YCCK.rawValue) {
            throw ImageDecodingError(.unsupportedFormat, source: source,
                                     reason: "CMYK/YCCK JPEG images are not supported (convert to RGB first)")
        }

        let w = Int(width), h = Int(height)
        var pixels = [UInt8](repeating: 0, count: w * h * 3)
        // TJFLAG_LIMITSCANS: refuse progressive files with more than 500 scans (a CPU-exhaustion trick);
        // it changes nothing for ordinary files.
        let flags = Int32(TJFLAG_LIMITSCANS)
        let status = pixels.withUnsafeMutableBufferPointer { out in
            tjDecompress2(handle, base, size, out.baseAddress, width, 0, height, Int32(TJPF_RGB.rawValue), flags)
        }
        if status != 0 {
            let code = tjGetErrorCode(handle)
            let message = errorString(handle)
            // A warning (e.g. "extraneous bytes before marker") leaves a complete image; Pillow accepts those too.
            // A premature end is reported as a warning by libjpeg but means missing data: refuse it, as Pillow does.
            if code != Int32(TJERR_WARNING.rawValue) || isPrematureEnd(message) || !hasEndOfImage(bytes) {
                throw classify(message, bytes: bytes, source: source, stage: "data")
            }
        }
        return RGBImage(width: w, height: h, pixels: pixels)
    }

    private static func errorString(_ handle: tjhandle) -> String {
        guard let c = tjGetErrorStr2(handle) else { return "unknown JPEG error" }
        return String(cString: c)
    }

    private static func isPrematureEnd(_ message: String) -> Bool {
        message.localizedLowercase.contains("premature end")
    }

    /// Whether an EOI marker (FF D9) sits near the end; a cut-off file has none.
    private static func hasEndOfImage(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        let n = bytes.count
        guard n >= 4 else { return false }
        var i = n - 2
        let stop = max(2, n - 4096)
        while i >= stop {
            if bytes[i] == 0xFF && bytes[i + 1] == 0xD9 { return true }
            i -= 1
        }
        return false
    }

    private static func classify(_ message: String, bytes: UnsafeBufferPointer<UInt8>, source: String,
                                 stage: String) -> ImageDecodingError {
        if isPrematureEnd(message) || !hasEndOfImage(bytes) {
            return ImageDecodingError(.truncated, source: source,
                                      reason: "JPEG data ends early (\(bytes.count) bytes; libjpeg: \(message))")
        }
        return ImageDecodingError(.corrupt, source: source, reason: "invalid JPEG \(stage) (libjpeg: \(message))")
    }
}
