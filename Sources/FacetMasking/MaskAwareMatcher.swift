import FacetFace
import FacetImaging
import Foundation

/// What mask-aware matching knows about one face.
public struct MaskAwareFace: Sendable, Hashable {
    /// Probability that the face wears a mask (`MaskDetector`), in [0, 1].
    public var maskProbability: Double
    /// `maskProbability >= detector.threshold`.
    public var masked: Bool
    /// The embedding to match: the frozen embedding (averaged with its mirror image's when the matcher does
    /// `mirrorAverage`), through the unmasking head for a masked face (when a head is loaded). Unit length.
    public var embedding: [Float]
    /// The frozen (dlib) embedding, unit length.
    public var frozenEmbedding: [Float]
    /// Whether `embedding` came from the head.
    public var adapted: Bool

    public init(maskProbability: Double, masked: Bool, embedding: [Float], frozenEmbedding: [Float], adapted: Bool? = nil) {
        self.maskProbability = maskProbability; self.masked = masked
        self.embedding = embedding; self.frozenEmbedding = frozenEmbedding
        self.adapted = adapted ?? (embedding != frozenEmbedding)
    }
}

/// Mask detection and the unmasking head together, per face.
public struct MaskAwareMatcher: Sendable {
    public let detector: MaskDetector
    public let head: UnmaskingHead?
    /// The descriptor network that made the embeddings; a version-4 detector reads its activations (nil: the
    /// detector must not need it).
    public let network: (any FaceDescriptorModel)?
    /// Match on the normalised mean of each face's embedding and its mirror image's (test-time augmentation; the
    /// head, for masked faces, takes the mean). One more pass through `network` per face (which must be given). The
    /// mask detector still reads the frozen embedding it was trained on. On LFW View 2 it lowered FNMR at FMR 1e-3
    /// in all three conditions (docs/masks.md, session 9); the bundled thresholds (comparison-thresholds-v3.json,
    /// periocular-fusion-v2.json) are calibrated for it (and for `bundledMaskedNoseY`), so `bundled` turns it on.
    public let mirrorAverage: Bool
    /// Match a face called masked on a chip cut again with its nose point placed from the eyes at this template
    /// height (`ChipDetails.maskedLandmarks`; nil: the chip of dlib's five landmarks). One more pass through `network`
    /// per masked face; needs its image and landmarks (`process(chips:embeddings:activations:recut:)`).
    /// The mask detector still reads the standard chip. docs/masks.md, session 11.
    public let maskedNoseY: Double?

    public init(detector: MaskDetector, head: UnmaskingHead?, network: (any FaceDescriptorModel)? = nil, mirrorAverage: Bool = false,
                maskedNoseY: Double? = nil) {
        self.detector = detector; self.head = head; self.network = network; self.mirrorAverage = mirrorAverage
        self.maskedNoseY = maskedNoseY
    }

    /// The bundled detector and head (`MaskDetector.bundled()`, `UnmaskingHead.bundled()`) for embeddings of `network`,
    /// with mirror averaging (what the bundled thresholds are calibrated for).
    /// The masked-face alignment the bundled matcher uses (`maskedNoseY`): chosen on LFW people outside View 2's
    /// pairs with TRAIN-family masks (lowest FNMR at FMR 1e-2 of masked vs unmasked photos among 0.42–0.62;
    /// docs/masks.md, session 11).
    public static let bundledMaskedNoseY = 0.52

    /// The bundled detector and head with mirror averaging and masked-face alignment at `maskedNoseY` (nil: off).
    public static func bundled(withHead: Bool = true, network: any FaceDescriptorModel,
                               maskedNoseY: Double? = bundledMaskedNoseY) throws -> MaskAwareMatcher {
        MaskAwareMatcher(detector: try MaskDetector.bundled(), head: withHead ? try UnmaskingHead.bundled() : nil, network: network,
                         mirrorAverage: true, maskedNoseY: maskedNoseY)
    }

    /// The normalised mean of each chip's unit-length embedding and the mirrored chip's: `embeddings[i]` is the
    /// chip's when the caller has it (one pass of `model` per chip, for the mirror images); nil computes both in one
    /// call (chips and their mirror images in the same mini-batches; what `PeriocularFusion` does for painted chips).
    public static func mirrorAveraged(chips: [RGBImage], embeddings given: [[Float]]? = nil, model: any FaceDescriptorModel) throws -> [[Float]] {
        precondition(given == nil || given!.count == chips.count, "mirrorAveraged: \(chips.count) chips, \(given!.count) embeddings")
        guard !chips.isEmpty else { return [] }
        let embeddings: [[Float]], mirrored: [[Float]]
        if let given {
            embeddings = given
            mirrored = try model.descriptors(for: chips.map(MaskDetector.mirrored), jitter: 0).map(l2Normalized)
        } else {
            let both = try model.descriptors(for: chips + chips.map(MaskDetector.mirrored), jitter: 0).map(l2Normalized)
            embeddings = Array(both[..<chips.count])
            mirrored = Array(both[chips.count...])
        }
        return try zip(embeddings, mirrored).map { e, m in
            guard e.count == m.count else {
                throw MaskingError.invalidArgument("mirror averaging: embedding \(e.count)-D, \(model.modelName) gives \(m.count)-D")
            }
            return l2Normalized(zip(e, m).map { $0 + $1 })
        }
    }

    /// From faces' aligned 150×150 chips and their unit-length (frozen) embeddings; `activations`: the network's
    /// activations at `detector.networkBlock` from the pass that made the embeddings (nil: a version-4 detector
    /// computes them).
    public func process(chips: [RGBImage], embeddings: [[Float]], activations: [[Float]]? = nil) throws -> [MaskAwareFace] {
        try process(chips: chips, embeddings: embeddings, activations: activations, recut: nil).faces
    }

    /// The image and five landmarks face `i` was cut from (nil: not available, the standard chip is kept).
    public typealias FaceSource = (Int) throws -> (image: RGBImage, landmarks: [LandmarkPoint])?

    /// Faces with their standard `chips` and unit-length (frozen) `embeddings`. With `maskedNoseY` set, a face called
    /// masked is matched on a chip cut again from `ChipDetails.maskedLandmarks` of what `recut` gives for it (asked only
    /// for those faces); `matchingChips` are the chips the matching embeddings come from (for the periocular embedding).
    public func process(chips: [RGBImage], embeddings: [[Float]], activations: [[Float]]? = nil,
                        recut: FaceSource?) throws -> (faces: [MaskAwareFace], matchingChips: [RGBImage]) {
        let probabilities = try detector.probabilities(chips: chips, embeddings: embeddings, network: network, activations: activations)
        let masked = probabilities.map { $0 >= detector.threshold }
        var matchingChips = chips, start = embeddings
        if let noseY = maskedNoseY, let recut {
            guard let network else { throw MaskingError.invalidArgument("masked alignment needs the descriptor network") }
            var again: [Int] = []
            for i in chips.indices where masked[i] {
                guard let source = try recut(i), source.landmarks.count == 5 else { continue }
                matchingChips[i] = FaceChip.extract(source.image, details: ChipDetails.forFace(
                    landmarks: ChipDetails.maskedLandmarks(source.landmarks, noseY: noseY)))
                again.append(i)
            }
            let realigned = try network.descriptors(for: again.map { matchingChips[$0] }, jitter: 0).map(l2Normalized)
            for (k, i) in again.enumerated() { start[i] = realigned[k] }
        }
        var matching = start
        if mirrorAverage {
            guard let network else { throw MaskingError.invalidArgument("mirror averaging needs the descriptor network") }
            matching = try Self.mirrorAveraged(chips: matchingChips, embeddings: start, model: network)
        }
        let faces = embeddings.indices.map { i in
            var out = matching[i], headApplied = false
            if masked[i], let head, head.inputDimension == out.count { out = head.apply(out); headApplied = true }
            return MaskAwareFace(maskProbability: probabilities[i], masked: masked[i], embedding: out, frozenEmbedding: embeddings[i],
                                 adapted: headApplied)
        }
        return (faces, matchingChips)
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
/// each `FaceAnalysis` gets `maskProbability` and `masked`, and its `embedding` is the matcher's (`MaskAwareFace`:
/// averaged with the mirror image's when the matcher does that, as the bundled one does; through the head for a face
/// called masked); `rawDescriptor` stays the frozen model's. Same model name, version and dimension as the wrapped
/// embedder: mirror averaging and the head stay in the frozen embedding's space, so galleries stay comparable.
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
        let faces: [FaceAnalysis], chips: [RGBImage], activations: [[Float]]?
        if let dlib = base as? DlibFaceEmbedder, let block = matcher.detector.networkBlock,
           dlib.descriptor.modelName == matcher.detector.embeddingModel,
           matcher.network.map({ $0 as AnyObject === dlib.descriptor as AnyObject }) == true {
            // The detector reads the activations of the pass that made the embeddings: one network pass less per face.
            (faces, chips, activations) = try dlib.analyze(image, upsample: upsample, jitter: jitter, capturingBlock: block)
        } else {
            faces = try base.analyze(image, upsample: upsample, jitter: jitter)
            chips = faces.map { FaceChip.extract(image, details: $0.chip) }
            activations = nil
        }
        let (aware, matchingChips) = try matcher.process(chips: chips, embeddings: faces.map(\.embedding), activations: activations,
                                                          recut: { (image, faces[$0].landmarks) })
        let periocularEmbeddings = try periocular.map { try $0.fusion.embeddings(chips: matchingChips, model: $0.model) }
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
