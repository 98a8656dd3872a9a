import Foundation

/// Platt scaling: `P(positive | f) = 1 / (1 + exp(A f + B))`, fitted by the Newton method with backtracking of
/// Lin, Lin & Weng (2007, "A note on Platt's probabilistic outputs for support vector machines"), with Platt's
/// prior-corrected targets `(N+ + 1)/(N+ + 2)` and `1/(N- + 2)`. Fit it on held-out decision values, never on the
/// training set (the margins of training samples are biased).
public struct PlattScaling: Sendable, Codable, Equatable {
    public var a: Double
    public var b: Double

    public init(a: Double, b: Double) {
        self.a = a
        self.b = b
    }

    public func probability(_ decision: Double) -> Double {
        let f = decision * a + b
        // Stable in both directions.
        return f >= 0 ? exp(-f) / (1 + exp(-f)) : 1 / (1 + exp(f))
    }

    public static func fit(decisionValues: [Double], isPositive: [Bool]) throws -> PlattScaling {
        guard decisionValues.count == isPositive.count else {
            throw ClassifyError.countMismatch(what: "Platt labels", expected: decisionValues.count, got: isPositive.count)
        }
        let dec = decisionValues
        let prior1 = Double(isPositive.lazy.filter { $0 }.count)
        let prior0 = Double(isPositive.count) - prior1
        guard prior1 > 0, prior0 > 0 else {
            throw ClassifyError.calibrationNeedsBothClasses(positives: Int(prior1), negatives: Int(prior0))
        }
        if let bad = dec.firstIndex(where: { !$0.isFinite }) {
            throw ClassifyError.nonFiniteValue(row: bad, column: 0)
        }
        let maxIter = 100, minStep = 1e-10, sigma = 1e-12, eps = 1e-5
        let hi = (prior1 + 1) / (prior1 + 2), lo = 1 / (prior0 + 2)
        let t = isPositive.map { $0 ? hi : lo }
        var a = 0.0
        var b = log((prior0 + 1) / (prior1 + 1))

        func objective(_ a: Double, _ b: Double) -> Double {
            var f = 0.0
            for i in dec.indices {
                let z = dec[i] * a + b
                f += z >= 0 ? t[i] * z + log1p(exp(-z)) : (t[i] - 1) * z + log1p(exp(z))
            }
            return f
        }
        var fval = objective(a, b)
        for _ in 0..<maxIter {
            var h11 = sigma, h22 = sigma, h21 = 0.0, g1 = 0.0, g2 = 0.0
            for i in dec.indices {
                let z = dec[i] * a + b
                let p: Double, q: Double
                if z >= 0 {
                    p = exp(-z) / (1 + exp(-z))
                    q = 1 / (1 + exp(-z))
                } else {
                    p = 1 / (1 + exp(z))
                    q = exp(z) / (1 + exp(z))
                }
                let d2 = p * q
                h11 += dec[i] * dec[i] * d2
                h22 += d2
                h21 += dec[i] * d2
                let d1 = t[i] - p
                g1 += dec[i] * d1
                g2 += d1
            }
            if abs(g1) < eps && abs(g2) < eps { break }
            let det = h11 * h22 - h21 * h21
            let dA = -(h22 * g1 - h21 * g2) / det
            let dB = -(-h21 * g1 + h11 * g2) / det
            let gd = g1 * dA + g2 * dB
            var step = 1.0
            while step >= minStep {
                let na = a + step * dA, nb = b + step * dB
                let nf = objective(na, nb)
                if nf < fval + 1e-4 * step * gd {
                    a = na
                    b = nb
                    fval = nf
                    break
                }
                step /= 2
            }
            if step < minStep { break }
        }
        return PlattScaling(a: a, b: b)
    }
}
