/// Dual coordinate descent for the L2-regularised (squared) hinge-loss SVM with a penalty `C_i` per sample.
///
/// Debian's LIBLINEAR 2.3 has no per-instance weights (those live in the separate "liblinear-weights" fork,
/// which scikit-learn vendors). Duplicating or resampling rows is not equivalent, so when sample weights are
/// given, Facet solves the same dual problem itself, with the same algorithm as LIBLINEAR's
/// `solve_l2r_l1l2_svc` (Hsieh et al., ICML 2008: random permutation each outer iteration, shrinking with
/// PGmax/PGmin, stop when `PGmax - PGmin <= eps`) and the per-instance bounds of liblinear-weights:
/// squared hinge: `D_ii = 1/(2 C_i)`, `U_i = ∞`; hinge: `D_ii = 0`, `U_i = C_i`.
/// It is checked against scikit-learn's `LinearSVC.fit(..., sample_weight=)` by a golden test, and against
/// LIBLINEAR itself with uniform weights.
struct WeightedDualCoordinateDescent {
    var loss: LinearSVMOptions.Loss
    var tolerance: Double
    var maxIterations: Int

    /// Solves one binary problem. Rows are dense; `bias` (if any) is appended as a constant feature.
    /// Returns (weights, intercept, outer iterations).
    func solve(rows: [[Double]], dimension: Int, positive: [Bool], perSampleC: [Double], bias: Double?,
               seed: UInt32) -> (weights: [Double], intercept: Double, iterations: Int) {
        let l = rows.count
        let n = dimension + (bias != nil ? 1 : 0)
        var x = [Double](repeating: 0, count: l * n)
        for i in 0..<l {
            for j in 0..<dimension { x[i * n + j] = rows[i][j] }
            if let b = bias { x[i * n + dimension] = b }
        }
        var w = [Double](repeating: 0, count: n)
        var alpha = [Double](repeating: 0, count: l)
        var diag = [Double](repeating: 0, count: l)
        var upper = [Double](repeating: 0, count: l)
        var qd = [Double](repeating: 0, count: l)
        let y: [Double] = positive.map { $0 ? 1 : -1 }
        var index = Array(0..<l)
        for i in 0..<l {
            switch loss {
            case .squaredHinge:
                diag[i] = 0.5 / perSampleC[i]
                upper[i] = .infinity
            case .hinge:
                diag[i] = 0
                upper[i] = perSampleC[i]
            }
            var s = 0.0
            for j in 0..<n { s += x[i * n + j] * x[i * n + j] }
            qd[i] = diag[i] + s
        }
        var rng = SplitMix64(seed: UInt64(seed))
        var activeSize = l
        var pgMaxOld = Double.infinity
        var pgMinOld = -Double.infinity
        var iter = 0
        x.withUnsafeBufferPointer { xp in
            while iter < maxIterations {
                var pgMaxNew = -Double.infinity
                var pgMinNew = Double.infinity
                for i in 0..<activeSize {
                    let j = i + Int(rng.next() % UInt64(activeSize - i))
                    index.swapAt(i, j)
                }
                var s = 0
                while s < activeSize {
                    let i = index[s]
                    let row = xp.baseAddress! + i * n
                    var dot = 0.0
                    for j in 0..<n { dot += w[j] * row[j] }
                    var g = y[i] * dot - 1
                    let c = upper[i]
                    g += alpha[i] * diag[i]
                    var pg = 0.0
                    if alpha[i] == 0 {
                        if g > pgMaxOld {
                            activeSize -= 1
                            index.swapAt(s, activeSize)
                            continue
                        } else if g < 0 {
                            pg = g
                        }
                    } else if alpha[i] == c {
                        if g < pgMinOld {
                            activeSize -= 1
                            index.swapAt(s, activeSize)
                            continue
                        } else if g > 0 {
                            pg = g
                        }
                    } else {
                        pg = g
                    }
                    pgMaxNew = max(pgMaxNew, pg)
                    pgMinNew = min(pgMinNew, pg)
                    if abs(pg) > 1e-12 {
                        let old = alpha[i]
                        alpha[i] = min(max(alpha[i] - g / qd[i], 0), c)
                        let d = (alpha[i] - old) * y[i]
                        for j in 0..<n { w[j] += d * row[j] }
                    }
                    s += 1
                }
                iter += 1
                if pgMaxNew - pgMinNew <= tolerance {
                    if activeSize == l { break }
                    activeSize = l
                    pgMaxOld = .infinity
                    pgMinOld = -.infinity
                    continue
                }
                pgMaxOld = pgMaxNew
                pgMinOld = pgMinNew
                if pgMaxOld <= 0 { pgMaxOld = .infinity }
                if pgMinOld >= 0 { pgMinOld = -.infinity }
            }
        }
        let intercept = bias.map { w[dimension] * $0 } ?? 0
        return (Array(w[0..<dimension]), intercept, iter)
    }
}

/// Small deterministic generator (SplitMix64) for the coordinate order.
struct SplitMix64 {
    private var state: UInt64
    init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
