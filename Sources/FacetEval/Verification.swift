import Foundation

/// One operating point of a verification system: a pair is accepted ("same person") when its score is
/// `>= threshold`. Scores are similarities: **higher means more alike** (negate distances before passing them).
public struct OperatingPoint: Sendable, Codable, Equatable {
    public var threshold: Double
    /// False match rate = false accept rate: accepted impostor pairs / impostor pairs.
    public var fmr: Double
    /// False non-match rate = false reject rate: rejected genuine pairs / genuine pairs.
    public var fnmr: Double
    /// True accept rate (= 1 - FNMR).
    public var tar: Double { 1 - fnmr }
    public var far: Double { fmr }

    public init(threshold: Double, fmr: Double, fnmr: Double) {
        self.threshold = threshold
        self.fmr = fmr
        self.fnmr = fnmr
    }
}

/// Confusion counts and the usual rates at one threshold ("same" is the positive class).
public struct ThresholdMetrics: Sendable, Codable, Equatable {
    public var threshold: Double
    public var truePositives: Int
    public var falsePositives: Int
    public var trueNegatives: Int
    public var falseNegatives: Int
    public var accuracy: Double
    /// TP / (TP + FP); 0 when nothing is accepted (scikit-learn's `zero_division=0`).
    public var precision: Double
    /// TP / (TP + FN) = TAR.
    public var recall: Double
    /// 2PR / (P + R); 0 when P + R = 0.
    public var f1: Double
    public var fmr: Double
    public var fnmr: Double
}

/// A validated list of scored pairs.
public struct ScoredPairs: Sendable {
    public let scores: [Double]
    public let isSame: [Bool]
    public let genuineCount: Int
    public let impostorCount: Int

    public init(scores: [Double], isSame: [Bool]) throws {
        guard scores.count == isSame.count else {
            throw EvalError.countMismatch(what: "isSame labels", expected: scores.count, got: isSame.count)
        }
        if let i = scores.firstIndex(where: { !$0.isFinite }) { throw EvalError.nonFiniteScore(index: i) }
        self.scores = scores
        self.isSame = isSame
        genuineCount = isSame.lazy.filter { $0 }.count
        impostorCount = isSame.count - genuineCount
        guard genuineCount > 0 else { throw EvalError.noGenuinePairs }
        guard impostorCount > 0 else { throw EvalError.noImpostorPairs }
    }
}

/// Threshold-free and threshold-based verification metrics on similarity scores.
///
/// Ties: a threshold cannot separate equal scores, so every point of the curves moves all pairs with the same
/// score together; "at FMR <= f" never interpolates between tied pairs.
public enum VerificationMetrics {
    /// The full ROC/DET curve: one point per distinct score (accept `>= score`), plus the start point at
    /// threshold `max.nextUp` (nothing accepted: FMR 0, FNMR 1; finite so that it encodes as JSON). Ordered by decreasing threshold, so FMR rises and FNMR falls.
    public static func curve(_ p: ScoredPairs) -> [OperatingPoint] {
        curve(ascending: SortedPair.sorted(scores: p.scores, isSame: p.isSame, foldIndex: nil),
              genuine: p.genuineCount, impostor: p.impostorCount)
    }

    /// The curve from pairs sorted by ascending score (walked from the top).
    static func curve(ascending items: [SortedPair], genuine: Int, impostor: Int) -> [OperatingPoint] {
        let g = Double(genuine), im = Double(impostor)
        var points = [OperatingPoint(threshold: items[items.count - 1].score.nextUp, fmr: 0, fnmr: 1)]
        points.reserveCapacity(items.count + 1)
        var acceptedGenuine = 0, acceptedImpostor = 0
        var k = items.count - 1
        while k >= 0 {
            let t = items[k].score
            while k >= 0 && items[k].score == t {
                if items[k].isSame { acceptedGenuine += 1 } else { acceptedImpostor += 1 }
                k -= 1
            }
            points.append(OperatingPoint(threshold: t, fmr: Double(acceptedImpostor) / im,
                                         fnmr: Double(genuine - acceptedGenuine) / g))
        }
        return points
    }

    /// The best operating point with FMR <= `fmr` (highest TAR; the lowest such threshold).
    /// `resolved` is false when `fmr` is below one impostor pair (`fmr * impostors < 1`): then only FMR = 0 can qualify
    /// and the number says little.
    public static func tarAtFAR(_ curve: [OperatingPoint], fmr target: Double) -> OperatingPoint {
        var best = curve[0]
        for pt in curve where pt.fmr <= target { best = pt }   // FMR is non-decreasing along the curve
        return best
    }

    public static func isResolved(fmr target: Double, impostorCount: Int) -> Bool {
        target * Double(impostorCount) >= 1 - 1e-9
    }

    /// Equal error rate: where FMR = FNMR on the curve, interpolating linearly between the two points that
    /// straddle the crossing. Returns the rate and the (interpolated) threshold.
    public static func equalErrorRate(_ curve: [OperatingPoint]) -> (eer: Double, threshold: Double) {
        for i in 1..<curve.count where curve[i].fmr >= curve[i].fnmr {
            let a = curve[i - 1], b = curve[i]
            let d0 = a.fnmr - a.fmr   // > 0
            let d1 = b.fnmr - b.fmr   // <= 0
            let lambda = d0 / (d0 - d1)
            let eer = a.fmr + lambda * (b.fmr - a.fmr)
            let threshold = a.threshold + lambda * (b.threshold - a.threshold)
            return (eer, threshold)
        }
        let last = curve[curve.count - 1]
        return (last.fmr, last.threshold)   // unreachable: the last point has FNMR 0
    }

    /// Area under the ROC (TAR vs FAR), trapezoidal over the tie-grouped points: equals the probability that a random
    /// genuine pair scores above a random impostor pair, ties counting one half.
    public static func areaUnderROC(_ curve: [OperatingPoint]) -> Double {
        var area = 0.0
        for i in 1..<curve.count {
            area += (curve[i].fmr - curve[i - 1].fmr) * (curve[i].tar + curve[i - 1].tar) / 2
        }
        return area
    }

    /// Accuracy, precision, recall, F1, FMR and FNMR when pairs with score `>= threshold` are accepted.
    public static func atThreshold(_ p: ScoredPairs, threshold: Double) -> ThresholdMetrics {
        var tp = 0, fp = 0, tn = 0, fn = 0
        for (s, same) in zip(p.scores, p.isSame) {
            switch (s >= threshold, same) {
            case (true, true): tp += 1
            case (true, false): fp += 1
            case (false, false): tn += 1
            case (false, true): fn += 1
            }
        }
        let precision = tp + fp > 0 ? Double(tp) / Double(tp + fp) : 0
        let recall = Double(tp) / Double(tp + fn)
        let f1 = precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0
        return ThresholdMetrics(threshold: threshold, truePositives: tp, falsePositives: fp, trueNegatives: tn, falseNegatives: fn,
                                accuracy: Double(tp + tn) / Double(p.scores.count), precision: precision, recall: recall, f1: f1,
                                fmr: Double(fp) / Double(fp + tn), fnmr: Double(fn) / Double(fn + tp))
    }

    /// The threshold that maximises accuracy on the given pairs. Candidates: the smallest score (accept all),
    /// midpoints between consecutive distinct scores, and just above the largest (reject all). When several
    /// candidates reach the maximum, the middle one (lower median, in ascending order) is taken, so the rule is
    /// deterministic and does not lean to the permissive or strict end.
    public static func bestAccuracyThreshold(scores: [Double], isSame: [Bool]) -> (threshold: Double, accuracy: Double) {
        bestAccuracyThreshold(ascending: SortedPair.sorted(scores: scores, isSame: isSame, foldIndex: nil), excludedFold: nil)
    }

    /// The sweep behind `bestAccuracyThreshold` on pairs sorted once; pairs of `excludedFold` are skipped
    /// (the k-fold protocol sorts once instead of once per fold).
    static func bestAccuracyThreshold(ascending items: [SortedPair], excludedFold: Int32?) -> (threshold: Double, accuracy: Double) {
        let skip = excludedFold ?? -1
        let m = items.count
        var n = 0, genuine = 0, first = -1
        for k in 0..<m where items[k].fold != skip {
            if first < 0 { first = k }
            n += 1
            if items[k].isSame { genuine += 1 }
        }
        // Sweep thresholds upwards. Before the first score everything is accepted: correct = genuine.
        var bestCorrect = genuine
        var optimal: [Double] = [items[first].score]
        var correct = genuine
        var k = first
        while k < m {
            let t = items[k].score
            while k < m && items[k].score == t {
                if items[k].fold != skip { correct += items[k].isSame ? -1 : 1 }   // now rejected
                k += 1
            }
            while k < m && items[k].fold == skip { k += 1 }
            let next = k < m ? (t + items[k].score) / 2 : t.nextUp
            if correct > bestCorrect {
                bestCorrect = correct
                optimal = [next]
            } else if correct == bestCorrect {
                optimal.append(next)
            }
        }
        return (optimal[(optimal.count - 1) / 2], Double(bestCorrect) / Double(n))
    }
}

/// A pair reduced to what the sweeps need, stored contiguously and sorted once by ascending score.
struct SortedPair {
    var score: Double
    var isSame: Bool
    var fold: Int32

    static func sorted(scores: [Double], isSame: [Bool], foldIndex: [Int32]?) -> [SortedPair] {
        var items = [SortedPair]()
        items.reserveCapacity(scores.count)
        for i in scores.indices {
            items.append(SortedPair(score: scores[i], isSame: isSame[i], fold: foldIndex?[i] ?? 0))
        }
        items.sort { $0.score < $1.score }
        return items
    }
}

/// The result of `VerificationEvaluator.evaluate`.
public struct VerificationResult: Sendable, Codable, Equatable {
    public var pairs: Int
    public var genuinePairs: Int
    public var impostorPairs: Int
    /// Mean of the per-fold accuracies (threshold chosen on the other folds).
    public var accuracy: Double
    /// Population standard deviation of the per-fold accuracies (numpy `std`, as the LFW literature reports it).
    public var accuracyStd: Double
    public var foldAccuracies: [Double]
    public var foldThresholds: [Double]
    public var foldIDs: [Int]
    /// TAR at each requested FAR; `resolved == false` where the FAR is below one impostor pair.
    public var tarAtFar: [FARPoint]
    public var eer: Double
    public var eerThreshold: Double
    public var auc: Double
    /// The full curve (one point per distinct score plus the reject-all start), ordered by decreasing threshold.
    public var curve: [OperatingPoint]

    public struct FARPoint: Sendable, Codable, Equatable {
        public var far: Double
        public var tar: Double
        public var threshold: Double
        /// The FMR actually reached (<= far).
        public var achievedFar: Double
        public var resolved: Bool
        public var fnmr: Double { 1 - tar }
    }

    public func tar(atFAR far: Double) -> FARPoint? { tarAtFar.first { $0.far == far } }

    /// The JSON object of `facet eval pairs --json`.
    public func summary(failedToTemplate: Int? = nil) -> VerificationSummary {
        var t: [String: Double?] = [:]
        for p in tarAtFar { t[VerificationSummary.key(p.far)] = p.resolved ? p.tar : nil }
        return VerificationSummary(pairs: pairs, accuracy: accuracy, accuracyStd: accuracyStd, tarAtFar: t, eer: eer,
                                   auc: auc, failedToTemplate: failedToTemplate)
    }
}

/// `{"pairs": N, "accuracy": A, "accuracy_std": S, "tar_at_far": {"0.01": x, "0.001": y}, "eer": E, "failed_to_template": F}`
/// (plus `"auc"`). A TAR whose FAR is below one impostor pair is `null`.
public struct VerificationSummary: Sendable, Codable, Equatable {
    public var pairs: Int
    public var accuracy: Double
    public var accuracyStd: Double
    public var tarAtFar: [String: Double?]
    public var eer: Double
    public var auc: Double
    public var failedToTemplate: Int?

    enum CodingKeys: String, CodingKey {
        case pairs, accuracy, accuracyStd = "accuracy_std", tarAtFar = "tar_at_far", eer, auc, failedToTemplate = "failed_to_template"
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(pairs, forKey: .pairs)
        try c.encode(accuracy, forKey: .accuracy)
        try c.encode(accuracyStd, forKey: .accuracyStd)
        var nested = c.nestedContainer(keyedBy: AnyKey.self, forKey: .tarAtFar)
        for (k, v) in tarAtFar.sorted(by: { $0.key < $1.key }) {
            if let v { try nested.encode(v, forKey: AnyKey(k)) } else { try nested.encodeNil(forKey: AnyKey(k)) }
        }
        try c.encode(eer, forKey: .eer)
        try c.encode(auc, forKey: .auc)
        if let f = failedToTemplate { try c.encode(f, forKey: .failedToTemplate) } else { try c.encodeNil(forKey: .failedToTemplate) }
    }

    /// "0.01", "0.001", "0.0001": the decimal spelling of a FAR.
    public static func key(_ far: Double) -> String {
        var s = String(format: "%.10f", far)
        while s.hasSuffix("0") { s.removeLast() }
        if s.hasSuffix(".") { s.removeLast() }
        return s
    }
}

struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ s: String) { stringValue = s }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// The LFW verification protocol on precomputed scores.
public enum VerificationEvaluator {
    public static let defaultFARs: [Double] = [1e-2, 1e-3, 1e-4]

    /// - Parameters:
    ///   - scores: one similarity per pair; **higher = more similar** (pass `-distance` for distances).
    ///   - isSame: true for genuine (same identity) pairs.
    ///   - folds: a fold id per pair (any integers; at least two distinct). For each fold the accuracy threshold is
    ///     chosen on all other folds (`VerificationMetrics.bestAccuracyThreshold`) and applied to it.
    ///   - fars: the FARs for TAR@FAR (default 1e-2, 1e-3, 1e-4), computed on all pairs together.
    public static func evaluate(scores: [Double], isSame: [Bool], folds: [Int],
                                fars: [Double] = defaultFARs) throws -> VerificationResult {
        let p = try ScoredPairs(scores: scores, isSame: isSame)
        guard folds.count == scores.count else {
            throw EvalError.countMismatch(what: "fold ids", expected: scores.count, got: folds.count)
        }
        for f in fars where !(f > 0 && f <= 1) { throw EvalError.invalidParameter("FAR must be in (0, 1], got \(f)") }
        let ids = Array(Set(folds)).sorted()
        guard ids.count >= 2 else {
            throw EvalError.invalidParameter("10-fold accuracy needs at least two folds, got \(ids.count) (re-fold a header-less pairs file with LFWPairs.refolded(into:))")
        }
        var accs: [Double] = []
        var thresholds: [Double] = []
        var slot: [Int: Int32] = [:]
        for (k, id) in ids.enumerated() { slot[id] = Int32(k) }
        let ascending = SortedPair.sorted(scores: scores, isSame: isSame, foldIndex: folds.map { slot[$0]! })
        for (k, f) in ids.enumerated() {
            let t = VerificationMetrics.bestAccuracyThreshold(ascending: ascending, excludedFold: Int32(k)).threshold
            var correct = 0, total = 0
            for i in scores.indices where folds[i] == f {
                total += 1
                if (scores[i] >= t) == isSame[i] { correct += 1 }
            }
            accs.append(Double(correct) / Double(total))
            thresholds.append(t)
        }
        let mean = accs.reduce(0, +) / Double(accs.count)
        let std = (accs.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(accs.count)).squareRoot()
        let curve = VerificationMetrics.curve(ascending: ascending, genuine: p.genuineCount, impostor: p.impostorCount)
        let farPoints = fars.map { f -> VerificationResult.FARPoint in
            let pt = VerificationMetrics.tarAtFAR(curve, fmr: f)
            return .init(far: f, tar: pt.tar, threshold: pt.threshold, achievedFar: pt.fmr,
                         resolved: VerificationMetrics.isResolved(fmr: f, impostorCount: p.impostorCount))
        }
        let eer = VerificationMetrics.equalErrorRate(curve)
        return VerificationResult(pairs: scores.count, genuinePairs: p.genuineCount, impostorPairs: p.impostorCount,
                                  accuracy: mean, accuracyStd: std, foldAccuracies: accs, foldThresholds: thresholds,
                                  foldIDs: ids, tarAtFar: farPoints, eer: eer.eer, eerThreshold: eer.threshold,
                                  auc: VerificationMetrics.areaUnderROC(curve), curve: curve)
    }

    /// The same on a parsed pairs file: `scores[i]` belongs to `pairs.pairs[i]`; folds are the file's.
    /// A header-less file has one fold: re-fold it first (`pairs.refolded(into: 10)`).
    public static func evaluate(pairs: LFWPairs, scores: [Double], fars: [Double] = defaultFARs) throws -> VerificationResult {
        guard scores.count == pairs.pairs.count else {
            throw EvalError.countMismatch(what: "scores for the pairs file", expected: pairs.pairs.count, got: scores.count)
        }
        return try evaluate(scores: scores, isSame: pairs.isSame, folds: pairs.folds, fars: fars)
    }

    /// FNMR at a given FMR (the DET reading): `1 - TAR@FAR`, with the same tie rule.
    public static func fnmr(atFMR fmr: Double, scores: [Double], isSame: [Bool]) throws -> OperatingPoint {
        let p = try ScoredPairs(scores: scores, isSame: isSame)
        return VerificationMetrics.tarAtFAR(VerificationMetrics.curve(p), fmr: fmr)
    }

    /// The global threshold reaching FMR <= `fmr` on these pairs (the operating point fairness is measured at).
    public static func threshold(atFMR fmr: Double, scores: [Double], isSame: [Bool]) throws -> Double {
        try fnmr(atFMR: fmr, scores: scores, isSame: isSame).threshold
    }
}
