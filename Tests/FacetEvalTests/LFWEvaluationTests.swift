import FacetFace
import FacetMasking
import Foundation
import Testing
@testable import FacetEval

/// `facet eval lfw`'s library parts on hand-made data: calibrated thresholds, the compact impostor set, the
/// embedding cache, and the whole evaluation on 2-D templates whose outcomes are worked out by hand below.
@Suite("facet eval lfw: thresholds, impostors, cache, evaluation on hand-made templates")
struct LFWEvaluationTests {
    @Test("thresholds from the other folds at a target FMR, ties never split")
    func calibratedThresholds() {
        // fold 0 impostors 0.9 0.5 0.5 0.1; fold 1: 0.8 0.3 0.2 0.0
        let s = [0.9, 0.5, 0.5, 0.1, 0.8, 0.3, 0.2, 0.0]
        let f: [Int32] = [0, 0, 0, 0, 1, 1, 1, 1]
        // target 0.25 of 4 other-fold impostors = 1 may pass. Fold 0 uses fold 1: 0.8 passes, 0.3 would be the 2nd.
        // Fold 1 uses fold 0: 0.9 passes, the tied 0.5s would make 3.
        #expect(LFWEvaluation.calibratedThresholds(impostorScores: s, folds: f, fmr: 0.25) == [0: 0.8, 1: 0.9])
        // target 0.5 (2 may pass): fold 0 -> 0.3 (0.8, 0.3); fold 1 -> still 0.9 (0.9 + two tied 0.5 = 3 > 2).
        #expect(LFWEvaluation.calibratedThresholds(impostorScores: s, folds: f, fmr: 0.5) == [0: 0.3, 1: 0.9])
        // target 0.1 (0.4 pairs): not even the highest may pass -> just above it.
        #expect(LFWEvaluation.calibratedThresholds(impostorScores: s, folds: f, fmr: 0.1) == [0: 0.8.nextUp, 1: 0.9.nextUp])
        // global, 8 impostors, target 0.25 -> 2 may pass: 0.9, 0.8.
        #expect(LFWEvaluation.globalThreshold(impostorScores: s, fmr: 0.25) == 0.8)
    }

    /// Two folds of 5 matched + 5 mismatched pairs: 20 images and 175 cross-identity pairs per fold.
    static func syntheticPairs() throws -> LFWPairs {
        var text = "2\t5\n"
        for f in 0..<2 {
            for i in 0..<5 { text += "P\(f)_\(i)\t1\t2\n" }
            for i in 0..<5 { text += "P\(f)_\(i)\t3\tQ\(f)_\(i)\t1\n" }
        }
        return try LFWPairs.parse(text)
    }

    @Test("compact impostor set: same pairs as the LFWPair list, deterministic per seed, within folds")
    func impostorSet() throws {
        let p = try Self.syntheticPairs()
        let all = try LFWProtocol.crossIdentityImpostorSet(p, maxPerFold: nil)
        #expect(all.count == 350)   // per fold C(20, 2) = 190 minus 5 x C(3, 2) = 15 same-identity pairs
        let list = try LFWProtocol.crossIdentityImpostors(p, maxPerFold: nil)
        #expect(list.count == all.count)
        for k in 0..<all.count {
            #expect(list[k].first == all.images[Int(all.first[k])] && list[k].second == all.images[Int(all.second[k])]
                    && list[k].fold == Int(all.fold[k]))
            #expect(all.images[Int(all.first[k])].name != all.images[Int(all.second[k])].name)
            #expect(all.images[Int(all.first[k])].name.prefix(2).last == all.images[Int(all.second[k])].name.prefix(2).last)   // same fold
        }
        let a = try LFWProtocol.crossIdentityImpostorSet(p, maxPerFold: 50, seed: 1)
        let b = try LFWProtocol.crossIdentityImpostorSet(p, maxPerFold: 50, seed: 1)
        let c = try LFWProtocol.crossIdentityImpostorSet(p, maxPerFold: 50, seed: 2)
        #expect(a == b)
        #expect(a.count == 100 && a.fold.filter { $0 == 0 }.count == 50)
        #expect(a != c)
        let allKeys = Set((0..<all.count).map { "\(all.first[$0])-\(all.second[$0])" })
        #expect(Set((0..<a.count).map { "\(a.first[$0])-\(a.second[$0])" }).count == 100)   // no duplicates
        #expect(Set((0..<a.count).map { "\(a.first[$0])-\(a.second[$0])" }).isSubset(of: allKeys))
    }

    @Test("cache: facet embed lines, fallback and mask lines merged in order, truncated last line ignored")
    func cache() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("facet-cache-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let lm5 = "[[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]]"
        let embed = """
            {"image": "./A/A_0001.jpg", "width": 250, "height": 250, "faces": [{"box": [0, 0, 50, 50], "confidence": 1.5, "landmarks": \(lm5), "embedding": [1, 0, 0]}, {"box": [100, 100, 150, 150], "confidence": 0.5, "landmarks": \(lm5), "embedding": [0, 1, 0]}]}
            {"image": "./A/A_0002.jpg", "width": 250, "height": 250, "faces": []}
            {"image": "./B/B_0001.jpg", "error": {"code": "decode", "message": "bad file"}}
            {"image": "./B/B_00
            """
        try Data(embed.utf8).write(to: dir.appendingPathComponent("unmasked.jsonl"))
        var table: [String: CacheEntry] = [:]
        try TemplateCache.read([dir.appendingPathComponent("unmasked.jsonl")], into: &table)
        #expect(table.count == 3)
        // the face whose centre is nearest (125, 125)
        #expect(table["A/A_0001.jpg"]?.template?.embedding == [0, 1, 0])
        #expect(table["A/A_0001.jpg"]?.template?.facesFound == 2)
        #expect(table["A/A_0002.jpg"]?.faces == [] && table["A/A_0002.jpg"]?.template == nil)   // needs the fallback crop
        #expect(table["B/B_0001.jpg"]?.error == "bad file" && table["B/B_0001.jpg"]?.template == nil)

        let fb = CachedFace(box: FaceRect(left: 72, top: 77, right: 167, bottom: 171), confidence: 0,
                            landmarks: (0..<5).map { LandmarkPoint(x: Double($0), y: 1.5) }, embedding: [0, 0, 1])
        let appender = try TemplateCache.Appender(url: dir.appendingPathComponent("unmasked.eval.jsonl"))
        appender.append([TemplateCache.line(image: "A/A_0002.jpg", width: 250, height: 250, faces: [], fallback: fb),
                         TemplateCache.maskLine(image: "A/A_0001.jpg", probability: 0.25, detector: "v1-abc"),
                         TemplateCache.periocularLine(image: "A/A_0001.jpg", embedding: [0.6, -0.8, 0], model: "p1-x"),
                         TemplateCache.mirrorLine(image: "A/A_0001.jpg", embedding: [0, 0.8, 0.6], model: TemplateCache.mirrorModel("m")),
                         TemplateCache.line(image: "B/B_0001.jpg", width: 200, height: 100, faces: [CachedFace(
                             box: FaceRect(left: 80, top: 30, right: 120, bottom: 70), confidence: 1, landmarks: fb.landmarks,
                             embedding: [0.5, 0.25, -0.125])], fallback: nil)])
        try TemplateCache.read([dir.appendingPathComponent("unmasked.eval.jsonl")], into: &table)
        #expect(table["A/A_0002.jpg"]?.template?.embedding == [0, 0, 1])
        #expect(table["A/A_0002.jpg"]?.template?.usedFallback == true)
        #expect(table["A/A_0002.jpg"]?.fallback == fb)
        #expect(table["A/A_0001.jpg"]?.maskProbability?.p == 0.25 && table["A/A_0001.jpg"]?.maskProbability?.detector == "v1-abc")
        #expect(table["A/A_0001.jpg"]?.template?.embedding == [0, 1, 0])   // a mask line keeps the faces
        #expect(table["A/A_0001.jpg"]?.periocular?.model == "p1-x" && table["A/A_0001.jpg"]?.periocular?.embedding == [0.6, -0.8, 0])
        #expect(table["A/A_0001.jpg"]?.maskProbability?.p == 0.25)          // and the mask probability
        #expect(table["A/A_0001.jpg"]?.mirrorAveraged?.model == "mirror1-m" && table["A/A_0001.jpg"]?.mirrorAveraged?.embedding == [0, 0.8, 0.6])
        // A later embedding of the same image drops what was computed from its old face.
        var renewed = table
        try Data(TemplateCache.line(image: "A/A_0001.jpg", width: 250, height: 250, faces: [fb], fallback: nil).utf8)
            .write(to: dir.appendingPathComponent("renewed.jsonl"))
        try TemplateCache.read([dir.appendingPathComponent("renewed.jsonl")], into: &renewed)
        #expect(renewed["A/A_0001.jpg"]?.template?.embedding == [0, 0, 1])
        #expect(renewed["A/A_0001.jpg"]?.periocular == nil && renewed["A/A_0001.jpg"]?.maskProbability == nil)
        #expect(renewed["A/A_0001.jpg"]?.mirrorAveraged == nil)
        #expect(table["B/B_0001.jpg"]?.error == nil && table["B/B_0001.jpg"]?.template?.embedding == [0.5, 0.25, -0.125])
        #expect(TemplateCache.key("/x/lfw/A/A_0001.jpg") == "A/A_0001.jpg" && TemplateCache.key("./A/A_0001.jpg") == "A/A_0001.jpg")

        // a malformed line in the middle is an error naming the line
        try Data("{\"image\": \"./A/A_0001.jpg\", \"faces\": []}\nnot json\n{\"image\": \"./A/A_0002.jpg\", \"faces\": []}\n".utf8)
            .write(to: dir.appendingPathComponent("bad.jsonl"))
        var t2: [String: CacheEntry] = [:]
        #expect(throws: EvalError.labelsFormat(file: dir.appendingPathComponent("bad.jsonl").path, line: 2,
                                               message: "not a JSON object with an \"image\" key")) {
            try TemplateCache.read([dir.appendingPathComponent("bad.jsonl")], into: &t2)
        }
    }

    /// Hand-made 2-D templates (unit vectors at the given angles, degrees). Fold 0: A, B (male); fold 1: C, D (female).
    /// Unmasked: A 0 2 4, B 40 42 44, C 100 102 104, D 139 141 143. Masks turn men by +10°, women by +40°.
    /// Score = -chord, a decreasing function of the angle between two templates, so everything below is in degrees.
    /// `LFWEvaluation.run` on the hand-made pairs, impostors and demographics with these templates (no identification).
    static func runHandMade(_ u: TemplateTable, _ m: TemplateTable, _ options: LFWEvaluationOptions = .init()) throws -> LFWEvaluationResult {
        let (pairs, impostors, _, _, demo, _) = try handMade()
        return try LFWEvaluation.run(pairs: pairs, impostors: impostors, split: nil, unmasked: u, masked: m,
                                     demographics: demo, adaptation: IdentityAdaptation(), options: options)
    }

    static func handMade() throws -> (LFWPairs, LFWProtocol.ImpostorSet, TemplateTable, TemplateTable, LFWDemographics, IdentificationSplit) {
        let pairs = try LFWPairs.parse("""
            2\t2
            A\t1\t2
            B\t1\t2
            A\t3\tB\t3
            A\t1\tB\t1
            C\t1\t2
            D\t1\t2
            C\t3\tD\t3
            C\t1\tD\t1

            """)
        let impostors = try LFWProtocol.crossIdentityImpostorSet(pairs, maxPerFold: nil)
        let base: [String: Double] = ["A": 0, "B": 40, "C": 100, "D": 139]
        let people = LFWPeople(counts: ["A": 3, "B": 3, "C": 3, "D": 3])
        let split = try LFWProtocol.identificationSplit(people, minImages: 3, trainPerIdentity: 1, nonMatedFraction: 0.25, seed: 1)
        let images = LFWEvaluation.images(pairs: pairs, split: split)
        func table(_ shift: (String) -> Double) throws -> TemplateTable {
            var v: [Float] = []
            for im in images {
                let a = (base[im.name]! + 2 * Double(im.number - 1) + shift(im.name)) * .pi / 180
                v += [Float(cos(a)), Float(sin(a))]
            }
            return try TemplateTable(images: images, dimension: 2, vectors: v, usedFallback: images.map { $0.name == "D" && $0.number == 2 },
                                     maskProbability: nil)
        }
        let u = try table { _ in 0 }, m = try table { ["A", "B"].contains($0) ? 10 : 40 }
        var genders: [String: LFWDemographics.Gender] = [:]
        for im in images { genders[im.name + "_" + String(format: "%04d", im.number)] = ["A", "B"].contains(im.name) ? .male : .female }
        let demo = LFWDemographics(genderByImage: genders, ambiguousImages: [], raceByIdentity: [:], genderSource: nil)
        return (pairs, impostors, u, m, demo, split)
    }

    @Test("evaluation on hand-made templates: sides, calibrated operating points, fairness, identification")
    func handMadeEvaluation() throws {
        let (pairs, impostors, u, m, demo, split) = try Self.handMade()
        #expect(impostors.count == 18)   // 3 x 3 per fold
        var options = LFWEvaluationOptions()
        options.targetFMR = 1e-3
        options.identificationMinImages = 3
        options.identificationTrainPerIdentity = 1
        let r = try LFWEvaluation.run(pairs: pairs, impostors: impostors, split: split, unmasked: u, masked: m,
                                      demographics: demo, adaptation: IdentityAdaptation(), options: options)
        #expect(r.verification.count == 6)
        // Unmasked genuine pairs are 2° apart, impostors 36-44° (fold 0) and 35-43° (fold 1): perfect curves.
        let uu = try #require(r.row(.unmaskedUnmasked, .baseline))
        #expect(uu.view2.accuracy == 1 && uu.view2.eer == 0 && uu.extended.eer == 0)
        // Operating point, no impostor of the other fold may pass: fold 0 accepts < 35° (fold 1's closest impostor,
        // C3-D1) and rejects all its own (>= 36°); fold 1 accepts < 36° and so lets C3-D1 (35°) through.
        #expect(uu.operatingPoint.fmr == 1.0 / 18 && uu.operatingPoint.fnmr == 0)
        // Masked-unmasked (second image masked): genuine men 12°, women 42°; impostors men (uA, mB) 46-54°,
        // women (uC, mD) 75-83°. The baseline keeps the unmasked threshold (accept < 36°): the women's genuine
        // pairs fail -> FNMR 2/4, FMR 0.
        let mu = try #require(r.row(.maskedUnmasked, .baseline))
        #expect(mu.operatingPoint.fnmr == 0.5 && mu.operatingPoint.fmr == 0)
        // Mask-aware: masked-unmasked thresholds from the other fold's masked-unmasked impostors. Fold 0 gets
        // "accept < 75°" (fold 1's impostors) and lets all 9 of its impostors (46-54°) through; fold 1 gets
        // "accept < 46°": women's genuine 42° pass, impostors fail. FMR 9/18, FNMR 0 — calibration across folds
        // with different impostor distributions, worked out by hand.
        let mua = try #require(r.row(.maskedUnmasked, .maskAware))
        #expect(mua.operatingPoint.fmr == 0.5 && mua.operatingPoint.fnmr == 0)
        #expect(mua.operatingPoint.routedCorrectly == 1)   // no detector: routed by the truth
        // Masked-masked: everyone turns by the same angle within a fold -> the same angles as unmasked, and the
        // baseline's unmasked thresholds give the same FMR 1/18.
        let mm = try #require(r.row(.maskedMasked, .baseline))
        #expect(mm.view2.accuracy == 1 && mm.operatingPoint.fmr == 1.0 / 18 && mm.operatingPoint.fnmr == 0)
        // View 2, masked-unmasked: fold 0 has genuine 12°, 12° and mismatched (uA3, mB3) = (uA1, mB1) = 50°; fold 1
        // genuine 42°, 42°, mismatched 79°. Fold 0's accuracy threshold is chosen on fold 1 (the score midpoint of
        // 42° and 79°, about 59°): fold 0's 50° impostors pass -> 2 of 4 right. Fold 1's comes from fold 0 (about
        // 31°): its 42° genuine pairs fail -> 2 of 4 right.
        #expect(mu.view2FoldAccuracies == [0.5, 0.5] && mu.view2.accuracy == 0.5 && mu.view2.accuracyStd == 0)
        // Failed to template: D_0002 is marked fallback in both tables; it is in View 2 pair D1-D2 only, on the
        // second side, so it counts once per comparison.
        #expect(uu.failedToTemplate == 1 && mu.failedToTemplate == 1 && mm.failedToTemplate == 1)

        // Fairness at the global threshold (FMR 1e-3 over 18 impostors: none may pass). Masked-unmasked baseline:
        // threshold just above the best impostor (46°) -> accept < 46°: men genuine 12° pass, women genuine 42°
        // pass; no impostor passes. All rates 0.
        let fmu = try #require(r.fairness.first { $0.comparison == .maskedUnmasked && $0.method == .baseline && $0.attribute == "gender" })
        #expect(fmu.result.groups.map(\.group) == ["female", "male"])
        #expect(fmu.result.groups.map(\.genuinePairs) == [2, 2] && fmu.result.groups.map(\.impostorPairs) == [9, 9])
        #expect(fmu.result.groups.allSatisfy { $0.fmr == 0 && $0.fnmr == 0 })
        #expect(fmu.result.excludedPairs == 0)
        #expect(!r.fairness.contains { $0.attribute == "race" })   // no race labels

        // Identification: 4 identities with 3 images, 1 held out, 3 enrolled x 1 training image, 6 mated probes,
        // 3 non-mated probes; no image both trained on and probed.
        #expect(r.identificationSplit["enrolled_identities"] == 3 && r.identificationSplit["mated_probes"] == 6
                && r.identificationSplit["non_mated_probes"] == 3)
        #expect(Set(split.train).isDisjoint(with: Set(split.test)) && Set(split.nonMated.map(\.name)).isDisjoint(with: Set(split.enrolled)))
        #expect(r.identification.count == 8)   // 2 methods x 2 weightings x 2 probe conditions
        let unmaskedProbes = try #require(r.identification.first { $0.method == .baseline && $0.weighting == "none" && $0.probes == "unmasked" })
        #expect(unmaskedProbes.closedSet.probes == 6 && unmaskedProbes.closedSet.classes == 3)
        #expect(unmaskedProbes.fnirAtFpir.count == 2)

        // JSON and HTML.
        let json = try #require(try JSONSerialization.jsonObject(with: r.json()) as? [String: Any])
        #expect(json["impostor_pairs"] as? Int == 18)
        let ver = try #require(json["verification"] as? [[String: Any]])
        #expect(ver.count == 6 && ver[0]["fnmr_at_fmr"] != nil && ver[0]["operating_point"] != nil)
        let html = r.report(title: "t", commands: ["facet eval lfw"]).html()
        #expect(html.contains("Verification: baseline vs mask-aware") && html.contains("<svg") && html.contains("Fairness"))
    }

    @Test("fairness at a looser target: men's impostors pass, women's do not")
    func handMadeFairness() throws {
        let (pairs, impostors, u, m, demo, _) = try Self.handMade()
        var options = LFWEvaluationOptions()
        options.targetFMR = 0.5
        let r = try LFWEvaluation.run(pairs: pairs, impostors: impostors, split: nil, unmasked: u, masked: m,
                                      demographics: demo, adaptation: IdentityAdaptation(), options: options)
        // Masked-unmasked impostor angles: men {46, 48, 48, 50, 50, 50, 52, 52, 54}, women {75, ..., 83}.
        // 9 of 18 may pass: the global threshold accepts <= 54°, i.e. every men's impostor and no women's.
        let f = try #require(r.fairness.first { $0.comparison == .maskedUnmasked && $0.method == .baseline && $0.attribute == "gender" })
        let female = try #require(f.result.groups.first { $0.group == "female" }), male = try #require(f.result.groups.first { $0.group == "male" })
        #expect(male.fmr == 1 && male.fnmr == 0)
        #expect(female.fmr == 0 && female.fnmr == 0)
        #expect(f.result.fmrMaxMinRatio == nil)   // min FMR is 0
        #expect(f.result.equalOpportunityDifference == 0)
        #expect(f.result.equalizedOddsDifference == 1)
        #expect(r.identification.isEmpty)
    }

    /// Cohort score normalisation on the hand-made templates. A_1 (0°, fold 0): the cohort is everybody sharing no
    /// fold with A, i.e. C and D (fold 1); its 2 nearest are C_1 (100°) and C_2 (102°): chords 2 sin 50° and
    /// 2 sin 51°, mean 1.54320, population std 0.01113.
    @Test("cohort statistics use only other folds' people; unmasked–unmasked and baseline scores are unchanged")
    func cohortNormalisation() throws {
        let (pairs, impostors, u, m, demo, _) = try Self.handMade()
        var folds: [String: Set<Int>] = [:]
        for p in pairs.pairs { folds[p.first.name, default: []].insert(p.fold); folds[p.second.name, default: []].insert(p.fold) }
        let e = LFWEvaluation.Embeddings(d: 2, v: u.vectors)
        let st = LFWEvaluation.cohortStatistics(e, cohort: e, images: u.images, personFolds: folds, k: 2)
        let a1 = try #require(u.images.firstIndex(of: LFWImage(name: "A", number: 1)))
        let c1 = 2 * sin(50.0 * .pi / 180), c2 = 2 * sin(51.0 * .pi / 180)
        #expect(abs(Double(st.mean[a1]) - (c1 + c2) / 2) < 1e-5)
        #expect(abs(1 / Double(st.invStd[a1]) - abs(c2 - c1) / 2) < 1e-4)
        var options = LFWEvaluationOptions()
        let plain = try LFWEvaluation.run(pairs: pairs, impostors: impostors, split: nil, unmasked: u, masked: m,
                                          demographics: demo, adaptation: IdentityAdaptation(), options: options)
        options.cohortSize = 2
        let normed = try LFWEvaluation.run(pairs: pairs, impostors: impostors, split: nil, unmasked: u, masked: m,
                                           demographics: demo, adaptation: IdentityAdaptation(), options: options)
        for c in Comparison.allCases {
            #expect(try #require(plain.row(c, .baseline)).view2 == (try #require(normed.row(c, .baseline)).view2))
        }
        // No detector: unmasked sides are "unmasked", masked sides "masked" (ground truth) — the unmasked–unmasked
        // decisions keep the plain distance; masked–unmasked ones are normalised.
        let uuPlain = try #require(plain.row(.unmaskedUnmasked, .maskAware)), uuNormed = try #require(normed.row(.unmaskedUnmasked, .maskAware))
        #expect(uuPlain.view2 == uuNormed.view2 && uuPlain.extended == uuNormed.extended)
        // The normalised score by hand: d = √2, z = ((√2 − 1)·2 + (√2 − 1.2)·4) / 2 = 0.842641, score = −(0.5 + 0.25 z).
        var a = LFWEvaluation.Embeddings(d: 2, v: [1, 0]), b = LFWEvaluation.Embeddings(d: 2, v: [0, 1])
        a.cohortMean = [1]; a.cohortInvStd = [2]; a.detectedMasked = [true]; a.unitMean = 0.5; a.unitStd = 0.25
        b.cohortMean = [1.2]; b.cohortInvStd = [4]; b.detectedMasked = [false]; b.unitMean = 0.5; b.unitStd = 0.25
        #expect(abs(a.score(0, b, 0) + (0.5 + 0.25 * 0.842641)) < 1e-5)
        a.detectedMasked = [false]
        #expect(abs(a.score(0, b, 0) + 2.0.squareRoot()) < 1e-6)   // both called unmasked: the plain distance
    }

    /// Periocular fusion in the mask-aware column: `w·full + (1 − w)·periocular` only for decisions with a side
    /// called masked (here the ground truth: no detector), baseline and unmasked–unmasked untouched.
    @Test("periocular fusion: fused only with a masked side, by hand and through run()")
    func periocularFusion() throws {
        var a = LFWEvaluation.Embeddings(d: 2, v: [1, 0]), b = LFWEvaluation.Embeddings(d: 2, v: [0, 1])
        a.periocular = [0, 1]; b.periocular = [0, 1]; a.fullWeight = 0.25; b.fullWeight = 0.25
        a.detectedMasked = [true]; b.detectedMasked = [false]
        #expect(abs(a.score(0, b, 0) + 0.25 * 2.0.squareRoot()) < 1e-6)   // 0.25·√2 + 0.75·0
        a.detectedMasked = [false]
        #expect(abs(a.score(0, b, 0) + 2.0.squareRoot()) < 1e-6)          // both unmasked: the full distance

        let (_, _, u, m, _, _) = try Self.handMade()
        var options = LFWEvaluationOptions()
        options.periocularFullWeight = 0
        #expect(throws: EvalError.self) {
            try Self.runHandMade(u, m, options)
        }
        let plain = try Self.runHandMade(u, m, LFWEvaluationOptions())
        // A periocular embedding the mask does not move (the masked photo's equals the unmasked photo's), weight 0:
        // masked comparisons become the unmasked ones — perfect, as unmasked–unmasked is on these templates.
        var pu = u, pm = m
        pu.periocular = u.vectors; pm.periocular = u.vectors
        let fused = try Self.runHandMade(pu, pm, options)
        for c in Comparison.allCases {
            #expect(try #require(plain.row(c, .baseline)).view2 == (try #require(fused.row(c, .baseline)).view2))
        }
        #expect(try #require(plain.row(.unmaskedUnmasked, .maskAware)).view2 == (try #require(fused.row(.unmaskedUnmasked, .maskAware)).view2))
        #expect(try #require(plain.row(.maskedUnmasked, .maskAware)).view2.accuracy < 1)
        #expect(try #require(fused.row(.maskedUnmasked, .maskAware)).view2.accuracy == 1)
        #expect(try #require(fused.row(.maskedMasked, .maskAware)).view2.accuracy == 1)
        // Periocular equal to the full embedding: fusion changes nothing.
        pu.periocular = u.vectors; pm.periocular = m.vectors
        options.periocularFullWeight = 0.3
        let same = try Self.runHandMade(pu, pm, options)
        #expect(try #require(same.row(.maskedUnmasked, .maskAware)).view2.accuracy == (try #require(plain.row(.maskedUnmasked, .maskAware)).view2.accuracy))
    }

    /// Mirror averaging in the mask-aware column: the column starts from `TemplateTable.mirrorAveraged` (both
    /// conditions needed), the baseline column keeps the frozen vectors.
    @Test("mirror averaging: the mask-aware column starts from the mirror-averaged vectors, the baseline does not")
    func mirrorAveraging() throws {
        let (_, _, u, m, _, _) = try Self.handMade()
        var options = LFWEvaluationOptions()
        options.mirrorAverage = true
        #expect(throws: EvalError.self) {
            try Self.runHandMade(u, m, options)
        }
        let plain = try Self.runHandMade(u, m, LFWEvaluationOptions())
        // Mirror-averaged vectors equal to the frozen ones: nothing changes.
        var su = u, sm = m
        su.mirrorAveraged = u.vectors; sm.mirrorAveraged = m.vectors
        let same = try Self.runHandMade(su, sm, options)
        for c in Comparison.allCases {
            for method in [MatchingMethod.baseline, .maskAware] {
                #expect(try #require(plain.row(c, method)).view2 == (try #require(same.row(c, method)).view2))
            }
        }
        // Masked photos whose mirror-averaged vectors are the unmasked photos': masked comparisons in the mask-aware
        // column become unmasked ones (perfect on these templates); the baseline column is untouched.
        sm.mirrorAveraged = u.vectors
        let mirrored = try Self.runHandMade(su, sm, options)
        for c in Comparison.allCases {
            #expect(try #require(plain.row(c, .baseline)).view2 == (try #require(mirrored.row(c, .baseline)).view2))
        }
        #expect(try #require(plain.row(.maskedUnmasked, .maskAware)).view2.accuracy < 1)
        #expect(try #require(mirrored.row(.maskedUnmasked, .maskAware)).view2.accuracy == 1)
    }

    /// Per-group heads never see the people they are applied to: head g is trained on people none of whose folds is
    /// in group g (`f % groups`) and applied to people of group g; people outside the pairs file get a pseudo-fold.
    @Test("fold heads: disjoint training/application people, head only on faces called masked")
    func foldHeads() throws {
        let (pairs, _, _, _, _, _) = try Self.handMade()   // A, B in fold 0; C, D in fold 1
        let folds = HeadFolds(pairs: pairs, groups: 2)
        #expect(folds.head(for: "A") == 0 && folds.head(for: "B") == 0 && folds.head(for: "C") == 1 && folds.head(for: "D") == 1)
        for person in ["A", "B", "C", "D", "Zed", "Someone_Else"] {
            let g = folds.head(for: person)
            #expect(folds.groups(person).contains(g))          // so head g's training set (groups ∌ g) excludes the person
            #expect((0..<2).contains(g))
        }
        #expect(folds.folds("Zed") == folds.folds("Zed") && folds.folds("Zed").count == 1)
        // Two heads of 2-D templates, written and loaded as `facet mask-heads` files.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fold-heads-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for g in 0..<2 {
            let h = UnmaskingHead(embeddingModel: "test", parameters: UnmaskingHeadParameters(input: 2, hidden: 2, seed: UInt64(g + 1), outputScale: 1))
            try h.write(to: dir.appendingPathComponent(HeadFolds.fileName(fold: g)))
        }
        let adaptation = try FoldHeadAdaptation(directory: dir, pairs: pairs, maskThreshold: 0.5)
        #expect(adaptation.heads.count == 2 && adaptation.folds.groups == 2)
        let x: [Float] = [1, 0]
        let a = LFWImage(name: "A", number: 1), c = LFWImage(name: "C", number: 1)
        #expect(try adaptation.adapt(x, maskProbability: 0.2, image: a) == x)
        #expect(try adaptation.adapt(x, maskProbability: nil, image: a) == x)
        #expect(try adaptation.adapt(x, maskProbability: 0.9, image: a) == adaptation.heads[0].apply(x))
        #expect(try adaptation.adapt(x, maskProbability: 0.9, image: c) == adaptation.heads[1].apply(x))
        #expect(adaptation.heads[0].apply(x) != x && adaptation.heads[0].apply(x) != adaptation.heads[1].apply(x))
        #expect(throws: EvalError.self) { try FoldHeadAdaptation(directory: dir.appendingPathComponent("none"), pairs: pairs, maskThreshold: 0.5) }
    }
}
