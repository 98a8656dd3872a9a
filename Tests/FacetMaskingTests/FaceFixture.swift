import FacetFace
import FacetImaging
import Foundation

/// One committed fixture: an LFW photo and the 68 landmarks dlib found on it
/// (made by scripts/make-mask-fixtures.py).
struct FaceFixture: Decodable {
    struct Box: Decodable { let left, top, right, bottom: Int }
    let image: String
    let note: String
    let width: Int
    let height: Int
    let box: Box
    let landmarks: [[Double]]

    var points: [LandmarkPoint] { landmarks.map { LandmarkPoint(x: $0[0], y: $0[1]) } }

    static let directory: URL = Bundle.module.bundleURL.appendingPathComponent("Fixtures/faces")

    static let names = [
        "Terry_Gilliam_0001", "Tom_Brady_0001", "Henry_Kissinger_0001",
        "Steve_Rush_0001", "Jerry_Springer_0001", "Lisa_Girman_0001",
    ]

    static func load(_ name: String) throws -> FaceFixture {
        let data = try Data(contentsOf: directory.appendingPathComponent(name + ".json"))
        return try JSONDecoder().decode(FaceFixture.self, from: data)
    }

    /// A canvas of the photo's size: a smooth grey gradient, so placement tests do not depend on pixels.
    var canvas: RGBImage {
        var img = RGBImage(width: width, height: height)
        for y in 0..<height {
            for x in 0..<width {
                let v = UInt8(90 + (x + y) % 80)
                img[x, y] = (v, v &+ 10, v &+ 20)
            }
        }
        return img
    }
}
