import FacetEval
import FacetFace
import Foundation
import Testing

/// `facet eval pairs` end to end through `PairsEvaluation` (the command's code path), with the real dlib models
/// ($FACET_MODELS, else ./models; the tests fail when they are missing) on committed LFW images.
@Suite("facet eval pairs", .serialized)
struct PairsEvaluationTests {
    static let embedder: Result<DlibFaceEmbedder, Error> = Result { try DlibFaceEmbedder(locator: FaceModelLocator()) }

    func pairsDir() throws -> URL { try fixtureURL("pairs") }
    func root() throws -> URL { try pairsDir().appendingPathComponent("images") }

    @Test("header-less file is re-folded into min(10, matched, mismatched) stratified folds")
    func refoldsHeaderless() throws {
        let p = try PairsEvaluation.loadPairs(pairsDir().appendingPathComponent("pairs_noheader.txt"))
        #expect(p.pairs.count == 8)
        #expect(p.header == nil)
        #expect(p.foldCount == 4)
        // each fold: one matched and one mismatched pair
        for f in 0..<4 {
            #expect(p.pairs.filter { $0.fold == f && $0.isSame }.count == 1)
            #expect(p.pairs.filter { $0.fold == f && !$0.isSame }.count == 1)
        }
    }

    @Test("a header keeps the file's folds")
    func keepsHeaderFolds() throws {
        let p = try PairsEvaluation.loadPairs(pairsDir().appendingPathComponent("pairs_header.txt"))
        #expect(p.header?.folds == 2 && p.header?.perSide == 2)
        #expect(p.folds == [0, 0, 0, 0, 1, 1, 1, 1])
    }

    @Test("--limit keeps half matched, half mismatched, spread over the folds")
    func limitIsStratified() throws {
        let p = try PairsEvaluation.loadPairs(pairsDir().appendingPathComponent("pairs_header.txt"), limit: 4)
        #expect(p.pairs.count == 4)
        #expect(p.pairs.filter(\.isSame).count == 2)
        #expect(Set(p.pairs.filter(\.isSame).map(\.fold)) == [0, 1])
        #expect(Set(p.pairs.filter { !$0.isSame }.map(\.fold)) == [0, 1])
        #expect(p.pairs.map(\.line) == [2, 4, 6, 8])   // first of each side of each fold
        #expect(throws: EvalError.self) { try PairsEvaluation.loadPairs(pairsDir().appendingPathComponent("pairs_noheader.txt"), limit: 1) }
    }

    @Test("central face and fallback box")
    func geometry() {
        #expect(PairsEvaluation.fallbackBox(width: 250, height: 250) == FaceRect(left: 72, top: 77, right: 167, bottom: 171))
        #expect(PairsEvaluation.fallbackBox(width: 500, height: 500) == FaceRect(left: 144, top: 154, right: 334, bottom: 342))
        let boxes = [FaceRect(left: 0, top: 0, right: 50, bottom: 50), FaceRect(left: 100, top: 100, right: 150, bottom: 150),
                     FaceRect(left: 190, top: 190, right: 249, bottom: 249)]
        #expect(PairsEvaluation.centralFace(boxes, width: 250, height: 250) == 1)
        #expect(PairsEvaluation.centralFace([], width: 250, height: 250) == nil)
    }

    @Test("real embedder, with and without header: easy pairs are separated and nothing fails")
    func realPairs() throws {
        let embedder = try Self.embedder.get()
        var summaries: [[String: Any]] = []
        for file in ["pairs_noheader.txt", "pairs_header.txt"] {
            let pairs = try PairsEvaluation.loadPairs(pairsDir().appendingPathComponent(file))
            let out = try PairsEvaluation.run(pairs: pairs, root: root(), embedder: embedder, threads: 2)
            #expect(out.imageCount == 8)
            #expect(out.failedToTemplate == 0)
            // every genuine pair scores above every impostor pair (easy, frontal LFW faces)
            let genuine = zip(pairs.pairs, out.scores).filter { $0.0.isSame }.map(\.1)
            let impostor = zip(pairs.pairs, out.scores).filter { !$0.0.isSame }.map(\.1)
            #expect(genuine.count == 4 && impostor.count == 4)
            #expect(try #require(genuine.min()) > (try #require(impostor.max())), "genuine \(genuine), impostor \(impostor)")
            let json = out.json()
            let obj = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
            #expect(Set(obj.keys) == ["pairs", "accuracy", "accuracy_std", "tar_at_far", "eer", "failed_to_template"])
            #expect(json.hasPrefix("{\"pairs\": 8, \"accuracy\": "))
            #expect(obj["pairs"] as? Int == 8)
            #expect(obj["accuracy"] as? Double == 1.0)
            #expect(obj["accuracy_std"] as? Double == 0.0)
            #expect(obj["eer"] as? Double == 0.0)
            #expect(obj["failed_to_template"] as? Int == 0)
            let tar = try #require(obj["tar_at_far"] as? [String: Any])
            #expect(Set(tar.keys) == ["0.01", "0.001"])
            #expect(tar["0.01"] is NSNull)   // 4 impostor pairs cannot resolve FAR 1e-2: null, not a number
            summaries.append(obj)
            let html = out.report(title: "test", command: "facet eval pairs").html()
            #expect(html.contains("<svg"))
        }
        // Same pairs, different folds: same scores, same (perfect) accuracy.
        #expect(summaries[0]["accuracy"] as? Double == summaries[1]["accuracy"] as? Double)
    }

    @Test("no face detected: compared on the fallback crop and counted")
    func fallback() throws {
        let embedder = try Self.embedder.get()
        let pairs = try PairsEvaluation.loadPairs(pairsDir().appendingPathComponent("pairs_masked.txt"))
        let out = try PairsEvaluation.run(pairs: pairs, root: root(), embedder: embedder, threads: 1)
        #expect(out.failedToTemplate == 1)
        #expect(out.failedImages == [LFWImage(name: "Colin_Powell_masked", number: 1)])
        #expect(out.result.pairs == 6)
        #expect(out.scores.allSatisfy { $0.isFinite && $0 <= 0 })
        #expect(out.json().hasSuffix("\"failed_to_template\": 1}"))
    }

    @Test("a missing image stops the run and names its path")
    func missingImage() throws {
        let embedder = try Self.embedder.get()
        let pairs = try PairsEvaluation.loadPairs(pairsDir().appendingPathComponent("pairs_missing.txt"))
        do {
            _ = try PairsEvaluation.run(pairs: pairs, root: root(), embedder: embedder)
            Issue.record("expected an error")
        } catch let EvalError.io(path, message) {
            #expect(path.hasSuffix("images/George_W_Bush/George_W_Bush_0009.jpg"))
            #expect(message.contains("1 of"))
        }
    }
}
