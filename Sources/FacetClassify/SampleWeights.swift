/// Sample weights for re-weighting training data by group (e.g. a demographic group per training image).
public enum SampleWeights {
    /// scikit-learn's "balanced" rule applied to groups: `w_i = n / (k * n_g(i))`, so every group carries the same
    /// total weight `n / k` and the weights average 1. Samples without a group (nil) get `unlabelledWeight`
    /// (default 1); they are not counted in n or k.
    public static func balanced(groups: [String?], unlabelledWeight: Double = 1) throws -> [Double] {
        guard unlabelledWeight.isFinite, unlabelledWeight >= 0 else {
            throw ClassifyError.invalidParameter("unlabelledWeight must be finite and >= 0, got \(unlabelledWeight)")
        }
        var counts: [String: Int] = [:]
        for g in groups { if let g { counts[g, default: 0] += 1 } }
        guard !counts.isEmpty else { throw ClassifyError.invalidParameter("no sample has a group") }
        let n = Double(counts.values.reduce(0, +)), k = Double(counts.count)
        return groups.map { g in g.map { n / (k * Double(counts[$0]!)) } ?? unlabelledWeight }
    }
}
