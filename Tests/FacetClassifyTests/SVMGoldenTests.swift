import Foundation
import Testing
@testable import FacetClassify

/// Fixtures written by scripts/make-svm-goldens.py (scikit-learn LinearSVC, the same LIBLINEAR solver).
struct SVMFixture: Decodable {
    var classes: [String]
    var dim: Int
    var train_x: [[Double]]
    var train_y: [String]
    var test_x: [[Double]]
    var test_y: [String]
    var cal_x: [[Double]]
    var cal_y: [String]
    var sample_weight: [Double]

    static func load() throws -> SVMFixture {
        let url = try #require(Bundle.module.url(forResource: "svm_dataset", withExtension: "json", subdirectory: "Fixtures"))
        return try JSONDecoder().decode(SVMFixture.self, from: Data(contentsOf: url))
    }
}

struct SVMGoldens: Decodable {
    struct Platt: Decodable { var a: Double; var b: Double }
    struct Config: Decodable {
        var name: String
        var C: Double
        var loss: String
        var bias: Double?
        var class_weight: [String: Double]
        var sample_weights: Bool
        var coef: [[Double]]
        var intercept: [Double]
        var test_decision: [[Double]]
        var test_predict: [String]
        var platt: Platt?
    }
    var tol: Double
    var configs: [Config]

    static func load() throws -> SVMGoldens {
        let url = try #require(Bundle.module.url(forResource: "svm_goldens", withExtension: "json", subdirectory: "Fixtures"))
        return try JSONDecoder().decode(SVMGoldens.self, from: Data(contentsOf: url))
    }
}

@Suite("LinearSVM against scikit-learn LinearSVC goldens")
struct SVMGoldenTests {
    static let configNames = ["default", "hinge_c0.1", "no_intercept_c10", "bias2_c3", "class_weights",
                              "sample_weights", "sample_weights_hinge"]

    func options(_ c: SVMGoldens.Config, tol: Double) -> LinearSVMOptions {
        LinearSVMOptions(c: c.C, loss: c.loss == "hinge" ? .hinge : .squaredHinge, bias: c.bias, tolerance: tol,
                         maxIterations: 100_000, classWeights: c.class_weight)
    }

    @Test("weights, intercepts and decisions match, predictions are identical", arguments: configNames)
    func golden(name: String) throws {
        let data = try SVMFixture.load()
        let goldens = try SVMGoldens.load()
        let g = try #require(goldens.configs.first { $0.name == name })
        let model = try LinearSVMTrainer.train(embeddings: data.train_x, labels: data.train_y,
                                               sampleWeights: g.sample_weights ? data.sample_weight : nil,
                                               options: options(g, tol: goldens.tol))
        #expect(model.labels.classes == data.classes)
        #expect(model.solver == (g.sample_weights ? "facet-weighted-dcd" : "liblinear-230"))
        let tol = 1e-4
        var maxErr = 0.0
        for k in 0..<data.classes.count {
            for j in 0..<data.dim { maxErr = max(maxErr, abs(model.weights[k][j] - g.coef[k][j])) }
            maxErr = max(maxErr, abs(model.intercepts[k] - g.intercept[k]))
        }
        #expect(maxErr < tol, "max |w - w_sklearn| = \(maxErr)")
        for (i, x) in data.test_x.enumerated() {
            let d = try model.decisionValues(x)
            for k in d.indices { #expect(abs(d[k] - g.test_decision[i][k]) < tol) }
            #expect(try model.predict(x) == g.test_predict[i])
        }
    }

    @Test("the instance-weighted solver with uniform weights reproduces LIBLINEAR")
    func weightedSolverMatchesLiblinear() throws {
        let data = try SVMFixture.load()
        for loss in [LinearSVMOptions.Loss.squaredHinge, .hinge] {
            let opts = LinearSVMOptions(c: 1, loss: loss, tolerance: 1e-7, maxIterations: 100_000, classWeights: ["bob": 1.5])
            let a = try LinearSVMTrainer.train(embeddings: data.train_x, labels: data.train_y, options: opts)
            let b = try LinearSVMTrainer.train(embeddings: data.train_x, labels: data.train_y,
                                               sampleWeights: Array(repeating: 1, count: data.train_y.count), options: opts)
            #expect(a.solver.hasPrefix("liblinear"))
            #expect(b.solver == "facet-weighted-dcd")
            var maxErr = 0.0
            for k in 0..<4 {
                for j in 0..<data.dim { maxErr = max(maxErr, abs(a.weights[k][j] - b.weights[k][j])) }
                maxErr = max(maxErr, abs(a.intercepts[k] - b.intercepts[k]))
            }
            #expect(maxErr < 1e-4, "\(loss): max |w_liblinear - w_facet| = \(maxErr)")
        }
    }

    @Test("Platt calibration on held-out data matches scipy's optimum of the same objective")
    func plattGolden() throws {
        let data = try SVMFixture.load()
        let goldens = try SVMGoldens.load()
        let g = try #require(goldens.configs.first { $0.name == "default" })
        let ref = try #require(g.platt)
        let model = try LinearSVMTrainer.train(embeddings: data.train_x, labels: data.train_y,
                                               options: options(g, tol: goldens.tol))
        let cal = try model.calibrated(on: data.cal_x, labels: data.cal_y)
        let p = try #require(cal.calibration)
        #expect(abs(p.a - ref.a) < 1e-3, "A = \(p.a), reference \(ref.a)")
        #expect(abs(p.b - ref.b) < 1e-3, "B = \(p.b), reference \(ref.b)")
        #expect(p.a < 0)  // larger margin -> higher probability
    }
}
