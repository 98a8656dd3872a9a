import ArgumentParser
import FacetFace
import FacetImaging
import FacetMasking
import Foundation

/// `facet mask IMAGE -o OUT`: draws a synthetic mask on every face found in one image.
struct MaskCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mask",
        abstract: "Draw a synthetic mask on the faces in an image (MaskTheFace templates or procedural).")

    @Argument(help: "Input image (JPEG or PNG).") var image: String
    @Option(name: .shortAndLong, help: "Output image; the extension (.png, .jpg) picks the format.") var output: String
    @Option(help: "Mask type: \(MaskType.allCases.map(\.rawValue).joined(separator: ", ")).") var type: String = "surgical"
    @Option(help: "Colour name (\(MaskColor.named.map(\.name).joined(separator: ", "))) or #RRGGBB; default by type.")
    var color: String?
    @Option(help: "Pattern: plain, \(MaskTexture.patternNames.joined(separator: ", ")), or stripes-COLOUR.")
    var texture: String = "plain"
    @Option(help: "Placement: over-nose, below-nose, tilted.") var placement: String = "over-nose"
    @Option(help: "Seed of the small random variations.") var seed: UInt64 = 0
    @OptionGroup var faces: FaceFindingOptions
    @Option(help: "JPEG quality 1...100 when writing JPEG.") var quality: Int = 95
    @Flag(help: "Print one JSON object per face (box, spec, variant, covered pixels) on standard output.") var json = false

    func validate() throws {
        guard MaskType(name: type) != nil else { throw ValidationError("unknown mask type '\(type)'") }
        if let color, MaskColor(parsing: color) == nil { throw ValidationError("unknown colour '\(color)'") }
        guard MaskTexture(parsing: texture) != nil else { throw ValidationError("unknown pattern '\(texture)'") }
        guard let p = MaskPlacement(parsing: placement) else { throw ValidationError("unknown placement '\(placement)'") }
        let t = MaskType(name: type)!
        guard t.placements.contains(p) else {
            throw ValidationError("a \(t.rawValue) mask is not drawn \(p.rawValue); use \(t.placements.map(\.rawValue).joined(separator: ", "))")
        }
        guard EncodedImageFormat(pathExtension: (output as NSString).pathExtension) != nil else {
            throw ValidationError("output must end in .png, .jpg or .jpeg")
        }
        try faces.validate()
    }

    func run() throws {
        let maskType = MaskType(name: type)!
        let spec = MaskSpec(type: maskType,
                            color: color.flatMap(MaskColor.init(parsing:)) ?? maskType.defaultColor,
                            texture: MaskTexture(parsing: texture)!,
                            placement: MaskPlacement(parsing: placement)!,
                            seed: seed)
        let finder = try FaceFinder(options: faces)
        let renderer = try MaskRenderer()
        var picture = try ImageDecoder().decodeFile(atPath: image)
        let found = try finder.faces(in: picture)
        if found.isEmpty {
            FileHandle.standardError.write(Data("facet mask: no face found in \(image); writing it unchanged\n".utf8))
        }
        for (index, face) in found.enumerated() {
            var faceSpec = spec
            faceSpec.seed = index == 0 ? seed : SplitMix64.mix(seed &+ UInt64(index))
            let out = try renderer.apply(to: picture, landmarks: face.landmarks, spec: faceSpec)
            picture = out.image
            if json {
                let r = face.box
                print("{\"face\": \(index), \"box\": [\(r.left), \(r.top), \(r.right), \(r.bottom)], "
                      + "\"type\": \"\(faceSpec.type.rawValue)\", \"color\": \"\(faceSpec.color.name)\", "
                      + "\"texture\": \"\(faceSpec.texture)\", \"placement\": \"\(faceSpec.placement.rawValue)\", "
                      + "\"seed\": \(faceSpec.seed), \"variant\": \"\(out.variant)\", "
                      + "\"covered_pixels\": \(out.maskRegion.coveredPixelCount)}")
            }
        }
        try ImageEncoder(jpegQuality: quality).write(picture, toPath: output)
    }
}

extension MaskType {
    /// The colour `facet mask` uses when none is given.
    var defaultColor: MaskColor {
        switch self {
        case .surgical: .surgicalBlue
        case .n95, .kn95: .white
        case .cloth, .gaiter: .black
        case .gas: .charcoal
        case .bandana: .red
        }
    }
}

/// How the mask commands find faces and their 68 landmarks.
struct FaceFindingOptions: ParsableArguments {
    @Option(help: "Folder of the dlib model files (default: $FACET_MODELS, else ./models).") var models: String?
    @Option(help: "Use this face box, left,top,right,bottom, instead of detecting.") var box: String?
    @Flag(help: "Assume one face centred as in LFW's 250x250 crops (dlib's median HOG box, scaled to the image) instead of detecting.")
    var centred = false
    @Option(help: "Times the MMOD detector doubles the image first (finds smaller faces; about 4x slower per step).")
    var upsample: Int = 0

    func validate() throws {
        if let box, FaceFinder.parseBox(box) == nil { throw ValidationError("--box wants left,top,right,bottom integers") }
        if box != nil && centred { throw ValidationError("--box and --centred exclude each other") }
        guard (0...2).contains(upsample) else { throw ValidationError("--upsample must be 0, 1 or 2") }
    }
}

/// A face box and its 68 landmarks.
struct FoundFace {
    var box: FaceRect
    var landmarks: [LandmarkPoint]
}

/// Finds faces (given box, LFW-centred box, or dlib's MMOD CNN detector) and runs dlib's 68-point shape
/// predictor on each box. dlib's 68-point model was trained on HOG-detector boxes; on MMOD boxes its points are
/// close but not identical (the MMOD box sits a little differently), which is fine for placing masks.
struct FaceFinder {
    enum Source { case box(FaceRect), centred, detector(any FaceDetector) }
    let source: Source
    let predictor: ShapePredictor
    let upsample: Int

    init(options: FaceFindingOptions) throws {
        let locator = FaceModelLocator(directory: options.models)
        predictor = try ShapePredictor(modelPath: locator.path(of: FaceModelLocator.sixtyEightPointFile))
        if let text = options.box, let rect = FaceFinder.parseBox(text) {
            source = .box(rect)
        } else if options.centred {
            source = .centred
        } else {
            source = .detector(try MMODFaceDetector(modelPath: locator.path(of: FaceModelLocator.mmodFile)))
        }
        upsample = options.upsample
    }

    static func parseBox(_ text: String) -> FaceRect? {
        let parts = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 4, let l = parts[0], let t = parts[1], let r = parts[2], let b = parts[3], r > l, b > t else { return nil }
        return FaceRect(left: l, top: t, right: r, bottom: b)
    }

    /// dlib's frontal (HOG) detector's median box on LFW's 250×250 images, (77, 79)–(181, 181), scaled.
    static func centredBox(width: Int, height: Int) -> FaceRect {
        let sx = Double(width) / 250, sy = Double(height) / 250
        return FaceRect(left: Int((77 * sx).rounded()), top: Int((79 * sy).rounded()),
                        right: Int((181 * sx).rounded()), bottom: Int((181 * sy).rounded()))
    }

    /// The faces in `image`, largest first.
    func faces(in image: RGBImage) throws -> [FoundFace] {
        let boxes: [FaceRect]
        switch source {
        case .box(let r): boxes = [r]
        case .centred: boxes = [FaceFinder.centredBox(width: image.width, height: image.height)]
        case .detector(let d): boxes = try d.detect(image, upsample: upsample).map(\.rect).sorted { $0.area > $1.area }
        }
        return boxes.map { FoundFace(box: $0, landmarks: predictor.landmarks(in: image, box: $0)) }
    }
}
