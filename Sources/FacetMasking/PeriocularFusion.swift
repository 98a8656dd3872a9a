import FacetFace
import FacetImaging
import Foundation

/// Upper-face ("periocular") embedding fused with the full one, for comparisons where a side wears a mask
/// (issue 5, part 3c).
///
/// The periocular embedding is the same frozen dlib ResNet run on the face's aligned 150×150 chip with every row
/// from `occludeFromRow` down painted one flat colour (dlib's input mean, so the painted pixels enter the network as
/// zeros). A mask covers the lower face, so a masked probe and an unmasked reference differ most there; painting that
/// part the same on both sides leaves the eyes, brows and forehead to compare, whatever the mask looks like. No
/// training: the file only fixes the cut, the colour and the fusion weight.
///
/// Fused distance of two unit-length full embeddings and two unit-length periocular embeddings (used only when the
/// mask detector calls either side masked; unmasked–unmasked comparisons keep the full distance):
/// `w · ‖a − b‖ + (1 − w) · ‖pa − pb‖`, `w = fullWeight`.
///
/// Versioned JSON (`format: facet-periocular-fusion`), like the detector and the head. Version 1: one pass on the
/// painted chip. Version 2 adds `mirrorAverage`: the embedding is the normalised mean of the painted chip's and its
/// mirror image's (one more pass; session 8, docs/masks.md).
public struct PeriocularFusion: Codable, Sendable, Equatable, VersionedModelFile {
    public static let formatName = "facet-periocular-fusion"
    public static let currentVersion = 2
    public static let readableVersions = 1...2
    /// The file `bundled()` loads.
    public static let bundledFileName = "periocular-fusion-v2.json"

    public var format = PeriocularFusion.formatName
    public var version = PeriocularFusion.currentVersion
    /// The embedding model the periocular embedding is computed with (and fused with).
    public var embeddingModel: String
    /// Chip size the cut refers to (dlib's 150).
    public var chipSize: Int
    /// First chip row painted over (rows `occludeFromRow..<chipSize`).
    public var occludeFromRow: Int
    /// RGB of the painted rows.
    public var fill: [UInt8]
    /// Weight of the full distance in the fused distance, in [0, 1].
    public var fullWeight: Double
    /// Decision thresholds for fused comparisons at a target FMR (`facet mask-train --periocular`): masked–unmasked
    /// and masked–masked on fused distances, unmasked–unmasked on the full distance (never fused). nil: not calibrated.
    public var thresholds: ComparisonThresholds?
    public var notes: String
    /// Version 2: average the embeddings of the painted chip and of its mirror image (nil or false: one pass).
    public var mirrorAverage: Bool?

    public init(embeddingModel: String = "dlib_face_recognition_resnet_model_v1", chipSize: Int = 150, occludeFromRow: Int,
                fill: [UInt8] = [123, 117, 104], fullWeight: Double, notes: String = "") {
        self.embeddingModel = embeddingModel
        self.chipSize = chipSize
        self.occludeFromRow = occludeFromRow
        self.fill = fill
        self.fullWeight = fullWeight
        self.notes = notes
    }

    /// The chip with rows `occludeFromRow` and below painted `fill`. Throws for a chip of another size.
    public func occluded(_ chip: RGBImage) throws -> RGBImage {
        guard chip.width == chipSize, chip.height == chipSize else {
            throw MaskingError.invalidArgument("periocular: chip is \(chip.width)×\(chip.height), the model expects \(chipSize)×\(chipSize)")
        }
        var px = chip.pixels
        let from = max(0, min(chipSize, occludeFromRow)) * chipSize * 3
        var i = from
        while i < px.count { px[i] = fill[0]; px[i + 1] = fill[1]; px[i + 2] = fill[2]; i += 3 }
        return RGBImage(width: chip.width, height: chip.height, pixels: px)
    }

    /// Unit-length periocular embeddings of `chips` (aligned chips, as `FaceChip.extract` cuts them).
    public func embeddings(chips: [RGBImage], model: any FaceDescriptorModel) throws -> [[Float]] {
        guard model.modelName == embeddingModel else {
            throw MaskingError.invalidArgument("periocular: fusion file is for \(embeddingModel), the descriptor is \(model.modelName)")
        }
        let painted = try chips.map(occluded)
        guard mirrorAverage == true else { return try model.descriptors(for: painted, jitter: 0).map(l2Normalized) }
        return try MaskAwareMatcher.mirrorAveraged(chips: painted, model: model)
    }

    /// The periocular embedding of a face an embedder found in `image` (its chip is cut again from the image).
    public func embedding(image: RGBImage, face: FaceAnalysis, model: any FaceDescriptorModel) throws -> [Float] {
        try embeddings(chips: [FaceChip.extract(image, details: face.chip)], model: model)[0]
    }

    /// Fused distance of two faces, each given as (full, periocular) unit-length embeddings.
    public func fusedDistance(_ a: (full: [Float], periocular: [Float]), _ b: (full: [Float], periocular: [Float])) -> Double {
        fuse(fullDistance: unitDistance(a.full, b.full), periocularDistance: unitDistance(a.periocular, b.periocular))
    }

    /// `w · full + (1 − w) · periocular`.
    @inline(__always) public func fuse(fullDistance: Double, periocularDistance: Double) -> Double {
        fullWeight * fullDistance + (1 - fullWeight) * periocularDistance
    }

    /// A short fingerprint of the settings that change the periocular embedding (stored next to cached embeddings).
    public var fingerprint: String {
        "p\(version)-\(embeddingModel)-\(chipSize)-\(occludeFromRow)-" + fill.map(String.init).joined(separator: ".")
            + (mirrorAverage == true ? "-mirror" : "")
    }

    public init(contentsOf url: URL) throws {
        let m = try Self.read(from: url, kind: "periocular fusion")
        guard m.chipSize > 0, (1..<m.chipSize).contains(m.occludeFromRow), m.fill.count == 3,
              m.fullWeight.isFinite, (0...1).contains(m.fullWeight) else {
            throw MaskingError.resourceUnreadable(url.path, reason: "cut row, fill colour or weight out of range")
        }
        guard m.version >= 2 || m.mirrorAverage == nil else {
            throw MaskingError.resourceUnreadable(url.path, reason: "mirrorAverage needs version 2")
        }
        self = m
    }

    public func write(to url: URL) throws { try writeJSON(to: url) }

    /// "bundled" (the file shipped with FacetMasking) or a path to a `facet-periocular-fusion` file — how the
    /// configuration (`periocularFusion`) and the command-line flags name one.
    public static func named(_ name: String) throws -> PeriocularFusion {
        name == "bundled" ? try bundled() : try PeriocularFusion(contentsOf: URL(fileURLWithPath: name))
    }

    /// The settings bundled with FacetMasking (`Resources/\(bundledFileName)`, see docs/masks.md).
    public static func bundled() throws -> PeriocularFusion {
        try PeriocularFusion(contentsOf: MaskTemplateLibrary.resourceDirectory().appendingPathComponent(bundledFileName))
    }
}
