import Foundation
import Testing
@testable import FacetEval

/// Goldens from scripts/make-eval-goldens.py (scikit-learn roc_curve/roc_auc_score/precision_recall_fscore_support,
/// scipy brentq EER as in facenet's LFW evaluation), on 2,000 seeded scores rounded to 0.01 (heavy ties).
struct MetricGoldens: Decodable {
    struct Verification: Decodable {
        var scores: [Double]
        var is_same: [Bool]
        var roc_fpr: [Double]
        var roc_tpr: [Double]
        var roc_thresholds: [Double]
        var auc: Double
        var eer: Double
        var tar_at_far: [String: Double]
    }
    struct Identification: Decodable {
        var truth: [String]
        var predicted: [String]
        var accuracy: Double
        var macro_precision: Double
        var macro_recall: Double
        var macro_f1: Double
    }
    var verification: Verification
    var identification: Identification

    static func load() throws -> MetricGoldens {
        try JSONDecoder().decode(MetricGoldens.self, from: Data(contentsOf: fixtureURL("metric_goldens.json")))
    }
}

@Suite("Metrics against scikit-learn and scipy goldens")
struct MetricGoldenTests {
    @Test("ROC curve point for point, AUC, EER and TAR@FAR")
    func verification() throws {
        let g = try MetricGoldens.load().verification
        let curve = VerificationMetrics.curve(try ScoredPairs(scores: g.scores, isSame: g.is_same))
        #expect(curve.count == g.roc_fpr.count)
        for i in curve.indices {
            #expect(abs(curve[i].fmr - g.roc_fpr[i]) < 1e-12)
            #expect(abs(curve[i].tar - g.roc_tpr[i]) < 1e-12)
        }
        #expect(curve.dropFirst().map(\.threshold) == g.roc_thresholds)
        #expect(abs(VerificationMetrics.areaUnderROC(curve) - g.auc) < 1e-12)
        #expect(abs(VerificationMetrics.equalErrorRate(curve).eer - g.eer) < 1e-9)
        for (key, tar) in g.tar_at_far {
            let far = try #require(Double(key))
            #expect(abs(VerificationMetrics.tarAtFAR(curve, fmr: far).tar - tar) < 1e-12, "FAR \(key)")
        }
    }

    @Test("closed-set accuracy and macro precision/recall/F1")
    func identification() throws {
        let g = try MetricGoldens.load().identification
        let r = try IdentificationMetrics.closedSet(truth: g.truth, predicted: g.predicted)
        #expect(abs(r.accuracy - g.accuracy) < 1e-12)
        #expect(abs(r.macroPrecision - g.macro_precision) < 1e-12)
        #expect(abs(r.macroRecall - g.macro_recall) < 1e-12)
        #expect(abs(r.macroF1 - g.macro_f1) < 1e-12)
        #expect(r.perClass.count == Set(g.truth).union(g.predicted).count)   // predicted-only labels count too
        #expect(r.perClass.count > Set(g.truth).count)
    }
}
