import Foundation

/// Which kinds of face a 1:1 comparison involves (the wire's `ComparisonType`).
public enum ComparisonKind: String, Codable, CaseIterable, Sendable {
    case unmaskedUnmasked = "unmasked-unmasked"
    case maskedUnmasked = "masked-unmasked"
    case maskedMasked = "masked-masked"

    /// The kind of a comparison between two faces; order does not matter.
    public init(firstMasked: Bool, secondMasked: Bool) {
        switch (firstMasked, secondMasked) {
        case (false, false): self = .unmaskedUnmasked
        case (true, true): self = .maskedMasked
        default: self = .maskedUnmasked
        }
    }
}

/// Decision thresholds per comparison kind, each calibrated on impostor comparisons of that kind at one target
/// false-match rate. Distances are Euclidean between unit-length embeddings (FacetEval's score is −distance);
/// a comparison matches when `distance <= maxDistance(for: kind)`.
///
/// Saved as versioned JSON (`format` = `facet-comparison-thresholds`, `version` = 1), with the embedding it was
/// calibrated on (`embedding`: e.g. `frozen` or `unmasking-head-v1`), since thresholds do not carry over between
/// embeddings.
public struct ComparisonThresholds: Codable, Sendable, Equatable, VersionedModelFile {
    public static let formatName = "facet-comparison-thresholds"
    public static let currentVersion = 1

    public var format: String = ComparisonThresholds.formatName
    public var version: Int = ComparisonThresholds.currentVersion
    /// Which embedding the distances were measured on.
    public var embedding: String
    public var targetFMR: Double
    /// Largest matching distance per `ComparisonKind.rawValue`.
    public var maxDistance: [String: Double]
    /// Impostor comparisons each threshold was calibrated on, per kind.
    public var impostorCounts: [String: Int] = [:]
    public var notes: [String: String] = [:]

    public init(embedding: String, targetFMR: Double, maxDistance: [ComparisonKind: Double],
                impostorCounts: [ComparisonKind: Int] = [:], notes: [String: String] = [:]) {
        self.embedding = embedding
        self.targetFMR = targetFMR
        self.maxDistance = Dictionary(uniqueKeysWithValues: maxDistance.map { ($0.key.rawValue, $0.value) })
        self.impostorCounts = Dictionary(uniqueKeysWithValues: impostorCounts.map { ($0.key.rawValue, $0.value) })
        self.notes = notes
    }

    /// The threshold for `kind`; a kind that was not calibrated falls back to the unmasked–unmasked one.
    public func maxDistance(for kind: ComparisonKind) -> Double {
        maxDistance[kind.rawValue] ?? maxDistance[ComparisonKind.unmaskedUnmasked.rawValue] ?? 0
    }

    public func isMatch(distance: Double, kind: ComparisonKind) -> Bool { distance <= maxDistance(for: kind) }

    /// The largest distance `t` such that the fraction of impostor distances `<= t` does not exceed `targetFMR`:
    /// halfway between the k-th and (k+1)-th smallest impostor distance, k = ⌊targetFMR · n⌋ (so exactly k impostors
    /// match). With k = 0 it lies just under the smallest impostor distance. Empty input → 0 (nothing matches).
    public static func threshold(impostorDistances: [Double], targetFMR: Double) -> Double {
        let d = impostorDistances.filter(\.isFinite).sorted()
        guard !d.isEmpty else { return 0 }
        let k = min(max(Int((max(targetFMR, 0) * Double(d.count)).rounded(.down)), 0), d.count)
        if k == d.count { return d[d.count - 1] }
        if k == 0 { return max(d[0] - 1e-6, 0) }
        // d[k-1] matches, d[k] must not; ties at d[k-1] == d[k] force going lower.
        var j = k
        while j > 0 && d[j - 1] == d[k] { j -= 1 }
        if j == 0 { return max(d[0] - 1e-6, 0) }
        return (d[j - 1] + d[k]) / 2
    }

    /// Calibrates every kind present in `impostorDistances`.
    public static func calibrate(impostorDistances: [ComparisonKind: [Double]], targetFMR: Double,
                                 embedding: String, notes: [String: String] = [:]) -> ComparisonThresholds {
        var t: [ComparisonKind: Double] = [:], n: [ComparisonKind: Int] = [:]
        for (kind, d) in impostorDistances where !d.isEmpty {
            t[kind] = threshold(impostorDistances: d, targetFMR: targetFMR)
            n[kind] = d.count
        }
        return ComparisonThresholds(embedding: embedding, targetFMR: targetFMR, maxDistance: t, impostorCounts: n, notes: notes)
    }

    public init(contentsOf url: URL) throws {
        let model = try Self.read(from: url, kind: "thresholds")
        guard !model.maxDistance.isEmpty, model.maxDistance.values.allSatisfy({ $0.isFinite && $0 >= 0 }),
              model.maxDistance.keys.allSatisfy({ ComparisonKind(rawValue: $0) != nil }),
              model.targetFMR.isFinite, model.targetFMR >= 0, model.targetFMR <= 1 else {
            throw MaskingError.resourceUnreadable(url.path, reason: "thresholds are empty, unknown kinds or not finite")
        }
        self = model
    }

    public func write(to url: URL) throws { try writeJSON(to: url) }

    /// The file of the bundled thresholds: version 2 is calibrated for the bundled `MaskAwareMatcher` (mirror-averaged
    /// embeddings, the head on faces called masked); version 1 (before session 9) for embeddings without mirror averaging.
    public static let bundledFileName = "comparison-thresholds-v3.json"

    /// The thresholds bundled with FacetMasking (`Resources/comparison-thresholds-v3.json`, see docs/masks.md).
    public static func bundled() throws -> ComparisonThresholds {
        try ComparisonThresholds(contentsOf: MaskTemplateLibrary.resourceDirectory().appendingPathComponent(bundledFileName))
    }
}

/// Euclidean distance between two embeddings (FacetEval's score is its negative).
public func unitDistance(_ a: [Float], _ b: [Float]) -> Double {
    precondition(a.count == b.count, "unitDistance: dimensions \(a.count) and \(b.count)")
    var s: Float = 0
    a.withUnsafeBufferPointer { x in b.withUnsafeBufferPointer { y in
        for i in 0..<x.count { let d = x[i] - y[i]; s += d * d }
    } }
    return Double(s).squareRoot()
}
