import Foundation
import Testing
@testable import FacetEval

@Suite("Identification and fairness metrics against hand-computed values")
struct IdentificationFairnessTests {
    @Test("closed set: accuracy and macro precision/recall/F1")
    func closedSet() throws {
        // truth a a b b c, predicted a b b b a. Accuracy 3/5.
        // a: TP 1, predicted 2, support 2 -> P 1/2, R 1/2, F1 1/2
        // b: TP 2, predicted 3, support 2 -> P 2/3, R 1,   F1 0.8
        // c: TP 0, predicted 0, support 1 -> P 0,   R 0,   F1 0
        // macro P = (1/2 + 2/3)/3 = 0.388889, R = 1.5/3 = 0.5, F1 = 1.3/3 = 0.433333 (scikit-learn agrees).
        let r = try IdentificationMetrics.closedSet(truth: ["a", "a", "b", "b", "c"], predicted: ["a", "b", "b", "b", "a"])
        #expect(abs(r.accuracy - 0.6) < 1e-12)
        #expect(abs(r.macroPrecision - 7.0 / 18) < 1e-12)
        #expect(abs(r.macroRecall - 0.5) < 1e-12)
        #expect(abs(r.macroF1 - 1.3 / 3) < 1e-12)
        #expect(r.perClass.map(\.label) == ["a", "b", "c"])
        #expect(r.perClass[1].f1 == 0.8 || abs(r.perClass[1].f1 - 0.8) < 1e-12)
        #expect(throws: EvalError.countMismatch(what: "predicted labels", expected: 1, got: 0)) {
            try IdentificationMetrics.closedSet(truth: ["a"], predicted: [])
        }
    }

    @Test("open set: FPIR and FNIR at thresholds and at a target FPIR")
    func openSet() throws {
        // mated: (right, 0.9) (right, 0.5) (wrong, 0.8) (right, 0.3); non-mated top scores 0.6 0.4 0.2.
        let mated = [MatedSearch(topIsCorrect: true, topScore: 0.9), MatedSearch(topIsCorrect: true, topScore: 0.5),
                     MatedSearch(topIsCorrect: false, topScore: 0.8), MatedSearch(topIsCorrect: true, topScore: 0.3)]
        let non: [Double] = [0.6, 0.4, 0.2]
        // t = 0.45: FPIR 1/3 (0.6); FNIR: 0.9 ok, 0.5 ok, wrong fails, 0.3 fails -> 2/4.
        // t = 0.7 : FPIR 0; FNIR: only 0.9 succeeds -> 3/4.
        let pts = try IdentificationMetrics.openSet(mated: mated, nonMatedTopScores: non, thresholds: [0.45, 0.7])
        #expect(abs(pts[0].fpir - 1.0 / 3) < 1e-12 && pts[0].fnir == 0.5)
        #expect(pts[1].fpir == 0 && pts[1].fnir == 0.75)
        // FPIR <= 0.34: t = 0.6 (FPIR 1/3); FNIR 3/4.
        let at = try IdentificationMetrics.openSet(mated: mated, nonMatedTopScores: non, atFPIR: 0.34)
        #expect(at.threshold == 0.6 && at.fnir == 0.75)
        // FPIR <= 0.1: nothing may pass, t just above 0.6.
        let strict = try IdentificationMetrics.openSet(mated: mated, nonMatedTopScores: non, atFPIR: 0.1)
        #expect(strict.fpir == 0 && strict.threshold > 0.6)
    }

    @Test("verification fairness at a global threshold")
    func verificationFairness() throws {
        // threshold 0.5
        // A: genuine 0.9 0.4 -> FNMR 1/2; impostor 0.6 0.2 0.1 0.3 -> FMR 1/4
        // B: genuine 0.8 0.7 0.6 0.3 -> FNMR 1/4; impostor 0.55 0.52 0.51 0.2 -> FMR 3/4
        // one pair without a group (excluded).
        // FMR ratio 0.75/0.25 = 3; FNMR ratio 0.5/0.25 = 2; TPR 0.5 vs 0.75 -> EO 0.25; FPR diff 0.5 -> EOdds 0.5.
        let scores: [Double] = [0.9, 0.4, 0.6, 0.2, 0.1, 0.3, 0.8, 0.7, 0.6, 0.3, 0.55, 0.52, 0.51, 0.2, 0.99]
        let same = [true, true, false, false, false, false, true, true, true, true, false, false, false, false, true]
        let groups: [String?] = ["A", "A", "A", "A", "A", "A", "B", "B", "B", "B", "B", "B", "B", "B", nil]
        let f = try FairnessMetrics.verification(scores: scores, isSame: same, groups: groups, threshold: 0.5)
        #expect(f.groups.map(\.group) == ["A", "B"])
        #expect(f.groups[0].fmr == 0.25 && f.groups[0].fnmr == 0.5)
        #expect(f.groups[1].fmr == 0.75 && f.groups[1].fnmr == 0.25)
        #expect(f.excludedPairs == 1)
        #expect(f.fmrMaxMinRatio == 3 && f.fnmrMaxMinRatio == 2)
        #expect(f.equalOpportunityDifference == 0.25 && f.equalizedOddsDifference == 0.5)
        // A group with FMR 0 makes the ratio unbounded: reported as nil, not infinity.
        let z = try FairnessMetrics.verification(scores: [0.9, 0.1, 0.9, 0.9], isSame: [true, false, true, false],
                                                 groups: ["A", "A", "B", "B"], threshold: 0.5)
        #expect(z.fmrMaxMinRatio == nil)
        #expect(FairnessMetrics.pairGroup("male", "male") == "male")
        #expect(FairnessMetrics.pairGroup("male", "female") == nil)
        #expect(FairnessMetrics.pairGroup(nil, "female") == nil)
    }

    @Test("decision fairness: demographic parity, equal opportunity, equalized odds")
    func decisionFairness() throws {
        // X: decisions T F T T, truth T F F T -> selection 3/4, TPR 2/2 = 1, FPR 1/2, accuracy 3/4
        // Y: decisions F F T,   truth T F T   -> selection 1/3, TPR 1/2,     FPR 0/1, accuracy 2/3
        // DP difference 3/4 - 1/3 = 5/12; EO difference 1/2; FPR difference 1/2 -> EOdds 1/2.
        let d = [true, false, true, true, false, false, true]
        let t = [true, false, false, true, true, false, true]
        let g: [String?] = ["X", "X", "X", "X", "Y", "Y", "Y"]
        let f = try FairnessMetrics.decisions(d, truth: t, groups: g)
        #expect(abs(f.demographicParityDifference - 5.0 / 12) < 1e-12)
        #expect(f.equalOpportunityDifference == 0.5 && f.equalizedOddsDifference == 0.5)
        #expect(f.groups[0].accuracy == 0.75 && abs(f.groups[1].accuracy! - 2.0 / 3) < 1e-12)
        let noTruth = try FairnessMetrics.decisions(d, groups: g)
        #expect(noTruth.equalOpportunityDifference == nil && abs(noTruth.demographicParityDifference - 5.0 / 12) < 1e-12)
    }
}
