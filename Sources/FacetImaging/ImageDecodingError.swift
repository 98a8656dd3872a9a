/// Why an image could not be decoded. Every decoder failure in Facet is one of these: it names the
/// file (or the caller's label for an in-memory buffer), a stable machine-readable `code`, and a human reason.
///
/// The codes are part of the command-line and wire contract (`facet embed --json` prints `code.rawValue`),
/// so new cases are added, never renamed.
public struct ImageDecodingError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: String, Sendable, Hashable, CaseIterable {
        /// The input has zero bytes.
        case empty
        /// The input is a recognised format but ends before the image data is complete.
        case truncated
        /// The input is a recognised format but its contents are invalid (bad markers, CRC, Huffman data...).
        case corrupt
        /// The header declares more pixels than `ImageDecodingLimits.maxPixels`, or the input has more bytes
        /// than `ImageDecodingLimits.maxBytes`. Checked before any large allocation.
        case tooLarge
        /// The bytes are a known format Facet does not decode (GIF, BMP, WebP, TIFF, HEIF...) or no known format.
        case unsupportedFormat
        /// The file could not be read (missing, unreadable, a directory...).
        case unreadable
    }

    public let code: Code
    /// The file path, or a label given by the caller for in-memory data.
    public let source: String
    public let reason: String

    public init(_ code: Code, source: String, reason: String) {
        self.code = code
        self.source = source
        self.reason = reason
    }

    /// `"<source>: <reason>"` — the message printed to users; never contains image bytes.
    public var message: String { "\(source): \(reason)" }
    public var description: String { "ImageDecodingError.\(code.rawValue): \(message)" }
}

/// Limits every decode is checked against before memory for pixels is allocated.
public struct ImageDecodingLimits: Sendable, Hashable {
    /// Maximum `width * height` a header may declare (default 40 megapixels).
    public var maxPixels: Int
    /// Maximum size of the encoded input in bytes (default 64 MiB).
    public var maxBytes: Int

    public init(maxPixels: Int = 40_000_000, maxBytes: Int = 64 << 20) {
        self.maxPixels = maxPixels
        self.maxBytes = maxBytes
    }

    public static let `default` = ImageDecodingLimits()
}
