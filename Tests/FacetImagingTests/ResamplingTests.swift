import Testing
@testable import FacetImaging

/// PyramidDown2 and BilinearSampling against dlib's own `pyramid_down(2)` and `transform_image` (Python dlib,
/// recorded by scripts/make-goldens.py in imaging.json): byte-identical outputs.
@Suite("dlib resampling")
struct ResamplingTests {
    @Test("pyramid_down<2> three levels equal dlib's")
    func pyramid() throws {
        let r = Fixtures.manifest.resampling
        var image = try ImageDecoder().decodeFile(atPath: Fixtures.path(r.input))
        for (i, level) in r.pyramid_down_2.enumerated() {
            image = PyramidDown2.apply(image)
            #expect(image.width == level.width && image.height == level.height, "level \(i + 1)")
            #expect(fnv1a64(image.pixels) == level.fnv1a64, "level \(i + 1)")
        }
        #expect(PyramidDown2.apply(RGBImage(width: 8, height: 100)).pixelCount == 0)
    }

    @Test("bilinear transform_image equals dlib's")
    func bilinear() throws {
        let r = Fixtures.manifest.resampling
        let image = try ImageDecoder().decodeFile(atPath: Fixtures.path(r.input))
        let m = r.bilinear.m
        let map = PointTransformAffine(m00: m[0][0], m01: m[0][1], m10: m[1][0], m11: m[1][1], b0: m[0][2], b1: m[1][2])
        let out = BilinearSampling.transform(image, width: r.bilinear.columns, height: r.bilinear.rows, outputToInput: map)
        #expect(out.pixels.reduce(0) { $0 + Int($1) } == r.bilinear.pixel_sum)
        #expect(fnv1a64(out.pixels) == r.bilinear.fnv1a64)
    }

    @Test("three-point affine solve maps the points and inverts")
    func affine() throws {
        let from: [(x: Double, y: Double)] = [(0, 0), (149, 0), (149, 149)]
        let to: [(x: Double, y: Double)] = [(10.5, 20), (110, 40.25), (90, 140)]
        let t = try #require(PointTransformAffine.mapping(from: from, to: to))
        for (f, g) in zip(from, to) {
            let p = t.apply(f.x, f.y)
            #expect(abs(p.x - g.x) < 1e-9 && abs(p.y - g.y) < 1e-9)
            let q = try #require(t.inverse).apply(p.x, p.y)
            #expect(abs(q.x - f.x) < 1e-9 && abs(q.y - f.y) < 1e-9)
        }
        #expect(PointTransformAffine.mapping(from: [(0, 0), (1, 1), (2, 2)], to: to) == nil)
    }
}
