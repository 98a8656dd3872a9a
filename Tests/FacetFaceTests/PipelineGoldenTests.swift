import Foundation
import Testing
import FacetImaging
@testable import FacetFace

/// The whole pipeline against dlib: MMOD at the golden's upsample → 5-point → chip → ResNet, per fixture image.
/// Faces are paired with dlib's by box; a box more than 1 px off fails here, a landmark or descriptor mismatch
/// with matching boxes points at the later stages (their own golden tests locate it further).
@Suite("dlib pipeline goldens (MMOD-detected path)")
struct PipelineGoldenTests {
    static let embedder: Result<DlibFaceEmbedder, any Error> = Result { try DlibFaceEmbedder(locator: FaceModelLocator()) }

    @Test("same faces, boxes and landmarks within 1 px, descriptors within L2 0.001", arguments: FaceGolden.all)
    func pipeline(golden: FaceGolden) throws {
        let embedder = try Self.embedder.get()
        let image = try golden.decode()
        let faces = try embedder.analyze(image, upsample: golden.upsample, jitter: 0)
        #expect(faces.count == golden.faces.count, "\(golden.image): \(faces.count) faces, dlib found \(golden.faces.count)")
        for g in golden.faces {
            let match = faces.min { a, b in boxDistance(a.box, g.box) < boxDistance(b.box, g.box) }
            guard let f = match, boxDistance(f.box, g.box) <= 1 else {
                Issue.record("\(golden.image): no face within 1 px of dlib's box \(g.box); got \(faces.map(\.box))")
                continue
            }
            #expect(abs(f.confidence - g.confidence) < 1e-3, "\(golden.image): confidence \(f.confidence) vs dlib \(g.confidence)")
            for (p, q) in zip(f.landmarks, g.points) {
                #expect(abs(p.x - q.x) <= 1 && abs(p.y - q.y) <= 1, "\(golden.image): landmark \(p) vs dlib \(q)")
            }
            let dist = l2(f.rawDescriptor, g.descriptor)
            #expect(dist < 0.001, "\(golden.image) box \(g.box): descriptor L2 \(dist) from dlib")
        }
    }
}

func boxDistance(_ a: FaceRect, _ b: [Int]) -> Int {
    max(abs(a.left - b[0]), abs(a.top - b[1]), abs(a.right - b[2]), abs(a.bottom - b[3]))
}
