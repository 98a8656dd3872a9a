import Foundation
import FacetImaging

/// One face found in an image and everything the pipeline computed for it.
public struct FaceAnalysis: Sendable, Hashable {
    /// Detector box (dlib inclusive rectangle, may extend past the image border) and confidence.
    public var detection: FaceDetection
    /// Alignment landmarks in image pixels (5 points for the dlib pipeline, dlib's order:
    /// right eye outer, right eye inner, left eye outer, left eye inner, nose base; "right" = the subject's right).
    public var landmarks: [LandmarkPoint]
    /// Where the aligned chip was cut; `chip.chipToImage` maps chip pixels back into the image.
    public var chip: ChipDetails
    /// The embedding, L2-normalised (unit length), so cosine similarity is a dot product and distance
    /// thresholds do not depend on the model's raw scale. This is what Facet stores and matches.
    public var embedding: [Float]
    /// The model's raw output. For dlib's ResNet this is exactly `compute_face_descriptor` (norm ≈ 1.3–1.6, not 1);
    /// dlib's 0.6 same-person threshold applies to distances between raw descriptors.
    public var rawDescriptor: [Float]
    /// Probability that the face wears a mask, when a mask detector ran (FacetMasking's `MaskAwareEmbedder`).
    public var maskProbability: Double?
    /// The detector's decision, when it ran.
    public var masked: Bool?
    /// Upper-face embedding (the same model on the chip with the lower face painted over; FacetMasking's
    /// `PeriocularFusion`), unit length, when the embedder was asked for it.
    public var periocularEmbedding: [Float]?

    public init(detection: FaceDetection, landmarks: [LandmarkPoint], chip: ChipDetails, embedding: [Float], rawDescriptor: [Float],
                maskProbability: Double? = nil, masked: Bool? = nil) {
        self.detection = detection; self.landmarks = landmarks; self.chip = chip
        self.embedding = embedding; self.rawDescriptor = rawDescriptor
        self.maskProbability = maskProbability; self.masked = masked
    }

    public var box: FaceRect { detection.rect }
    public var confidence: Double { detection.confidence }
}

/// From an image to its faces and their embeddings. Callers depend only on this, so a model of another
/// dimension (e.g. a 512-D ArcFace) can replace dlib's without changes elsewhere; stored embeddings carry
/// `modelName`/`modelVersion` so galleries of different models are never mixed.
public protocol Embedder: Sendable {
    var modelName: String { get }
    var modelVersion: String { get }
    /// Length of `FaceAnalysis.embedding`.
    var dimension: Int { get }
    /// All faces in `image`. `upsample`: how many times the detector doubles the image first (finds smaller faces,
    /// about 4x slower per step). `jitter`: randomly jittered copies averaged into each descriptor, as dlib's
    /// `num_jitters` (0 or 1 = none).
    func analyze(_ image: RGBImage, upsample: Int, jitter: Int) throws -> [FaceAnalysis]
}

extension Embedder {
    public func analyze(_ image: RGBImage) throws -> [FaceAnalysis] { try analyze(image, upsample: 0, jitter: 0) }
}

/// A face detector (the dlib pipeline uses `MMODFaceDetector`).
public protocol FaceDetector: Sendable {
    func detect(_ image: RGBImage, upsample: Int) throws -> [FaceDetection]
    /// Detections scoring above `adjustThreshold` (0 = the detector's own threshold; lower admits weaker ones).
    func detect(_ image: RGBImage, upsample: Int, adjustThreshold: Double) throws -> [FaceDetection]
}

extension FaceDetector {
    /// Detectors without a score threshold to lower return their usual detections above `adjustThreshold`.
    public func detect(_ image: RGBImage, upsample: Int, adjustThreshold: Double) throws -> [FaceDetection] {
        try detect(image, upsample: upsample).filter { $0.confidence > adjustThreshold }
    }
}

/// A descriptor network over aligned chips (the dlib pipeline uses `ResNetFaceDescriptor`).
public protocol FaceDescriptorModel: Sendable {
    var modelName: String { get }
    var modelVersion: String { get }
    var dimension: Int { get }
    /// Side of the square chip the network takes.
    var chipSize: Int { get }
    /// Padding used when cutting the chip (dlib: 0.25).
    var chipPadding: Double { get }
    func descriptors(for chips: [RGBImage], jitter: Int) throws -> [[Float]]
}

/// Invalid arguments to an embedder.
public struct EmbedderError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: String, Sendable { case invalidArgument }
    public let code: Code
    public let reason: String
    public init(_ code: Code, _ reason: String) { self.code = code; self.reason = reason }
    public var description: String { "EmbedderError.\(code.rawValue): \(reason)" }
}

/// dlib's face recognition pipeline in native Swift: MMOD CNN detector → 5-point shape predictor on each box →
/// `get_face_chip_details(shape, 150, 0.25)` + `extract_image_chips` → ResNet descriptor (128-D).
/// Each stage is checked against dlib by golden tests (Tests/FacetFaceTests).
public final class DlibFaceEmbedder: Embedder, @unchecked Sendable {
    // All members are immutable after init and individually thread-safe.
    public let detector: any FaceDetector
    public let predictor: ShapePredictor
    public let descriptor: any FaceDescriptorModel

    public var modelName: String { descriptor.modelName }
    public var modelVersion: String { descriptor.modelVersion }
    public var dimension: Int { descriptor.dimension }

    /// When the detector finds no face at upsample 0, search again at upsample 1 (masked faces lose the mouth and
    /// nose the MMOD detector keys on, and often score just under its threshold at the original size).
    public let retryUpsampleWhenNoFace: Bool

    /// When no detection scores above the detector's threshold, take the weak detection (score above this value)
    /// nearest the image centre instead (nil = off). Masks hide the mouth and nose MMOD keys on, and a masked face
    /// often scores just under 0; the weak box is then still a far better place for the landmarks than a fixed crop.
    /// Costs nothing: the same network pass, with a lower threshold (see `MMODFaceDetector.detect(_:upsample:adjustThreshold:)`).
    public let weakFaceThreshold: Double?

    /// The default weak-face threshold of the masked pipeline (`facet embed`, embedder nodes, `facet eval lfw`);
    /// chosen on TEST-masked LFW images that MMOD misses at 0 (docs/masks.md).
    public static let maskedWeakFaceThreshold = -0.8

    public init(detector: any FaceDetector, predictor: ShapePredictor, descriptor: any FaceDescriptorModel,
                retryUpsampleWhenNoFace: Bool = false, weakFaceThreshold: Double? = nil) {
        precondition(predictor.numParts == 5, "DlibFaceEmbedder aligns with the 5-point shape predictor")
        self.detector = detector; self.predictor = predictor; self.descriptor = descriptor
        self.retryUpsampleWhenNoFace = retryUpsampleWhenNoFace
        self.weakFaceThreshold = weakFaceThreshold.flatMap { $0.isFinite && $0 < 0 ? $0 : nil }
    }

    /// Detections above the detector's threshold at `upsample`, and (when `weakFaceThreshold` is set) the weak detection
    /// nearest the image centre, from the same network pass.
    func strongAndWeakFaces(_ image: RGBImage, upsample: Int) throws -> (strong: [FaceDetection], weak: FaceDetection?) {
        guard let weak = weakFaceThreshold else { return (try detector.detect(image, upsample: upsample), nil) }
        let all = try detector.detect(image, upsample: upsample, adjustThreshold: weak)
        let cx = Double(image.width) / 2, cy = Double(image.height) / 2
        func d(_ f: FaceDetection) -> Double {
            let x = Double(f.rect.left + f.rect.right) / 2 - cx, y = Double(f.rect.top + f.rect.bottom) / 2 - cy
            return x * x + y * y
        }
        return (all.filter { $0.confidence > 0 }, all.min(by: { d($0) != d($1) ? d($0) < d($1) : $0.confidence > $1.confidence }))
    }

    /// The detections `analyze` embeds: those above the detector's threshold at `upsample`; if none (and
    /// `retryUpsampleWhenNoFace`, from upsample 0) those at upsample 1; if still none, the weak detection nearest the
    /// centre (confidence ≤ 0 tells it apart) when `weakFaceThreshold` is set.
    public func detectFaces(_ image: RGBImage, upsample: Int) throws -> [FaceDetection] {
        let first = try strongAndWeakFaces(image, upsample: upsample)
        if !first.strong.isEmpty { return first.strong }
        var weak = first.weak
        if upsample == 0, retryUpsampleWhenNoFace {
            let second = try strongAndWeakFaces(image, upsample: 1)
            if !second.strong.isEmpty { return second.strong }
            weak = weak ?? second.weak
        }
        return weak.map { [$0] } ?? []
    }

    public static let maxUpsample = 4
    public static let maxJitter = 100

    func checkArguments(upsample: Int, jitter: Int) throws {
        guard (0...Self.maxUpsample).contains(upsample) else {
            throw EmbedderError(.invalidArgument, "upsample must be in 0...\(Self.maxUpsample), got \(upsample)")
        }
        guard (0...Self.maxJitter).contains(jitter) else {
            throw EmbedderError(.invalidArgument, "jitter must be in 0...\(Self.maxJitter), got \(jitter)")
        }
    }

    public func analyze(_ image: RGBImage, upsample: Int, jitter: Int) throws -> [FaceAnalysis] {
        try checkArguments(upsample: upsample, jitter: jitter)
        return try analyze(image, detections: try detectFaces(image, upsample: upsample), jitter: jitter)
    }

    /// `analyze(_:upsample:jitter:)` that also gives each face's aligned chip and, when the descriptor can give them
    /// from the same pass (the ResNet on its fused executor, `jitter` ≤ 1), its activations after residual block
    /// `block` (`ResNetFaceDescriptor.descriptorsAndActivations`); nil otherwise. The faces are the same either way.
    public func analyze(_ image: RGBImage, upsample: Int, jitter: Int, capturingBlock block: Int)
        throws -> (faces: [FaceAnalysis], chips: [RGBImage], activations: [[Float]]?) {
        try checkArguments(upsample: upsample, jitter: jitter)
        let detections = try detectFaces(image, upsample: upsample)
        guard !detections.isEmpty else { return ([], [], nil) }
        let aligned = align(image, detections)
        if jitter <= 1, let resnet = descriptor as? ResNetFaceDescriptor, resnet.useFusedExecutor {
            let r = try resnet.descriptorsAndActivations(for: aligned.chips, block: block)
            return (analyses(detections, aligned, r.descriptors), aligned.chips, r.activations)
        }
        return (analyses(detections, aligned, try descriptor.descriptors(for: aligned.chips, jitter: jitter)), aligned.chips, nil)
    }

    /// The pipeline after detection, for callers that already have boxes.
    public func analyze(_ image: RGBImage, detections: [FaceDetection], jitter: Int = 0) throws -> [FaceAnalysis] {
        guard !detections.isEmpty else { return [] }
        let aligned = align(image, detections)
        return analyses(detections, aligned, try descriptor.descriptors(for: aligned.chips, jitter: jitter))
    }

    /// Landmarks, chip placement and the aligned chip of each detection.
    func align(_ image: RGBImage, _ detections: [FaceDetection]) -> (shapes: [[LandmarkPoint]], details: [ChipDetails], chips: [RGBImage]) {
        var shapes = [[LandmarkPoint]](), details = [ChipDetails](), chips = [RGBImage]()
        for d in detections {
            let shape = predictor.landmarks(in: image, box: d.rect)
            let cd = ChipDetails.forFace(landmarks: shape, size: descriptor.chipSize, padding: descriptor.chipPadding)
            shapes.append(shape); details.append(cd)
            chips.append(FaceChip.extract(image, details: cd))
        }
        return (shapes, details, chips)
    }

    func analyses(_ detections: [FaceDetection], _ aligned: (shapes: [[LandmarkPoint]], details: [ChipDetails], chips: [RGBImage]),
                  _ raw: [[Float]]) -> [FaceAnalysis] {
        detections.indices.map { i in
            FaceAnalysis(detection: detections[i], landmarks: aligned.shapes[i], chip: aligned.details[i],
                         embedding: l2Normalized(raw[i]), rawDescriptor: raw[i])
        }
    }
}

/// `v / ||v||` (the zero vector stays zero).
public func l2Normalized(_ v: [Float]) -> [Float] {
    var s: Double = 0
    for x in v { s += Double(x) * Double(x) }
    guard s > 0 else { return v }
    let inv = 1 / s.squareRoot()
    return v.map { Float(Double($0) * inv) }
}

extension ResNetFaceDescriptor: FaceDescriptorModel {
    public var modelName: String { name }
    public var modelVersion: String { version }
    public var chipSize: Int { Self.chipSize }
    public var chipPadding: Double { 0.25 }
    /// `jitter` as dlib's `num_jitters`: 0 or 1 = the plain descriptor, N > 1 = the mean over N jittered chips.
    public func descriptors(for chips: [RGBImage], jitter: Int) throws -> [[Float]] {
        jitter <= 1 ? try descriptors(for: chips) : try jitteredDescriptors(for: chips, count: jitter)
    }
}

extension MMODFaceDetector: FaceDetector {}

extension DlibFaceEmbedder {
    /// Loads the three dlib models (MMOD detector, 5-point predictor, ResNet) from `locator`'s folder.
    /// A missing file throws `FaceModelError.missingModel` naming it and `scripts/setup.sh`.
    public convenience init(locator: FaceModelLocator = FaceModelLocator(), retryUpsampleWhenNoFace: Bool = false,
                            weakFaceThreshold: Double? = nil) throws {
        let mmod = try locator.path(of: FaceModelLocator.mmodFile)
        let sp = try locator.path(of: FaceModelLocator.fivePointFile)
        let resnet = try locator.path(of: FaceModelLocator.resnetFile)
        self.init(detector: try MMODFaceDetector(modelPath: mmod), predictor: try ShapePredictor(modelPath: sp),
                  descriptor: try ResNetFaceDescriptor(modelPath: resnet), retryUpsampleWhenNoFace: retryUpsampleWhenNoFace,
                  weakFaceThreshold: weakFaceThreshold)
    }
}
