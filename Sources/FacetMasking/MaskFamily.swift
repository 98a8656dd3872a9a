/// The two disjoint families of synthetic masks: anything trained on masked faces (the mask detector, the
/// unmasking head, the per-type thresholds) sees only `train` masks; every evaluation uses `test` masks.
///
/// The families share no mask type, no colour, no pattern and no seed, so a held-out result cannot come
/// from memorising the look of the training masks:
///
/// | | TRAIN | TEST |
/// |---|---|---|
/// | types | cloth, KN95, gas respirator, bandana | surgical, N95, gaiter |
/// | colours | black, navy, charcoal, olive, burgundy, teal, orange, beige; light: cream, cornflower, sage, peach, orchid (each ≥ 49 sRGB units from every TEST colour) | white, surgical blue, mint, pink, light grey, purple, yellow, red |
/// | patterns | check_blue, gingham_pink, polka, lemon, stripes in a TRAIN colour | floral, petals_grey, cherry, pineapple, stripes in a TEST colour |
/// | seeds | even | odd |
///
/// Placements (over the nose, below the nose, tilted) are common to both: they are geometry, not look
/// (`MaskType.placements` says which a type is drawn with).
/// Surgical masks, the commonest in the real world, are held out for testing on purpose.
public enum MaskFamily: String, CaseIterable, Sendable, Hashable, Codable {
    case train
    case test

    public var types: [MaskType] {
        switch self {
        case .train: [.cloth, .kn95, .gas, .bandana]
        case .test: [.surgical, .n95, .gaiter]
        }
    }

    public var colors: [MaskColor] {
        switch self {
        case .train: [.black, .navy, .charcoal, .olive, .burgundy, .teal, .orange, .beige,
                      .cream, .cornflower, .sage, .peach, .orchid]
        case .test: [.white, .surgicalBlue, .mint, .pink, .lightGrey, .purple, .yellow, .red]
        }
    }

    /// The patterns of this family (besides `.plain`, which both use).
    public var patterns: [MaskTexture] {
        switch self {
        case .train: ["check_blue", "gingham_pink", "polka", "lemon"].map { .pattern($0) } + [.stripes(.beige), .stripes(.black)]
        case .test: ["floral", "petals_grey", "cherry", "pineapple"].map { .pattern($0) } + [.stripes(.white), .stripes(.yellow)]
        }
    }

    public var placements: [MaskPlacement] { MaskPlacement.allCases }

    /// The family a seed belongs to: even seeds are TRAIN, odd seeds TEST.
    public static func of(seed: UInt64) -> MaskFamily { seed & 1 == 0 ? .train : .test }

    /// The family a spec belongs to, or `nil` when its type, colour, pattern and seed do not all agree
    /// (a hand-made spec that mixes the families).
    public static func of(spec: MaskSpec) -> MaskFamily? {
        for family in MaskFamily.allCases where family.contains(spec) { return family }
        return nil
    }

    /// Whether `spec` is made only of this family's type, colour, pattern and seed.
    public func contains(_ spec: MaskSpec) -> Bool {
        guard types.contains(spec.type), colors.contains(spec.color), MaskFamily.of(seed: spec.seed) == self else {
            return false
        }
        return spec.texture == .plain || patterns.contains(spec.texture)
    }

    /// Maps any key (an image index, a hash of a file name) to a seed of this family.
    public func seed(for key: UInt64) -> UInt64 {
        let mixed = SplitMix64.mix(key ^ 0x6D61_736B_7365_6564)   // "maskseed"
        return self == .train ? mixed & ~1 : mixed | 1
    }

    /// A spec drawn from this family, deterministic in `key`.
    /// - Parameters:
    ///   - key: any number identifying the face (e.g. `stableHash(relativePath, seed: runSeed)`).
    ///   - types: restricts the types (those not in the family are ignored; empty or `nil` means all).
    ///   - placements: restricts the placements (`nil` means all, with over-the-nose twice as likely).
    public func randomSpec(key: UInt64, types: [MaskType]? = nil, placements: [MaskPlacement]? = nil) -> MaskSpec {
        let seed = seed(for: key)
        var rng = SplitMix64(seed: seed ^ 0x7370_6563)   // "spec": a stream apart from the renderer's
        let allowed = (types ?? []).filter { self.types.contains($0) }
        let typePool = allowed.isEmpty ? self.types : allowed
        let type = typePool[rng.index(typePool.count)]
        let color = colors[rng.index(colors.count)]
        var texture = MaskTexture.plain
        if type.acceptsPattern && rng.unit() < 0.5 {
            texture = patterns[rng.index(patterns.count)]
        }
        let wanted = placements ?? [.overNose, .overNose, .belowNose, .tilted]
        let placementPool = wanted.filter { type.placements.contains($0) }
        let placement = placementPool.isEmpty ? .overNose : placementPool[rng.index(placementPool.count)]
        return MaskSpec(type: type, color: color, texture: texture, placement: placement, seed: seed)
    }
}
