import FacetFace
import FacetImaging
import Foundation
import Testing
@testable import FacetMasking

private func unit(_ v: [Double]) -> [Double] {
    let n = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
    return v.map { $0 / n }
}

private func gaussianVector(_ rng: inout SplitMix64, _ d: Int) -> [Double] {
    (0..<d).map { _ in
        let u1 = max(rng.unit(), 1e-300), u2 = rng.unit()
        return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
    }
}

@Suite("Unmasking head") struct UnmaskingHeadTests {
    /// Small random triplets in 8 dimensions.
    static func triplets(seed: UInt64, count: Int, d: Int = 8) -> (a: [[Double]], p: [[Double]], n: [[Double]]) {
        var rng = SplitMix64(seed: seed)
        var a: [[Double]] = [], p: [[Double]] = [], n: [[Double]] = []
        for _ in 0..<count {
            let c = gaussianVector(&rng, d)
            p.append(unit(c.enumerated().map { $0.element + 0.2 * rng.uniform(-1...1) }))
            a.append(unit(c.enumerated().map { $0.element + ($0.offset == 0 ? 1.5 : 0) + 0.3 * rng.uniform(-1...1) }))
            n.append(unit(gaussianVector(&rng, d)))
        }
        return (a, p, n)
    }

    /// Negatives near the positives make the batch "separable" (mean d(a,n) ≥ mean d(p,n)): the pull-only branch;
    /// negatives near the anchors give the triplet branch.
    static func branchData(pullOnly: Bool) -> (a: [[Double]], p: [[Double]], n: [[Double]]) {
        var t = triplets(seed: 5, count: 6)
        var rng = SplitMix64(seed: 77)
        t.n = (pullOnly ? t.p : t.a).map { v in unit(v.map { $0 + 0.3 * rng.uniform(-1...1) }) }
        return t
    }

    @Test("backward pass matches central finite differences (both SRT branches, identity term, weight decay)",
          arguments: [false, true])
    func gradientCheck(pullOnly: Bool) {
        let t = Self.branchData(pullOnly: pullOnly)
        var params = UnmaskingHeadParameters(input: 8, hidden: 5, seed: 3, outputScale: 0.5)
        params.b1 = params.b1.indices.map { 0.05 * Double($0 % 3) - 0.05 }
        params.b2 = params.b2.indices.map { 0.02 * Double($0 % 4) }
        let identity = Array(t.p.prefix(3))
        func loss(_ p: UnmaskingHeadParameters) -> (Double, [Double], Bool) {
            let r = p.srtLoss(anchors: t.a, positives: t.p, negatives: t.n, identity: identity, margin: 1.0,
                              identityWeight: 0.7, weightDecay: 1e-3)
            return (r.loss, r.gradient, r.pullOnly)
        }
        let (l0, g, branch) = loss(params)
        #expect(branch == pullOnly)
        #expect(l0 > 0)
        let flat = params.flat
        var worst = 0.0, checked = 0
        for i in 0..<flat.count {
            let h = 1e-6
            var plus = params, minus = params
            var f = flat; f[i] += h; plus.setFlat(f)
            f = flat; f[i] -= h; minus.setFlat(f)
            #expect(loss(plus).2 == pullOnly && loss(minus).2 == pullOnly)
            let numeric = (loss(plus).0 - loss(minus).0) / (2 * h)
            let err = abs(numeric - g[i]) / max(1e-4, abs(numeric) + abs(g[i]))
            worst = max(worst, err); checked += 1
        }
        #expect(checked == 93)
        #expect(worst < 1e-4, "largest relative gradient error \(worst)")
    }

    @Test("SRT loss values by hand for an identity head")
    func lossByHand() {
        let e = { (i: Int) -> [Double] in (0..<4).map { $0 == i ? 1.0 : 0.0 } }
        let identityHead = UnmaskingHeadParameters(input: 4, hidden: 2, w1: [Double](repeating: 0.1, count: 8),
                                                   b1: [0, 0], w2: [Double](repeating: 0, count: 8), b2: [0, 0, 0, 0])
        // anchor e0, positive e1 (d = 2), negative e2: d(a,n) = 2 = d(p,n) → pull-only, loss = 2 + m − 2 = m.
        let pull = identityHead.srtLoss(anchors: [e(0)], positives: [e(1)], negatives: [e(2)], margin: 0.5)
        #expect(pull.pullOnly && abs(pull.loss - 0.5) < 1e-12)
        // negative = anchor: d(a,n) = 0 < d(p,n) = 2 → triplet, loss = 2 + m − 0.
        let triplet = identityHead.srtLoss(anchors: [e(0)], positives: [e(1)], negatives: [e(0)], margin: 0.5)
        #expect(!triplet.pullOnly && abs(triplet.loss - 2.5) < 1e-12)
        // anchor = positive and a far negative: inactive hinge, zero loss and gradient.
        let done = identityHead.srtLoss(anchors: [e(1)], positives: [e(1)], negatives: [e(2)], margin: 0.5)
        #expect(done.loss == 0 && done.gradient.allSatisfy { $0 == 0 })
    }

    /// Toy identities: unmasked = centre + noise, masked = centre + a shared "mask" offset + noise. Training must
    /// lower the loss and bring masked outputs nearer their identity's unmasked embeddings than before.
    @Test("training reduces the SRT loss and the masked–unmasked distance on a toy set")
    func trainingReducesLoss() throws {
        var rng = SplitMix64(seed: 21)
        let d = 16, people = 30
        let mask = unit(gaussianVector(&rng, d))
        var masked: [[Float]] = [], mid: [Int] = [], plain: [[Float]] = [], pid: [Int] = []
        var centres: [[Double]] = []
        for k in 0..<people {
            let c = unit(gaussianVector(&rng, d)); centres.append(c)
            for _ in 0..<3 {
                plain.append(unit(c.map { $0 + 0.15 * rng.uniform(-1...1) }).map(Float.init)); pid.append(k)
                masked.append(unit(zip(c, mask).map { 0.6 * $0 + 0.8 * $1 + 0.15 * rng.uniform(-1...1) }).map(Float.init)); mid.append(k)
            }
        }
        let set = UnmaskingTrainingSet(masked: masked, maskedIdentity: mid, unmasked: plain, unmaskedIdentity: pid)
        var options = UnmaskingHeadTrainer.Options()
        options.hidden = 32; options.epochs = 40; options.batchSize = 30; options.learningRate = 3e-3; options.seed = 4
        let r = try #require(UnmaskingHeadTrainer.train(set, options: options, embeddingModel: "toy"))
        #expect(r.log.count == 40)
        let first = r.log.prefix(3).map(\.loss).reduce(0, +) / 3, last = r.log.suffix(3).map(\.loss).reduce(0, +) / 3
        #expect(last < 0.7 * first, "loss \(first) → \(last)")
        func meanDistance(_ f: ([Float]) -> [Float]) -> Double {
            var s = 0.0
            for (k, m) in masked.enumerated() { s += unitDistance(f(m), centres[mid[k]].map(Float.init)) }
            return s / Double(masked.count)
        }
        let before = meanDistance { $0 }, after = meanDistance { r.head.apply($0) }
        #expect(after < 0.7 * before, "masked → centre distance \(before) → \(after)")
        // Outputs are unit length; unmasked inputs move little (identity term).
        for v in plain.prefix(10) {
            let o = r.head.apply(v)
            #expect(abs(o.reduce(0) { $0 + $1 * $1 } - 1) < 1e-4)
        }
        #expect(UnmaskingHeadTrainer.train(UnmaskingTrainingSet(masked: [], maskedIdentity: [], unmasked: plain, unmaskedIdentity: pid),
                                           options: options, embeddingModel: "toy") == nil)
    }

    @Test("model file round trip, float32 forward matches double, bad files are typed errors")
    func fileRoundTrip() throws {
        let params = UnmaskingHeadParameters(input: 8, hidden: 6, seed: 9, outputScale: 0.3)
        let head = UnmaskingHead(embeddingModel: "toy", parameters: params, notes: ["k": "v"])
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("head-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("head.json")
        try head.write(to: url)
        let back = try UnmaskingHead(contentsOf: url)
        #expect(back == head)
        let x = unit((0..<8).map { Double($0) - 3.5 })
        let single = back.apply(x.map(Float.init)), double = params.apply(x)
        for i in 0..<8 { #expect(abs(Double(single[i]) - double[i]) < 1e-5) }
        #expect(back.apply([1, 2, 3]) == [1, 2, 3])   // wrong dimension: unchanged, no trap

        var wrong = head; wrong.format = "something-else"; try wrong.write(to: url)
        #expect(throws: MaskingError.self) { try UnmaskingHead(contentsOf: url) }
        wrong = head; wrong.version = 7; try wrong.write(to: url)
        #expect(throws: MaskingError.self) { try UnmaskingHead(contentsOf: url) }
        wrong = head; wrong.b2 = [1]; try wrong.write(to: url)
        #expect(throws: MaskingError.self) { try UnmaskingHead(contentsOf: url) }
        try Data("{\"format\": 3}".utf8).write(to: url)
        #expect(throws: MaskingError.self) { try UnmaskingHead(contentsOf: url) }
        #expect(throws: MaskingError.self) { try UnmaskingHead(contentsOf: dir.appendingPathComponent("missing.json")) }
    }
}

@Suite("Comparison thresholds") struct ComparisonThresholdTests {
    @Test("thresholds sit where the target FMR allows on hand-made impostor distances")
    func handMade() {
        let d = [0.9, 0.1, 0.5, 0.3, 0.7, 0.2, 0.6, 0.4, 1.0, 0.8]   // 10 impostors
        #expect(abs(ComparisonThresholds.threshold(impostorDistances: d, targetFMR: 0.1) - 0.15) < 1e-12)   // 1 of 10 match
        #expect(abs(ComparisonThresholds.threshold(impostorDistances: d, targetFMR: 0.25) - 0.25) < 1e-12)  // 2 match
        #expect(abs(ComparisonThresholds.threshold(impostorDistances: d, targetFMR: 0.3) - 0.35) < 1e-12)
        let none = ComparisonThresholds.threshold(impostorDistances: d, targetFMR: 0.05)
        #expect(none < 0.1 && none > 0.09)
        #expect(ComparisonThresholds.threshold(impostorDistances: d, targetFMR: 1) == 1.0)
        // Ties: three impostors at 0.2; allowing 2 must not admit the tie (it would give 3).
        let tied = [0.2, 0.2, 0.2, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1]
        let t = ComparisonThresholds.threshold(impostorDistances: tied, targetFMR: 0.2)
        #expect(t < 0.2)
        #expect(tied.filter { $0 <= t }.count <= 2)
        #expect(ComparisonThresholds.threshold(impostorDistances: [], targetFMR: 0.1) == 0)
        // The realised FMR never exceeds the target on random data.
        var rng = SplitMix64(seed: 8)
        let many = (0..<5000).map { _ in rng.uniform(0.3...1.4) }
        for fmr in [1e-3, 1e-2, 0.1] {
            let th = ComparisonThresholds.threshold(impostorDistances: many, targetFMR: fmr)
            let realised = Double(many.filter { $0 <= th }.count) / Double(many.count)
            #expect(realised <= fmr && realised > fmr - 2.0 / 5000)
        }
    }

    @Test("per-kind calibration, decisions, kinds and file round trip")
    func perKind() throws {
        let th = ComparisonThresholds.calibrate(impostorDistances: [
            .unmaskedUnmasked: [0.8, 0.9, 1.0, 1.1],
            .maskedUnmasked: [0.5, 0.6, 0.7, 0.8],
        ], targetFMR: 0.25, embedding: "frozen")
        #expect(abs(th.maxDistance(for: .unmaskedUnmasked) - 0.85) < 1e-12)
        #expect(abs(th.maxDistance(for: .maskedUnmasked) - 0.55) < 1e-12)
        #expect(th.maxDistance(for: .maskedMasked) == th.maxDistance(for: .unmaskedUnmasked))   // not calibrated → fallback
        #expect(th.isMatch(distance: 0.6, kind: .unmaskedUnmasked))
        #expect(!th.isMatch(distance: 0.6, kind: .maskedUnmasked))
        #expect(ComparisonKind(firstMasked: true, secondMasked: false) == .maskedUnmasked)
        #expect(ComparisonKind(firstMasked: false, secondMasked: true) == .maskedUnmasked)
        #expect(ComparisonKind(firstMasked: true, secondMasked: true) == .maskedMasked)
        #expect(ComparisonKind(firstMasked: false, secondMasked: false) == .unmaskedUnmasked)
        #expect(th.impostorCounts["masked-unmasked"] == 4)

        let url = FileManager.default.temporaryDirectory.appendingPathComponent("thresholds-\(UUID()).json")
        defer { try? FileManager.default.removeItem(at: url) }
        try th.write(to: url)
        #expect(try ComparisonThresholds(contentsOf: url) == th)
        var bad = th; bad.maxDistance["sideways"] = 1; try bad.write(to: url)
        #expect(throws: MaskingError.self) { try ComparisonThresholds(contentsOf: url) }
        bad = th; bad.version = 2; try bad.write(to: url)
        #expect(throws: MaskingError.self) { try ComparisonThresholds(contentsOf: url) }
    }

    @Test("the bundled thresholds load and are ordered sensibly")
    func bundled() throws {
        let th = try ComparisonThresholds.bundled()
        for kind in ComparisonKind.allCases { #expect(th.maxDistance[kind.rawValue] != nil) }
        #expect(th.targetFMR > 0 && th.targetFMR < 0.1)
        for kind in ComparisonKind.allCases { #expect(th.maxDistance(for: kind) > 0.2 && th.maxDistance(for: kind) < 1.2) }
        // Calibrated for what the bundled matcher gives (mirror-averaged embeddings), as the fused ones are.
        #expect(th.embedding.contains("mirror-averaged"), "\(th.embedding)")
        #expect(try #require(try PeriocularFusion.bundled().thresholds).embedding.contains("mirror-averaged"))
        // ... and for its masked-face alignment (session 11).
        #expect(th.embedding.contains("nose height \(MaskAwareMatcher.bundledMaskedNoseY)"), "\(th.embedding)")
        #expect(try #require(try PeriocularFusion.bundled().thresholds).embedding.contains("nose height \(MaskAwareMatcher.bundledMaskedNoseY)"))
    }
}

@Suite("Mask-aware embedding") struct MaskAwareEmbeddingTests {
    static let maskedFixture = Bundle.module.bundleURL.appendingPathComponent("Fixtures/masked/AJ_Lamas_0001.jpg")

    /// MMOD finds nothing in this masked LFW face at upsample 0 and finds it at upsample 1 (checked with Python
    /// dlib; see Fixtures/masked/README.md): the embedder's retry must recover it, and the mask detector call it masked.
    @Test("no face at upsample 0 → retried at upsample 1; the recovered face is called masked and adapted")
    func retryFindsMaskedFace() throws {
        let image = try ImageDecoder().decodeFile(atPath: Self.maskedFixture.path)
        let locator = FaceModelLocator()
        let plain = try DlibFaceEmbedder(locator: locator, retryUpsampleWhenNoFace: false)
        #expect(try plain.analyze(image, upsample: 0, jitter: 0).isEmpty)
        let retrying = try DlibFaceEmbedder(locator: locator, retryUpsampleWhenNoFace: true)
        let faces = try retrying.analyze(image, upsample: 0, jitter: 0)
        #expect(faces.count == 1)
        let f = try #require(faces.first)
        #expect(abs(f.box.left - 66) <= 2 && abs(f.box.top - 72) <= 2 && abs(f.box.right - 165) <= 2 && abs(f.box.bottom - 170) <= 2,
                "box \(f.box)")
        let aware = MaskAwareEmbedder(base: retrying, matcher: try MaskAwareMatcher.bundled(network: retrying.descriptor))
        let g = try #require(try aware.analyze(image, upsample: 0, jitter: 0).first)
        let p = try #require(g.maskProbability)
        #expect(p > 0.5 && g.masked == true, "p(mask) = \(p)")
        #expect(g.embedding != f.embedding)                    // the head moved it
        #expect(g.rawDescriptor == f.rawDescriptor)
        #expect(abs(g.embedding.reduce(0) { $0 + $1 * $1 } - 1) < 1e-4)
        #expect(aware.modelName == retrying.modelName && aware.dimension == retrying.dimension)
    }

    /// The weak-detection fallback (`weakFaceThreshold`): MMOD's pass with a lower `adjustThreshold` keeps every
    /// detection above 0 unchanged (greedy NMS in score order) and adds weaker ones; the embedder takes the weak one
    /// nearest the centre only when nothing scores above 0 (after the upsample-1 retry when that is on).
    @Test("weak detections: strong ones unchanged, the masked fixture found at upsample 0, retry still preferred")
    func weakDetection() throws {
        let image = try ImageDecoder().decodeFile(atPath: Self.maskedFixture.path)
        let locator = FaceModelLocator()
        let mmod = try MMODFaceDetector(modelPath: try locator.path(of: FaceModelLocator.mmodFile))
        #expect(try mmod.detect(image, upsample: 0).isEmpty)
        let weakOnly = try mmod.detect(image, upsample: 0, adjustThreshold: -0.8)
        #expect(!weakOnly.isEmpty && weakOnly.allSatisfy { $0.confidence > -0.8 && $0.confidence <= 0 })
        for name in FaceFixture.names.prefix(3) {
            let f = try FaceFixture.load(name)
            let picture = try ImageDecoder().decodeFile(atPath: FaceFixture.directory.appendingPathComponent(f.image).path)
            let strong = try mmod.detect(picture, upsample: 0)
            #expect(!strong.isEmpty, "\(name)")
            #expect(try mmod.detect(picture, upsample: 0, adjustThreshold: -1).filter { $0.confidence > 0 } == strong, "\(name)")
            #expect(try mmod.detect(picture, upsample: 0, adjustThreshold: 0) == strong)
        }
        let weak = try DlibFaceEmbedder(locator: locator, weakFaceThreshold: -0.8)
        let faces = try weak.analyze(image, upsample: 0, jitter: 0)
        #expect(faces.count == 1)
        let w = try #require(faces.first)
        #expect(w.confidence <= 0 && w.confidence > -0.8)
        // The face's centre is near the image centre (LFW faces are centred) and the box overlaps the upsample-1 one.
        #expect(abs(Double(w.box.left + w.box.right) / 2 - 125) < 25 && abs(Double(w.box.top + w.box.bottom) / 2 - 125) < 25, "box \(w.box)")
        let both = try DlibFaceEmbedder(locator: locator, retryUpsampleWhenNoFace: true, weakFaceThreshold: -0.8)
        let r = try #require(try both.analyze(image, upsample: 0, jitter: 0).first)
        #expect(r.confidence > 0 && abs(r.box.left - 66) <= 2 && abs(r.box.top - 72) <= 2, "box \(r.box)")
        #expect(try DlibFaceEmbedder(locator: locator, weakFaceThreshold: 0).weakFaceThreshold == nil)
        #expect(try DlibFaceEmbedder(locator: locator, weakFaceThreshold: .nan).weakFaceThreshold == nil)
    }

    /// Unmasked faces get no head: without mirror averaging they keep the frozen embedding; the bundled matcher
    /// (mirror averaging) gives the normalised mean of the chip's and the mirrored chip's unit embeddings.
    @Test("unmasked fixture faces: no head; the frozen embedding, or its mirror average (bundled)")
    func unmaskedUnchanged() throws {
        let embedder = try DlibFaceEmbedder(locator: FaceModelLocator())
        let bundled = try MaskAwareMatcher.bundled(network: embedder.descriptor)
        #expect(bundled.mirrorAverage)
        let frozen = MaskAwareMatcher(detector: bundled.detector, head: bundled.head, network: embedder.descriptor)
        for name in FaceFixture.names.prefix(4) {
            let f = try FaceFixture.load(name)
            let picture = try ImageDecoder().decodeFile(atPath: FaceFixture.directory.appendingPathComponent(f.image).path)
            let box = FaceRect(left: f.box.left, top: f.box.top, right: f.box.right, bottom: f.box.bottom)
            let a = try #require(try embedder.analyze(picture, detections: [FaceDetection(rect: box, confidence: 1)]).first)
            let r = try frozen.process(image: picture, face: a)
            #expect(!r.masked, "\(name): p(mask) = \(r.maskProbability)")
            #expect(r.embedding == a.embedding && !r.adapted)
            let m = try bundled.process(image: picture, face: a)
            #expect(!m.masked && !m.adapted && m.maskProbability == r.maskProbability && m.frozenEmbedding == a.embedding)
            // By hand: the mirrored chip through the same network.
            let chip = FaceChip.extract(picture, details: a.chip)
            let mirrored = l2Normalized(try embedder.descriptor.descriptors(for: [MaskDetector.mirrored(chip)], jitter: 0)[0])
            let expected = l2Normalized(zip(a.embedding, mirrored).map { $0 + $1 })
            #expect(zip(m.embedding, expected).allSatisfy { abs($0 - $1) < 1e-6 })
            // Not the frozen embedding, but close to it (the same face), and unit length.
            let d = unitDistance(m.embedding, a.embedding)
            #expect(d > 1e-3 && d < 0.35, "\(name): distance to the frozen embedding \(d)")
            #expect(abs(m.embedding.reduce(0) { $0 + $1 * $1 } - 1) < 1e-4)
        }
    }

    /// The mask-aware embedder on a dlib embedder takes the detector's activations from the pass that made the
    /// embedding (one pass less per face); any other base embedder gets them from a pass of their own. Same faces.
    @Test("the detector's activations from the embedding's own pass: the same faces as with a pass of their own")
    func sharedPass() throws {
        struct Wrapped: Embedder {   // hides the DlibFaceEmbedder, so the embedder takes the separate pass
            let inner: DlibFaceEmbedder
            var modelName: String { inner.modelName }
            var modelVersion: String { inner.modelVersion }
            var dimension: Int { inner.dimension }
            func analyze(_ image: RGBImage, upsample: Int, jitter: Int) throws -> [FaceAnalysis] {
                try inner.analyze(image, upsample: upsample, jitter: jitter)
            }
        }
        let dlib = try DlibFaceEmbedder(locator: FaceModelLocator(), retryUpsampleWhenNoFace: true)
        let matcher = try MaskAwareMatcher.bundled(network: dlib.descriptor)
        let shared = MaskAwareEmbedder(base: dlib, matcher: matcher)
        let separate = MaskAwareEmbedder(base: Wrapped(inner: dlib), matcher: matcher)
        var images = [try ImageDecoder().decodeFile(atPath: Self.maskedFixture.path)]
        for name in FaceFixture.names.prefix(2) {
            let f = try FaceFixture.load(name)
            images.append(try ImageDecoder().decodeFile(atPath: FaceFixture.directory.appendingPathComponent(f.image).path))
        }
        for image in images {
            let a = try shared.analyze(image, upsample: 0, jitter: 0), b = try separate.analyze(image, upsample: 0, jitter: 0)
            #expect(!a.isEmpty && a.count == b.count)
            for (x, y) in zip(a, b) {
                #expect(abs((x.maskProbability ?? -1) - (y.maskProbability ?? -2)) < 1e-9)
                #expect(x.masked == y.masked && x.embedding == y.embedding && x.rawDescriptor == y.rawDescriptor)
            }
        }
        // The first image is the masked fixture: called masked either way.
        #expect(try shared.analyze(images[0], upsample: 0, jitter: 0).first?.masked == true)
        // jitter > 1: no shared pass (the embedding is a mean over jittered crops), still the same decision.
        let j = try #require(try shared.analyze(images[1], upsample: 0, jitter: 2).first)
        #expect(j.masked == false)
    }

    /// `maskedNoseY`: a face called masked is matched on the chip of `ChipDetails.maskedLandmarks` (mirror-averaged,
    /// then the head), its periocular embedding comes from that chip too; unmasked faces and the detector's
    /// decision are untouched.
    @Test("masked alignment: a masked face is matched on its re-cut chip, an unmasked one as before")
    func maskedAlignment() throws {
        let dlib = try DlibFaceEmbedder(locator: FaceModelLocator(), retryUpsampleWhenNoFace: true)
        let bundled = try MaskAwareMatcher.bundled(network: dlib.descriptor, maskedNoseY: nil)
        #expect(try MaskAwareMatcher.bundled(network: dlib.descriptor).maskedNoseY == MaskAwareMatcher.bundledMaskedNoseY)
        let noseY = 0.5237
        let realigning = MaskAwareMatcher(detector: bundled.detector, head: bundled.head, network: dlib.descriptor, mirrorAverage: true,
                                          maskedNoseY: noseY)
        let fusion = (fusion: try PeriocularFusion.bundled(), model: dlib.descriptor as any FaceDescriptorModel)
        let before = MaskAwareEmbedder(base: dlib, matcher: bundled, periocular: fusion)
        let after = MaskAwareEmbedder(base: dlib, matcher: realigning, periocular: fusion)
        let masked = try ImageDecoder().decodeFile(atPath: Self.maskedFixture.path)
        let f = try FaceFixture.load(FaceFixture.names[0])
        let plain = try ImageDecoder().decodeFile(atPath: FaceFixture.directory.appendingPathComponent(f.image).path)
        // Unmasked: identical faces.
        let u0 = try before.analyze(plain, upsample: 0, jitter: 0), u1 = try after.analyze(plain, upsample: 0, jitter: 0)
        #expect(u0 == u1 && u0.first?.masked == false)
        // Masked: same detection, landmarks and decision; the matching embedding is the head of the mirror average
        // of the re-cut chip, computed here by hand.
        let a = try #require(try before.analyze(masked, upsample: 0, jitter: 0).first)
        let b = try #require(try after.analyze(masked, upsample: 0, jitter: 0).first)
        #expect(a.masked == true && b.masked == true && a.maskProbability == b.maskProbability)
        #expect(a.landmarks == b.landmarks && a.rawDescriptor == b.rawDescriptor && a.chip == b.chip)
        let chip = FaceChip.extract(masked, details: ChipDetails.forFace(landmarks: ChipDetails.maskedLandmarks(b.landmarks, noseY: noseY)))
        let start = try MaskAwareMatcher.mirrorAveraged(chips: [chip], model: dlib.descriptor)[0]
        let expected = try #require(bundled.head).apply(start)
        #expect(zip(b.embedding, expected).allSatisfy { abs($0 - $1) < 1e-5 })
        #expect(unitDistance(a.embedding, b.embedding) > 1e-3)
        let periocular = try fusion.fusion.embeddings(chips: [chip], model: dlib.descriptor)[0]
        #expect(zip(try #require(b.periocularEmbedding), periocular).allSatisfy { abs($0 - $1) < 1e-5 })
        // Without the image (chips only) there is nothing to re-cut: the standard path.
        let standardChip = FaceChip.extract(masked, details: a.chip)
        let chipsOnly = try realigning.process(chips: [standardChip], embeddings: [a.rawDescriptor].map(l2Normalized))
        #expect(zip(chipsOnly[0].embedding, a.embedding).allSatisfy { abs($0 - $1) < 1e-5 })
    }

    /// Mirror averaging is symmetric: a face and its mirror image get the same embedding (both are the mean of
    /// the same two network outputs).
    @Test("mirror averaging: a chip and its mirror image get the same embedding; wrong inputs are errors")
    func mirrorAveragingIsSymmetric() throws {
        let embedder = try DlibFaceEmbedder(locator: FaceModelLocator())
        let f = try FaceFixture.load(FaceFixture.names[0])
        let picture = try ImageDecoder().decodeFile(atPath: FaceFixture.directory.appendingPathComponent(f.image).path)
        let box = FaceRect(left: f.box.left, top: f.box.top, right: f.box.right, bottom: f.box.bottom)
        let a = try #require(try embedder.analyze(picture, detections: [FaceDetection(rect: box, confidence: 1)]).first)
        let chip = FaceChip.extract(picture, details: a.chip), flipped = MaskDetector.mirrored(chip)
        let flippedEmbedding = l2Normalized(try embedder.descriptor.descriptors(for: [flipped], jitter: 0)[0])
        let both = try MaskAwareMatcher.mirrorAveraged(chips: [chip, flipped], embeddings: [a.embedding, flippedEmbedding],
                                                       model: embedder.descriptor)
        #expect(zip(both[0], both[1]).allSatisfy { abs($0 - $1) < 1e-6 })
        #expect(try MaskAwareMatcher.mirrorAveraged(chips: [], embeddings: [], model: embedder.descriptor).isEmpty)
        #expect(throws: MaskingError.self) {
            try MaskAwareMatcher.mirrorAveraged(chips: [chip], embeddings: [[1, 0]], model: embedder.descriptor)
        }
    }
}
