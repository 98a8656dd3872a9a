import SwiftProtobuf

/// Why a frame could not be turned into an `Envelope`. Every malformed or oversized input ends
/// here as a value, never as a crash; `wireError` is the reply a server sends back.
public enum WireDecodingError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The frame is larger than the receiver accepts.
    case frameTooLarge(size: Int, limit: Int)
    /// The frame holds no bytes at all.
    case emptyFrame
    /// The bytes are not a valid protobuf `Envelope` (truncated, wrong wire types, too deep...).
    case malformed(String)
    /// The envelope names a protocol version this build does not serve.
    case unsupportedVersion(UInt32)
    /// The envelope carries no body.
    case missingBody

    public var description: String {
        switch self {
        case .frameTooLarge(let size, let limit): return "frame of \(size) bytes exceeds the limit of \(limit) bytes"
        case .emptyFrame: return "empty frame"
        case .malformed(let why): return "malformed envelope: \(why)"
        case .unsupportedVersion(let v): return "unsupported protocol version \(v) (this build speaks \(WireProtocol.version))"
        case .missingBody: return "envelope without a body"
        }
    }

    /// The error reply for this failure.
    public var facetError: FacetError {
        switch self {
        case .frameTooLarge(_, let limit): return FacetError(.frameTooLarge, description, limit: UInt64(limit))
        case .emptyFrame, .malformed, .missingBody: return FacetError(.malformedMessage, description)
        case .unsupportedVersion: return FacetError(.unsupportedVersion, description)
        }
    }
}

/// Turning envelopes into frames and frames into envelopes.
public enum WireFrame {
    /// Binary decoding options for untrusted input: a bounded nesting depth, unknown fields kept
    /// (a newer peer's additions survive a round trip through an older node).
    public static var decodingOptions: BinaryDecodingOptions {
        var o = BinaryDecodingOptions()
        o.messageDepthLimit = 32
        o.discardUnknownFields = false
        return o
    }

    /// Decodes one frame into an envelope, rejecting frames over `maxBytes`, empty frames, bytes
    /// that are not an `Envelope`, envelopes without a body and unknown protocol versions.
    public static func decode<Bytes: SwiftProtobufContiguousBytes>(
        frame: Bytes, maxBytes: Int = WireProtocol.defaultMaxFrameBytes
    ) throws(WireDecodingError) -> WireEnvelope {
        let size = frame.count
        if size > maxBytes { throw .frameTooLarge(size: size, limit: maxBytes) }
        if size == 0 { throw .emptyFrame }
        let envelope: WireEnvelope
        do {
            envelope = try WireEnvelope(serializedBytes: frame, options: decodingOptions)
        } catch let error as BinaryDecodingError {
            throw .malformed(String(describing: error))
        } catch {
            throw .malformed(String(describing: error))
        }
        if envelope.protocolVersion != WireProtocol.version { throw .unsupportedVersion(envelope.protocolVersion) }
        if envelope.body == nil { throw .missingBody }
        return envelope
    }

    /// Serialises an envelope into one frame. Fails only if a string field holds invalid UTF-8
    /// (impossible for Swift `String`s) or the result would exceed `maxBytes`.
    public static func encode(_ envelope: WireEnvelope, maxBytes: Int = WireProtocol.defaultMaxFrameBytes)
        throws(WireDecodingError) -> [UInt8]
    {
        let bytes: [UInt8]
        do {
            bytes = try envelope.serializedBytes()
        } catch {
            throw .malformed("cannot serialise: \(error)")
        }
        if bytes.count > maxBytes { throw .frameTooLarge(size: bytes.count, limit: maxBytes) }
        return bytes
    }
}
