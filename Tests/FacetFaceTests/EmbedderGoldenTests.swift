import Foundation
import Testing
import FacetImaging
@testable import FacetFace

/// Descriptors against dlib, located stage by stage:
/// 1. chip-only: ResNet on dlib's own chip vs `compute_face_descriptor(chip)`;
/// 2. alignment + network: Facet's predictor, chip and ResNet from dlib's MMOD box vs `compute_face_descriptor(img, shape)`.
/// (The MMOD-detected path is in `PipelineGoldenTests`.)
@Suite("dlib descriptor goldens")
struct EmbedderGoldenTests {
    static let tolerance = 0.001

    @Test("chip-only path: descriptors of dlib's chips within L2 0.001", arguments: FaceGolden.withFaces)
    func chipOnly(golden: FaceGolden) throws {
        let net = try Models.resnet.get()
        let chips = try golden.faces.map { try ImageDecoder().decodeFile(atPath: FaceGolden.chipPath($0.chip)) }
        let out = try net.descriptors(for: chips)
        for (face, d) in zip(golden.faces, out) {
            #expect(d.count == 128)
            let dist = l2(d, face.descriptor_from_chip)
            #expect(dist < Self.tolerance, "\(golden.image) \(face.chip): L2 \(dist) from dlib")
        }
    }

    @Test("from dlib's boxes: landmarks, chip and descriptor match dlib", arguments: FaceGolden.withFaces)
    func fromBoxes(golden: FaceGolden) throws {
        let net = try Models.resnet.get()
        let embedder = DlibFaceEmbedder(detector: NoDetector(), predictor: try Models.fivePoint.get(), descriptor: net)
        let image = try golden.decode()
        let detections = golden.faces.map { FaceDetection(rect: $0.rect, confidence: $0.confidence) }
        let faces = try embedder.analyze(image, detections: detections)
        #expect(faces.count == golden.faces.count)
        for (face, g) in zip(faces, golden.faces) {
            #expect(face.landmarks == g.points, "\(golden.image)")
            let dist = l2(face.rawDescriptor, g.descriptor)
            #expect(dist < Self.tolerance, "\(golden.image) box \(g.box): L2 \(dist) from dlib")
            let norm = face.embedding.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot()
            #expect(abs(norm - 1) < 1e-5)
        }
    }

    @Test("jitter 3 matches dlib's compute_face_descriptor(img, shape, 3) within L2 0.001")
    func jitter() throws {
        let g = try #require(FaceGolden.all.first { $0.faces.first?.descriptor_jitter_3 != nil })
        let face = g.faces[0]
        let expected = try #require(face.descriptor_jitter_3)
        // A fresh network: dlib's random generator lives with the model object and was unused before this call.
        let net = try ResNetFaceDescriptor(modelPath: try Models.path(FaceModelLocator.resnetFile))
        let embedder = DlibFaceEmbedder(detector: NoDetector(), predictor: try Models.fivePoint.get(), descriptor: net)
        let out = try embedder.analyze(try g.decode(), detections: [FaceDetection(rect: face.rect, confidence: face.confidence)], jitter: 3)
        let dist = l2(try #require(out.first).rawDescriptor, expected)
        #expect(dist < Self.tolerance, "\(g.image): jittered descriptor L2 \(dist) from dlib")
        #expect(l2(out[0].rawDescriptor, face.descriptor) > 0.001, "jitter changes the descriptor")
    }

    @Test("embedder arguments are validated")
    func arguments() throws {
        let embedder = DlibFaceEmbedder(detector: NoDetector(), predictor: try Models.fivePoint.get(), descriptor: try Models.resnet.get())
        #expect(throws: EmbedderError.self) { try embedder.analyze(RGBImage(width: 10, height: 10), upsample: -1, jitter: 0) }
        #expect(throws: EmbedderError.self) { try embedder.analyze(RGBImage(width: 10, height: 10), upsample: 0, jitter: 1000) }
        #expect(embedder.dimension == 128)
        #expect(embedder.modelName == "dlib_face_recognition_resnet_model_v1")
    }
}

/// A detector that finds nothing, for tests that supply dlib's boxes directly.
struct NoDetector: FaceDetector {
    func detect(_ image: RGBImage, upsample: Int) throws -> [FaceDetection] { [] }
}
