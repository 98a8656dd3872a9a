import Foundation
import Testing
@testable import FacetClassify

@Suite("LinearSVM behaviour: toy sets, errors, persistence, open set")
struct SVMBehaviourTests {
    /// Three well separated clusters on the unit circle (after normalisation: angles 0°, 120°, 240°).
    static func toy() -> ([[Double]], [String]) {
        var xs: [[Double]] = []
        var ys: [String] = []
        let names = ["east", "northwest", "southwest"]
        for (k, name) in names.enumerated() {
            let base = Double(k) * 2 * Double.pi / 3
            for i in 0..<10 {
                let a = base + (Double(i) - 4.5) * 0.03   // ±0.135 rad around the centre
                let r = 1 + Double(i % 3)                 // radius varies, normalisation removes it
                xs.append([r * cos(a), r * sin(a)])
                ys.append(name)
            }
        }
        return (xs, ys)
    }

    @Test("separable toy set: every training point and fresh points are classified correctly")
    func separableToy() throws {
        let (xs, ys) = Self.toy()
        let m = try LinearSVMTrainer.train(embeddings: xs, labels: ys, options: LinearSVMOptions(c: 10))
        for (x, y) in zip(xs, ys) { #expect(try m.predict(x) == y) }
        #expect(try m.predict([5, 0.1]) == "east")
        #expect(try m.predict([-1, 1.6]) == "northwest")
        #expect(try m.predict([-1, -1.7]) == "southwest")
        // The own-class decision value is positive and the others negative at a cluster centre.
        let d = try m.decisionValues([1, 0])
        #expect(d[0] > 0 && d[1] < 0 && d[2] < 0)
        // Float input gives the same decisions.
        let df = try m.decisionValues([Float(1), Float(0)])
        #expect(df == d)
    }

    @Test("two classes also train one-vs-rest, and the two models are mirror images")
    func twoClasses() throws {
        let xs: [[Double]] = [[1, 0.1], [1, -0.1], [0.9, 0.2], [-1, 0.1], [-1, -0.2], [-0.8, 0]]
        let ys = ["a", "a", "a", "b", "b", "b"]
        let m = try LinearSVMTrainer.train(embeddings: xs, labels: ys, options: LinearSVMOptions(tolerance: 1e-8))
        #expect(m.classCount == 2)
        for j in 0..<2 { #expect(abs(m.weights[0][j] + m.weights[1][j]) < 1e-5) }
        #expect(abs(m.intercepts[0] + m.intercepts[1]) < 1e-5)
        #expect(try m.predict([2, 0]) == "a")
    }

    @Test("bad input gives typed errors")
    func errors() throws {
        let (xs, ys) = Self.toy()
        #expect(throws: ClassifyError.emptyTrainingSet) { try LinearSVMTrainer.train(embeddings: [[Double]](), labels: []) }
        #expect(throws: ClassifyError.singleClass("a")) {
            try LinearSVMTrainer.train(embeddings: [[1.0, 0], [0, 1]], labels: ["a", "a"])
        }
        #expect(throws: ClassifyError.dimensionMismatch(expected: 2, got: 3, row: 1)) {
            try LinearSVMTrainer.train(embeddings: [[1.0, 0], [0, 1, 2]], labels: ["a", "b"])
        }
        #expect(throws: ClassifyError.countMismatch(what: "labels", expected: 2, got: 1)) {
            try LinearSVMTrainer.train(embeddings: [[1.0, 0], [0, 1]], labels: ["a"])
        }
        #expect(throws: ClassifyError.zeroVector(row: 1)) {
            try LinearSVMTrainer.train(embeddings: [[1.0, 0], [0, 0]], labels: ["a", "b"])
        }
        #expect(throws: ClassifyError.nonFiniteValue(row: 0, column: 1)) {
            try LinearSVMTrainer.train(embeddings: [[1.0, .nan], [0, 1]], labels: ["a", "b"])
        }
        #expect(throws: ClassifyError.self) {
            try LinearSVMTrainer.train(embeddings: xs, labels: ys, options: LinearSVMOptions(c: 0))
        }
        #expect(throws: ClassifyError.unknownLabel("zed")) {
            try LinearSVMTrainer.train(embeddings: xs, labels: ys, options: LinearSVMOptions(classWeights: ["zed": 2]))
        }
        #expect(throws: ClassifyError.countMismatch(what: "sample weights", expected: 30, got: 2)) {
            try LinearSVMTrainer.train(embeddings: xs, labels: ys, sampleWeights: [1, 1])
        }
        let m = try LinearSVMTrainer.train(embeddings: xs, labels: ys)
        #expect(throws: ClassifyError.dimensionMismatch(expected: 2, got: 3, row: nil)) { try m.predict([1, 2, 3]) }
        #expect(throws: ClassifyError.notCalibrated) { try m.calibratedScores([1, 0]) }
        #expect(throws: ClassifyError.calibrationNeedsBothClasses(positives: 0, negatives: 2)) {
            try PlattScaling.fit(decisionValues: [1, 2], isPositive: [false, false])
        }
    }

    @Test("sample weights change the solution the way a larger C for those samples does")
    func sampleWeightsMatter() throws {
        // One 'b' point sits among the 'a's. With C small it is sacrificed; a large weight on it pulls the boundary.
        let xs: [[Double]] = [[1, 0], [0.95, 0.3], [0.95, -0.3], [0.9, 0.45], [-1, 0], [-0.9, 0.4], [0.85, 0.52]]
        let ys = ["a", "a", "a", "a", "b", "b", "b"]
        let opts = LinearSVMOptions(c: 0.5, normalize: false)
        let plain = try LinearSVMTrainer.train(embeddings: xs, labels: ys, sampleWeights: [1, 1, 1, 1, 1, 1, 1], options: opts)
        let heavy = try LinearSVMTrainer.train(embeddings: xs, labels: ys, sampleWeights: [1, 1, 1, 1, 1, 1, 200], options: opts)
        let dPlain = try plain.decisionValues(xs[6])
        let dHeavy = try heavy.decisionValues(xs[6])
        #expect(dHeavy[1] > dPlain[1])
        #expect(try heavy.predict(xs[6]) == "b")
        // Weight 0 removes a sample entirely: same as training without it.
        let zero = try LinearSVMTrainer.train(embeddings: xs, labels: ys, sampleWeights: [1, 1, 1, 1, 1, 1, 0],
                                              options: LinearSVMOptions(c: 0.5, tolerance: 1e-9, normalize: false))
        let without = try LinearSVMTrainer.train(embeddings: Array(xs[0..<6]), labels: Array(ys[0..<6]),
                                                 sampleWeights: [1, 1, 1, 1, 1, 1],
                                                 options: LinearSVMOptions(c: 0.5, tolerance: 1e-9, normalize: false))
        for k in 0..<2 { for j in 0..<2 { #expect(abs(zero.weights[k][j] - without.weights[k][j]) < 1e-6) } }
    }

    @Test("save and load round-trip; wrong format and version are rejected")
    func persistence() throws {
        let (xs, ys) = Self.toy()
        let m = try LinearSVMTrainer.train(embeddings: xs, labels: ys).calibrated(on: xs, labels: ys)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("facet-svm-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("model.json")
        try m.save(to: url)
        let back = try LinearSVMModel.load(from: url)
        #expect(back == m)
        #expect(try back.decisionValues([0.3, 0.7]) == m.decisionValues([0.3, 0.7]))
        var json = try #require(String(data: Data(contentsOf: url), encoding: .utf8))
        #expect(json.contains("\"format\":\"facet-linear-svm\""))
        #expect(json.contains("\"version\":1"))
        json = json.replacingOccurrences(of: "\"version\":1", with: "\"version\":99")
        #expect(throws: ClassifyError.modelFormat("version 99 is not supported (this build reads 1)")) {
            try LinearSVMModel.decode(Data(json.utf8))
        }
        #expect(throws: ClassifyError.modelFormat("format is 'missing', expected 'facet-linear-svm'")) {
            try LinearSVMModel.decode(Data("{\"version\":1}".utf8))
        }
        #expect(throws: ClassifyError.modelFormat("not a JSON object")) { try LinearSVMModel.decode(Data("[1,2".utf8)) }
        #expect(throws: ClassifyError.self) { try LinearSVMModel.load(from: dir.appendingPathComponent("missing.json")) }
    }

    @Test("open-set prediction, Platt scores and softmax probabilities")
    func openSetAndProbabilities() throws {
        let (xs, ys) = Self.toy()
        let m = try LinearSVMTrainer.train(embeddings: xs, labels: ys).calibrated(on: xs, labels: ys)
        // A face at a cluster centre scores higher than one on the bisector between two clusters; a threshold
        // between the two scores keeps the first and rejects the second as unknown.
        let centre = try m.predict([1, 0.02], unknownThreshold: 0)
        let bisector = try m.predict([cos(Double.pi / 3), sin(Double.pi / 3)], unknownThreshold: 0)
        #expect(centre.label == "east" && centre.bestLabel == "east")
        #expect(bisector.score < centre.score)
        let t = (bisector.score + centre.score) / 2
        let known = try m.predict([1, 0.02], unknownThreshold: t)
        #expect(known.label == "east" && known.score == centre.score)
        let unknown = try m.predict([cos(Double.pi / 3), sin(Double.pi / 3)], unknownThreshold: t)
        #expect(unknown.label == nil && unknown.bestLabel == bisector.bestLabel)
        #expect(try m.calibratedScores([1, 0.02])[0] == centre.score)
        let byMargin = try m.predict([1, 0.02], unknownThreshold: 100, score: .decisionValue)
        #expect(byMargin.label == nil && byMargin.bestLabel == "east")
        for method in [LinearSVMModel.ProbabilityMethod.platt, .softmax(temperature: 0.5)] {
            let p = try m.probabilities([1, 0.02], method: method)
            #expect(abs(p.reduce(0, +) - 1) < 1e-12)
            #expect(p[0] == p.max())
        }
        #expect(throws: ClassifyError.self) { try m.probabilities([1, 0], method: .softmax(temperature: 0)) }
    }

    @Test("Platt scaling on a hand-checkable set: symmetric data gives B = 0 and a probability of 1/2 at 0")
    func plattSymmetric() throws {
        // Decision values ±1, ±2, labels positive for +, and one flipped pair each side: the problem is symmetric
        // under f -> -f with labels swapped, so the optimum has B = 0 and P(0) = 1/2; A < 0.
        let dec: [Double] = [2, 1, 1, -1, -1, -2]
        let pos = [true, true, false, true, false, false]
        let p = try PlattScaling.fit(decisionValues: dec, isPositive: pos)
        #expect(abs(p.b) < 1e-6)
        #expect(abs(p.probability(0) - 0.5) < 1e-6)
        #expect(p.a < 0)
        #expect(abs(p.probability(3) + p.probability(-3) - 1) < 1e-9)
    }

    @Test("concurrent training is safe and deterministic")
    func concurrentTraining() async throws {
        let data = try SVMFixture.load()
        let reference = try LinearSVMTrainer.train(embeddings: data.train_x, labels: data.train_y)
        let models = try await withThrowingTaskGroup(of: LinearSVMModel.self) { group in
            for _ in 0..<6 {
                group.addTask { try LinearSVMTrainer.train(embeddings: data.train_x, labels: data.train_y) }
            }
            var out: [LinearSVMModel] = []
            for try await m in group { out.append(m) }
            return out
        }
        // LIBLINEAR orders its coordinates with libc rand(), seeded under Facet's lock; other libraries in the
        // same process (libzmq draws routing ids with rand()) can still advance that sequence, so runs agree to the
        // solver's tolerance, not bit for bit: same labels, weights within 1e-3, same predictions.
        let predictions = try data.test_x.map { try reference.predict($0) }
        for m in models {
            #expect(m.labels == reference.labels && m.solver == reference.solver)
            for (w, r) in zip(m.weights, reference.weights) {
                #expect(zip(w, r).allSatisfy { abs($0 - $1) < 1e-3 })
            }
            #expect(zip(m.intercepts, reference.intercepts).allSatisfy { abs($0 - $1) < 1e-3 })
            #expect(try data.test_x.map { try m.predict($0) } == predictions)
        }
    }
}

@Suite("Sample weights by group")
struct SampleWeightsTests {
    @Test("balanced weights: n / (k * n_g), unlabelled samples keep their own weight")
    func balanced() throws {
        // groups: m m m f, one unlabelled. n = 4, k = 2: m -> 4/(2*3) = 2/3, f -> 4/(2*1) = 2.
        let w = try SampleWeights.balanced(groups: ["m", "m", "m", "f", nil], unlabelledWeight: 0.5)
        #expect(abs(w[0] - 2.0 / 3) < 1e-15 && w[3] == 2 && w[4] == 0.5)
        // Each group carries n/k = 2 in total.
        #expect(abs(w[0] + w[1] + w[2] - 2) < 1e-12)
        #expect(throws: ClassifyError.self) { try SampleWeights.balanced(groups: [nil, nil]) }
    }
}
