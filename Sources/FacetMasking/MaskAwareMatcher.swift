import FacetFace
import FacetImaging
import Foundation

/// What mask-aware matching knows about one face.
public struct MaskAwareFace: Sendable, Hashable {
    /// Probability that the face wears a mask (`MaskDetector`), in [0, 1].
    public var maskProbability: Double
    /// `maskProbability >= detector.threshold`.
    public var masked: Bool
    /// The embedding to match: the unmasking head's output for a masked face (when a head is loaded), else the
    /// frozen embedding. Unit length.
    public var embedding: [Float]
    /// The frozen (dlib) embedding, unit length.
    public var frozenEmbedding: [Float]
    /// Whether `embedding` came from the head.
    public var adapted: Bool { embedding != frozenEmbedding }

    public init(maskProbability: Double, masked: Bool, embedding: [Float], frozenEmbedding: [Float]) {
        self.maskProbability = maskProbability; self.masked = masked
        self.embedding = embedding; self.frozenEmbedding = frozenEmbedding
    }
}

/// Mask detection and the unmasking head together, per face.
public struct MaskAwareMatcher: Sendable {
    public let detector: MaskDetector
    public let head: UnmaskingHead?
    /// The descriptor network that made the embeddings; a version-4 detector reads its activations (nil: the
    /// detector must not need it).
    public let network: (any FaceDescriptorModel)?

    public init(detector: MaskDetector, head: UnmaskingHead?, network: (any FaceDescriptorModel)? = nil) {
        self.detector = detector; self.head = head; self.network = network
    }

    /// The bundled detector and head (`MaskDetector.bundled()`, `UnmaskingHead.bundled()`) for embeddings of `network`.
    public static func bundled(withHead: Bool = true, network: any FaceDescriptorModel) throws -> MaskAwareMatcher {
        MaskAwareMatcher(detector: try MaskDetector.bundled(), head: withHead ? try UnmaskingHead.bundled() : nil, network: network)
    }

    /// From faces' aligned 150×150 chips and their unit-length embeddings.
    public func process(chips: [RGBImage], embeddings: [[Float]]) throws -> [MaskAwareFace] {
        let probabilities = try detector.probabilities(chips: chips, embeddings: embeddings, network: network)
        return zip(probabilities, embeddings).map { p, embedding in
            let masked = p >= detector.threshold
            var out = embedding
            if masked, let head, head.inputDimension == embedding.count { out = head.apply(embedding) }
            return MaskAwareFace(maskProbability: p, masked: masked, embedding: out, frozenEmbedding: embedding)
        }
    }

    /// From one face's aligned chip and its unit-length embedding.
    public func process(chip: RGBImage, embedding: [Float]) throws -> MaskAwareFace {
        try process(chips: [chip], embeddings: [embedding])[0]
    }

    /// For a face found in `image` by an embedder (its chip is cut again from the image).
    public func process(image: RGBImage, face: FaceAnalysis) throws -> MaskAwareFace {
        try process(chip: FaceChip.extract(image, details: face.chip), embedding: face.embedding)
    }
}

/// An `Embedder` that adds the mask score to every face and matches masked faces with the unmasking head:
/// each `FaceAnalysis` gets `maskProbability` and `masked`, and a masked face's `embedding` is the head's output
/// (`rawDescriptor` stays the frozen model's). Same model name, version and dimension as the wrapped embedder:
/// the head maps into the frozen embedding's space, so galleries stay comparable.
///
/// With `periocular` every face (masked or not: a gallery photo is compared with masked probes) also gets its
/// periocular embedding (`FaceAnalysis.periocularEmbedding`), one more descriptor pass per face.
public final class MaskAwareEmbedder: Embedder, @unchecked Sendable {   // immutable after init
    public let base: any Embedder
    public let matcher: MaskAwareMatcher
    public let periocular: (fusion: PeriocularFusion, model: any FaceDescriptorModel)?

    public init(base: any Embedder, matcher: MaskAwareMatcher,
                periocular: (fusion: PeriocularFusion, model: any FaceDescriptorModel)? = nil) {
        self.base = base; self.matcher = matcher; self.periocular = periocular
    }

    /// `base` with the bundled detector and head, for embeddings of `network`.
    public convenience init(base: any Embedder, network: any FaceDescriptorModel) throws {
        self.init(base: base, matcher: try .bundled(network: network))
    }

    public var modelName: String { base.modelName }
    public var modelVersion: String { base.modelVersion }
    public var dimension: Int { base.dimension }

    public func analyze(_ image: RGBImage, upsample: Int, jitter: Int) throws -> [FaceAnalysis] {
        let faces = try base.analyze(image, upsample: upsample, jitter: jitter)
        let chips = faces.map { FaceChip.extract(image, details: $0.chip) }
        let periocularEmbeddings = try periocular.map { try $0.fusion.embeddings(chips: chips, model: $0.model) }
        let aware = try matcher.process(chips: chips, embeddings: faces.map(\.embedding))
        return faces.enumerated().map { i, face in
            let r = aware[i]
            var f = face
            f.maskProbability = r.maskProbability
            f.masked = r.masked
            f.embedding = r.embedding
            f.periocularEmbedding = periocularEmbeddings?[i]
            return f
        }
    }
}
