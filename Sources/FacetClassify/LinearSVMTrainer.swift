/// Trains one-vs-rest linear SVMs on embeddings.
///
/// Without sample weights every binary problem "class k vs rest" goes to LIBLINEAR (`train`, solver 1 or 3,
/// `weight_label = [+1, -1]`, `weight = [classWeight_k, 1]`), exactly the problems scikit-learn's `LinearSVC`
/// solves for more than two classes. With sample weights it goes to `WeightedDualCoordinateDescent`, the same
/// algorithm with per-sample penalties `C_i = C * sampleWeight_i * (classWeight_k if positive else 1)` — the
/// problem `LinearSVC.fit(X, y, sample_weight=)` solves.
public enum LinearSVMTrainer {
    public static func train(embeddings: [[Float]], labels: [String], sampleWeights: [Double]? = nil,
                             options: LinearSVMOptions = LinearSVMOptions()) throws -> LinearSVMModel {
        try train(embeddings: embeddings.map { $0.map(Double.init) }, labels: labels, sampleWeights: sampleWeights, options: options)
    }

    public static func train(embeddings: [[Double]], labels: [String], sampleWeights: [Double]? = nil,
                             options: LinearSVMOptions = LinearSVMOptions()) throws -> LinearSVMModel {
        try options.validate()
        guard !embeddings.isEmpty else { throw ClassifyError.emptyTrainingSet }
        guard labels.count == embeddings.count else {
            throw ClassifyError.countMismatch(what: "labels", expected: embeddings.count, got: labels.count)
        }
        let dim = embeddings[0].count
        guard dim > 0 else { throw ClassifyError.dimensionMismatch(expected: 1, got: 0, row: 0) }
        var rows = embeddings
        for i in rows.indices {
            guard rows[i].count == dim else { throw ClassifyError.dimensionMismatch(expected: dim, got: rows[i].count, row: i) }
            if let j = rows[i].firstIndex(where: { !$0.isFinite }) { throw ClassifyError.nonFiniteValue(row: i, column: j) }
            if options.normalize { rows[i] = try LinearSVMModel.l2Normalised(rows[i], row: i) }
        }
        if let sw = sampleWeights {
            guard sw.count == rows.count else {
                throw ClassifyError.countMismatch(what: "sample weights", expected: rows.count, got: sw.count)
            }
            if let i = sw.firstIndex(where: { !($0.isFinite && $0 >= 0) }) {
                throw ClassifyError.invalidParameter("sample weight \(i) must be finite and >= 0, got \(sw[i])")
            }
        }
        let encoder = LabelEncoder(labels: labels)
        guard encoder.count >= 2 else { throw ClassifyError.singleClass(encoder.classes[0]) }
        for k in options.classWeights.keys where encoder.encodeIfPresent(k) == nil {
            throw ClassifyError.unknownLabel(k)
        }
        let y = try labels.map { try encoder.encode($0) }

        var weights: [[Double]] = []
        var intercepts: [Double] = []
        let solverName: String
        if let sw = sampleWeights {
            // Samples with weight 0 take no part (C_i = 0 makes the squared-hinge diagonal infinite).
            let keep = sw.indices.filter { sw[$0] > 0 }
            let keptRows = keep.map { rows[$0] }
            let dcd = WeightedDualCoordinateDescent(loss: options.loss, tolerance: options.tolerance,
                                                    maxIterations: options.maxIterations)
            for k in 0..<encoder.count {
                let cw = options.classWeights[encoder.decode(k)] ?? 1
                let pos = keep.map { y[$0] == k }
                let cs = keep.map { sw[$0] * options.c * (y[$0] == k ? cw : 1) }
                guard pos.contains(true), pos.contains(false) else {
                    throw ClassifyError.invalidParameter("class '\(encoder.decode(k))' vs rest has no samples of one side with weight > 0")
                }
                let r = dcd.solve(rows: keptRows, dimension: dim, positive: pos, perSampleC: cs, bias: options.bias,
                                  seed: options.seed &+ UInt32(k))
                weights.append(r.weights)
                intercepts.append(r.intercept)
            }
            solverName = "facet-weighted-dcd"
        } else {
            for k in 0..<encoder.count {
                let cw = options.classWeights[encoder.decode(k)] ?? 1
                let r = try LibLinear.trainBinary(rows: rows, dimension: dim, positive: y.map { $0 == k },
                                                  cPositive: options.c * cw, cNegative: options.c, options: options)
                weights.append(r.weights)
                intercepts.append(r.intercept)
            }
            solverName = "liblinear-\(LibLinear.version)"
        }
        return try LinearSVMModel(labels: encoder, dimension: dim, weights: weights, intercepts: intercepts,
                                  options: options, solver: solverName)
    }
}
