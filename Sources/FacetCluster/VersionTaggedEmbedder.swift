import FacetFace
import FacetImaging

/// An ``Embedder`` announced under another model version (`modelVersionTag` in an embedder's configuration).
///
/// Templates carry the version of the model that made them, and a cluster queries one active version; a real
/// model upgrade brings a new network, but the side-by-side re-enrolment and switch-over can be exercised (and
/// tested) with the same network under a second tag.
public struct VersionTaggedEmbedder: Embedder {
    public let base: any Embedder
    public let modelVersion: String
    public init(_ base: any Embedder, version: String) {
        self.base = base
        self.modelVersion = version
    }
    public var modelName: String { base.modelName }
    public var dimension: Int { base.dimension }
    public func analyze(_ image: RGBImage, upsample: Int, jitter: Int) throws -> [FaceAnalysis] {
        try base.analyze(image, upsample: upsample, jitter: jitter)
    }
}
