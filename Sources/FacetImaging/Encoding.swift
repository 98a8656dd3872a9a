import CPNG
import CTurboJPEG
import Foundation

/// Why an image could not be encoded or written.
public struct ImageEncodingError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: String, Sendable, Hashable {
        case emptyImage
        case unsupportedExtension
        case encoderFailed
        case writeFailed
    }
    public let code: Code
    /// The C function that failed, or the path, as applicable.
    public let context: String
    public let reason: String

    public init(_ code: Code, context: String, reason: String) {
        self.code = code; self.context = context; self.reason = reason
    }

    public var description: String { "ImageEncodingError.\(code.rawValue): \(context): \(reason)" }
}

/// The encodings `ImageEncoder` writes.
public enum EncodedImageFormat: String, Sendable, Hashable, CaseIterable {
    case png
    case jpeg

    /// The format named by a path's extension (`.png`, `.jpg`, `.jpeg`; case-insensitive), or `nil`.
    public init?(pathExtension ext: String) {
        switch ext.lowercased() {
        case "png": self = .png
        case "jpg", "jpeg": self = .jpeg
        default: return nil
        }
    }
}

/// Encodes `RGBImage`s as PNG (libpng's simplified API, lossless) or JPEG (libjpeg-turbo, 4:4:4 chroma,
/// accurate DCT by default so round trips are as close as JPEG allows).
public struct ImageEncoder: Sendable {
    /// JPEG quality 1…100.
    public var jpegQuality: Int
    /// JPEG chroma subsampling: `false` keeps full-resolution colour (4:4:4), `true` uses 4:2:0.
    public var jpegChromaSubsampling: Bool

    public init(jpegQuality: Int = 95, jpegChromaSubsampling: Bool = false) {
        self.jpegQuality = min(100, max(1, jpegQuality))
        self.jpegChromaSubsampling = jpegChromaSubsampling
    }

    public func encode(_ image: RGBImage, as format: EncodedImageFormat) throws(ImageEncodingError) -> [UInt8] {
        switch format {
        case .png: try png(image)
        case .jpeg: try jpeg(image)
        }
    }

    /// PNG bytes, 8-bit RGB. The corresponding C function is `png_image_write_to_memory`.
    public func png(_ image: RGBImage) throws(ImageEncodingError) -> [UInt8] {
        guard image.width > 0, image.height > 0 else {
            throw ImageEncodingError(.emptyImage, context: "png", reason: "image is \(image.width)x\(image.height)")
        }
        var desc = png_image()
        desc.version = UInt32(PNG_IMAGE_VERSION)
        desc.width = UInt32(image.width)
        desc.height = UInt32(image.height)
        desc.format = PNG_FORMAT_FLAG_COLOR   // PNG_FORMAT_RGB
        var size: png_alloc_size_t = 0
        // First call: the size needed.
        let sized = image.pixels.withUnsafeBytes { px in
            png_image_write_to_memory(&desc, nil, &size, 0, px.baseAddress, 0, nil)
        }
        guard sized != 0, size > 0 else {
            let message = withUnsafeBytes(of: desc.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            png_image_free(&desc)
            throw ImageEncodingError(.encoderFailed, context: "png_image_write_to_memory", reason: message)
        }
        var out = [UInt8](repeating: 0, count: Int(size))
        let written = out.withUnsafeMutableBytes { dst in
            image.pixels.withUnsafeBytes { px in
                png_image_write_to_memory(&desc, dst.baseAddress, &size, 0, px.baseAddress, 0, nil)
            }
        }
        guard written != 0 else {
            let message = withUnsafeBytes(of: desc.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            png_image_free(&desc)
            throw ImageEncodingError(.encoderFailed, context: "png_image_write_to_memory", reason: message)
        }
        return Array(out.prefix(Int(size)))
    }

    /// JPEG bytes. The corresponding C function is `tjCompress2`.
    public func jpeg(_ image: RGBImage) throws(ImageEncodingError) -> [UInt8] {
        guard image.width > 0, image.height > 0 else {
            throw ImageEncodingError(.emptyImage, context: "jpeg", reason: "image is \(image.width)x\(image.height)")
        }
        guard let handle = tjInitCompress() else {
            throw ImageEncodingError(.encoderFailed, context: "tjInitCompress", reason: "no compressor")
        }
        defer { tjDestroy(handle) }
        var buffer: UnsafeMutablePointer<UInt8>? = nil
        var size: UInt = 0
        let subsampling = jpegChromaSubsampling ? Int32(TJSAMP_420.rawValue) : Int32(TJSAMP_444.rawValue)
        let rc = image.pixels.withUnsafeBufferPointer { px in
            tjCompress2(handle, px.baseAddress, Int32(image.width), 0, Int32(image.height), Int32(TJPF_RGB.rawValue),
                        &buffer, &size, subsampling, Int32(jpegQuality), TJFLAG_ACCURATEDCT)
        }
        defer { if let buffer { tjFree(buffer) } }
        guard rc == 0, let buffer else {
            let reason = tjGetErrorStr2(handle).map { String(cString: $0) } ?? "unknown error"
            throw ImageEncodingError(.encoderFailed, context: "tjCompress2", reason: reason)
        }
        return Array(UnsafeBufferPointer(start: buffer, count: Int(size)))
    }

    /// Encodes by the path's extension (`.png`, `.jpg`, `.jpeg`) and writes the file atomically.
    public func write(_ image: RGBImage, toPath path: String) throws(ImageEncodingError) {
        let ext = (path as NSString).pathExtension
        guard let format = EncodedImageFormat(pathExtension: ext) else {
            throw ImageEncodingError(.unsupportedExtension, context: path, reason: "use .png, .jpg or .jpeg")
        }
        let bytes = try encode(image, as: format)
        do {
            try Data(bytes).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw ImageEncodingError(.writeFailed, context: path, reason: error.localizedDescription)
        }
    }
}
