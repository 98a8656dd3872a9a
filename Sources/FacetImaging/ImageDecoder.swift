import Foundation

/// Decodes JPEG and PNG bytes into `RGBImage`, with the format taken from the magic bytes and every size
/// checked against `limits` from the header before pixel memory is allocated.
///
/// Colour conversion matches what Pillow's `Image.open(path)` + `ImageOps.exif_transpose` + `.convert("RGB")`
/// produces — which is what `scripts/make-goldens.py` feeds dlib:
/// - JPEG: libjpeg-turbo with default flags (ISLOW DCT, fancy upsampling), byte-identical to Pillow. Grayscale
///   JPEGs are replicated into R=G=B. CMYK/YCCK JPEGs are refused (`unsupportedFormat`).
/// - PNG: grayscale is replicated, palettes are expanded, and an alpha channel is **dropped** (not composited),
///   exactly as Pillow's `convert("RGB")` does for RGBA/LA/P+tRNS. 16-bit samples are reduced to 8 bits by libpng
///   (treated as sRGB-encoded).
/// - EXIF orientation (JPEG APP1, tag 0x0112) is applied when `applyEXIFOrientation` is true (the default),
///   so phone photos come out upright, as `ImageOps.exif_transpose` does.
public struct ImageDecoder: Sendable {
    public var limits: ImageDecodingLimits
    public var applyEXIFOrientation: Bool

    public init(limits: ImageDecodingLimits = .default, applyEXIFOrientation: Bool = true) {
        self.limits = limits
        self.applyEXIFOrientation = applyEXIFOrientation
    }

    /// Reads and decodes the file at `path`. The file size is checked against `limits.maxBytes` before reading.
    public func decodeFile(atPath path: String) throws(ImageDecodingError) -> RGBImage {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ImageDecodingError(.unreadable, source: path, reason: "no such file")
        }
        if isDirectory.boolValue {
            throw ImageDecodingError(.unreadable, source: path, reason: "is a directory, not an image file")
        }
        let size: Int
        do {
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            size = (attributes[.size] as? NSNumber)?.intValue ?? 0
        } catch {
            throw ImageDecodingError(.unreadable, source: path, reason: "cannot stat file (\(error.localizedDescription))")
        }
        if size > limits.maxBytes {
            throw ImageDecodingError(.tooLarge, source: path,
                                     reason: "file has \(size) bytes, over the limit of \(limits.maxBytes) bytes")
        }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw ImageDecodingError(.unreadable, source: path, reason: "cannot open file for reading")
        }
        defer { try? handle.close() }
        let data: Data
        do {
            // Read at most one byte past the limit: a file that grew since stat is still refused.
            data = try handle.read(upToCount: limits.maxBytes + 1) ?? Data()
        } catch {
            throw ImageDecodingError(.unreadable, source: path, reason: "read failed (\(error.localizedDescription))")
        }
        return try decode(data, source: path)
    }

    /// Decodes in-memory bytes; `source` names them in errors.
    public func decode(_ data: Data, source: String = "<memory>") throws(ImageDecodingError) -> RGBImage {
        if data.isEmpty { throw ImageDecodingError(.empty, source: source, reason: "empty input (0 bytes)") }
        if data.count > limits.maxBytes {
            throw ImageDecodingError(.tooLarge, source: source,
                                     reason: "input has \(data.count) bytes, over the limit of \(limits.maxBytes) bytes")
        }
        let result: Result<RGBImage, ImageDecodingError> = data.withUnsafeBytes { raw in
            let bytes = UnsafeBufferPointer(start: raw.bindMemory(to: UInt8.self).baseAddress, count: raw.count)
            do throws(ImageDecodingError) { return .success(try decode(bytes: bytes, source: source)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    /// Decodes in-memory bytes; `source` names them in errors.
    public func decode(_ bytes: [UInt8], source: String = "<memory>") throws(ImageDecodingError) -> RGBImage {
        try decode(Data(bytes), source: source)
    }

    private func decode(bytes: UnsafeBufferPointer<UInt8>, source: String) throws(ImageDecodingError) -> RGBImage {
        guard let format = ImageFormat.sniff(bytes) else {
            throw ImageDecodingError(.unsupportedFormat, source: source,
                                     reason: "not a JPEG or PNG file (unrecognised signature \(hexPrefix(bytes)))")
        }
        switch format {
        case .jpeg:
            var image = try JPEGCodec.decode(bytes, source: source, limits: limits)
            if applyEXIFOrientation, let orientation = EXIFOrientation.read(fromJPEG: bytes), orientation != .up {
                image = image.oriented(orientation)
            }
            return image
        case .png:
            return try PNGCodec.decode(bytes, source: source, limits: limits)
        default:
            throw ImageDecodingError(.unsupportedFormat, source: source,
                                     reason: "\(format.rawValue.uppercased()) images are not supported (JPEG and PNG only)")
        }
    }

    private func hexPrefix(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
        bytes.prefix(8).map { byte in
            let s = String(byte, radix: 16)
            return s.count == 1 ? "0" + s : s
        }.joined(separator: " ")
    }
}

/// Checks a header's declared size against the limits; shared by the codecs.
@inline(__always)
func checkDimensions(width: Int, height: Int, format: String, source: String,
                     limits: ImageDecodingLimits) throws(ImageDecodingError) {
    guard width > 0, height > 0 else {
        throw ImageDecodingError(.corrupt, source: source, reason: "\(format) header declares an empty image (\(width)x\(height))")
    }
    let (pixels, overflow) = width.multipliedReportingOverflow(by: height)
    if overflow || pixels > limits.maxPixels {
        throw ImageDecodingError(.tooLarge, source: source,
                                 reason: "\(format) header declares \(width)x\(height) pixels, over the limit of \(limits.maxPixels) pixels")
    }
}
