import Foundation

/// A trained one-vs-rest linear SVM: one weight vector and intercept per class; decision value of class k
/// for an (L2-normalised, if `options.normalize`) embedding x is `w_k · x + b_k`.
public struct LinearSVMModel: Sendable, Codable, Equatable {
    public static let formatName = "facet-linear-svm"
    public static let formatVersion = 1

    public let format: String
    public let version: Int
    public let labels: LabelEncoder
    public let dimension: Int
    /// `weights[k]` has `dimension` entries.
    public let weights: [[Double]]
    public let intercepts: [Double]
    public let options: LinearSVMOptions
    /// Which solver produced the weights: `"liblinear-<version>"`, or `"facet-weighted-dcd"` with sample weights.
    public let solver: String
    /// Platt calibration of the one-vs-rest decision values, fitted on held-out data.
    public var calibration: PlattScaling?

    public init(labels: LabelEncoder, dimension: Int, weights: [[Double]], intercepts: [Double],
                options: LinearSVMOptions, solver: String, calibration: PlattScaling? = nil) throws {
        guard weights.count == labels.count, intercepts.count == labels.count else {
            throw ClassifyError.modelFormat("\(labels.count) labels but \(weights.count) weight vectors and \(intercepts.count) intercepts")
        }
        for (k, w) in weights.enumerated() where w.count != dimension {
            throw ClassifyError.modelFormat("weight vector \(k) has \(w.count) entries, dimension is \(dimension)")
        }
        format = Self.formatName
        version = Self.formatVersion
        self.labels = labels
        self.dimension = dimension
        self.weights = weights
        self.intercepts = intercepts
        self.options = options
        self.solver = solver
        self.calibration = calibration
    }

    public var classCount: Int { labels.count }

    /// The input as the model sees it (validated, and L2-normalised if the model was trained that way).
    public func prepare(_ x: [Double]) throws -> [Double] {
        guard x.count == dimension else { throw ClassifyError.dimensionMismatch(expected: dimension, got: x.count, row: nil) }
        if let j = x.firstIndex(where: { !$0.isFinite }) { throw ClassifyError.nonFiniteValue(row: 0, column: j) }
        guard options.normalize else { return x }
        return try Self.l2Normalised(x, row: 0)
    }

    static func l2Normalised(_ x: [Double], row: Int) throws -> [Double] {
        var s = 0.0
        for v in x { s += v * v }
        guard s > 0 else { throw ClassifyError.zeroVector(row: row) }
        let inv = 1 / s.squareRoot()
        return x.map { $0 * inv }
    }

    /// One decision value per class, in `labels.classes` order.
    public func decisionValues(_ x: [Double]) throws -> [Double] {
        let v = try prepare(x)
        return (0..<classCount).map { k in
            var s = intercepts[k]
            let w = weights[k]
            for j in 0..<dimension { s += w[j] * v[j] }
            return s
        }
    }

    /// Convenience for `Float` embeddings.
    public func decisionValues<T: BinaryFloatingPoint>(_ x: [T]) throws -> [Double] {
        try decisionValues(x.map { Double($0) })
    }

    /// The class with the largest decision value (ties go to the first class in label order, as in LIBLINEAR).
    public func predict(_ x: [Double]) throws -> String {
        let d = try decisionValues(x)
        return labels.decode(Self.argmax(d))
    }

    /// Per-class Platt probabilities `P(class k | x)` of the one-vs-rest problems; they need not sum to 1, which is
    /// what open-set decisions want (all can be low for an unknown face). Requires `calibration`.
    public func calibratedScores(_ x: [Double]) throws -> [Double] {
        guard let cal = calibration else { throw ClassifyError.notCalibrated }
        return try decisionValues(x).map(cal.probability)
    }

    public enum ProbabilityMethod: Sendable, Equatable {
        /// Platt scores normalised to sum to 1 (requires calibration).
        case platt
        /// `softmax(decision / temperature)`: uncalibrated but monotone in the margins, for models without held-out data.
        case softmax(temperature: Double)
    }

    /// Probability-like scores over the known classes, summing to 1.
    public func probabilities(_ x: [Double], method: ProbabilityMethod = .platt) throws -> [Double] {
        switch method {
        case .platt:
            let s = try calibratedScores(x)
            let total = s.reduce(0, +)
            return total > 0 ? s.map { $0 / total } : s.map { _ in 1 / Double(s.count) }
        case .softmax(let temperature):
            guard temperature.isFinite, temperature > 0 else {
                throw ClassifyError.invalidParameter("softmax temperature must be > 0, got \(temperature)")
            }
            let d = try decisionValues(x).map { $0 / temperature }
            let m = d.max() ?? 0
            let e = d.map { exp($0 - m) }
            let total = e.reduce(0, +)
            return e.map { $0 / total }
        }
    }

    /// What the open-set threshold is compared with.
    public enum OpenSetScore: Sendable, Equatable {
        case decisionValue
        case calibratedProbability
    }

    public struct OpenSetPrediction: Sendable, Equatable {
        /// The best known class, whether or not it passed the threshold.
        public var bestLabel: String
        public var score: Double
        /// `bestLabel` if `score >= threshold`, nil for "unknown".
        public var label: String? 
    }

    /// Predicts the best class, or unknown (`label == nil`) when its score is below `threshold`.
    public func predict(_ x: [Double], unknownThreshold threshold: Double,
                        score: OpenSetScore = .calibratedProbability) throws -> OpenSetPrediction {
        let s: [Double]
        switch score {
        case .decisionValue: s = try decisionValues(x)
        case .calibratedProbability: s = try calibratedScores(x)
        }
        let k = Self.argmax(s)
        let best = labels.decode(k)
        return OpenSetPrediction(bestLabel: best, score: s[k], label: s[k] >= threshold ? best : nil)
    }

    /// Returns a copy with a Platt calibration fitted on held-out samples. For each sample and each class k the
    /// decision value of class k is a positive example if k is the sample's label and a negative one otherwise;
    /// samples whose label is not a known class (unknown identities) contribute only negatives.
    public func calibrated(on embeddings: [[Double]], labels truth: [String]) throws -> LinearSVMModel {
        guard embeddings.count == truth.count else {
            throw ClassifyError.countMismatch(what: "calibration labels", expected: embeddings.count, got: truth.count)
        }
        var dec: [Double] = []
        var pos: [Bool] = []
        dec.reserveCapacity(embeddings.count * classCount)
        for (i, x) in embeddings.enumerated() {
            let d: [Double]
            do { d = try decisionValues(x) } catch ClassifyError.dimensionMismatch(let e, let g, _) {
                throw ClassifyError.dimensionMismatch(expected: e, got: g, row: i)
            }
            let t = labels.encodeIfPresent(truth[i])
            for k in 0..<classCount {
                dec.append(d[k])
                pos.append(k == t)
            }
        }
        var copy = self
        copy.calibration = try PlattScaling.fit(decisionValues: dec, isPositive: pos)
        return copy
    }

    static func argmax(_ v: [Double]) -> Int {
        var best = 0
        for k in 1..<v.count where v[k] > v[best] { best = k }
        return best
    }

    // MARK: persistence (JSON, versioned)

    public func save(to url: URL) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        let data = try enc.encode(self)
        do { try data.write(to: url, options: .atomic) } catch {
            throw ClassifyError.io(path: url.path, message: error.localizedDescription)
        }
    }

    public static func load(from url: URL) throws -> LinearSVMModel {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ClassifyError.io(path: url.path, message: error.localizedDescription)
        }
        return try decode(data)
    }

    public static func decode(_ data: Data) throws -> LinearSVMModel {
        struct Header: Decodable {
            var format: String?
            var version: Int?
        }
        guard let h = try? JSONDecoder().decode(Header.self, from: data) else {
            throw ClassifyError.modelFormat("not a JSON object")
        }
        guard h.format == formatName else {
            throw ClassifyError.modelFormat("format is '\(h.format ?? "missing")', expected '\(formatName)'")
        }
        guard h.version == formatVersion else {
            throw ClassifyError.modelFormat("version \(h.version.map(String.init) ?? "missing") is not supported (this build reads \(formatVersion))")
        }
        let m: LinearSVMModel
        do { m = try JSONDecoder().decode(LinearSVMModel.self, from: data) } catch let e as ClassifyError {
            throw e
        } catch {
            throw ClassifyError.modelFormat("\(error)")
        }
        // Re-validate shapes through the initialiser.
        return try LinearSVMModel(labels: m.labels, dimension: m.dimension, weights: m.weights, intercepts: m.intercepts,
                                  options: m.options, solver: m.solver, calibration: m.calibration)
    }
}
