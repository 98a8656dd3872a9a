import Foundation
import Testing
import FacetImaging
@testable import FacetFace

/// The dlib goldens written by `python3 scripts/make-goldens.py --faces` (see its docstring): per fixture image,
/// MMOD boxes at the recorded upsample, 5-point landmarks, chip details, dlib's chip (PNG) and descriptors.
struct FaceGolden: Decodable, Sendable, CustomTestStringConvertible {
    struct ChipDetailsJSON: Decodable, Sendable { let rect: [Double]; let angle: Double; let rows: Int; let cols: Int }
    struct Face: Decodable, Sendable {
        let box: [Int]
        let confidence: Double
        let landmarks: [[Double]]
        let chip: String
        let chip_fnv1a64: String
        let chip_details: ChipDetailsJSON
        let descriptor: [Float]
        let descriptor_from_chip: [Float]
        let descriptor_jitter_3: [Float]?
        let landmarks68: [[Double]]

        var rect: FaceRect { FaceRect(left: box[0], top: box[1], right: box[2], bottom: box[3]) }
        var points: [LandmarkPoint] { landmarks.map { LandmarkPoint(x: $0[0], y: $0[1]) } }
    }
    let image: String
    let note: String
    let width: Int
    let height: Int
    let decoded_fnv1a64: String
    let upsample: Int
    let faces: [Face]

    var testDescription: String { image }

    static let fixtures: URL = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
    static func imagePath(_ name: String) -> String { fixtures.appendingPathComponent("images/\(name)").path }
    static func chipPath(_ name: String) -> String { fixtures.appendingPathComponent("goldens/chips/\(name)").path }

    static let all: [FaceGolden] = {
        let dir = fixtures.appendingPathComponent("goldens")
        let files = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return files.filter { $0.hasSuffix(".json") }.sorted().map {
            try! JSONDecoder().decode(FaceGolden.self, from: Data(contentsOf: dir.appendingPathComponent($0)))
        }
    }()

    static var withFaces: [FaceGolden] { all.filter { !$0.faces.isEmpty } }

    func decode() throws -> RGBImage { try ImageDecoder().decodeFile(atPath: FaceGolden.imagePath(image)) }
}

enum Models {
    static let locator = FaceModelLocator()
    /// Models are required: the test command provides them (scripts/setup.sh); a missing file fails the test.
    static func path(_ file: String) throws -> String { try locator.path(of: file) }
    static let fivePoint: Result<ShapePredictor, FaceModelError> = Result { () throws(FaceModelError) in
        try ShapePredictor(modelPath: try locator.path(of: FaceModelLocator.fivePointFile))
    }
    static let sixtyEightPoint: Result<ShapePredictor, FaceModelError> = Result { () throws(FaceModelError) in
        try ShapePredictor(modelPath: try locator.path(of: FaceModelLocator.sixtyEightPointFile))
    }
    static let resnet: Result<ResNetFaceDescriptor, any Error> = Result {
        try ResNetFaceDescriptor(modelPath: try locator.path(of: FaceModelLocator.resnetFile))
    }
}

func fnv1a64(_ bytes: [UInt8]) -> String {
    var h: UInt64 = 0xcbf29ce484222325
    for b in bytes { h ^= UInt64(b); h = h &* 0x100000001b3 }
    let s = String(h, radix: 16)
    return String(repeating: "0", count: 16 - s.count) + s
}

func l2(_ a: [Float], _ b: [Float]) -> Double {
    precondition(a.count == b.count)
    var s = 0.0
    for i in 0..<a.count { let d = Double(a[i]) - Double(b[i]); s += d * d }
    return s.squareRoot()
}
