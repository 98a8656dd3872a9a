/// Errors from finding or loading a face model file.
public struct FaceModelError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: String, Sendable, Hashable {
        /// The model file is not where it was looked for.
        case missingModel
        /// The file exists but is not a valid model of the expected kind.
        case invalidModel
    }
    public let code: Code
    public let path: String
    public let reason: String

    public init(_ code: Code, path: String, reason: String) {
        self.code = code; self.path = path; self.reason = reason
    }

    public var message: String { "\(path): \(reason)" }
    public var description: String { "FaceModelError.\(code.rawValue): \(message)" }
}
