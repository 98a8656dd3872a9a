/// Per-class precision, recall and F1 of closed-set identification.
public struct ClassScores: Sendable, Codable, Equatable {
    public var label: String
    public var support: Int
    public var precision: Double
    public var recall: Double
    public var f1: Double
}

/// Closed-set identification: every probe belongs to an enrolled identity, the system names one.
public struct ClosedSetResult: Sendable, Codable, Equatable {
    public var probes: Int
    public var accuracy: Double
    /// Unweighted means over the classes (union of true and predicted labels), as scikit-learn's
    /// `precision_recall_fscore_support(average="macro", zero_division=0)`: a class never predicted has precision 0,
    /// and macro F1 is the mean of the per-class F1 values (not the F1 of macro P and R).
    public var macroPrecision: Double
    public var macroRecall: Double
    public var macroF1: Double
    public var perClass: [ClassScores]
}

/// One point of the open-set (watch-list) trade-off.
public struct OpenSetPoint: Sendable, Codable, Equatable {
    public var threshold: Double
    /// False positive identification rate: non-mated searches whose top score is `>= threshold`.
    public var fpir: Double
    /// False negative identification rate: mated searches whose top candidate is not the right identity
    /// or scores `< threshold` (rank 1).
    public var fnir: Double
}

/// The top-ranked candidate of one mated search (the probe's identity is enrolled).
public struct MatedSearch: Sendable, Codable, Equatable {
    public var topIsCorrect: Bool
    public var topScore: Double
    public init(topIsCorrect: Bool, topScore: Double) {
        self.topIsCorrect = topIsCorrect
        self.topScore = topScore
    }
}

public enum IdentificationMetrics {
    public static func closedSet(truth: [String], predicted: [String]) throws -> ClosedSetResult {
        guard truth.count == predicted.count else {
            throw EvalError.countMismatch(what: "predicted labels", expected: truth.count, got: predicted.count)
        }
        guard !truth.isEmpty else { throw EvalError.empty("identification probes") }
        var tp: [String: Int] = [:], predCount: [String: Int] = [:], support: [String: Int] = [:]
        var correct = 0
        for (t, p) in zip(truth, predicted) {
            support[t, default: 0] += 1
            predCount[p, default: 0] += 1
            if t == p {
                tp[t, default: 0] += 1
                correct += 1
            }
        }
        let labels = Set(truth).union(predicted).sorted()
        var per: [ClassScores] = []
        for l in labels {
            let hit = Double(tp[l] ?? 0)
            let np = Double(predCount[l] ?? 0), ns = Double(support[l] ?? 0)
            let precision = np > 0 ? hit / np : 0
            let recall = ns > 0 ? hit / ns : 0
            let f1 = precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0
            per.append(ClassScores(label: l, support: support[l] ?? 0, precision: precision, recall: recall, f1: f1))
        }
        let n = Double(per.count)
        return ClosedSetResult(probes: truth.count, accuracy: Double(correct) / Double(truth.count),
                               macroPrecision: per.map(\.precision).reduce(0, +) / n,
                               macroRecall: per.map(\.recall).reduce(0, +) / n,
                               macroF1: per.map(\.f1).reduce(0, +) / n, perClass: per)
    }

    /// FPIR and FNIR (ISO/IEC 19795-1, rank 1) at each threshold. Higher score = more similar; a candidate is
    /// returned when its score is `>= threshold`.
    public static func openSet(mated: [MatedSearch], nonMatedTopScores: [Double], thresholds: [Double]) throws -> [OpenSetPoint] {
        guard !mated.isEmpty else { throw EvalError.empty("mated searches") }
        guard !nonMatedTopScores.isEmpty else { throw EvalError.empty("non-mated searches") }
        if let i = nonMatedTopScores.firstIndex(where: { !$0.isFinite }) { throw EvalError.nonFiniteScore(index: i) }
        if let i = mated.firstIndex(where: { !$0.topScore.isFinite }) { throw EvalError.nonFiniteScore(index: i) }
        return thresholds.map { t in
            let fp = nonMatedTopScores.lazy.filter { $0 >= t }.count
            let fn = mated.lazy.filter { !($0.topIsCorrect && $0.topScore >= t) }.count
            return OpenSetPoint(threshold: t, fpir: Double(fp) / Double(nonMatedTopScores.count),
                                fnir: Double(fn) / Double(mated.count))
        }
    }

    /// The lowest threshold with FPIR <= `fpir` (ties in the non-mated scores are never split), and FNIR there.
    public static func openSet(mated: [MatedSearch], nonMatedTopScores: [Double], atFPIR fpir: Double) throws -> OpenSetPoint {
        guard !nonMatedTopScores.isEmpty else { throw EvalError.empty("non-mated searches") }
        // Candidate thresholds: just above each non-mated score, and the smallest one itself... the FPIR at threshold
        // t is #(s >= t)/n; scanning the sorted distinct scores from high to low keeps the last one that qualifies.
        let sorted = Array(Set(nonMatedTopScores)).sorted(by: >)
        var threshold = sorted[0].nextUp
        for s in sorted {
            let rate = Double(nonMatedTopScores.lazy.filter { $0 >= s }.count) / Double(nonMatedTopScores.count)
            if rate <= fpir { threshold = s } else { break }
        }
        return try openSet(mated: mated, nonMatedTopScores: nonMatedTopScores, thresholds: [threshold])[0]
    }
}
