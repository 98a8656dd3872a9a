import FacetFace
import FacetImaging
import FacetNN
import Foundation
import Testing

@Suite("MMOD face detector against dlib")
struct MMODFaceDetectorTests {
    static let modelName = "mmod_human_face_detector.dat"

    struct Golden { let name: String; let image: RGBImage; let dets: [Int: [(box: [Int], confidence: Double)]] }

    static func goldens() throws -> [Golden] {
        let obj = try NNFixtures.json("mmod.json")
        return try (obj["images"] as! [[String: Any]]).map { e in
            var dets: [Int: [(box: [Int], confidence: Double)]] = [:]
            for up in [0, 1] {
                dets[up] = (e["upsample\(up)"] as! [[String: Any]]).map { ($0["box"] as! [Int], $0["confidence"] as! Double) }
            }
            return Golden(name: e["image"] as! String, image: try NNFixtures.png(e["image"] as! String), dets: dets)
        }
    }

    @Test("same faces as dlib: count, boxes within 1 px, confidences close", arguments: [0, 1])
    func matchesDlib(upsample: Int) throws {
        let detector = try MMODFaceDetector(modelPath: try NNFixtures.modelPath(Self.modelName))
        var total = 0
        var worst = 0.0
        for g in try Self.goldens() {
            let want = g.dets[upsample]!
            let got = try detector.detect(g.image, upsample: upsample)
            #expect(got.count == want.count, "\(g.name) upsample \(upsample): \(got) vs \(want)")
            total += want.count
            for (d, w) in zip(got, want) {
                let r = d.rect
                let err = [abs(r.left - w.box[0]), abs(r.top - w.box[1]), abs(r.right - w.box[2]), abs(r.bottom - w.box[3])].max()!
                #expect(err <= 1, "\(g.name) upsample \(upsample): box \(r) vs \(w.box)")
                #expect(abs(d.confidence - w.confidence) < 0.01, "\(g.name): confidence \(d.confidence) vs \(w.confidence)")
                worst = max(worst, abs(d.confidence - w.confidence))
            }
        }
        #expect(total >= 3)
        print("MMOD upsample \(upsample): \(total) faces, largest confidence difference \(worst)")
    }

    @Test("pyramid_up has dlib's size (2 rows + 1, 2 cols + 2)")
    func pyramidUpSize() {
        let up = MMODFaceDetector.pyramidUp(RGBImage(width: 7, height: 10))
        #expect(up.width == 16 && up.height == 21)
    }

    @Test("tiled pyramid layout of a 250x250 image follows dlib's rules")
    func tiledLayout() {
        let l = PyramidDown(6).tiledLayout(rows: 250, cols: 250, padding: 10, outerPadding: 11)
        #expect(l.rects[0] == IntRect(left: 11, top: 11, right: 260, bottom: 260))
        #expect(l.rects[1].width == 208 && l.rects[1].height == 208)
        #expect(l.cols == 250 + 22)
        // every level lies inside the tiled image and no two overlap
        for (i, a) in l.rects.enumerated() {
            #expect(a.left >= 0 && a.top >= 0 && a.right < l.cols && a.bottom < l.rows)
            for b in l.rects[(i + 1)...] { #expect(a.intersect(b).isEmpty) }
        }
    }

    @Test("bad upsample and empty images")
    func edgeCases() throws {
        let detector = try MMODFaceDetector(modelPath: try NNFixtures.modelPath(Self.modelName))
        #expect(throws: FaceDetectorError.invalidUpsample(-1)) { _ = try detector.detect(RGBImage(width: 10, height: 10), upsample: -1) }
        #expect(try detector.detect(RGBImage(width: 0, height: 0)).isEmpty)
        #expect(try detector.detect(RGBImage(width: 3, height: 2)).isEmpty)
        #expect(try detector.detect(RGBImage(width: 120, height: 90)).isEmpty)  // black: no face
        detector.maxPyramidPixels = 10_000
        #expect(throws: FaceDetectorError.self) { _ = try detector.detect(RGBImage(width: 200, height: 200)) }
    }
}
