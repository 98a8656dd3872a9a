/// Image container formats recognised from their magic bytes (never from a file extension).
public enum ImageFormat: String, Sendable, Hashable, CaseIterable {
    case jpeg, png
    // Recognised so the error can name them, but not decoded:
    case gif, bmp, webp, tiff, heif, avif, jpeg2000, jpegXL, ico, psd

    /// Whether Facet decodes this format.
    public var isDecodable: Bool { self == .jpeg || self == .png }

    /// The format named by the first bytes of `bytes`, or nil when none matches.
    public static func sniff<C: Collection>(_ bytes: C) -> ImageFormat? where C.Element == UInt8 {
        let head = Array(bytes.prefix(16))
        func starts(_ sig: [UInt8], at offset: Int = 0) -> Bool {
            head.count >= offset + sig.count && Array(head[offset..<(offset + sig.count)]) == sig
        }
        if starts([0xFF, 0xD8, 0xFF]) { return .jpeg }
        if starts([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .png }
        if starts(Array("GIF87a".utf8)) || starts(Array("GIF89a".utf8)) { return .gif }
        if starts(Array("BM".utf8)) && head.count >= 14 { return .bmp }
        if starts(Array("RIFF".utf8)) && starts(Array("WEBP".utf8), at: 8) { return .webp }
        if starts([0x49, 0x49, 0x2A, 0x00]) || starts([0x4D, 0x4D, 0x00, 0x2A]) { return .tiff }
        if starts(Array("ftyp".utf8), at: 4) {
            let brand = head.count >= 12 ? String(decoding: head[8..<12], as: UTF8.self) : ""
            if brand.hasPrefix("avi") { return .avif }
            return .heif
        }
        if starts([0x00, 0x00, 0x00, 0x0C, 0x6A, 0x50, 0x20, 0x20]) || starts([0xFF, 0x4F, 0xFF, 0x51]) { return .jpeg2000 }
        if starts([0xFF, 0x0A]) || starts([0x00, 0x00, 0x00, 0x0C, 0x4A, 0x58, 0x4C, 0x20]) { return .jpegXL }
        if starts([0x00, 0x00, 0x01, 0x00]) { return .ico }
        if starts(Array("8BPS".utf8)) { return .psd }
        return nil
    }
}
