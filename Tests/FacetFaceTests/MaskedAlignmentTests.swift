import Foundation
import Testing
import FacetImaging
@testable import FacetFace

/// `ChipDetails.maskedLandmarks`: the nose point of a masked face placed from the eyes.
@Suite("masked-face alignment")
struct MaskedAlignmentTests {
    /// The template's five points under a similarity map (scale s, rotation a, shift), optionally with the nose moved
    /// by (dx, dy) in template units.
    static func face(scale s: Double, angle a: Double, shift: (Double, Double), nose: (Double, Double) = (0, 0)) -> [LandmarkPoint] {
        ChipDetails.fivePointTemplate.enumerated().map { i, p in
            let x = p.x + (i == 4 ? nose.0 : 0), y = p.y + (i == 4 ? nose.1 : 0)
            return LandmarkPoint(x: s * (cos(a) * x - sin(a) * y) + shift.0, y: s * (sin(a) * x + cos(a) * y) + shift.1)
        }
    }

    @Test("eyes stay; the nose keeps its place across the face and moves along the face's own vertical to the given height")
    func nosePlacedFromTheEyes() {
        for (s, a) in [(100.0, 0.0), (80.0, 0.3), (140.0, -0.5)] {
            let shift = (61.0, 37.0)
            // A face whose nose sits 0.05 right of and 0.08 below the template's.
            let given = Self.face(scale: s, angle: a, shift: shift, nose: (0.05, 0.08))
            let template = ChipDetails.fivePointTemplate[4]
            for noseY in [0.5237, template.y, 0.7] {
                let out = ChipDetails.maskedLandmarks(given, noseY: noseY)
                #expect(Array(out[0..<4]) == Array(given[0..<4]))
                // Expected: the template nose at (x + 0.05, noseY) under the same map.
                let want = Self.face(scale: s, angle: a, shift: shift, nose: (0.05, noseY - template.y))[4]
                #expect(abs(out[4].x - want.x) < 1e-9 && abs(out[4].y - want.y) < 1e-9, "s \(s) a \(a) y \(noseY): \(out[4]) vs \(want)")
            }
            // At the template's own height a face with the template's nose is unchanged, so is its chip.
            let plain = Self.face(scale: s, angle: a, shift: shift)
            let same = ChipDetails.maskedLandmarks(plain, noseY: template.y)
            #expect(zip(same, plain).allSatisfy { abs($0.x - $1.x) < 1e-9 && abs($0.y - $1.y) < 1e-9 })
        }
    }

    @Test("a higher nose moves the chip up the face (more forehead, less chin); other point counts and bad points are left alone")
    func chipMovesAndEdgeCases() {
        let given = Self.face(scale: 100, angle: 0, shift: (50, 50))
        let standard = ChipDetails.forFace(landmarks: given)
        let raised = ChipDetails.forFace(landmarks: ChipDetails.maskedLandmarks(given, noseY: 0.5237))
        #expect(raised.rect.center.y < standard.rect.center.y - 1)
        // (dlib's template is not quite symmetric: a nose moved along the vertical turns the fit a little)
        #expect(abs(raised.rect.center.x - standard.rect.center.x) < 1 && abs(raised.angle - standard.angle) < 0.02)
        let sixtyEight = (0..<68).map { LandmarkPoint(x: Double($0), y: Double($0 % 7)) }
        #expect(ChipDetails.maskedLandmarks(sixtyEight, noseY: 0.5) == sixtyEight)
        var broken = given
        broken[1] = LandmarkPoint(x: .nan, y: 3)
        #expect(ChipDetails.maskedLandmarks(broken, noseY: 0.5) == broken)
        let collapsed = Array(repeating: LandmarkPoint(x: 5, y: 5), count: 5)
        #expect(ChipDetails.maskedLandmarks(collapsed, noseY: 0.5) == collapsed)
    }
}
