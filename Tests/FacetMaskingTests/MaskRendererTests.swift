import FacetFace
import FacetImaging
import Foundation
import Testing
@testable import FacetMasking

/// The region a mask is allowed to touch, computed independently of the renderer: the hull of the 68
/// landmarks with the jaw pushed out by 15 % of the face width and the chin 30 % of the face height down
/// the neck.
func allowedRegion(_ p: [LandmarkPoint]) -> [Vec2] {
    let v = p.map { Vec2($0.x, $0.y) }
    let width = (v[16] - v[0]).length, height = (v[8] - v[27]).length
    let down = (v[8] - v[27]).normalized
    let centre = v.reduce(Vec2(0, 0), +) * (1.0 / 68)
    var pts = v
    for i in 0...16 { pts.append(v[i] + (v[i] - centre).normalized * (0.15 * width)) }
    for i in 4...12 { pts.append(v[i] + down * (0.30 * height)) }
    return convexHull(pts)
}

@Suite("Mask renderer") struct MaskRendererTests {
    let renderer: MaskRenderer

    init() throws { renderer = try MaskRenderer() }

    @Test("the bundled MaskTheFace templates and patterns load")
    func bundledResources() throws {
        let library = try MaskTemplateLibrary.bundled()
        #expect(library.templateNames.count == 9)
        #expect(library.templateNames.contains("surgical_left"))
        #expect(library.patterns.count == MaskTexture.patternNames.count)
        for (_, t) in library.templates {
            #expect(t.levels.count >= 4)
            #expect(t.referenceLuminance > 0)
        }
    }

    @Test("every type and placement stays on the lower face: mouth covered, eyes free, nothing outside the face",
          arguments: MaskType.allCases, MaskPlacement.allCases)
    func placement(type: MaskType, placement: MaskPlacement) throws {
        guard type.placements.contains(placement) else {
            let f = try FaceFixture.load("Tom_Brady_0001")
            #expect(throws: MaskingError.unsupportedPlacement(type, placement)) {
                try renderer.apply(to: f.canvas, landmarks: f.points, spec: MaskSpec(type: type, color: .navy, placement: placement))
            }
            return
        }
        for name in FaceFixture.names {
            let fixture = try FaceFixture.load(name)
            let lm = fixture.points
            let spec = MaskSpec(type: type, color: .navy, placement: placement, seed: 12)
            let out = try renderer.apply(to: fixture.canvas, landmarks: lm, spec: spec)
            let region = out.maskRegion
            let context = "\(name) \(spec)"
            // The mouth is under the mask: its centre (inner lip and the lip middles) always; all 20 mouth
            // points when worn over the nose, except on the respirator, whose template leaves gaps between
            // its body and the cartridges where a wide smile's corners can fall; at least 80 % of them
            // otherwise (a mask under the nose starts at the nostrils, level with a big smile's corners).
            for i in [51, 57, 61, 62, 63, 65, 66, 67] {
                #expect(region.opacity(at: lm[i]) >= 0.9, "mouth point \(i) uncovered: \(context)")
            }
            let mouthCovered = (48...67).filter { region.opacity(at: lm[$0]) >= 0.9 }.count
            if placement != .belowNose && type != .gas {
                #expect(mouthCovered == 20, "\(20 - mouthCovered) mouth points uncovered: \(context)")
            } else {
                #expect(mouthCovered >= 16, "\(20 - mouthCovered) mouth points uncovered: \(context)")
            }
            // The nose tip is covered over the nose, free below it.
            if placement == .belowNose {
                #expect(region.opacity(at: lm[30]) <= 0.05, "nose tip covered: \(context)")
            } else {
                #expect(region.opacity(at: lm[30]) >= 0.9, "nose tip uncovered: \(context)")
            }
            // The eyes stay visible.
            for i in 36...47 {
                #expect(region.opacity(at: lm[i]) <= 0.02, "eye point \(i) covered: \(context)")
            }
            // Nothing outside the face (+ margin).
            let allowed = allowedRegion(lm)
            var outside = 0.0, total = 0.0
            for y in 0..<region.height {
                for x in 0..<region.width {
                    let a = region.opacity(x: x, y: y)
                    if a == 0 { continue }
                    total += a
                    if !polygonContains(allowed, Vec2(Double(x) + 0.5, Double(y) + 0.5)) { outside += a }
                }
            }
            #expect(total > 0)
            #expect(outside <= 0.001 * total, "\(outside) of \(total) opacity outside the face: \(context)")
            // The mask is a sizeable part of the lower face, not a sliver.
            let faceArea = Double(fixture.box.right - fixture.box.left) * Double(fixture.box.bottom - fixture.box.top)
            #expect(total > (placement == .belowNose ? 0.12 : 0.2) * faceArea, "mask too small: \(total) px vs box \(faceArea): \(context)")
        }
    }

    @Test("the left/right template follows the head's yaw")
    func yawVariant() throws {
        let expected = ["Terry_Gilliam_0001": "surgical", "Tom_Brady_0001": "surgical",
                        "Henry_Kissinger_0001": "surgical_right", "Steve_Rush_0001": "surgical_left"]
        for (name, variant) in expected {
            let f = try FaceFixture.load(name)
            let out = try renderer.apply(to: f.canvas, landmarks: f.points, spec: MaskSpec(type: .surgical, color: .white))
            let yaw = try FaceGeometry(landmarks: f.points).yaw
            #expect(out.variant == variant, "\(name): yaw \(yaw)")
        }
    }

    @Test("the same spec draws the same pixels; another seed draws others")
    func determinism() throws {
        let f = try FaceFixture.load("Tom_Brady_0001")
        for type in MaskType.allCases {
            let spec = MaskSpec(type: type, color: .teal, texture: type.acceptsPattern ? .pattern("polka") : .plain,
                                placement: type.placements.last!, seed: 77)
            let a = try renderer.apply(to: f.canvas, landmarks: f.points, spec: spec)
            let b = try renderer.apply(to: f.canvas, landmarks: f.points, spec: spec)
            #expect(a == b)
            var other = spec
            other.seed = 78
            let c = try renderer.apply(to: f.canvas, landmarks: f.points, spec: other)
            #expect(c.image != a.image)
            #expect(c.maskRegion.alpha != a.maskRegion.alpha)
        }
    }

    /// Mean colour of the pixels the mask fully covers.
    func meanMaskColour(_ out: MaskedImage) -> (Double, Double, Double) {
        var s = (0.0, 0.0, 0.0), n = 0.0
        for y in 0..<out.image.height {
            for x in 0..<out.image.width where out.maskRegion.opacity(x: x, y: y) >= 0.99 {
                let p = out.image[x, y]
                s.0 += Double(p.r); s.1 += Double(p.g); s.2 += Double(p.b); n += 1
            }
        }
        return (s.0 / n, s.1 / n, s.2 / n)
    }

    @Test("colours differ and follow the spec", arguments: MaskType.allCases)
    func colours(type: MaskType) throws {
        let f = try FaceFixture.load("Terry_Gilliam_0001")
        func mean(_ c: MaskColor) throws -> (Double, Double, Double) {
            meanMaskColour(try renderer.apply(to: f.canvas, landmarks: f.points, spec: MaskSpec(type: type, color: c, seed: 4)))
        }
        let white = try mean(.white), black = try mean(.black), red = try mean(.red), navy = try mean(.navy)
        #expect(white.0 + white.1 + white.2 > 2 * (black.0 + black.1 + black.2) + 60, "\(type): white \(white) black \(black)")
        #expect(red.0 > red.1 + 40 && red.0 > red.2 + 40, "\(type): red \(red)")
        #expect(navy.2 > navy.0 + 15, "\(type): navy \(navy)")
    }

    @Test("patterns and stripes change the fabric", arguments: [MaskType.cloth, .gaiter, .bandana])
    func patterns(type: MaskType) throws {
        let f = try FaceFixture.load("Terry_Gilliam_0001")
        let plain = try renderer.apply(to: f.canvas, landmarks: f.points, spec: MaskSpec(type: type, color: .black, seed: 6))
        for texture in MaskTexture.patternNames.map({ MaskTexture.pattern($0) }) + [.stripes(.white)] {
            let out = try renderer.apply(to: f.canvas, landmarks: f.points,
                                         spec: MaskSpec(type: type, color: .black, texture: texture, seed: 6))
            #expect(out.maskRegion == plain.maskRegion, "the pattern must not move the mask")
            let a = meanMaskColour(out), p = meanMaskColour(plain)
            #expect(abs(a.0 - p.0) + abs(a.1 - p.1) + abs(a.2 - p.2) > 20, "\(texture) looks plain: \(a) vs \(p)")
        }
        #expect(throws: MaskingError.unknownPattern("tartan")) {
            try renderer.apply(to: f.canvas, landmarks: f.points, spec: MaskSpec(type: type, color: .black, texture: .pattern("tartan")))
        }
    }

    @Test("faces cut by the image border, off the image, or tiny do not crash", arguments: MaskType.allCases)
    func borderAndTinyFaces(type: MaskType) throws {
        let f = try FaceFixture.load("Jerry_Springer_0001")
        let spec = MaskSpec(type: type, color: .olive, placement: type.placements.last!, seed: 3)
        for (dx, dy) in [(-120.0, 0.0), (120, 0), (0, -130), (0, 110), (-90, 90), (5000, 5000), (-1e7, 3)] {
            let moved = f.points.map { LandmarkPoint(x: $0.x + dx, y: $0.y + dy) }
            let out = try renderer.apply(to: f.canvas, landmarks: moved, spec: spec)
            #expect(out.maskRegion.alpha.count == f.width * f.height)
            if abs(dx) >= 5000 { #expect(out.maskRegion.coveredPixelCount == 0) }
        }
        // Tiny faces: a few pixels wide, anywhere, including the corner.
        for scale in [0.2, 0.05, 0.02] {
            for origin in [Vec2(0, 0), Vec2(100, 100), Vec2(248, 248)] {
                let small = f.points.map { LandmarkPoint(x: origin.x + ($0.x - 125) * scale, y: origin.y + ($0.y - 125) * scale) }
                let out = try renderer.apply(to: f.canvas, landmarks: small, spec: spec)
                let total = out.maskRegion.alpha.reduce(0) { $0 + Int($1) } / 255
                #expect(Double(total) <= 0.5 * 250 * 250 * scale * scale + 4)
            }
        }
        // A 1×1 image.
        _ = try renderer.apply(to: RGBImage(width: 1, height: 1), landmarks: f.points, spec: spec)
    }

    @Test("bad landmarks and images get typed errors")
    func badInput() throws {
        let f = try FaceFixture.load("Tom_Brady_0001")
        let spec = MaskSpec(type: .surgical, color: .white)
        #expect(throws: MaskingError.wrongLandmarkCount(5)) {
            try renderer.apply(to: f.canvas, landmarks: Array(f.points.prefix(5)), spec: spec)
        }
        var nan = f.points
        nan[40].x = .nan
        #expect(throws: MaskingError.nonFiniteLandmark(index: 40)) { try renderer.apply(to: f.canvas, landmarks: nan, spec: spec) }
        let collapsed = [LandmarkPoint](repeating: LandmarkPoint(x: 10, y: 10), count: 68)
        #expect(throws: MaskingError.self) { try renderer.apply(to: f.canvas, landmarks: collapsed, spec: spec) }
        #expect(throws: MaskingError.emptyImage) { try renderer.apply(to: RGBImage(width: 0, height: 0), landmarks: f.points, spec: spec) }
    }
}
