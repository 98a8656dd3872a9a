import FacetImaging
import Foundation
import Testing
@testable import FacetMasking

@Suite("Masking maths") struct MaskMathTests {
    @Test("SplitMix64 gives the reference sequence")
    func splitMix() {
        // First outputs of splitmix64 seeded with 0 and with 1234567 (Vigna's reference splitmix64.c).
        var g = SplitMix64(seed: 0)
        #expect(g.next() == 0xE220_A839_7B1D_CDAF)
        #expect(g.next() == 0x6E78_9E6A_A1B9_65F4)
        var h = SplitMix64(seed: 1_234_567)
        #expect(h.next() == 6_457_827_717_110_365_317)
        #expect(h.next() == 3_203_168_211_198_807_973)
        #expect(stableHash("Aaron_Eckhart_0001.jpg") == stableHash("Aaron_Eckhart_0001.jpg"))
        #expect(stableHash("a") != stableHash("b"))
    }

    @Test("the homography fit recovers a known projective map from six points")
    func homography() throws {
        let truth = Homography([1.3, 0.2, 40, -0.1, 0.9, 25, 0.0008, -0.0005, 1])
        let src = [Vec2(21, 97), Vec2(307, 22), Vec2(600, 99), Vec2(25, 322), Vec2(295, 470), Vec2(600, 323)]
        let dst = src.map(truth.apply)
        let fit = try #require(Homography.fit(from: src, to: dst))
        for (a, b) in zip(fit.h, truth.h) {
            let tolerance = 1e-9 * max(1, abs(b))
            #expect(abs(a - b) < tolerance)
        }
        let inv = try #require(fit.inverse)
        for p in src {
            let q = inv.apply(fit.apply(p))
            #expect(abs(q.x - p.x) < 1e-9 && abs(q.y - p.y) < 1e-9)
        }
        // Collinear points: no projective solution, the affine fallback or nil, never a crash or NaN.
        let line = (0..<6).map { Vec2(Double($0), 2 * Double($0)) }
        if let h = Homography.fit(from: line, to: line) {
            let finite = h.h.allSatisfy { $0.isFinite }
            #expect(finite)
        }
    }

    @Test("antialiased fill has the polygon's area")
    func rasterArea() {
        let triangle = [Vec2(10.3, 5.7), Vec2(80.1, 20.2), Vec2(30.6, 70.9)]
        let win = rasterize(triangle, imageWidth: 100, imageHeight: 100)
        let area = win.values.reduce(0, +)
        let exact = abs(shoelace(triangle))
        #expect(abs(Double(area) - exact) < 0.01 * exact, "\(area) vs \(exact)")
        #expect(win.values.allSatisfy { $0 >= 0 && $0 <= 1.0001 })
        // Clipped by the image: only the inside part counts.
        let clipped = rasterize([Vec2(-50, -50), Vec2(50, -50), Vec2(50, 50), Vec2(-50, 50)], imageWidth: 20, imageHeight: 20)
        #expect(abs(clipped.values.reduce(0, +) - 400) < 0.01)
        // Partial pixels are partial: a half-pixel-wide strip.
        let strip = rasterize([Vec2(2, 0), Vec2(2.5, 0), Vec2(2.5, 10), Vec2(2, 10)], imageWidth: 10, imageHeight: 10)
        #expect(strip.values.allSatisfy { abs($0 - 0.5) < 1e-5 || $0 == 0 })
    }
}

@Suite("Mask families") struct MaskFamilyTests {
    @Test("TRAIN and TEST share no type, colour, pattern or seed")
    func disjoint() {
        let train = MaskFamily.train, test = MaskFamily.test
        #expect(Set(train.types).isDisjoint(with: test.types))
        #expect(Set(train.colors).isDisjoint(with: test.colors))
        // Not just different names: every TRAIN colour is far from every TEST colour (the closest pair, peach–pink,
        // is 49 sRGB units apart), so no held-out mask is a near-copy of a training one.
        for a in train.colors {
            for b in test.colors {
                let d = [Double(a.r) - Double(b.r), Double(a.g) - Double(b.g), Double(a.b) - Double(b.b)]
                #expect((d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).squareRoot() >= 45, "\(a) vs \(b)")
            }
        }
        #expect(Set(train.patterns).isDisjoint(with: test.patterns))
        #expect(Set(train.types).union(test.types) == Set(MaskType.allCases))
        for key in UInt64(0)..<500 {
            #expect(MaskFamily.of(seed: train.seed(for: key)) == .train)
            #expect(MaskFamily.of(seed: test.seed(for: key)) == .test)
        }
    }

    @Test("random specs stay in their family, vary, and repeat for the same key")
    func randomSpecs() {
        for family in MaskFamily.allCases {
            var types = Set<MaskType>(), colors = Set<MaskColor>(), placements = Set<MaskPlacement>(), textured = 0
            for key in UInt64(0)..<400 {
                let spec = family.randomSpec(key: key)
                #expect(family.contains(spec))
                #expect(MaskFamily.of(spec: spec) == family)
                #expect(spec == family.randomSpec(key: key))
                types.insert(spec.type); colors.insert(spec.color); placements.insert(spec.placement)
                if spec.texture != .plain { textured += 1 }
            }
            #expect(types == Set(family.types))
            #expect(colors == Set(family.colors))
            #expect(placements == Set(MaskPlacement.allCases))
            #expect(textured > 40)
            let only = family.randomSpec(key: 9, types: [family.types[0]])
            #expect(only.type == family.types[0])
        }
        // A spec mixing the families belongs to neither.
        #expect(MaskFamily.of(spec: MaskSpec(type: .surgical, color: .black, seed: 1)) == nil)
    }

    @Test("names parse")
    func parsing() {
        #expect(MaskType(name: "N95") == .n95)
        #expect(MaskType(name: "respirator") == .gas)
        #expect(MaskType(name: "visor") == nil)
        #expect(MaskColor(parsing: "surgical-blue") == .surgicalBlue)
        #expect(MaskColor(parsing: "#FF8000") == MaskColor(name: "#ff8000", r: 255, g: 128, b: 0))
        #expect(MaskColor(parsing: "#12") == nil)
        #expect(MaskTexture(parsing: "floral") == .pattern("floral"))
        #expect(MaskTexture(parsing: "stripes-red") == .stripes(.red))
        #expect(MaskPlacement(parsing: "below_nose") == .belowNose)
    }
}

@Suite("Image encoding") struct ImageEncodingTests {
    func sample() -> RGBImage {
        var img = RGBImage(width: 37, height: 23)
        for y in 0..<23 { for x in 0..<37 { img[x, y] = (UInt8(x * 7 % 256), UInt8(y * 11 % 256), UInt8((x ^ y) * 5 % 256)) } }
        return img
    }

    @Test("PNG round-trips exactly")
    func pngRoundTrip() throws {
        let img = sample()
        let bytes = try ImageEncoder().png(img)
        #expect(Array(bytes.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("facet-enc-\(UUID()).png")
        defer { try? FileManager.default.removeItem(at: url) }
        try ImageEncoder().write(img, toPath: url.path)
        let (w, h, rgba) = try decodePNGRGBA(url)
        #expect(w == 37 && h == 23)
        var rgb: [UInt8] = []
        for i in 0..<(w * h) { rgb += rgba[4 * i..<4 * i + 3] }
        #expect(rgb == img.pixels)
    }

    @Test("JPEG encodes, and bad requests get typed errors")
    func jpeg() throws {
        let bytes = try ImageEncoder(jpegQuality: 90).jpeg(sample())
        #expect(Array(bytes.prefix(3)) == [0xFF, 0xD8, 0xFF])
        #expect(Array(bytes.suffix(2)) == [0xFF, 0xD9])
        #expect(throws: ImageEncodingError.self) { try ImageEncoder().jpeg(RGBImage(width: 0, height: 0)) }
        #expect(throws: ImageEncodingError.self) { try ImageEncoder().png(RGBImage(width: 0, height: 5)) }
        #expect(throws: ImageEncodingError.self) { try ImageEncoder().write(sample(), toPath: "/tmp/x.bmp") }
        #expect(throws: ImageEncodingError.self) { try ImageEncoder().write(sample(), toPath: "/nonexistent-dir/x.png") }
    }
}
