/// An error reply (`Error` in proto/facet.proto) as a Swift error, so that a client can
/// `catch let error as FacetError where error.code == .noFace`.
///
/// `description` carries the code and the server's message only; messages never hold embeddings
/// or image bytes by protocol rule, and this type adds none.
public struct FacetError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The error codes of the wire protocol, one-to-one with `WireErrorCode`.
    public enum Code: Sendable, Hashable, CustomStringConvertible {
        case unspecified
        case invalidArgument
        case notFound
        case alreadyExists
        case deadlineExceeded
        case unavailable
        case resourceExhausted
        case unauthenticated
        case permissionDenied
        case frameTooLarge
        case badImage
        case noFace
        case imageTooLarge
        case malformedMessage
        case unsupportedVersion
        case rateLimited
        case queueFull
        case cancelled
        case failedPrecondition
        case modelMismatch
        case staleShardMap
        case notDurable
        case internalError
        /// A code this build does not know (a newer peer); the raw number is kept.
        case unrecognized(Int)

        public init(_ wire: WireErrorCode) {
            switch wire {
            case .unspecified: self = .unspecified
            case .invalidArgument: self = .invalidArgument
            case .notFound: self = .notFound
            case .alreadyExists: self = .alreadyExists
            case .deadlineExceeded: self = .deadlineExceeded
            case .unavailable: self = .unavailable
            case .resourceExhausted: self = .resourceExhausted
            case .unauthenticated: self = .unauthenticated
            case .permissionDenied: self = .permissionDenied
            case .frameTooLarge: self = .frameTooLarge
            case .badImage: self = .badImage
            case .noFace: self = .noFace
            case .imageTooLarge: self = .imageTooLarge
            case .malformedMessage: self = .malformedMessage
            case .unsupportedVersion: self = .unsupportedVersion
            case .rateLimited: self = .rateLimited
            case .queueFull: self = .queueFull
            case .cancelled: self = .cancelled
            case .failedPrecondition: self = .failedPrecondition
            case .modelMismatch: self = .modelMismatch
            case .staleShardMap: self = .staleShardMap
            case .notDurable: self = .notDurable
            case .internal: self = .internalError
            case .UNRECOGNIZED(let raw): self = .unrecognized(raw)
            }
        }

        public var wire: WireErrorCode {
            switch self {
            case .unspecified: return .unspecified
            case .invalidArgument: return .invalidArgument
            case .notFound: return .notFound
            case .alreadyExists: return .alreadyExists
            case .deadlineExceeded: return .deadlineExceeded
            case .unavailable: return .unavailable
            case .resourceExhausted: return .resourceExhausted
            case .unauthenticated: return .unauthenticated
            case .permissionDenied: return .permissionDenied
            case .frameTooLarge: return .frameTooLarge
            case .badImage: return .badImage
            case .noFace: return .noFace
            case .imageTooLarge: return .imageTooLarge
            case .malformedMessage: return .malformedMessage
            case .unsupportedVersion: return .unsupportedVersion
            case .rateLimited: return .rateLimited
            case .queueFull: return .queueFull
            case .cancelled: return .cancelled
            case .failedPrecondition: return .failedPrecondition
            case .modelMismatch: return .modelMismatch
            case .staleShardMap: return .staleShardMap
            case .notDurable: return .notDurable
            case .internalError: return .internal
            case .unrecognized(let raw): return WireErrorCode(rawValue: raw) ?? .UNRECOGNIZED(raw)
            }
        }

        /// Whether retrying the same request later can succeed (the client's retry policy uses this).
        public var isRetryable: Bool {
            switch self {
            case .unavailable, .deadlineExceeded, .rateLimited, .queueFull, .staleShardMap, .notDurable: return true
            default: return false
            }
        }

        public var description: String {
            switch self {
            case .unrecognized(let raw): return "UNRECOGNIZED(\(raw))"
            default:
                // ERROR_CODE_NO_FACE -> NO_FACE, the name operators see in proto/facet.proto and logs.
                let name = String(describing: wire)
                var out = ""
                for ch in name {
                    if ch.isUppercase, !out.isEmpty { out.append("_") }
                    out.append(contentsOf: ch.uppercased())
                }
                return out
            }
        }
    }

    public var code: Code
    public var message: String
    /// For `.invalidArgument`: the offending field's name.
    public var field: String
    /// A retry hint for `.rateLimited`, `.queueFull`, `.unavailable`; 0 = none.
    public var retryAfterMilliseconds: UInt64
    /// For limit errors: the limit that was hit; 0 = not stated.
    public var limit: UInt64
    public var nodeID: String

    public init(_ code: Code, _ message: String, field: String = "", retryAfterMilliseconds: UInt64 = 0,
                limit: UInt64 = 0, nodeID: String = "") {
        self.code = code
        self.message = message
        self.field = field
        self.retryAfterMilliseconds = retryAfterMilliseconds
        self.limit = limit
        self.nodeID = nodeID
    }

    public init(_ wire: WireError) {
        self.init(Code(wire.code), wire.message, field: wire.field, retryAfterMilliseconds: wire.retryAfterMs,
                  limit: wire.limit, nodeID: wire.nodeID)
    }

    /// The error as the wire message that answers a request.
    public var wire: WireError {
        var e = WireError()
        e.code = code.wire
        e.message = message
        e.field = field
        e.retryAfterMs = retryAfterMilliseconds
        e.limit = limit
        e.nodeID = nodeID
        return e
    }

    public var description: String {
        var s = "\(code)"
        if !message.isEmpty { s += ": \(message)" }
        if !field.isEmpty { s += " (field \(field))" }
        if limit != 0 { s += " (limit \(limit))" }
        if !nodeID.isEmpty { s += " [node \(nodeID)]" }
        return s
    }
}
