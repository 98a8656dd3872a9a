import Foundation
import FacetClassify
import FacetWire

/// Trains the identity classifier of a cluster: one-vs-rest linear SVMs (FacetClassify, LIBLINEAR) over the
/// gathered templates, labels = subject ids, calibrated with Platt scaling on out-of-fold decision values.
///
/// Calibration needs decisions on data the model did not see. As LIBSVM does for its probability outputs, the
/// templates are split into `folds` folds (each subject's templates spread round-robin over the folds, in template
/// id order, so the split is deterministic); a model trained on the other folds scores each held-out template
/// against each of its classes (positive iff the class is the template's subject; a held-out template whose
/// subject is absent from that fold's model gives negatives only). One sigmoid is fitted to all those points
/// (`PlattScaling.fit`), then the final model is trained on everything and carries that sigmoid.
/// Calibration is skipped (decisions then use the sign of the decision value) when fewer than two folds can be
/// trained or no positive point exists — e.g. every subject has a single template.
public enum ClassifierTraining {
    public struct Sample: Sendable {
        public var templateID: UInt64
        public var subject: String
        public var embedding: [Float]
        public init(templateID: UInt64, subject: String, embedding: [Float]) {
            self.templateID = templateID; self.subject = subject; self.embedding = embedding
        }
    }

    public struct Outcome: Sendable {
        public var model: LinearSVMModel
        public var calibrated: Bool
        public var subjects: Int
    }

    /// - Parameters:
    ///   - balanceClasses: weight each subject's positives by `n / (classes · n_k)` (scikit-learn's "balanced").
    ///   - isCancelled: polled between the fold trainings; a cancelled training throws CANCELLED.
    public static func train(_ samples: [Sample], cost: Double = 1, balanceClasses: Bool = false, folds: Int = 3,
                             isCancelled: () -> Bool = { false }) throws(FacetError) -> Outcome {
        let ordered = samples.sorted { $0.templateID < $1.templateID }
        let subjects = Set(ordered.map(\.subject))
        guard subjects.count >= 2 else {
            throw FacetError(.failedPrecondition, "training needs templates of at least two subjects (found \(subjects.count))")
        }
        func options(_ rows: [Sample]) -> LinearSVMOptions {
            var o = LinearSVMOptions(c: cost)
            if balanceClasses {
                let counts = Dictionary(grouping: rows, by: \.subject).mapValues(\.count)
                let n = Double(rows.count), k = Double(counts.count)
                o.classWeights = counts.mapValues { n / (k * Double($0)) }
            }
            return o
        }
        func fit(_ rows: [Sample]) throws(FacetError) -> LinearSVMModel {
            do {
                return try LinearSVMTrainer.train(embeddings: rows.map(\.embedding), labels: rows.map(\.subject), options: options(rows))
            } catch {
                throw FacetError(.invalidArgument, "training failed: \(error)")
            }
        }
        // Fold of each sample: round-robin within its subject.
        var seen: [String: Int] = [:]
        let fold = ordered.map { s -> Int in
            let i = seen[s.subject, default: 0]
            seen[s.subject] = i + 1
            return i % max(folds, 1)
        }
        var values: [Double] = [], positive: [Bool] = []
        var trainedFolds = 0
        if folds >= 2 {
            for f in 0..<folds {
                if isCancelled() { throw FacetError(.cancelled, "training cancelled") }
                let train = ordered.indices.filter { fold[$0] != f }.map { ordered[$0] }
                let held = ordered.indices.filter { fold[$0] == f }.map { ordered[$0] }
                guard !held.isEmpty, Set(train.map(\.subject)).count >= 2 else { continue }
                let m = try fit(train)
                trainedFolds += 1
                for s in held {
                    guard let d = try? m.decisionValues(s.embedding) else { continue }
                    for (k, label) in m.labels.classes.enumerated() {
                        values.append(d[k])
                        positive.append(label == s.subject)
                    }
                }
            }
        }
        if isCancelled() { throw FacetError(.cancelled, "training cancelled") }
        var model = try fit(ordered)
        var calibrated = false
        if trainedFolds >= 2, positive.contains(true), positive.contains(false),
           let platt = try? PlattScaling.fit(decisionValues: values, isPositive: positive) {
            model.calibration = platt
            calibrated = true
        }
        return Outcome(model: model, calibrated: calibrated, subjects: subjects.count)
    }

    /// The classifier's answer for one query: the best class not in `excluded` (subjects deleted since training),
    /// its decision value and, if calibrated, its Platt probability; accepted when the probability reaches
    /// `threshold` (calibrated) or the decision value is positive (uncalibrated).
    public static func decide(_ classifier: ActiveClassifier, query: [Float], threshold: Float = 0.5,
                              excluded: Set<String> = [], top: Int = 5) -> WireClassifierDecision? {
        guard let d = try? classifier.model.decisionValues(query) else { return nil }
        let classes = classifier.model.labels.classes
        let ranked = d.indices.filter { !excluded.contains(classes[$0]) }
            .sorted { d[$0] != d[$1] ? d[$0] > d[$1] : classes[$0] < classes[$1] }
        var out = WireClassifierDecision()
        out.classifierVersion = classifier.metadata.version
        out.top = ranked.prefix(top).map { i in
            var c = WireClassScore()
            c.subjectID = classes[i]
            c.decisionValue = Float(d[i])
            return c
        }
        guard let best = ranked.first else { return out }
        out.decisionValue = Float(d[best])
        if let platt = classifier.model.calibration {
            out.calibrated = true
            out.probability = Float(platt.probability(d[best]))
            out.threshold = threshold
            out.accepted = out.probability >= threshold
        } else {
            out.threshold = 0
            out.accepted = d[best] > 0
        }
        if out.accepted { out.subjectID = classes[best] }
        return out
    }
}
