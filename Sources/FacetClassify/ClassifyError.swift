// FacetClassify: one-vs-rest linear SVMs through LIBLINEAR, class and sample weights, calibration.

/// Every way training, prediction, calibration or model I/O can fail. Messages name the offending value.
public enum ClassifyError: Error, Equatable, CustomStringConvertible {
    case emptyTrainingSet
    case singleClass(String)
    case countMismatch(what: String, expected: Int, got: Int)
    case dimensionMismatch(expected: Int, got: Int, row: Int?)
    case nonFiniteValue(row: Int, column: Int)
    case zeroVector(row: Int)
    case invalidParameter(String)
    case solverRejected(String)
    case unknownLabel(String)
    case notCalibrated
    case calibrationNeedsBothClasses(positives: Int, negatives: Int)
    case modelFormat(String)
    case io(path: String, message: String)

    public var description: String {
        switch self {
        case .emptyTrainingSet: return "training set is empty"
        case .singleClass(let l): return "training set has a single class (\(l)); one-vs-rest needs at least two"
        case let .countMismatch(what, e, g): return "\(what): expected \(e) entries, got \(g)"
        case let .dimensionMismatch(e, g, row):
            return "dimension mismatch: expected \(e), got \(g)" + (row.map { " (row \($0))" } ?? "")
        case let .nonFiniteValue(r, c): return "non-finite value at row \(r), column \(c)"
        case .zeroVector(let r): return "row \(r) is the zero vector and cannot be L2-normalised"
        case .invalidParameter(let m): return "invalid parameter: \(m)"
        case .solverRejected(let m): return "LIBLINEAR rejected the parameters: \(m)"
        case .unknownLabel(let l): return "unknown label '\(l)'"
        case .notCalibrated: return "model has no Platt calibration; call calibrated(on:labels:) first"
        case let .calibrationNeedsBothClasses(p, n):
            return "calibration needs positive and negative decision values (got \(p) positive, \(n) negative)"
        case .modelFormat(let m): return "bad model file: \(m)"
        case let .io(p, m): return "\(p): \(m)"
        }
    }
}
