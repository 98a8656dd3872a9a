// FacetEval: LFW protocol, verification and identification metrics, fairness, HTML/SVG report.

/// Every way an evaluation input can be wrong. Messages name the file and line where there is one.
public enum EvalError: Error, Equatable, CustomStringConvertible {
    case pairsSyntax(file: String, line: Int, message: String)
    case countMismatch(what: String, expected: Int, got: Int)
    case empty(String)
    case nonFiniteScore(index: Int)
    case noGenuinePairs
    case noImpostorPairs
    case invalidParameter(String)
    case labelsFormat(file: String, line: Int?, message: String)
    case io(path: String, message: String)

    public var description: String {
        switch self {
        case let .pairsSyntax(f, l, m): return "\(f):\(l): \(m)"
        case let .countMismatch(w, e, g): return "\(w): expected \(e), got \(g)"
        case .empty(let w): return "\(w) is empty"
        case .nonFiniteScore(let i): return "score \(i) is not finite"
        case .noGenuinePairs: return "no genuine (same-identity) pairs"
        case .noImpostorPairs: return "no impostor (different-identity) pairs"
        case .invalidParameter(let m): return "invalid parameter: \(m)"
        case let .labelsFormat(f, l, m): return "\(f)\(l.map { ":\($0)" } ?? ""): \(m)"
        case let .io(p, m): return "\(p): \(m)"
        }
    }
}
