import Foundation
import Testing
@testable import FacetEval

/// Every expected value below is worked out by hand in the comments.
@Suite("Verification metrics against hand-computed values")
struct VerificationMetricsTests {
    // Example A. genuine: 0.9 0.8 0.6 0.4   impostor: 0.7 0.5 0.3 0.2 0.1  (4 genuine, 5 impostor)
    static let scoresA: [Double] = [0.9, 0.8, 0.6, 0.4, 0.7, 0.5, 0.3, 0.2, 0.1]
    static let sameA: [Bool] = [true, true, true, true, false, false, false, false, false]

    @Test("ROC/DET curve: one point per distinct score, accept >= threshold")
    func curveA() throws {
        let c = VerificationMetrics.curve(try ScoredPairs(scores: Self.scoresA, isSame: Self.sameA))
        // t      : start 0.9  0.8  0.7  0.6  0.5  0.4  0.3  0.2  0.1
        // FMR    : 0     0    0    1/5  1/5  2/5  2/5  3/5  4/5  1
        // FNMR   : 1     3/4  1/2  1/2  1/4  1/4  0    0    0    0
        #expect(c.map(\.fmr) == [0, 0, 0, 0.2, 0.2, 0.4, 0.4, 0.6, 0.8, 1])
        #expect(c.map(\.fnmr) == [1, 0.75, 0.5, 0.5, 0.25, 0.25, 0, 0, 0, 0])
        #expect(c.dropFirst().map(\.threshold) == [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
        #expect(c[0].threshold > 0.9)   // reject-all start point
    }

    @Test("TAR@FAR, FNMR@FMR, EER and AUC")
    func summaryA() throws {
        let c = VerificationMetrics.curve(try ScoredPairs(scores: Self.scoresA, isSame: Self.sameA))
        // FMR <= 0.2: best point t = 0.6 with TAR 3/4. FMR <= 0.1: t = 0.8, TAR 1/2. FMR <= 0.5: t = 0.4, TAR 1.
        let p02 = VerificationMetrics.tarAtFAR(c, fmr: 0.2)
        #expect(p02.tar == 0.75 && p02.threshold == 0.6 && p02.fmr == 0.2)
        #expect(VerificationMetrics.tarAtFAR(c, fmr: 0.1).tar == 0.5)
        #expect(VerificationMetrics.tarAtFAR(c, fmr: 0.5).tar == 1)
        #expect(try VerificationEvaluator.fnmr(atFMR: 0.2, scores: Self.scoresA, isSame: Self.sameA).fnmr == 0.25)
        // EER: first point with FMR >= FNMR is (0.4, 0.25) at t=0.5; the one before is (0.2, 0.25) at t=0.6.
        // d0 = 0.25-0.2 = 0.05, d1 = 0.25-0.4 = -0.15, λ = 0.05/0.2 = 0.25: EER = 0.2 + 0.25*0.2 = 0.25,
        // threshold = 0.6 + 0.25*(0.5-0.6) = 0.575.
        let eer = VerificationMetrics.equalErrorRate(c)
        #expect(abs(eer.eer - 0.25) < 1e-12)
        #expect(abs(eer.threshold - 0.575) < 1e-12)
        // AUC = P(genuine > impostor): 0.9 beats 5, 0.8 beats 5, 0.6 beats 4, 0.4 beats 3 -> 17/20 = 0.85
        // (scikit-learn roc_auc_score gives 0.85 too).
        #expect(abs(VerificationMetrics.areaUnderROC(c) - 0.85) < 1e-12)
    }

    @Test("accuracy, precision, recall, F1 at a threshold")
    func atThresholdA() throws {
        // t = 0.55 accepts 0.9 0.8 0.6 (genuine) and 0.7 (impostor): TP 3, FP 1, TN 4, FN 1.
        // accuracy 7/9, precision 3/4, recall 3/4, F1 3/4, FMR 1/5, FNMR 1/4.
        let m = VerificationMetrics.atThreshold(try ScoredPairs(scores: Self.scoresA, isSame: Self.sameA), threshold: 0.55)
        #expect(m.truePositives == 3 && m.falsePositives == 1 && m.trueNegatives == 4 && m.falseNegatives == 1)
        #expect(abs(m.accuracy - 7.0 / 9) < 1e-12)
        #expect(m.precision == 0.75 && m.recall == 0.75 && m.f1 == 0.75)
        #expect(m.fmr == 0.2 && m.fnmr == 0.25)
        // Threshold above everything: nothing accepted, precision 0 by convention, F1 0.
        let none = VerificationMetrics.atThreshold(try ScoredPairs(scores: Self.scoresA, isSame: Self.sameA), threshold: 2)
        #expect(none.precision == 0 && none.recall == 0 && none.f1 == 0 && abs(none.accuracy - 5.0 / 9) < 1e-12)
    }

    @Test("ties: equal scores move together and are never split")
    func ties() throws {
        // genuine 0.5 0.5, impostor 0.5 0.2. Curve: start (FMR 0, FNMR 1); t=0.5 -> (1/2, 0); t=0.2 -> (1, 0).
        let s: [Double] = [0.5, 0.5, 0.5, 0.2]
        let y = [true, true, false, false]
        let c = VerificationMetrics.curve(try ScoredPairs(scores: s, isSame: y))
        #expect(c.map(\.fmr) == [0, 0.5, 1])
        #expect(c.map(\.fnmr) == [1, 0, 0])
        // FMR <= 0.4 cannot accept half of the tie: only the reject-all point qualifies, TAR 0.
        #expect(VerificationMetrics.tarAtFAR(c, fmr: 0.4).tar == 0)
        // AUC: each genuine ties one impostor (1/2) and beats one (1): 3/4 (scikit-learn: 0.75).
        #expect(abs(VerificationMetrics.areaUnderROC(c) - 0.75) < 1e-12)
        // EER between (0,1) and (0.5,0): d0 = 1, d1 = -0.5, λ = 2/3, EER = 1/3.
        #expect(abs(VerificationMetrics.equalErrorRate(c).eer - 1.0 / 3) < 1e-12)
    }

    @Test("best-accuracy threshold: midpoints, lower-median among ties of the optimum")
    func bestThreshold() {
        // ascending: 0.1 I, 0.4 G, 0.5 I, 0.8 G. Candidates and correct counts:
        // 0.1 (accept all) 2; 0.25 3; 0.45 2; 0.65 3; 0.8+ 2. Optimal {0.25, 0.65}: lower median 0.25, accuracy 3/4.
        let r = VerificationMetrics.bestAccuracyThreshold(scores: [0.8, 0.1, 0.5, 0.4], isSame: [true, false, false, true])
        #expect(r.threshold == 0.25 && r.accuracy == 0.75)
        // Separable: genuine 0.9, 0.7; impostor 0.3, 0.2 -> only 0.5 reaches 100%.
        let s = VerificationMetrics.bestAccuracyThreshold(scores: [0.9, 0.7, 0.3, 0.2], isSame: [true, true, false, false])
        #expect(s.threshold == 0.5 && s.accuracy == 1)
    }

    @Test("k-fold accuracy chooses each fold's threshold on the other folds")
    func kFold() throws {
        // fold 0: G 0.9, I 0.3, G 0.6, I 0.7     fold 1: G 0.8, I 0.4, G 0.5, I 0.35
        // Test fold 0, train on fold 1 (asc 0.35 I, 0.4 I, 0.5 G, 0.8 G): best unique t = 0.45 (4/4).
        //   fold 0 at 0.45: 0.9 ok, 0.3 ok, 0.6 ok, 0.7 accepted impostor -> 3/4.
        // Test fold 1, train on fold 0 (asc 0.3 I, 0.6 G, 0.7 I, 0.9 G): candidates 0.45 (3/4), 0.8 (3/4) -> 0.45.
        //   fold 1 at 0.45: all four right -> 1.
        // mean 0.875, population std 0.125.
        let scores: [Double] = [0.9, 0.3, 0.6, 0.7, 0.8, 0.4, 0.5, 0.35]
        let same = [true, false, true, false, true, false, true, false]
        let folds = [0, 0, 0, 0, 1, 1, 1, 1]
        let r = try VerificationEvaluator.evaluate(scores: scores, isSame: same, folds: folds, fars: [0.25, 0.01])
        #expect(r.foldThresholds.allSatisfy { abs($0 - 0.45) < 1e-12 })
        #expect(r.foldAccuracies == [0.75, 1])
        #expect(abs(r.accuracy - 0.875) < 1e-12 && abs(r.accuracyStd - 0.125) < 1e-12)
        #expect(r.pairs == 8 && r.genuinePairs == 4 && r.impostorPairs == 4)
        // All pairs: impostors 0.7, 0.4, 0.35, 0.3. FMR <= 0.25 allows one impostor (0.7): the lowest such threshold
        // is t = 0.5, which accepts all four genuine pairs (0.9, 0.8, 0.6, 0.5): TAR 1.
        let far25 = try #require(r.tar(atFAR: 0.25))
        #expect(far25.tar == 1 && far25.threshold == 0.5 && far25.achievedFar == 0.25 && far25.resolved)
        // FAR 0.01 is below one impostor pair of four: reported, but marked unresolved, and null in JSON.
        let far01 = try #require(r.tar(atFAR: 0.01))
        #expect(!far01.resolved && far01.achievedFar == 0)
        let json = try JSONEncoder().encode(r.summary(failedToTemplate: 3))
        let obj = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
        #expect(obj["pairs"] as? Int == 8)
        #expect(obj["accuracy"] as? Double == 0.875)
        #expect(obj["accuracy_std"] as? Double == 0.125)
        #expect(obj["failed_to_template"] as? Int == 3)
        let tar = try #require(obj["tar_at_far"] as? [String: Any])
        #expect(tar["0.25"] as? Double == 1)
        #expect(tar["0.01"] is NSNull)
        #expect(obj["eer"] is Double)
    }

    @Test("bad input gives typed errors")
    func errors() {
        #expect(throws: EvalError.noGenuinePairs) { try ScoredPairs(scores: [0.1], isSame: [false]) }
        #expect(throws: EvalError.noImpostorPairs) { try ScoredPairs(scores: [0.1], isSame: [true]) }
        #expect(throws: EvalError.nonFiniteScore(index: 1)) { try ScoredPairs(scores: [0.1, .nan], isSame: [true, false]) }
        #expect(throws: EvalError.countMismatch(what: "isSame labels", expected: 2, got: 1)) {
            try ScoredPairs(scores: [0.1, 0.2], isSame: [true])
        }
        #expect(throws: EvalError.self) {
            try VerificationEvaluator.evaluate(scores: [0.1, 0.2], isSame: [true, false], folds: [0, 0])
        }
        #expect(throws: EvalError.countMismatch(what: "fold ids", expected: 2, got: 1)) {
            try VerificationEvaluator.evaluate(scores: [0.1, 0.2], isSame: [true, false], folds: [0])
        }
    }

    @Test("FAR keys are spelled as decimals")
    func farKeys() {
        #expect(VerificationSummary.key(0.01) == "0.01")
        #expect(VerificationSummary.key(0.001) == "0.001")
        #expect(VerificationSummary.key(1e-4) == "0.0001")
    }
}
