import FacetFace
import FacetImaging
@testable import FacetMasking
import Foundation
import Testing

@Suite("Periocular fusion") struct PeriocularFusionTests {
    @Test("the bundled file: rows 62–149 painted dlib's mean colour, equal weights, mirror-averaged; other rows untouched")
    func occlusion() throws {
        let f = try PeriocularFusion.bundled()
        #expect(f.version == 2 && f.mirrorAverage == true && f.chipSize == 150 && f.occludeFromRow == 62 && f.fill == [123, 117, 104] && f.fullWeight == 0.5)
        var rng = SplitMix64(seed: 7)
        let chip = RGBImage(width: 150, height: 150, pixels: (0..<(150 * 150 * 3)).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
        let o = try f.occluded(chip)
        for y in 0..<150 {
            for x in stride(from: 0, to: 150, by: 7) {
                let i = (y * 150 + x) * 3
                if y < 62 {
                    #expect(Array(o.pixels[i..<(i + 3)]) == Array(chip.pixels[i..<(i + 3)]))
                } else {
                    #expect(Array(o.pixels[i..<(i + 3)]) == [123, 117, 104])
                }
            }
        }
        #expect(throws: MaskingError.self) { try f.occluded(RGBImage(width: 100, height: 100)) }
        #expect(abs(f.fuse(fullDistance: 0.8, periocularDistance: 0.4) - 0.6) < 1e-12)
        let g = PeriocularFusion(occludeFromRow: 72, fullWeight: 0.25)
        #expect(abs(g.fuse(fullDistance: 0.8, periocularDistance: 0.4) - 0.5) < 1e-12)
        #expect(g.fingerprint != f.fingerprint)
    }

    @Test("file round trip; a wrong format, version, cut row or weight is a typed error")
    func fileRoundTrip() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("facet-peri-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("p.json")
        let f = PeriocularFusion(occludeFromRow: 70, fullWeight: 0.6, notes: "test")
        try f.write(to: url)
        #expect(try PeriocularFusion(contentsOf: url) == f)
        for bad in [PeriocularFusion(occludeFromRow: 0, fullWeight: 0.5), PeriocularFusion(occludeFromRow: 150, fullWeight: 0.5),
                    PeriocularFusion(occludeFromRow: 70, fullWeight: 1.5), PeriocularFusion(occludeFromRow: 70, fill: [1, 2], fullWeight: 0.5)] {
            try bad.write(to: url)
            #expect(throws: MaskingError.self) { try PeriocularFusion(contentsOf: url) }
        }
        var v = f
        v.version = 3
        try v.write(to: url)
        #expect(throws: MaskingError.self) { try PeriocularFusion(contentsOf: url) }
        var oldWithMirror = f
        oldWithMirror.version = 1
        oldWithMirror.mirrorAverage = true
        try oldWithMirror.write(to: url)
        #expect(throws: MaskingError.self) { try PeriocularFusion(contentsOf: url) }
        try Data("{}".utf8).write(to: url)
        #expect(throws: MaskingError.self) { try PeriocularFusion(contentsOf: url) }
        #expect(throws: MaskingError.self) { try PeriocularFusion(contentsOf: dir.appendingPathComponent("missing.json")) }
    }

    @Test("version 2's embedding is the normalised mean of the painted chip's and its mirror image's")
    func mirrorAverage() throws {
        let fusion = try PeriocularFusion.bundled()
        var single = fusion
        single.mirrorAverage = nil
        #expect(single.fingerprint != fusion.fingerprint)
        let embedder = try DlibFaceEmbedder(locator: FaceModelLocator())
        let f = try FaceFixture.load(FaceFixture.names[1])
        let picture = try ImageDecoder().decodeFile(atPath: FaceFixture.directory.appendingPathComponent(f.image).path)
        let box = FaceRect(left: f.box.left, top: f.box.top, right: f.box.right, bottom: f.box.bottom)
        let face = try #require(try embedder.analyze(picture, detections: [FaceDetection(rect: box, confidence: 1)]).first)
        let chip = FaceChip.extract(picture, details: face.chip)
        let averaged = try fusion.embeddings(chips: [chip], model: embedder.descriptor)[0]
        let a = try single.embeddings(chips: [chip], model: embedder.descriptor)[0]
        let b = try single.embeddings(chips: [MaskDetector.mirrored(chip)], model: embedder.descriptor)[0]
        let sum = zip(a, b).map { $0 + $1 }
        let norm = sum.reduce(0) { $0 + $1 * $1 }.squareRoot()
        #expect(zip(averaged, sum).map { abs($0 - $1 / norm) }.max()! < 1e-5)
        #expect(zip(a, b).map { abs($0 - $1) }.max()! > 1e-3, "the mirror image gives another embedding")
    }

    /// What the fusion is for: on the six fixture faces with TEST-family masks, the periocular embedding of the
    /// masked photo stays closer to the unmasked photo's than the full embedding does (mean over 18 pairs), and the
    /// fused distance sits between the two.
    @Test("masked vs unmasked fixture faces: periocular distance below the full distance")
    func maskedCloserPeriocular() throws {
        let fusion = try PeriocularFusion.bundled()
        let embedder = try DlibFaceEmbedder(locator: FaceModelLocator())
        #expect(fusion.embeddingModel == embedder.modelName)
        let renderer = try MaskRenderer()
        var full = 0.0, peri = 0.0, n = 0.0
        func dist(_ a: [Float], _ b: [Float]) -> Double {
            zip(a, b).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) }.squareRoot()
        }
        for (k, name) in FaceFixture.names.enumerated() {
            let f = try FaceFixture.load(name)
            let picture = try ImageDecoder().decodeFile(atPath: FaceFixture.directory.appendingPathComponent(f.image).path)
            let box = FaceRect(left: f.box.left, top: f.box.top, right: f.box.right, bottom: f.box.bottom)
            let detection = FaceDetection(rect: box, confidence: 1)
            let plain = try #require(try embedder.analyze(picture, detections: [detection]).first)
            let plainP = try fusion.embedding(image: picture, face: plain, model: embedder.descriptor)
            #expect(abs(dist(plainP, [Float](repeating: 0, count: plainP.count)) - 1) < 1e-4, "unit length")
            #expect(dist(plainP, plain.embedding) > 0.05, "\(name): the periocular embedding is not the full one")
            for (j, type) in MaskFamily.test.types.enumerated() {
                let spec = MaskFamily.test.randomSpec(key: UInt64(k * 10 + j), types: [type])
                let masked = try renderer.apply(to: picture, landmarks: f.points, spec: spec).image
                let a = try #require(try embedder.analyze(masked, detections: [detection]).first)
                let p = try fusion.embedding(image: masked, face: a, model: embedder.descriptor)
                full += dist(a.embedding, plain.embedding); peri += dist(p, plainP); n += 1
            }
        }
        #expect(n == 18)
        #expect(peri / n < full / n, "mean masked–unmasked distance: periocular \(peri / n), full \(full / n)")
        let fused = fusion.fuse(fullDistance: full / n, periocularDistance: peri / n)
        #expect(fused < full / n && fused > peri / n)
    }

    @Test("MaskAwareEmbedder with periocular: every face carries its periocular embedding; without it none")
    func embedderFillsPeriocular() throws {
        let fusion = try PeriocularFusion.bundled()
        let dlib = try DlibFaceEmbedder(locator: FaceModelLocator())
        let with = MaskAwareEmbedder(base: dlib, matcher: try MaskAwareMatcher.bundled(network: dlib.descriptor), periocular: (fusion, dlib.descriptor))
        let without = MaskAwareEmbedder(base: dlib, matcher: try MaskAwareMatcher.bundled(network: dlib.descriptor))
        let f = try FaceFixture.load(FaceFixture.names[0])
        let picture = try ImageDecoder().decodeFile(atPath: FaceFixture.directory.appendingPathComponent(f.image).path)
        let faces = try with.analyze(picture, upsample: 0, jitter: 0)
        #expect(!faces.isEmpty)
        for face in faces {
            let p = try #require(face.periocularEmbedding)
            let direct = try fusion.embedding(image: picture, face: face, model: dlib.descriptor)
            #expect(p == direct)
            #expect(face.maskProbability != nil)
        }
        let plain = try without.analyze(picture, upsample: 0, jitter: 0)
        #expect(plain.count == faces.count && plain.allSatisfy { $0.periocularEmbedding == nil })
        #expect(plain.map(\.embedding) == faces.map(\.embedding))
    }
}
