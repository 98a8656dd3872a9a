import Foundation

/// Finds dlib model files: in an explicit directory, else `$FACET_MODELS`, else `./models`.
/// A missing file is a `FaceModelError.missingModel` naming the path and how to fetch it.
public struct FaceModelLocator: Sendable, Hashable {
    public static let resnetFile = "dlib_face_recognition_resnet_model_v1.dat"
    public static let mmodFile = "mmod_human_face_detector.dat"
    public static let fivePointFile = "shape_predictor_5_face_landmarks.dat"
    public static let sixtyEightPointFile = "shape_predictor_68_face_landmarks.dat"

    public let directory: String

    /// `directory` if given, else `$FACET_MODELS`, else `./models`.
    public init(directory: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment) {
        if let d = directory, !d.isEmpty { self.directory = d }
        else if let d = environment["FACET_MODELS"], !d.isEmpty { self.directory = d }
        else { self.directory = "models" }
    }

    /// The path of `file` in the models directory; throws if it is not there.
    public func path(of file: String) throws(FaceModelError) -> String {
        let path = (directory as NSString).appendingPathComponent(file)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw FaceModelError(.missingModel, path: path,
                                 reason: "model file \(file) not found in \(directory) "
                                     + "(run scripts/setup.sh, or point FACET_MODELS / --models at the folder holding it)")
        }
        return path
    }
}
