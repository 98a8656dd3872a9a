import FacetMasking
import Foundation

/// Which of the per-group unmasking heads may be applied to a person, so that no head ever saw the person it is
/// applied to: people in View 2's pairs file belong to their fold(s), everyone else to the pseudo-fold
/// `stableHash(name) % folds`; fold f is in group `f % groups` (groups = folds: one head per fold; 2: two halves).
/// Head g is trained on the people none of whose folds is in group g and applied to the people of group g
/// (the lowest group when a person is in several).
public struct HeadFolds: Sendable {
    public let foldCount: Int
    public let groups: Int
    public let pairFolds: [String: Set<Int>]

    public init(pairs: LFWPairs, groups: Int) {
        foldCount = max(pairs.foldCount, 1)
        self.groups = min(max(groups, 1), foldCount)
        var f: [String: Set<Int>] = [:]
        for p in pairs.pairs {
            f[p.first.name, default: []].insert(p.fold)
            f[p.second.name, default: []].insert(p.fold)
        }
        pairFolds = f
    }

    public func folds(_ person: String) -> Set<Int> {
        pairFolds[person] ?? [Int(stableHash(person) % UInt64(foldCount))]
    }

    /// The groups of `person` (head g must never have seen a person whose groups contain g).
    public func groups(_ person: String) -> Set<Int> { Set(folds(person).map { $0 % groups }) }

    /// The head to apply to `person`'s images.
    public func head(for person: String) -> Int { groups(person).min()! }

    public static func fileName(fold: Int) -> String { "unmasking-head-fold-\(fold).json" }
}

/// `facet eval lfw --fold-heads DIR`: the mask-aware embedding of each image is the unmasking head of its person's
/// fold (`HeadFolds`), applied when the mask detector calls the face masked (as `MaskAwareMatcher` does).
public struct FoldHeadAdaptation: EmbeddingAdaptation {
    public let heads: [UnmaskingHead]
    public let folds: HeadFolds
    public let maskThreshold: Double

    /// Loads `unmasking-head-fold-0.json`, `-1`, … (as many as there are, at most the number of folds): their count
    /// is the number of groups.
    public init(directory: URL, pairs: LFWPairs, maskThreshold: Double) throws {
        var loaded: [UnmaskingHead] = []
        while loaded.count < max(pairs.foldCount, 1) {
            let url = directory.appendingPathComponent(HeadFolds.fileName(fold: loaded.count))
            guard FileManager.default.fileExists(atPath: url.path) else { break }
            loaded.append(try UnmaskingHead(contentsOf: url))
        }
        guard !loaded.isEmpty else { throw EvalError.invalidParameter("no \(HeadFolds.fileName(fold: 0)) in \(directory.path)") }
        heads = loaded
        folds = HeadFolds(pairs: pairs, groups: loaded.count)
        self.maskThreshold = maskThreshold
    }

    public var name: String {
        "\(heads.count) unmasking heads, each trained without the people of the View 2 folds it is applied to (facet mask-heads --groups \(heads.count)), "
            + "applied to faces the mask detector calls masked; per-comparison thresholds"
    }

    public func adapt(_ embedding: [Float], maskProbability: Double?) throws -> [Float] { embedding }

    public func adapt(_ embedding: [Float], maskProbability: Double?, image: LFWImage) throws -> [Float] {
        guard let p = maskProbability, p >= maskThreshold else { return embedding }
        let head = heads[folds.head(for: image.name)]
        guard head.inputDimension == embedding.count else { return embedding }
        return head.apply(embedding)
    }
}

