import Foundation
import Testing
import FacetImaging
@testable import FacetFace

/// Landmarks and chips against dlib, independent of the detector and the network: the predictor runs on dlib's
/// MMOD box, the chip is cut from dlib's landmarks, so a mismatch here is located in alignment.
@Suite("dlib alignment goldens")
struct AlignmentGoldenTests {
    @Test("there are at least 25 fixture images and the decoder gives dlib the same pixels")
    func fixturesDecodeLikePillow() throws {
        #expect(FaceGolden.all.count >= 25)
        for g in FaceGolden.all {
            let image = try g.decode()
            #expect(image.width == g.width && image.height == g.height, "\(g.image)")
            #expect(fnv1a64(image.pixels) == g.decoded_fnv1a64, "\(g.image)")
        }
    }

    @Test("5-point landmarks from dlib's box match dlib within 1 px", arguments: FaceGolden.withFaces)
    func landmarks(golden: FaceGolden) throws {
        let predictor = try Models.fivePoint.get()
        let image = try golden.decode()
        for face in golden.faces {
            let points = predictor.landmarks(in: image, box: face.rect)
            #expect(points.count == 5)
            for (p, q) in zip(points, face.points) {
                #expect(abs(p.x - q.x) <= 1 && abs(p.y - q.y) <= 1, "\(golden.image) box \(face.box): \(p) vs dlib \(q)")
            }
        }
    }

    @Test("68-point landmarks from dlib's box match dlib within 1 px", arguments: FaceGolden.withFaces)
    func landmarks68(golden: FaceGolden) throws {
        let predictor = try Models.sixtyEightPoint.get()
        #expect(predictor.numParts == 68)
        let image = try golden.decode()
        for face in golden.faces {
            let points = predictor.landmarks(in: image, box: face.rect)
            #expect(points.count == 68)
            var off = 0
            for (p, q) in zip(points, face.landmarks68) where abs(p.x - q[0]) > 1 || abs(p.y - q[1]) > 1 { off += 1 }
            #expect(off == 0, "\(golden.image) box \(face.box): \(off) of 68 points more than 1 px from dlib's")
        }
    }

    @Test("chip details from dlib's landmarks match get_face_chip_details", arguments: FaceGolden.withFaces)
    func chipDetails(golden: FaceGolden) {
        for face in golden.faces {
            let d = ChipDetails.forFace(landmarks: face.points)
            let r = face.chip_details.rect
            #expect(d.rows == face.chip_details.rows && d.cols == face.chip_details.cols)
            #expect(abs(d.angle - face.chip_details.angle) < 1e-9, "\(golden.image)")
            for (a, b) in zip([d.rect.left, d.rect.top, d.rect.right, d.rect.bottom], r) {
                #expect(abs(a - b) < 1e-6, "\(golden.image): rect \(d.rect) vs dlib \(r)")
            }
        }
    }

    @Test("chips cut from dlib's landmarks equal dlib's chips", arguments: FaceGolden.withFaces)
    func chips(golden: FaceGolden) throws {
        let image = try golden.decode()
        for face in golden.faces {
            let (chip, _) = FaceChip.extract(image, landmarks: face.points)
            let reference = try ImageDecoder().decodeFile(atPath: FaceGolden.chipPath(face.chip))
            #expect(chip.width == 150 && chip.height == 150)
            #expect(fnv1a64(reference.pixels) == face.chip_fnv1a64, "stored chip PNG round-trips")
            var differing = 0, maxDiff = 0
            for (a, b) in zip(chip.pixels, reference.pixels) where a != b {
                differing += 1
                maxDiff = max(maxDiff, abs(Int(a) - Int(b)))
            }
            #expect(differing == 0, "\(golden.image) \(face.chip): \(differing) of \(chip.pixels.count) bytes differ, max \(maxDiff)")
        }
    }

    @Test("chipToImage maps the chip's template points onto the landmarks")
    func chipTransform() throws {
        let g = try #require(FaceGolden.withFaces.first)
        let face = g.faces[0]
        let d = ChipDetails.forFace(landmarks: face.points)
        let t = d.chipToImage
        var worst = 0.0
        for (tp, lm) in zip(ChipDetails.fivePointTemplate, face.points) {
            let p = t.apply((0.25 + tp.x) / 1.5 * 150, (0.25 + tp.y) / 1.5 * 150)
            worst = max(worst, abs(p.x - lm.x), abs(p.y - lm.y))
        }
        #expect(worst < 6, "least-squares fit of 5 points: residual \(worst) px")
        let back = d.imageToChip.apply(t.apply(10, 20).x, t.apply(10, 20).y)
        #expect(abs(back.x - 10) < 1e-9 && abs(back.y - 20) < 1e-9)
    }

    @Test("a missing or corrupt model file is a typed error")
    func modelErrors() throws {
        #expect(throws: FaceModelError.self) { try ShapePredictor(modelPath: "/nonexistent/sp.dat") }
        do {
            _ = try ShapePredictor(serialized: [0x01, 0x01, 0x81, 0x02], path: "bad.dat")
            Issue.record("garbage parsed as a shape predictor")
        } catch { #expect(error.code == .invalidModel) }
        do {
            _ = try FaceModelLocator(directory: "/nonexistent").path(of: FaceModelLocator.resnetFile)
            Issue.record("missing model found")
        } catch {
            #expect(error.code == .missingModel)
            #expect(error.reason.contains("scripts/setup.sh"))
        }
    }
}
