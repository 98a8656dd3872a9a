/// Why a mask could not be drawn or its resources could not be loaded.
public enum MaskingError: Error, Sendable, Equatable {
    /// FacetMasking needs the 68 points of the iBUG 300-W layout (dlib's 68-point predictor).
    case wrongLandmarkCount(Int)
    case nonFiniteLandmark(index: Int)
    /// The landmarks span (almost) no area, so no mask geometry can be fitted.
    case degenerateFace(String)
    case emptyImage
    case resourceMissing(String)
    case resourceUnreadable(String, reason: String)
    case unknownPattern(String)
    /// The type is not drawn with that placement (`MaskType.placements`).
    case unsupportedPlacement(MaskType, MaskPlacement)
    /// An input that does not fit the model it is given to (e.g. a chip of another size).
    case invalidArgument(String)
}

extension MaskingError: CustomStringConvertible {
    public var description: String {
        switch self {
        case .wrongLandmarkCount(let n): "masks need the 68 dlib landmarks, got \(n) points"
        case .nonFiniteLandmark(let i): "landmark \(i) is not a finite number"
        case .degenerateFace(let why): "cannot fit a mask to these landmarks: \(why)"
        case .emptyImage: "the image has no pixels"
        case .resourceMissing(let path): "mask resource not found: \(path)"
        case .resourceUnreadable(let path, let reason): "mask resource \(path) is unreadable: \(reason)"
        case .unknownPattern(let name): "no bundled mask pattern named \(name)"
        case .invalidArgument(let why): why
        case .unsupportedPlacement(let type, let placement):
            "a \(type.rawValue) mask is not drawn \(placement.rawValue) (use \(type.placements.map(\.rawValue).joined(separator: ", ")))"
        }
    }
}
