import Foundation
import Testing
@testable import FacetFace

@Suite("facet embed JSON Lines")
struct EmbedReportTests {
    static func face() -> FaceAnalysis {
        FaceAnalysis(detection: FaceDetection(rect: FaceRect(left: -3, top: 4, right: 100, bottom: 107), confidence: 1.0625),
                     landmarks: (0..<5).map { LandmarkPoint(x: Double($0 * 10), y: 7) },
                     chip: ChipDetails(rect: DoubleRect(left: 0, top: 0, right: 1, bottom: 1), angle: 0, rows: 150, cols: 150),
                     embedding: l2Normalized((0..<128).map { Float($0) - 60.5 }),
                     rawDescriptor: (0..<128).map { Float($0) - 60.5 })
    }

    @Test("a face record parses as JSON with the fields the issue specifies")
    func faceLine() throws {
        let path = "dir/odd \"name\"\\\n.jpg"
        let line = EmbedReport.line(image: path, width: 250, height: 200, faces: [Self.face()],
                                    extraFaceFields: { _ in [("mask", "{\"score\": 0.5}")] })
        #expect(!line.contains("\n"))
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(obj["image"] as? String == path)
        #expect(obj["width"] as? Int == 250 && obj["height"] as? Int == 200)
        let faces = try #require(obj["faces"] as? [[String: Any]])
        #expect(faces.count == 1)
        #expect(faces[0]["box"] as? [Int] == [-3, 4, 100, 107])
        #expect(faces[0]["confidence"] as? Double == 1.0625)
        #expect((faces[0]["landmarks"] as? [[Int]])?.count == 5)
        let embedding = try #require(faces[0]["embedding"] as? [Double])
        #expect(embedding.count == 128)
        // Printed floats round-trip exactly.
        #expect(zip(embedding, Self.face().embedding).allSatisfy { Float($0) == $1 })
        #expect((faces[0]["mask"] as? [String: Any])?["score"] as? Double == 0.5)
    }

    @Test("an error record parses and names code and message")
    func errorLine() throws {
        let line = EmbedReport.errorLine(image: "a.gif", code: "unsupportedFormat", message: "a.gif: GIF images are not supported\t!")
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        let err = try #require(obj["error"] as? [String: String])
        #expect(err["code"] == "unsupportedFormat")
        #expect(err["message"] == "a.gif: GIF images are not supported\t!")
        #expect(obj["faces"] == nil)
    }

    @Test("an image without faces has an empty list")
    func noFaces() throws {
        let line = EmbedReport.line(image: "x.png", width: 1, height: 1, faces: [])
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect((obj["faces"] as? [Any])?.isEmpty == true)
    }
}
