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
    /// Periocular fusion (`periocularFusion` in the configuration) with its thresholds for fused distances.
    public let fusion: PeriocularFusion?

    public init(_ source: Source, fusion: PeriocularFusion? = nil) { self.source = source; self.fusion = fusion }

    /// From the configuration: `verifyThreshold` (flat) wins; otherwise `comparisonThresholds` ("bundled", the
    /// default, or a file). A file that cannot be read is a configuration error, not a silent fallback.
    public init(configuration: NodeConfiguration) throws {
        if let name = configuration.periocularFusion {
            let f: PeriocularFusion
            do {
                f = try PeriocularFusion.named(name)
            } catch {
                throw ClusterError.configuration("cannot load the periocular fusion file \(name): \(error)")
            }
            guard f.thresholds != nil else {
                throw ClusterError.configuration("the periocular fusion file \(name) has no thresholds (facet mask-train --periocular calibrates them)")
            }
            fusion = f
        } else {
            fusion = nil
        }
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

    /// The largest matching fused distance for this comparison type: the fusion file's calibrated threshold (a flat
    /// `verifyThreshold` still wins: the operator asked for one rule). nil without fusion.
    public func maxFusedDistance(probeMasked: Bool, referenceMasked: Bool) -> Float? {
        guard let table = fusion?.thresholds else { return nil }
        if case .flat(let t) = source { return t }
        return Float(table.maxDistance(for: ComparisonKind(firstMasked: probeMasked, secondMasked: referenceMasked)))
    }

    /// For logs and status: "per-type (FMR 0.001: unmasked-unmasked 0.385, …)" or "flat 0.42".
    public var summary: String {
        switch source {
        case .flat(let t): return "flat \(t)"
        case .perType(let table):
            let kinds = ComparisonKind.allCases.map { "\($0.rawValue) \(String(format: "%.3f", table.maxDistance(for: $0)))" }
            var text = "per-type (FMR \(table.targetFMR): \(kinds.joined(separator: ", ")))"
            if let f = fusion?.thresholds {
                text += "; periocular-fused " + [ComparisonKind.maskedUnmasked, .maskedMasked].map { "\($0.rawValue) \(String(format: "%.3f", f.maxDistance(for: $0)))" }.joined(separator: ", ")
            }
            return text
        }
    }
}
