/// The kinds of mask FacetMasking can draw.
///
/// Five come from MaskTheFace's MIT templates (warped onto the face through their anchor points);
/// `gaiter` and `bandana` are procedural: a polygon built from the jaw landmarks, filled and shaded.
public enum MaskType: String, CaseIterable, Sendable, Hashable, Codable {
    case surgical
    case cloth
    case n95
    case kn95
    /// A half-face gas/particle respirator with two filter cartridges.
    case gas
    /// A neck gaiter pulled up over the nose.
    case gaiter
    /// A folded triangular bandana tied behind the head.
    case bandana

    /// Parses a type name, case-insensitively; `respirator` is accepted for `gas`.
    public init?(name: String) {
        let key = name.lowercased().replacingOccurrences(of: "-", with: "").replacingOccurrences(of: "_", with: "")
        if key == "respirator" || key == "gasmask" { self = .gas; return }
        guard let type = MaskType(rawValue: key) else { return nil }
        self = type
    }

    /// The MaskTheFace template base name, or `nil` for the procedural types.
    public var templateName: String? {
        switch self {
        case .surgical: "surgical"
        case .cloth: "cloth"
        case .n95: "N95"
        case .kn95: "KN95"
        case .gas: "gas"
        case .gaiter, .bandana: nil
        }
    }

    /// The placements this type is drawn with: a cup-shaped N95 is not worn under the nose (its template
    /// leaves the mouth corners open when pulled down), and a strapped respirator neither hangs low nor
    /// sits askew (its narrow nose cup slides off the nose when tilted).
    public var placements: [MaskPlacement] {
        switch self {
        case .gas: [.overNose]
        case .n95: [.overNose, .tilted]
        default: MaskPlacement.allCases
        }
    }

    /// Whether the renderer switches to the `_left`/`_right` template for turned heads. MaskTheFace's
    /// turned gas-respirator templates put the far cartridge where the cheek is, which the face clip cuts
    /// into shreds, so the frontal one (warped by the homography) is used at every yaw.
    public var hasSideTemplates: Bool { templateName != nil && self != .gas }

    /// Whether a fabric pattern suits this type (medical masks and respirators stay plain).
    public var acceptsPattern: Bool {
        switch self {
        case .cloth, .gaiter, .bandana: true
        case .surgical, .n95, .kn95, .gas: false
        }
    }
}

/// A mask colour: an sRGB triple with an optional name.
public struct MaskColor: Sendable, Hashable, Codable, CustomStringConvertible {
    public var name: String
    public var r: UInt8
    public var g: UInt8
    public var b: UInt8

    public init(name: String, r: UInt8, g: UInt8, b: UInt8) {
        self.name = name; self.r = r; self.g = g; self.b = b
    }

    public var description: String { name }

    // The TRAIN family's colours (see `MaskFamily`): dark and saturated fabric colours.
    public static let black = MaskColor(name: "black", r: 24, g: 24, b: 26)
    public static let navy = MaskColor(name: "navy", r: 32, g: 42, b: 86)
    public static let charcoal = MaskColor(name: "charcoal", r: 72, g: 72, b: 78)
    public static let olive = MaskColor(name: "olive", r: 88, g: 98, b: 52)
    public static let burgundy = MaskColor(name: "burgundy", r: 112, g: 28, b: 40)
    public static let teal = MaskColor(name: "teal", r: 20, g: 110, b: 112)
    public static let orange = MaskColor(name: "orange", r: 220, g: 110, b: 30)
    public static let beige = MaskColor(name: "beige", r: 205, g: 185, b: 150)
    // Light TRAIN colours (session 6, for the retrained detector): light masks unlike any TEST colour — each at least
    // 49 sRGB units from every TEST colour (cream–white 64, cornflower–surgical blue 69, sage–mint 51, peach–pink 49,
    // orchid–pink 52), so the held-out masks stay unseen while the detector learns that a mask can be lighter than skin.
    public static let cream = MaskColor(name: "cream", r: 245, g: 225, b: 180)
    public static let cornflower = MaskColor(name: "cornflower", r: 100, g: 149, b: 237)
    public static let sage = MaskColor(name: "sage", r: 170, g: 190, b: 150)
    public static let peach = MaskColor(name: "peach", r: 250, g: 200, b: 160)
    public static let orchid = MaskColor(name: "orchid", r: 210, g: 150, b: 230)

    // The TEST family's colours: light medical colours and others absent from TRAIN.
    public static let white = MaskColor(name: "white", r: 238, g: 240, b: 242)
    public static let surgicalBlue = MaskColor(name: "surgical-blue", r: 150, g: 195, b: 225)
    public static let mint = MaskColor(name: "mint", r: 160, g: 220, b: 190)
    public static let pink = MaskColor(name: "pink", r: 235, g: 160, b: 185)
    public static let lightGrey = MaskColor(name: "light-grey", r: 190, g: 192, b: 196)
    public static let purple = MaskColor(name: "purple", r: 100, g: 60, b: 150)
    public static let yellow = MaskColor(name: "yellow", r: 235, g: 205, b: 60)
    public static let red = MaskColor(name: "red", r: 200, g: 30, b: 36)

    public static let named: [MaskColor] = [
        .black, .navy, .charcoal, .olive, .burgundy, .teal, .orange, .beige,
        .cream, .cornflower, .sage, .peach, .orchid,
        .white, .surgicalBlue, .mint, .pink, .lightGrey, .purple, .yellow, .red,
    ]

    /// Parses a colour name from `named` (case-insensitive) or `#RRGGBB`.
    public init?(parsing text: String) {
        let key = text.lowercased()
        if let hit = MaskColor.named.first(where: { $0.name == key || $0.name.replacingOccurrences(of: "-", with: "") == key }) {
            self = hit
            return
        }
        var hex = Substring(key)
        if hex.hasPrefix("#") { hex = hex.dropFirst() }
        guard hex.count == 6, let value = UInt32(hex, radix: 16) else { return nil }
        self.init(name: "#" + hex, r: UInt8(value >> 16 & 0xFF), g: UInt8(value >> 8 & 0xFF), b: UInt8(value & 0xFF))
    }
}

/// A fabric pattern drawn on the mask (multiplied by the mask's shading), or none.
public enum MaskTexture: Sendable, Hashable, Codable, CustomStringConvertible {
    case plain
    /// One of the bundled MaskTheFace textures, by resource name (`MaskTexture.patternNames`).
    case pattern(String)
    /// Procedural horizontal stripes in the mask colour and a second colour.
    case stripes(MaskColor)

    /// The bundled texture names (see scripts/make-mask-fixtures.py).
    public static let patternNames = [
        "check_blue", "gingham_pink", "polka", "lemon",
        "floral", "petals_grey", "cherry", "pineapple",
    ]

    public var description: String {
        switch self {
        case .plain: "plain"
        case .pattern(let name): name
        case .stripes(let color): "stripes-\(color.name)"
        }
    }

    /// Parses `plain`, a pattern name or `stripes-COLOUR`.
    public init?(parsing text: String) {
        let key = text.lowercased()
        if key == "plain" || key == "none" { self = .plain; return }
        if MaskTexture.patternNames.contains(key) { self = .pattern(key); return }
        if key.hasPrefix("stripes-"), let color = MaskColor(parsing: String(key.dropFirst(8))) {
            self = .stripes(color)
            return
        }
        return nil
    }
}

/// Where the mask sits on the face.
public enum MaskPlacement: String, CaseIterable, Sendable, Hashable, Codable {
    /// The top edge over the nose bridge, halfway between the nose root and the tip (worn properly).
    case overNose = "over-nose"
    /// The top edge under the nostrils, the nose left uncovered (worn badly).
    case belowNose = "below-nose"
    /// Over the nose and rotated 5–12 degrees about the mask's centre (sign and angle from the seed).
    case tilted

    public init?(parsing text: String) {
        let key = text.lowercased().replacingOccurrences(of: "_", with: "-")
        switch key {
        case "over-nose", "overnose", "nose": self = .overNose
        case "below-nose", "belownose", "under-nose", "undernose": self = .belowNose
        case "tilted", "rotated": self = .tilted
        default: return nil
        }
    }
}

/// Everything that decides how one synthetic mask looks. Rendering is a pure function of the spec and
/// the landmarks: the seed drives every small variation (anchor jitter, tilt angle, shading contrast,
/// pattern offset and scale, fabric noise).
public struct MaskSpec: Sendable, Hashable, Codable, CustomStringConvertible {
    public var type: MaskType
    public var color: MaskColor
    public var texture: MaskTexture
    public var placement: MaskPlacement
    public var seed: UInt64

    public init(type: MaskType, color: MaskColor, texture: MaskTexture = .plain,
                placement: MaskPlacement = .overNose, seed: UInt64 = 0) {
        self.type = type; self.color = color; self.texture = texture; self.placement = placement; self.seed = seed
    }

    public var description: String {
        "\(type.rawValue) \(color.name) \(texture) \(placement.rawValue) seed=\(seed)"
    }
}
