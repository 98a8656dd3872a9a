import FacetMasking
import Foundation

/// How the coordinator decides "match" when a request names no threshold: one threshold per comparison type
/// (unmasked–unmasked, masked–unmasked, masked–masked), each calibrated at the same false-match rate, because a
/// masked face lies farther from its own unmasked photos *and* from other people's (docs/masks.md), or one flat
/// threshold when the operator sets `verifyThreshold`.
public struct DecisionThresholds: Sendable, Equatable {
    public enum Source: Sendable, Equatable {
        case perType(ComparisonThresholds)
        case flat(Float)
    }

    public let source: Source

    public init(_ source: Source) { self.source = source }

    /// From the configuration: `verifyThreshold` (flat) wins; otherwise `comparisonThresholds` ("bundled", the
    /// default, or a file). A file that cannot be read is a configuration error, not a silent fallback.
    public init(configuration: NodeConfiguration) throws {
        if let flat = configuration.verifyThreshold {
            guard flat.isFinite, flat > 0 else { throw ClusterError.configuration("verifyThreshold must be a positive distance") }
            source = .flat(flat)
            return
        }
        let name = configuration.comparisonThresholds ?? "bundled"
        do {
            let table = name == "bundled" ? try ComparisonThresholds.bundled()
                : try ComparisonThresholds(contentsOf: URL(fileURLWithPath: name))
            source = .perType(table)
        } catch {
            throw ClusterError.configuration("cannot load the comparison thresholds \(name): \(error)")
        }
    }

    /// The largest matching distance for a comparison between a probe and a reference with these mask states.
    public func maxDistance(probeMasked: Bool, referenceMasked: Bool) -> Float {
        switch source {
        case .flat(let t): t
        case .perType(let table): Float(table.maxDistance(for: ComparisonKind(firstMasked: probeMasked, secondMasked: referenceMasked)))
        }
    }

    /// For logs and status: "per-type (FMR 0.001: unmasked-unmasked 0.385, …)" or "flat 0.42".
    public var summary: String {
        switch source {
        case .flat(let t): return "flat \(t)"
        case .perType(let table):
            let kinds = ComparisonKind.allCases.map { "\($0.rawValue) \(String(format: "%.3f", table.maxDistance(for: $0)))" }
            return "per-type (FMR \(table.targetFMR): \(kinds.joined(separator: ", ")))"
        }
    }
}
