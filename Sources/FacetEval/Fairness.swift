/// FMR and FNMR of one demographic group at a fixed (global) threshold.
public struct GroupVerificationRates: Sendable, Codable, Equatable {
    public var group: String
    public var genuinePairs: Int
    public var impostorPairs: Int
    /// nil when the group has no impostor pairs.
    public var fmr: Double?
    /// nil when the group has no genuine pairs.
    public var fnmr: Double?
    public var tpr: Double? { fnmr.map { 1 - $0 } }
}

/// Demographic differentials of a verification system at one global threshold.
public struct VerificationFairness: Sendable, Codable, Equatable {
    public var threshold: Double
    public var groups: [GroupVerificationRates]
    /// Pairs left out because they had no group (e.g. the two images are in different groups, or unlabelled).
    public var excludedPairs: Int
    /// max/min over groups; nil when the minimum is 0 (the ratio is unbounded) or fewer than two groups have a rate.
    public var fmrMaxMinRatio: Double?
    public var fnmrMaxMinRatio: Double?
    /// max - min of TPR (= 1 - FNMR) over groups (Hardt et al.'s equal opportunity, positive class = genuine).
    public var equalOpportunityDifference: Double?
    /// max(TPR difference, FPR difference) over groups (fairlearn's `equalized_odds_difference`; FPR = FMR).
    public var equalizedOddsDifference: Double?
}

/// Selection rates of binary decisions per group (e.g. "identified as an enrolled person").
public struct GroupDecisionRates: Sendable, Codable, Equatable {
    public var group: String
    public var count: Int
    /// Positive decisions / count.
    public var selectionRate: Double
    /// Among truly positive items, the fraction decided positive (needs truth).
    public var truePositiveRate: Double?
    /// Among truly negative items, the fraction decided positive (needs truth).
    public var falsePositiveRate: Double?
    /// Fraction of correct decisions (needs truth).
    public var accuracy: Double?
}

public struct DecisionFairness: Sendable, Codable, Equatable {
    public var groups: [GroupDecisionRates]
    public var excluded: Int
    /// max - min of selection rates (fairlearn's `demographic_parity_difference`).
    public var demographicParityDifference: Double
    public var equalOpportunityDifference: Double?
    public var equalizedOddsDifference: Double?
}

public enum FairnessMetrics {
    /// The group of a pair: the shared group when both images have the same one, else nil (excluded), as in
    /// NIST FRVT's demographic analysis where impostor pairs are drawn within a group.
    public static func pairGroup(_ a: String?, _ b: String?) -> String? {
        guard let a, let b, a == b else { return nil }
        return a
    }

    public static func verification(scores: [Double], isSame: [Bool], groups: [String?],
                                    threshold: Double) throws -> VerificationFairness {
        guard scores.count == isSame.count else {
            throw EvalError.countMismatch(what: "isSame labels", expected: scores.count, got: isSame.count)
        }
        guard scores.count == groups.count else {
            throw EvalError.countMismatch(what: "group labels", expected: scores.count, got: groups.count)
        }
        if let i = scores.firstIndex(where: { !$0.isFinite }) { throw EvalError.nonFiniteScore(index: i) }
        var gen: [String: (n: Int, rejected: Int)] = [:], imp: [String: (n: Int, accepted: Int)] = [:]
        var excluded = 0
        var names = Set<String>()
        for i in scores.indices {
            guard let g = groups[i] else { excluded += 1; continue }
            names.insert(g)
            let accept = scores[i] >= threshold
            if isSame[i] {
                gen[g, default: (0, 0)].n += 1
                if !accept { gen[g, default: (0, 0)].rejected += 1 }
            } else {
                imp[g, default: (0, 0)].n += 1
                if accept { imp[g, default: (0, 0)].accepted += 1 }
            }
        }
        guard !names.isEmpty else { throw EvalError.empty("grouped pairs") }
        let rates = names.sorted().map { g -> GroupVerificationRates in
            let ge = gen[g] ?? (0, 0), im = imp[g] ?? (0, 0)
            return GroupVerificationRates(group: g, genuinePairs: ge.n, impostorPairs: im.n,
                                          fmr: im.n > 0 ? Double(im.accepted) / Double(im.n) : nil,
                                          fnmr: ge.n > 0 ? Double(ge.rejected) / Double(ge.n) : nil)
        }
        let fmrs = rates.compactMap(\.fmr), fnmrs = rates.compactMap(\.fnmr), tprs = rates.compactMap(\.tpr)
        let eo = spread(tprs)
        let fprSpread = spread(fmrs)
        let eodds: Double? = (eo != nil && fprSpread != nil) ? max(eo!, fprSpread!) : nil
        return VerificationFairness(threshold: threshold, groups: rates, excludedPairs: excluded,
                                    fmrMaxMinRatio: ratio(fmrs), fnmrMaxMinRatio: ratio(fnmrs),
                                    equalOpportunityDifference: eo, equalizedOddsDifference: eodds)
    }

    /// Demographic parity (and, with `truth`, equal opportunity and equalized odds) of binary decisions.
    public static func decisions(_ decisions: [Bool], truth: [Bool]? = nil, groups: [String?]) throws -> DecisionFairness {
        guard decisions.count == groups.count else {
            throw EvalError.countMismatch(what: "group labels", expected: decisions.count, got: groups.count)
        }
        if let t = truth, t.count != decisions.count {
            throw EvalError.countMismatch(what: "truth labels", expected: decisions.count, got: t.count)
        }
        var byGroup: [String: [Int]] = [:]
        var excluded = 0
        for i in decisions.indices {
            if let g = groups[i] { byGroup[g, default: []].append(i) } else { excluded += 1 }
        }
        guard !byGroup.isEmpty else { throw EvalError.empty("grouped decisions") }
        let rates = byGroup.keys.sorted().map { g -> GroupDecisionRates in
            let idx = byGroup[g]!
            let sel = Double(idx.lazy.filter { decisions[$0] }.count) / Double(idx.count)
            var tpr: Double?, fpr: Double?, acc: Double?
            if let t = truth {
                let pos = idx.filter { t[$0] }, neg = idx.filter { !t[$0] }
                if !pos.isEmpty { tpr = Double(pos.lazy.filter { decisions[$0] }.count) / Double(pos.count) }
                if !neg.isEmpty { fpr = Double(neg.lazy.filter { decisions[$0] }.count) / Double(neg.count) }
                acc = Double(idx.lazy.filter { decisions[$0] == t[$0] }.count) / Double(idx.count)
            }
            return GroupDecisionRates(group: g, count: idx.count, selectionRate: sel, truePositiveRate: tpr,
                                      falsePositiveRate: fpr, accuracy: acc)
        }
        let eo = truth == nil ? nil : spread(rates.compactMap(\.truePositiveRate))
        let fp = truth == nil ? nil : spread(rates.compactMap(\.falsePositiveRate))
        let eodds: Double? = (eo != nil && fp != nil) ? max(eo!, fp!) : (eo ?? fp)
        return DecisionFairness(groups: rates, excluded: excluded,
                                demographicParityDifference: spread(rates.map(\.selectionRate)) ?? 0,
                                equalOpportunityDifference: eo, equalizedOddsDifference: eodds)
    }

    static func spread(_ v: [Double]) -> Double? {
        guard let lo = v.min(), let hi = v.max() else { return nil }
        return hi - lo
    }

    static func ratio(_ v: [Double]) -> Double? {
        guard v.count >= 2, let lo = v.min(), let hi = v.max(), lo > 0 else { return nil }
        return hi / lo
    }
}
