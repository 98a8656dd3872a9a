/// Training options for `LinearSVMTrainer`. The defaults are scikit-learn's `LinearSVC` defaults
/// (`C=1`, `loss="squared_hinge"`, `dual=True`, `fit_intercept=True`, `intercept_scaling=1`, `tol=1e-4`,
/// `max_iter=1000`), so a model trained here and one trained there solve the same problem.
public struct LinearSVMOptions: Sendable, Codable, Equatable {
    /// The loss of each binary problem; both are solved in the dual by coordinate descent.
    public enum Loss: String, Sendable, Codable {
        /// L2-regularised squared hinge loss (LIBLINEAR `L2R_L2LOSS_SVC_DUAL`, solver 1).
        case squaredHinge
        /// L2-regularised hinge loss (LIBLINEAR `L2R_L1LOSS_SVC_DUAL`, solver 3).
        case hinge
    }

    /// Penalty of the loss term. Must be > 0.
    public var c: Double
    public var loss: Loss
    /// Value of the constant feature appended to every sample, or nil for no intercept. As in LIBLINEAR
    /// (and scikit-learn's `intercept_scaling`), its weight is regularised like the others;
    /// the intercept is `bias * w[bias]`.
    public var bias: Double?
    /// LIBLINEAR's stopping tolerance `eps` (projected-gradient gap of the dual).
    public var tolerance: Double
    /// Outer-iteration cap of the dual coordinate descent. LIBLINEAR 2.3 hard-codes 1000; this value
    /// only applies to the instance-weighted solver (`WeightedDualCoordinateDescent`).
    public var maxIterations: Int
    /// Per-class weights: in the binary problem "class k vs rest", positives get `c * classWeights[k]`
    /// and negatives get `c` (LIBLINEAR's and scikit-learn's one-vs-rest semantics). Missing classes weigh 1.
    public var classWeights: [String: Double]
    /// L2-normalise every embedding before training and prediction.
    public var normalize: Bool
    /// Seed of the coordinate order (LIBLINEAR uses libc `rand()`; it is seeded with this under a lock).
    public var seed: UInt32

    public init(c: Double = 1, loss: Loss = .squaredHinge, bias: Double? = 1, tolerance: Double = 1e-4,
                maxIterations: Int = 1000, classWeights: [String: Double] = [:], normalize: Bool = true, seed: UInt32 = 1) {
        self.c = c
        self.loss = loss
        self.bias = bias
        self.tolerance = tolerance
        self.maxIterations = maxIterations
        self.classWeights = classWeights
        self.normalize = normalize
        self.seed = seed
    }

    func validate() throws {
        guard c.isFinite, c > 0 else { throw ClassifyError.invalidParameter("C must be finite and > 0, got \(c)") }
        if let b = bias, !(b.isFinite && b > 0) {
            throw ClassifyError.invalidParameter("bias must be finite and > 0 (or nil for none), got \(b)")
        }
        guard tolerance.isFinite, tolerance > 0 else {
            throw ClassifyError.invalidParameter("tolerance must be > 0, got \(tolerance)")
        }
        guard maxIterations > 0 else { throw ClassifyError.invalidParameter("maxIterations must be > 0") }
        for (k, w) in classWeights where !(w.isFinite && w > 0) {
            throw ClassifyError.invalidParameter("class weight of '\(k)' must be finite and > 0, got \(w)")
        }
    }
}
