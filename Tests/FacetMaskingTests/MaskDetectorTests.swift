import FacetFace
import FacetImaging
import Foundation
import Testing
@testable import FacetMasking

@Suite("Mask detector") struct MaskDetectorTests {
    @Test("logistic regression separates a separable set and round-trips through its file")
    func trainsAndSaves() throws {
        var rng = SplitMix64(seed: 11)
        func point(_ centre: Double) -> [Float] { (0..<16).map { _ in Float(centre + rng.uniform(-0.4...0.4)) } }
        let masked = (0..<60).map { _ in point(0.5) }, unmasked = (0..<60).map { _ in point(-0.5) }
        let detector = try #require(MaskDetector.train(masked: masked, unmasked: unmasked, embeddingModel: "toy"))
        #expect(masked.allSatisfy { detector.probability(features: $0) > 0.9 })
        #expect(unmasked.allSatisfy { detector.probability(features: $0) < 0.1 })
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("mask-detector-\(UUID()).json")
        defer { try? FileManager.default.removeItem(at: url) }
        try detector.write(to: url)
        #expect(try MaskDetector(contentsOf: url) == detector)
        var future = detector
        future.version = 99
        try future.write(to: url)
        #expect(throws: MaskingError.self) { try MaskDetector(contentsOf: url) }
        #expect(MaskDetector.train(masked: [], unmasked: unmasked, embeddingModel: "toy") == nil)
    }

    /// The bundled detector (version 2) measures 96.4 % on 6,000 held-out LFW faces (docs/masks.md), short of the
    /// 99 % the issue asks for. This test holds it to at least 21 of these 24 fixture faces and to clear separation
    /// on average, so a broken feature or model file fails it.
    @Test("the bundled detector tells masked from unmasked fixture faces (TEST-family masks)")
    func separatesFixtures() throws {
        let detector = try MaskDetector.bundled()
        let embedder = try DlibFaceEmbedder(locator: FaceModelLocator())
        #expect(detector.embeddingModel == embedder.modelName)
        let renderer = try MaskRenderer()
        var right = 0, total = 0, maskedSum = 0.0, plainSum = 0.0
        for (k, name) in FaceFixture.names.enumerated() {
            let f = try FaceFixture.load(name)
            let picture = try ImageDecoder().decodeFile(atPath: FaceFixture.directory.appendingPathComponent(f.image).path)
            let box = FaceRect(left: f.box.left, top: f.box.top, right: f.box.right, bottom: f.box.bottom)
            let detection = FaceDetection(rect: box, confidence: 1)
            for (j, type) in MaskFamily.test.types.enumerated() {
                let spec = MaskFamily.test.randomSpec(key: UInt64(k * 10 + j), types: [type])
                let masked = try renderer.apply(to: picture, landmarks: f.points, spec: spec).image
                let a = try #require(try embedder.analyze(masked, detections: [detection]).first)
                let p = detector.probability(chip: FaceChip.extract(masked, details: a.chip), embedding: a.embedding)
                total += 1; right += p > 0.5 ? 1 : 0
                maskedSum += p
            }
            let a = try #require(try embedder.analyze(picture, detections: [detection]).first)
            let p = detector.probability(chip: FaceChip.extract(picture, details: a.chip), embedding: a.embedding)
            total += 1; right += p < 0.5 ? 1 : 0
            plainSum += p
        }
        #expect(total == 24)
        #expect(right >= 21, "\(right) of \(total) fixture faces classified right")
        #expect(maskedSum / 18 > 0.75 && plainSum / 6 < 0.35, "mean p(mask): masked \(maskedSum / 18), plain \(plainSum / 6)")
    }
}
