import FacetClassify
import Foundation

/// A mask-aware change of the frozen embedding (e.g. an unmasking head), plugged into `facet eval lfw`.
/// `adapt` gets a face's unit-length embedding and its mask probability (nil when no mask detector ran) and returns
/// the embedding to match with; the evaluation L2-normalises the result.
public protocol EmbeddingAdaptation: Sendable {
    var name: String { get }
    func adapt(_ embedding: [Float], maskProbability: Double?) throws -> [Float]
    /// The same, knowing the image (e.g. to pick a model trained without that image's fold); defaults to the above.
    func adapt(_ embedding: [Float], maskProbability: Double?, image: LFWImage) throws -> [Float]
}

extension EmbeddingAdaptation {
    public func adapt(_ embedding: [Float], maskProbability: Double?, image: LFWImage) throws -> [Float] {
        try adapt(embedding, maskProbability: maskProbability)
    }
}

/// No change: the "mask-aware" column is then the frozen embedding with per-comparison thresholds only.
public struct IdentityAdaptation: EmbeddingAdaptation {
    public init() {}
    public var name: String { "none (frozen embedding; per-comparison thresholds only)" }
    public func adapt(_ embedding: [Float], maskProbability: Double?) throws -> [Float] { embedding }
}

/// The three comparison types of the masked LFW protocol. For a pair (a, b) of View 2 (or of the extended impostor
/// set) the **second** image is the masked one in masked–unmasked (the probe), both in masked–masked.
public enum Comparison: String, CaseIterable, Sendable, Codable {
    case unmaskedUnmasked = "unmasked-unmasked"
    case maskedUnmasked = "masked-unmasked"
    case maskedMasked = "masked-masked"

    public var title: String {
        switch self {
        case .unmaskedUnmasked: return "unmasked–unmasked"
        case .maskedUnmasked: return "masked–unmasked"
        case .maskedMasked: return "masked–masked"
        }
    }

    /// Whether the first / second image of a pair is taken from the masked set.
    public var sides: (first: Bool, second: Bool) {
        switch self {
        case .unmaskedUnmasked: return (false, false)
        case .maskedUnmasked: return (false, true)
        case .maskedMasked: return (true, true)
        }
    }

    /// The comparison type a pair is routed to from its two mask decisions.
    public static func routed(_ a: Bool, _ b: Bool) -> Comparison {
        a && b ? .maskedMasked : (a || b ? .maskedUnmasked : .unmaskedUnmasked)
    }
}

public enum MatchingMethod: String, CaseIterable, Sendable, Codable {
    /// Frozen embedding, one threshold (calibrated on unmasked–unmasked pairs) for every comparison.
    case baseline
    /// The adaptation's embedding, a threshold per comparison type (chosen from the mask detector's decisions).
    case maskAware = "mask-aware"
}

public struct LFWEvaluationOptions: Sendable {
    /// The FMR the operating thresholds and the fairness "global threshold" are set at.
    public var targetFMR: Double = 1e-3
    /// FARs of the extended-impostor evaluation (FNMR@FMR).
    public var fars: [Double] = [1e-2, 1e-3, 1e-4]
    /// nil: every cross-identity pair within each View 2 fold; else a seeded sample per fold.
    public var impostorsPerFold: Int?
    public var seed: UInt64 = 1
    public var identificationMinImages = 10
    public var identificationTrainPerIdentity = 5
    public var identificationHeldOutFraction = 0.1
    /// FPIRs the open-set FNIR is read at; the first one also sets the threshold of the decision-fairness section.
    public var openSetFPIRs: [Double] = [0.1, 0.01]
    public var svm = LinearSVMOptions()
    /// Probability at or above which the mask detector's decision is "masked" (routing of mask-aware thresholds).
    public var maskThreshold = 0.5
    /// Mask-aware column only: adaptive score normalisation against this many nearest cohort templates (0 = off).
    public var cohortSize = 0
    /// Mask-aware column only: fuse the periocular distance (weight 1 − w) with the full one (weight w) in decisions
    /// with a side the detector calls masked; needs `TemplateTable.periocular` on both conditions (nil = off).
    public var periocularFullWeight: Double? = nil
    /// Mask-aware column only: start from the embeddings averaged with their mirror images'
    /// (`TemplateTable.mirrorAveraged`, needed on both conditions) instead of the frozen ones, as the bundled
    /// `MaskAwareMatcher` does.
    public var mirrorAverage = false
    public init() {}
}

/// Everything `facet eval lfw` measures. Encoded as the `--json` file (snake_case keys).
public struct LFWEvaluationResult: Sendable, Codable {
    public struct Verification: Sendable, Codable {
        public var comparison: Comparison
        public var method: MatchingMethod
        /// The standard View 2 protocol (6,000 pairs): 10-fold accuracy, TAR@FAR, EER, AUC.
        public var view2: VerificationSummary
        public var view2FoldAccuracies: [Double]
        /// View 2's 3,000 matched pairs + the extended impostor set.
        public var extended: VerificationSummary
        public var extendedImpostors: Int
        /// FNMR at each FAR of the extended set (`null` when not resolvable).
        public var fnmrAtFmr: [String: Double?]
        /// Templates of this comparison's View 2 pairs that used the fallback crop (distinct image versions).
        public var failedToTemplate: Int
        public var operatingPoint: OperatingPointSummary
    }

    /// FMR/FNMR when each fold's threshold is calibrated at the target FMR on the other nine folds' pairs.
    public struct OperatingPointSummary: Sendable, Codable {
        public var targetFmr: Double
        /// Which calibration: "unmasked-unmasked threshold" (baseline) or "per comparison type, routed by the mask detector".
        public var thresholds: String
        public var meanThreshold: Double
        public var fmr: Double
        public var fnmr: Double
        public var impostorPairs: Int
        public var genuinePairs: Int
        /// Fraction of pairs routed to their true comparison type (mask-aware only).
        public var routedCorrectly: Double?
    }

    public struct Identification: Sendable, Codable {
        public var method: MatchingMethod
        /// "none" or "balanced by gender".
        public var weighting: String
        /// "unmasked" or "masked" probes.
        public var probes: String
        public var closedSet: ClosedSetSummary
        public var openSet: [OpenSetPoint]
        /// FNIR at each FPIR of the options (key: FPIR).
        public var fnirAtFpir: [String: Double]
        public var decisionThreshold: Double
        /// Open-set decisions ("returned an enrolled identity", truth: the probe is enrolled) by gender.
        public var decisionsByGender: DecisionFairness?
        /// Closed-set correctness by gender (selection rate = accuracy of the group).
        public var correctByGender: DecisionFairness?
        public var decisionsByRace: DecisionFairness?
    }

    public struct ClosedSetSummary: Sendable, Codable {
        public var probes: Int
        public var classes: Int
        public var accuracy: Double
        public var macroPrecision: Double
        public var macroRecall: Double
        public var macroF1: Double
    }

    public struct Fairness: Sendable, Codable {
        public var comparison: Comparison
        public var method: MatchingMethod
        public var attribute: String
        public var result: VerificationFairness
    }

    public struct MaskDetection: Sendable, Codable {
        public var unmaskedImages: Int
        public var maskedImages: Int
        /// Fraction of unmasked images with p < threshold.
        public var specificity: Double
        /// Fraction of masked images with p >= threshold.
        public var recall: Double
        public var accuracy: Double
    }

    public var pairs: Int
    public var images: Int
    public var impostorPairs: Int
    public var adaptation: String
    public var options: [String: String]
    public var identificationSplit: [String: Int]
    public var maskDetection: MaskDetection?
    public var verification: [Verification]
    public var identification: [Identification]
    public var fairness: [Fairness]
    public var notes: [String]
    /// Curves for the report (not encoded).
    public var curves: [String: VerificationResult] = [:]

    enum CodingKeys: String, CodingKey {
        case pairs, images, impostorPairs, adaptation, options, identificationSplit, maskDetection, verification,
             identification, fairness, notes
    }

    public func json() throws -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        enc.keyEncodingStrategy = .convertToSnakeCase
        return try enc.encode(self)
    }
}

/// The masked LFW evaluation on precomputed templates (see docs/eval.md, "facet eval lfw").
public enum LFWEvaluation {
    /// The images the evaluation needs: View 2's, plus the identification split's. Sorted by (name, number).
    public static func images(pairs: LFWPairs, split: IdentificationSplit?) -> [LFWImage] {
        var set = Set(pairs.images)
        if let s = split { set.formUnion(s.train); set.formUnion(s.test); set.formUnion(s.nonMated) }
        return set.sorted { ($0.name, $0.number) < ($1.name, $1.number) }
    }

    /// The threshold of each fold: the lowest score `t` with `#(impostors of the other folds >= t) <= target * n`,
    /// never splitting tied scores (just above the highest impostor when even that is too many) — the same rule as
    /// TAR@FAR. `folds[i]` is the fold of `scores[i]` (impostor scores only).
    public static func calibratedThresholds(impostorScores scores: [Double], folds: [Int32], fmr target: Double) -> [Int32: Double] {
        let order = scores.indices.sorted { scores[$0] > scores[$1] }
        var out: [Int32: Double] = [:]
        for k in Set(folds) {
            out[k] = threshold(scores, descending: order, fmr: target) { folds[$0] != k }
        }
        return out
    }

    /// The global threshold at the target FMR over all impostor scores (same rule).
    public static func globalThreshold(impostorScores scores: [Double], fmr target: Double) -> Double {
        threshold(scores, descending: scores.indices.sorted { scores[$0] > scores[$1] }, fmr: target) { _ in true }
    }

    static func threshold(_ scores: [Double], descending order: [Int], fmr target: Double, include: (Int) -> Bool) -> Double {
        let n = order.lazy.filter(include).count
        guard let top = order.first(where: include) else { return .infinity }
        let allowed = target * Double(n)
        var threshold = scores[top].nextUp
        var count = 0
        var i = 0
        while i < order.count {
            let v = scores[order[i]]
            var j = i
            var c = 0
            while j < order.count, scores[order[j]] == v {
                if include(order[j]) { c += 1 }
                j += 1
            }
            if c > 0 {
                if Double(count + c) <= allowed { threshold = v; count += c } else { break }
            }
            i = j
        }
        return threshold
    }

    struct Embeddings {
        let d: Int
        var v: [Float]
        /// Cohort statistics per template (score normalisation): mean and 1/std of its `cohortSize` smallest
        /// distances to the cohort, and the detector's masked decision. When both sides have them and either side
        /// is called masked, the score is the symmetric normalised distance z mapped back to distance units
        /// (`unitMean + unitStd · z`); unmasked–unmasked decisions keep the plain distance.
        var cohortMean: [Float]? = nil
        var cohortInvStd: [Float]? = nil
        var detectedMasked: [Bool]? = nil
        var unitMean = 0.0, unitStd = 1.0
        /// Periocular embeddings (same layout as `v`) and the weight of the full distance: when both sides have
        /// them and either side is called masked, the distance is `w·full + (1 − w)·periocular` (before any cohort
        /// normalisation, whose statistics are then fused distances too).
        var periocular: [Float]? = nil
        var fullWeight = 1.0

        @inline(__always) static func distance(_ x: [Float], _ a: Int, _ y: [Float], _ b: Int, _ d: Int) -> Double {
            var s: Float = 0
            x.withUnsafeBufferPointer { x in
                y.withUnsafeBufferPointer { y in
                    for k in 0..<d { let t = x[a + k] - y[b + k]; s += t * t }
                }
            }
            return Double(s.squareRoot())
        }

        /// Full distance, fused with the periocular one when both sides have it and `fuse` (a masked side).
        @inline(__always) func distance(_ i: Int, _ other: Embeddings, _ j: Int, fuse: Bool) -> Double {
            let full = Self.distance(v, i * d, other.v, j * d, d)
            guard fuse, let p = periocular, let q = other.periocular else { return full }
            return fullWeight * full + (1 - fullWeight) * Self.distance(p, i * d, q, j * d, d)
        }

        @inline(__always) func score(_ i: Int, _ other: Embeddings, _ j: Int) -> Double {
            let maskedSide = (detectedMasked?[i] ?? false) || (other.detectedMasked?[j] ?? false)
            let dist = distance(i, other, j, fuse: maskedSide)
            if let m = cohortMean, let iv = cohortInvStd, let om = other.cohortMean, let oi = other.cohortInvStd,
               let ma = detectedMasked, let mb = other.detectedMasked, ma[i] || mb[j] {
                let z = 0.5 * ((dist - Double(m[i])) * Double(iv[i]) + (dist - Double(om[j])) * Double(oi[j]))
                return -(unitMean + unitStd * z)
            }
            return -dist
        }
    }

    /// Adaptive score normalisation: for each template of `e` whose person is in View 2, the mean and 1/std of
    /// its `k` smallest distances to `cohort`'s templates of people sharing no View 2 fold with it (people outside
    /// the pairs file always qualify), so the statistics never use the fold under test. Others get (0, 1).
    static func cohortStatistics(_ e: Embeddings, cohort: Embeddings, images: [LFWImage], personFolds: [String: Set<Int>],
                                 k: Int) -> (mean: [Float], invStd: [Float]) {
        let n = images.count, d = e.d
        var mean = [Float](repeating: 0, count: n), inv = [Float](repeating: 1, count: n)
        var byFolds: [[Int]: [Int]] = [:]
        for i in 0..<n { if let f = personFolds[images[i].name], !f.isEmpty { byFolds[f.sorted(), default: []].append(i) } }
        for key in byFolds.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            let fs = Set(key)
            let members = (0..<n).filter { personFolds[images[$0].name].map { $0.isDisjoint(with: fs) } ?? true }
            guard members.count >= 2 else { continue }
            let kk = min(k, members.count)
            var row = [Float](repeating: 0, count: members.count)
            for i in byFolds[key]! {
                if e.periocular != nil && cohort.periocular != nil {
                    // Fused distances (the statistics normalise decisions with a masked side, which are fused).
                    for (c, j) in members.enumerated() { row[c] = Float(e.distance(i, cohort, j, fuse: true)) }
                } else {
                    e.v.withUnsafeBufferPointer { x in
                        cohort.v.withUnsafeBufferPointer { y in
                            for (c, j) in members.enumerated() {
                                var dot: Float = 0
                                let a = i * d, b = j * d
                                for t in 0..<d { dot += x[a + t] * y[b + t] }
                                row[c] = max(0, 2 - 2 * dot).squareRoot()
                            }
                        }
                    }
                }
                row.sort()
                var s = 0.0, s2 = 0.0
                for t in 0..<kk { s += Double(row[t]); s2 += Double(row[t]) * Double(row[t]) }
                let m = s / Double(kk), sd = max(s2 / Double(kk) - m * m, 0).squareRoot()
                mean[i] = Float(m); inv[i] = Float(1 / max(sd, 1e-6))
            }
        }
        return (mean, inv)
    }

    /// Runs the whole evaluation.
    /// - Parameters:
    ///   - unmasked / masked: templates of the same `images` (in the same order) without and with masks.
    ///   - split: the identification split (nil: no identification section).
    public static func run(pairs: LFWPairs, impostors: LFWProtocol.ImpostorSet, split: IdentificationSplit?,
                           unmasked: TemplateTable, masked: TemplateTable, demographics: LFWDemographics?,
                           adaptation: any EmbeddingAdaptation, options: LFWEvaluationOptions = .init(),
                           log: @escaping @Sendable (String) -> Void = { _ in }) throws -> LFWEvaluationResult {
        guard unmasked.images == masked.images else {
            throw EvalError.invalidParameter("unmasked and masked templates must cover the same images in the same order")
        }
        let images = unmasked.images
        var slot: [LFWImage: Int] = [:]
        for (i, im) in images.enumerated() { slot[im] = i }
        func index(_ im: LFWImage) throws -> Int {
            guard let i = slot[im] else { throw EvalError.io(path: im.fileName(), message: "no template for this image") }
            return i
        }
        let d = unmasked.dimension

        // Embeddings per method and side.
        func adapted(_ t: TemplateTable) throws -> Embeddings {
            var out = [Float]()
            out.reserveCapacity(t.vectors.count)
            let start: [Float]
            if options.mirrorAverage {
                guard let m = t.mirrorAveraged, m.count == t.vectors.count else {
                    throw EvalError.invalidParameter("mirror averaging needs the mirror-averaged embeddings of both conditions")
                }
                start = m
            } else {
                start = t.vectors
            }
            for i in 0..<t.images.count {
                let x = Array(start[(i * d)..<((i + 1) * d)])
                var v = try adaptation.adapt(x, maskProbability: t.maskProbability?[i], image: t.images[i])
                guard v.count == d else { throw EvalError.countMismatch(what: "adapted embedding dimension", expected: d, got: v.count) }
                TemplateTable.normalise(&v)
                out += v
            }
            return Embeddings(d: d, v: out)
        }
        let base = (u: Embeddings(d: d, v: unmasked.vectors), m: Embeddings(d: d, v: masked.vectors))
        var adaptedPair = (u: try adapted(unmasked), m: try adapted(masked))
        // Mask decisions per image version (ground truth when no detector ran).
        let detected: (u: [Bool], m: [Bool]) = (
            unmasked.maskProbability?.map { $0 >= options.maskThreshold } ?? Array(repeating: false, count: images.count),
            masked.maskProbability?.map { $0 >= options.maskThreshold } ?? Array(repeating: true, count: images.count))
        if let w = options.periocularFullWeight {
            // Periocular fusion in the mask-aware column for decisions where the detector calls a side masked.
            guard let pu = unmasked.periocular, let pm = masked.periocular, pu.count == unmasked.vectors.count,
                  pm.count == masked.vectors.count else {
                throw EvalError.invalidParameter("periocular fusion needs the periocular embeddings of both conditions")
            }
            adaptedPair.u.periocular = pu; adaptedPair.m.periocular = pm
            adaptedPair.u.fullWeight = w; adaptedPair.m.fullWeight = w
            adaptedPair.u.detectedMasked = detected.u; adaptedPair.m.detectedMasked = detected.m
        }
        if options.cohortSize > 0 {
            // Score normalisation of the mask-aware column for decisions with a masked side; cohort = the unmasked
            // (adapted) templates of people outside the template's folds.
            var personFolds: [String: Set<Int>] = [:]
            for p in pairs.pairs { personFolds[p.first.name, default: []].insert(p.fold); personFolds[p.second.name, default: []].insert(p.fold) }
            log("score normalisation: cohort statistics (\(options.cohortSize) nearest unmasked templates of other folds' people)")
            let cohort = adaptedPair.u
            let su = cohortStatistics(adaptedPair.u, cohort: cohort, images: images, personFolds: personFolds, k: options.cohortSize)
            let sm = cohortStatistics(adaptedPair.m, cohort: cohort, images: images, personFolds: personFolds, k: options.cohortSize)
            // Distance units: the mean cohort mean and mean cohort std of the unmasked templates in View 2.
            let inPairs = (0..<images.count).filter { personFolds[images[$0].name] != nil }
            let unitMean = inPairs.isEmpty ? 0 : inPairs.reduce(0.0) { $0 + Double(su.mean[$1]) } / Double(inPairs.count)
            let unitStd = inPairs.isEmpty ? 1 : inPairs.reduce(0.0) { $0 + 1 / Double(su.invStd[$1]) } / Double(inPairs.count)
            for side in 0..<2 {
                var e = side == 0 ? adaptedPair.u : adaptedPair.m
                let st = side == 0 ? su : sm
                e.cohortMean = st.mean; e.cohortInvStd = st.invStd; e.detectedMasked = side == 0 ? detected.u : detected.m
                e.unitMean = unitMean; e.unitStd = unitStd
                if side == 0 { adaptedPair.u = e } else { adaptedPair.m = e }
            }
        }
        func emb(_ method: MatchingMethod, masked isMasked: Bool) -> Embeddings {
            switch method {
            case .baseline: return isMasked ? base.m : base.u
            case .maskAware: return isMasked ? adaptedPair.m : adaptedPair.u
            }
        }

        // Pair index arrays: View 2, then genuine + impostors of the extended set.
        let pa = try pairs.pairs.map { try index($0.first) }, pb = try pairs.pairs.map { try index($0.second) }
        let impSlot = try impostors.images.map { Int32(try index($0)) }
        let ia = impostors.first.map { impSlot[Int($0)] }, ib = impostors.second.map { impSlot[Int($0)] }
        let genuine = pairs.pairs.indices.filter { pairs.pairs[$0].isSame }
        let extFolds: [Int] = genuine.map { pairs.pairs[$0].fold } + impostors.fold.map(Int.init)
        let extSame = Array(repeating: true, count: genuine.count) + Array(repeating: false, count: impostors.count)
        guard !genuine.isEmpty, impostors.count > 0 else { throw EvalError.noImpostorPairs }

        struct Scores { var view2: [Double]; var ext: [Double] }
        func scores(_ c: Comparison, _ method: MatchingMethod) -> Scores {
            let ea = emb(method, masked: c.sides.first), eb = emb(method, masked: c.sides.second)
            let v2 = pa.indices.map { ea.score(pa[$0], eb, pb[$0]) }
            var ext = genuine.map { v2[$0] }
            ext.reserveCapacity(genuine.count + impostors.count)
            for k in 0..<impostors.count { ext.append(ea.score(Int(ia[k]), eb, Int(ib[k]))) }
            return Scores(view2: v2, ext: ext)
        }

        var all: [Comparison: [MatchingMethod: Scores]] = [:]
        for c in Comparison.allCases {
            for m in MatchingMethod.allCases {
                log("scoring \(c.title), \(m.rawValue): \(pairs.pairs.count) View 2 pairs + \(impostors.count) impostor pairs")
                all[c, default: [:]][m] = scores(c, m)
            }
        }

        // Operating points, thresholds from the other folds.
        let impFolds = impostors.fold
        let genFolds = genuine.map { Int32(pairs.pairs[$0].fold) }
        func impostorScores(_ s: Scores) -> [Double] { Array(s.ext[genuine.count...]) }
        var calibrated: [Comparison: [MatchingMethod: [Int32: Double]]] = [:]
        for c in Comparison.allCases {
            for m in MatchingMethod.allCases {
                calibrated[c, default: [:]][m] = calibratedThresholds(impostorScores: impostorScores(all[c]![m]!), folds: impFolds,
                                                                      fmr: options.targetFMR)
            }
        }
        func operatingPoint(_ c: Comparison, _ m: MatchingMethod) -> LFWEvaluationResult.OperatingPointSummary {
            let s = all[c]![m]!
            var fa = 0, fr = 0, routedRight = 0
            var used: [Double] = []
            // threshold of one pair in fold f, with the two image versions' detections
            func threshold(_ f: Int32, _ i: Int, _ j: Int) -> Double {
                switch m {
                case .baseline:
                    return calibrated[.unmaskedUnmasked]![.baseline]![f]!
                case .maskAware:
                    let a = c.sides.first ? detected.m[i] : detected.u[i]
                    let b = c.sides.second ? detected.m[j] : detected.u[j]
                    let r = Comparison.routed(a, b)
                    if r == c { routedRight += 1 }
                    return calibrated[r]![.maskAware]![f]!
                }
            }
            for (k, g) in genuine.enumerated() {
                let t = threshold(genFolds[k], pa[g], pb[g])
                used.append(t)
                if s.ext[k] < t { fr += 1 }
            }
            for k in 0..<impostors.count {
                let t = threshold(impFolds[k], Int(ia[k]), Int(ib[k]))
                if s.ext[genuine.count + k] >= t { fa += 1 }
            }
            let folds = Set(impFolds).sorted()
            let perFold = folds.map { m == .baseline ? calibrated[.unmaskedUnmasked]![.baseline]![$0]! : calibrated[c]![.maskAware]![$0]! }
            return .init(targetFmr: options.targetFMR,
                         thresholds: m == .baseline ? "unmasked-unmasked threshold for every comparison"
                             : "per comparison type, routed by the mask detector",
                         meanThreshold: perFold.reduce(0, +) / Double(max(perFold.count, 1)),
                         fmr: Double(fa) / Double(impostors.count), fnmr: Double(fr) / Double(genuine.count),
                         impostorPairs: impostors.count, genuinePairs: genuine.count,
                         routedCorrectly: m == .maskAware ? Double(routedRight) / Double(genuine.count + impostors.count) : nil)
        }

        var verification: [LFWEvaluationResult.Verification] = []
        var curves: [String: VerificationResult] = [:]
        var fairness: [LFWEvaluationResult.Fairness] = []
        // Groups per image, computed once (millions of pairs look them up).
        let genders = images.map { demographics?.gender(of: $0)?.rawValue }
        let races = images.map { demographics?.raceGroup(of: $0.name) }
        let genderOf: (Int) -> String? = { genders[$0] }
        let raceOf: (Int) -> String? = { races[$0] }
        for c in Comparison.allCases {
            for m in MatchingMethod.allCases {
                log("evaluating \(c.title), \(m.rawValue)")
                let s = all[c]![m]!
                let v2 = try VerificationEvaluator.evaluate(pairs: pairs, scores: s.view2, fars: [1e-2, 1e-3])
                var ext = try VerificationEvaluator.evaluate(scores: s.ext, isSame: extSame, folds: extFolds, fars: options.fars)
                ext.curve = EvaluationReport.thin(ext.curve, maxPoints: 1500)
                curves["\(c.rawValue) \(m.rawValue)"] = ext
                var fnmr: [String: Double?] = [:]
                for p in ext.tarAtFar { fnmr.updateValue(p.resolved ? p.fnmr : nil, forKey: VerificationSummary.key(p.far)) }
                var versions = Set<Int>()   // image index * 2 + masked
                for k in pa.indices {
                    versions.insert(pa[k] * 2 + (c.sides.first ? 1 : 0))
                    versions.insert(pb[k] * 2 + (c.sides.second ? 1 : 0))
                }
                let ftt = versions.filter { ($0 & 1 == 1 ? masked : unmasked).usedFallback[$0 >> 1] }.count
                verification.append(.init(comparison: c, method: m, view2: v2.summary(failedToTemplate: ftt),
                                          view2FoldAccuracies: v2.foldAccuracies,
                                          extended: ext.summary(failedToTemplate: ftt), extendedImpostors: impostors.count,
                                          fnmrAtFmr: fnmr, failedToTemplate: ftt, operatingPoint: operatingPoint(c, m)))
                // Fairness at the global threshold of this comparison and method.
                if demographics != nil {
                    let t = globalThreshold(impostorScores: impostorScores(s), fmr: options.targetFMR)
                    var firsts = genuine.map { pa[$0] }, seconds = genuine.map { pb[$0] }
                    firsts += ia.map(Int.init)
                    seconds += ib.map(Int.init)
                    for (attr, of) in [("gender", genderOf), ("race", raceOf)] {
                        let groups = firsts.indices.map { FairnessMetrics.pairGroup(of(firsts[$0]), of(seconds[$0])) }
                        guard groups.contains(where: { $0 != nil }) else { continue }
                        let f = try FairnessMetrics.verification(scores: s.ext, isSame: extSame, groups: groups, threshold: t)
                        fairness.append(.init(comparison: c, method: m, attribute: attr, result: f))
                    }
                }
            }
        }
        all = [:]

        // Identification.
        var identification: [LFWEvaluationResult.Identification] = []
        var splitCounts: [String: Int] = [:]
        if let split {
            splitCounts = ["enrolled_identities": split.enrolled.count, "train_images": split.train.count,
                           "mated_probes": split.test.count, "non_mated_probes": split.nonMated.count,
                           "held_out_identities": Set(split.nonMated.map(\.name)).count]
            let train = try split.train.map(index), test = try split.test.map(index), non = try split.nonMated.map(index)
            let trainLabels = split.train.map(\.name)
            let trainGender = train.map(genderOf)
            for m in MatchingMethod.allCases {
                let eu = emb(m, masked: false)
                func rows(_ e: Embeddings, _ idx: [Int]) -> [[Float]] { idx.map { Array(e.v[($0 * d)..<(($0 + 1) * d)]) } }
                let x = rows(eu, train)
                for weighting in ["none", "balanced by gender"] {
                    var weights: [Double]?
                    if weighting != "none" {
                        guard trainGender.contains(where: { $0 != nil }) else { continue }
                        weights = try SampleWeights.balanced(groups: trainGender)
                    }
                    log("identification: training one-vs-rest SVMs (\(m.rawValue), weights \(weighting)) on \(x.count) unmasked images of \(split.enrolled.count) identities")
                    let model = try LinearSVMTrainer.train(embeddings: x, labels: trainLabels, sampleWeights: weights, options: options.svm)
                    for probeMasked in [false, true] {
                        let e = emb(m, masked: probeMasked)
                        func top(_ i: Int) throws -> (label: String, score: Double) {
                            let dv = try model.decisionValues(Array(e.v[(i * d)..<((i + 1) * d)]))
                            var best = 0
                            for k in dv.indices where dv[k] > dv[best] { best = k }
                            return (model.labels.decode(best), dv[best])
                        }
                        let mated = try test.map(top), nonTop = try non.map { try top($0).score }
                        let truth = split.test.map(\.name)
                        let cs = try IdentificationMetrics.closedSet(truth: truth, predicted: mated.map(\.label))
                        let searches = zip(mated, truth).map { MatedSearch(topIsCorrect: $0.0.label == $0.1, topScore: $0.0.score) }
                        var fnir: [String: Double] = [:]
                        var decisionThreshold = 0.0
                        var points: [OpenSetPoint] = []
                        if !nonTop.isEmpty {
                            for (n, f) in options.openSetFPIRs.enumerated() {
                                let p = try IdentificationMetrics.openSet(mated: searches, nonMatedTopScores: nonTop, atFPIR: f)
                                fnir[VerificationSummary.key(f)] = p.fnir
                                points.append(p)
                                if n == 0 { decisionThreshold = p.threshold }
                            }
                        }
                        // Decisions by group: every probe (mated and non-mated), "an enrolled identity was returned".
                        let probeIdx = test + non
                        let accepted = (mated.map(\.score) + nonTop).map { $0 >= decisionThreshold }
                        let isEnrolled = Array(repeating: true, count: test.count) + Array(repeating: false, count: non.count)
                        func decisions(_ of: (Int) -> String?) throws -> DecisionFairness? {
                            let g = probeIdx.map(of)
                            guard !nonTop.isEmpty, g.contains(where: { $0 != nil }) else { return nil }
                            return try FairnessMetrics.decisions(accepted, truth: isEnrolled, groups: g)
                        }
                        var correct: DecisionFairness?
                        let gTest = test.map(genderOf)
                        if gTest.contains(where: { $0 != nil }) {
                            correct = try FairnessMetrics.decisions(searches.map(\.topIsCorrect), truth: nil, groups: gTest)
                        }
                        identification.append(.init(
                            method: m, weighting: weighting, probes: probeMasked ? "masked" : "unmasked",
                            closedSet: .init(probes: cs.probes, classes: split.enrolled.count, accuracy: cs.accuracy,
                                             macroPrecision: cs.macroPrecision, macroRecall: cs.macroRecall, macroF1: cs.macroF1),
                            openSet: points, fnirAtFpir: fnir, decisionThreshold: decisionThreshold,
                            decisionsByGender: try decisions(genderOf), correctByGender: correct,
                            decisionsByRace: try decisions(raceOf)))
                    }
                }
            }
        }

        var maskDetection: LFWEvaluationResult.MaskDetection?
        if let pu = unmasked.maskProbability, let pm = masked.maskProbability {
            let spec = Double(pu.lazy.filter { $0 < options.maskThreshold }.count) / Double(pu.count)
            let rec = Double(pm.lazy.filter { $0 >= options.maskThreshold }.count) / Double(pm.count)
            maskDetection = .init(unmaskedImages: pu.count, maskedImages: pm.count, specificity: spec, recall: rec,
                                  accuracy: (spec * Double(pu.count) + rec * Double(pm.count)) / Double(pu.count + pm.count))
        }
        let o = options
        var result = LFWEvaluationResult(
            pairs: pairs.pairs.count, images: images.count, impostorPairs: impostors.count, adaptation: adaptation.name,
            options: ["target_fmr": "\(o.targetFMR)", "fars": o.fars.map { "\($0)" }.joined(separator: ","),
                      "impostors_per_fold": o.impostorsPerFold.map(String.init) ?? "all", "seed": "\(o.seed)",
                      "identification_min_images": "\(o.identificationMinImages)",
                      "identification_train_per_identity": "\(o.identificationTrainPerIdentity)",
                      "identification_held_out_fraction": "\(o.identificationHeldOutFraction)",
                      "svm": "C=\(o.svm.c) \(o.svm.loss.rawValue) bias=\(o.svm.bias.map { "\($0)" } ?? "none")",
                      "mask_threshold": "\(o.maskThreshold)"],
            identificationSplit: splitCounts, maskDetection: maskDetection, verification: verification,
            identification: identification, fairness: fairness, notes: [])
        result.curves = curves
        return result
    }
}

extension LFWEvaluationResult {
    static func pct(_ v: Double?) -> String { v.map { String(format: "%.2f%%", $0 * 100) } ?? "n/a" }
    static func pct3(_ v: Double?) -> String { v.map { String(format: "%.3f%%", $0 * 100) } ?? "n/a" }
    static func num(_ v: Double?, _ digits: Int = 3) -> String { v.map { String(format: "%.\(digits)f", $0) } ?? "n/a" }

    public func row(_ c: Comparison, _ m: MatchingMethod) -> Verification? {
        verification.first { $0.comparison == c && $0.method == m }
    }

    /// Baseline and mask-aware side by side, one row per comparison.
    public func sideBySideTable() -> EvaluationReport.Table {
        var rows: [[String]] = []
        for c in Comparison.allCases {
            guard let b = row(c, .baseline), let m = row(c, .maskAware) else { continue }
            func acc(_ v: Verification) -> String { "\(Self.pct(v.view2.accuracy)) ± \(Self.pct(v.view2.accuracyStd))" }
            func tar(_ v: Verification, _ k: String) -> String { Self.pct(v.view2.tarAtFar[k] ?? nil) }
            func fnmr(_ v: Verification, _ k: String) -> String { Self.pct(v.fnmrAtFmr[k] ?? nil) }
            rows.append([c.title, acc(b), acc(m), tar(b, "0.01"), tar(m, "0.01"), tar(b, "0.001"), tar(m, "0.001"),
                         Self.pct(b.view2.eer), Self.pct(m.view2.eer), fnmr(b, "0.001"), fnmr(m, "0.001"),
                         fnmr(b, "0.0001"), fnmr(m, "0.0001"), Self.pct(b.extended.eer), Self.pct(m.extended.eer),
                         "\(b.failedToTemplate)"])
        }
        return .init(title: "Verification: baseline vs mask-aware",
                     columns: ["comparison", "accuracy (baseline)", "accuracy (mask-aware)", "TAR@FAR=1e-2 (b)", "(m-a)",
                               "TAR@FAR=1e-3 (b)", "(m-a)", "EER View 2 (b)", "(m-a)", "FNMR@FMR=1e-3 (b)", "(m-a)",
                               "FNMR@FMR=1e-4 (b)", "(m-a)", "EER extended (b)", "(m-a)", "failed to template"],
                     rows: rows,
                     note: "Accuracy, TAR@FAR and the first EER: View 2 (\(pairs) pairs, 10 folds, thresholds from the other nine folds). "
                        + "FNMR@FMR and the second EER: View 2's matched pairs against \(impostorPairs) cross-identity impostor pairs "
                        + "within the View 2 folds. Masked–unmasked: the second image of each pair wears the mask.")
    }

    public func operatingPointTable() -> EvaluationReport.Table {
        let rows = verification.map { v -> [String] in
            let o = v.operatingPoint
            return [v.comparison.title, v.method.rawValue, o.thresholds, Self.num(o.meanThreshold, 4), Self.pct3(o.fmr),
                    Self.pct(o.fnmr), o.routedCorrectly.map { Self.pct($0) } ?? "—"]
        }
        let target = verification.first?.operatingPoint.targetFmr ?? 0
        return .init(title: "Operating point at a target FMR of \(target)",
                     columns: ["comparison", "method", "thresholds", "mean threshold", "FMR", "FNMR", "pairs routed to their type"],
                     rows: rows,
                     note: "Each fold's threshold is calibrated on the other nine folds' impostor pairs; FMR/FNMR are measured on the held-out fold and pooled. "
                        + "Baseline: one threshold (unmasked–unmasked) for everything, as a frozen system deploys it. Mask-aware: the threshold of the "
                        + "comparison type the mask detector assigns to each pair.")
    }

    public func identificationTable() -> EvaluationReport.Table {
        let fpirs = Array(Set(identification.flatMap { $0.fnirAtFpir.keys })).sorted { Double($0)! > Double($1)! }
        let rows = identification.map { i -> [String] in
            [i.method.rawValue, i.weighting, i.probes, "\(i.closedSet.probes)", Self.pct(i.closedSet.accuracy),
             Self.pct(i.closedSet.macroPrecision), Self.pct(i.closedSet.macroRecall), Self.pct(i.closedSet.macroF1)]
                + fpirs.map { Self.pct(i.fnirAtFpir[$0]) }
                + [Self.num(i.decisionsByGender?.demographicParityDifference), Self.num(i.decisionsByGender?.equalOpportunityDifference),
                   Self.num(i.decisionsByGender?.equalizedOddsDifference), Self.num(i.correctByGender?.demographicParityDifference)]
        }
        let s = identificationSplit
        return .init(title: "Identification (one-vs-rest linear SVMs, trained on unmasked images)",
                     columns: ["method", "sample weights", "probes", "n", "accuracy", "macro precision", "macro recall", "macro F1"]
                        + fpirs.map { "FNIR@FPIR=\($0)" }
                        + ["DP diff (gender)", "EO diff (gender)", "EOdds diff (gender)", "accuracy gap (gender)"],
                     rows: rows,
                     note: "\(s["enrolled_identities"] ?? 0) enrolled identities (>= the minimum image count), \(s["train_images"] ?? 0) training images, "
                        + "\(s["mated_probes"] ?? 0) unseen mated probes, \(s["non_mated_probes"] ?? 0) non-mated probes of \(s["held_out_identities"] ?? 0) held-out identities. "
                        + "Closed set: argmax of the decision values. Open set: the top decision value against a threshold; DP/EO/EOdds are "
                        + "computed on 'an enrolled identity was returned' at the threshold of the first FPIR; accuracy gap = max - min closed-set accuracy over genders.")
    }

    public func fairnessTable() -> EvaluationReport.Table {
        let rows = fairness.map { f -> [String] in
            let r = f.result
            let groups = r.groups.map { "\($0.group): FMR \(Self.pct3($0.fmr)) FNMR \(Self.pct($0.fnmr)) (\($0.genuinePairs)/\($0.impostorPairs))" }
            return [f.comparison.title, f.method.rawValue, f.attribute, groups.joined(separator: "; "), Self.num(r.fmrMaxMinRatio, 2),
                    Self.num(r.fnmrMaxMinRatio, 2), Self.num(r.equalOpportunityDifference, 4), Self.num(r.equalizedOddsDifference, 4)]
        }
        return .init(title: "Fairness of verification at the global threshold (FMR = target over all pairs)",
                     columns: ["comparison", "method", "attribute", "per group (genuine/impostor pairs)", "FMR max/min", "FNMR max/min",
                               "equal-opportunity diff", "equalized-odds diff"],
                     rows: rows,
                     note: "A pair belongs to a group when both images do (cross-group impostor pairs are excluded, as in NIST FRVT).")
    }

    /// The HTML report: the tables, ROC and DET of the extended sets (baseline dashed), per-group bars.
    public func report(title: String, commands: [String], notes extra: [String] = []) -> EvaluationReport {
        var notes = extra + self.notes
        notes.append("Adaptation (mask-aware column): \(adaptation).")
        if let md = maskDetection {
            notes.append("Mask detector on the evaluated images: \(Self.pct(md.accuracy)) correct (masked recall \(Self.pct(md.recall)), unmasked specificity \(Self.pct(md.specificity))).")
        }
        var r = EvaluationReport(title: title, commands: commands, notes: notes)
        r.add(sideBySideTable())
        r.add(operatingPointTable())
        if !identification.isEmpty { r.add(identificationTable()) }
        if !fairness.isEmpty { r.add(fairnessTable()) }
        for v in verification {
            guard let c = curves["\(v.comparison.rawValue) \(v.method.rawValue)"] else { continue }
            r.add(EvaluationReport.Condition(name: "\(v.comparison.title), \(v.method.rawValue)", result: c,
                                             failedToTemplate: v.failedToTemplate, dashed: v.method == .baseline, showAccuracy: false))
        }
        for f in fairness {
            r.add(EvaluationReport.FairnessSection(name: "\(f.comparison.title), \(f.method.rawValue), \(f.attribute)", fairness: f.result))
        }
        for i in identification {
            if let d = i.decisionsByGender {
                r.add(EvaluationReport.DecisionFairnessSection(name: "identification \(i.method.rawValue), weights \(i.weighting), \(i.probes) probes, by gender", fairness: d))
            }
        }
        return r
    }

    /// A plain-text summary for the terminal.
    public func text() -> String {
        func row(_ cells: [String], _ widths: [Int]) -> String {
            zip(cells, widths).map { $0.0.padding(toLength: max($0.1, $0.0.count), withPad: " ", startingAt: 0) }.joined(separator: "  ")
        }
        var out = "\(pairs) View 2 pairs, \(impostorPairs) extended impostor pairs, \(images) images; mask-aware = \(adaptation)\n"
        let t = sideBySideTable()
        let w = [18, 16, 16, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 6]
        out += row(["comparison", "acc base", "acc m-a", "TAR2 b", "m-a", "TAR3 b", "m-a", "EER b", "m-a",
                    "FNMR3 b", "m-a", "FNMR4 b", "m-a", "EERx b", "m-a", "FTT"], w) + "\n"
        for r in t.rows { out += row(r, w) + "\n" }
        out += "operating point (target FMR \(verification.first?.operatingPoint.targetFmr ?? 0)):\n"
        for v in verification {
            let o = v.operatingPoint
            out += "  \(v.comparison.title.padding(toLength: 18, withPad: " ", startingAt: 0)) \(v.method.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0)) FMR \(Self.pct3(o.fmr))  FNMR \(Self.pct(o.fnmr))\n"
        }
        for i in identification {
            out += "identification \(i.method.rawValue), weights \(i.weighting), \(i.probes) probes: accuracy \(Self.pct(i.closedSet.accuracy)), macro F1 \(Self.pct(i.closedSet.macroF1))"
            out += i.fnirAtFpir.sorted { $0.key > $1.key }.map { ", FNIR@FPIR=\($0.key) \(Self.pct($0.value))" }.joined()
            if let d = i.decisionsByGender { out += ", DP diff (gender) \(Self.num(d.demographicParityDifference))" }
            out += "\n"
        }
        if let md = maskDetection { out += "mask detector: \(Self.pct(md.accuracy)) correct on the evaluated images\n" }
        return out
    }
}
