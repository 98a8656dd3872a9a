import ArgumentParser
import FacetFace
import FacetImaging
import FacetMasking
import Foundation

/// `facet embed`: faces, boxes, landmarks and embeddings of each image.
struct Embed: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embed",
        abstract: "Detect faces and compute their embeddings (dlib MMOD + 5-point alignment + ResNet, in Swift).",
        discussion: """
            With --json, prints one JSON object per image (JSON Lines): {"image", "width", "height", "faces": \
            [{"box": [left, top, right, bottom], "confidence", "landmarks": [[x, y] x5], "embedding": [128 numbers], \
            "mask_probability": p, "masked": bool, "adapted": bool}]}. \
            Boxes are dlib's inclusive rectangles; embeddings are L2-normalised. "embedding" is what Facet matches: for a \
            face it is the mean of the chip's and its mirror image's embeddings; for a face the mask detector calls masked the \
            chip is first cut again with the nose placed from the eyes (--masked-nose-y) and the unmasking head maps the mean \
            ("adapted": true); dlib's own embedding follows as "frozen_embedding". \
            --frozen prints dlib's embedding for every face (no head, no mirror averaging); --periocular adds \
            "periocular_embedding" (docs/masks.md, periocular fusion). \
            When no face is found at --upsample 0 the detector searches again at upsample 1 (--no-retry turns this off). An image that fails gives \
            {"image", "error": {"code", "message"}}; the others are still processed, and the exit status is 1 if any failed.
            """)

    @Option(help: "Times the detector doubles the image before searching (0-4; each step finds smaller faces, ~4x slower).")
    var upsample = 0

    @Option(help: "Randomly jittered copies averaged into each embedding, as dlib's num_jitters (0 or 1 = none; N times slower).")
    var jitter = 0

    @Flag(help: "Do not apply the unmasking head (print dlib's embedding for masked faces too).")
    var frozen = false

    @Flag(help: "Skip the mask detector (no mask_probability, no unmasking head).")
    var noMask = false

    @Flag(help: "Do not search again at upsample 1 when nothing is found at upsample 0.")
    var noRetry = false

    @Option(help: "When no face scores above MMOD's threshold, take the weak detection scoring above this (negative) value nearest the image centre (0 = off).")
    var weakThreshold = DlibFaceEmbedder.maskedWeakFaceThreshold

    @Option(help: "Match a face called masked on a chip re-cut with its nose point placed from the eyes at this template height (default: the bundled 0.52, off with --frozen; 0 = off; with --frozen: that chip's dlib embedding; docs/masks.md, session 11).")
    var maskedNoseY: Double?

    @Flag(help: "Also compute each face's periocular embedding (the bundled periocular-fusion-v2.json: the same model on the chip with the lower face painted over), printed as \"periocular_embedding\".")
    var periocular = false

    @Flag(help: "Print JSON Lines instead of a human summary.")
    var json = false

    @Option(help: "Folder with the dlib model files (default: $FACET_MODELS, else ./models).")
    var models: String?

    @Argument(help: "JPEG or PNG files.")
    var images: [String]

    func validate() throws {
        guard (0...DlibFaceEmbedder.maxUpsample).contains(upsample) else {
            throw ValidationError("--upsample must be between 0 and \(DlibFaceEmbedder.maxUpsample)")
        }
        guard (0...DlibFaceEmbedder.maxJitter).contains(jitter) else {
            throw ValidationError("--jitter must be between 0 and \(DlibFaceEmbedder.maxJitter)")
        }
        guard !images.isEmpty else { throw ValidationError("give at least one image") }
        if let y = maskedNoseY, !(y >= 0 && y < 1) { throw ValidationError("--masked-nose-y is a template height between 0 and 1 (0 = off)") }
        if (maskedNoseY ?? 0) > 0 && noMask { throw ValidationError("--masked-nose-y needs the mask detector; drop --no-mask") }
        if periocular && noMask { throw ValidationError("--periocular goes with the mask detector (fusion is for masked comparisons); drop --no-mask") }
    }

    func run() throws {
        let embedder: any Embedder
        do {
            let dlib = try DlibFaceEmbedder(locator: FaceModelLocator(directory: models), retryUpsampleWhenNoFace: !noRetry,
                                              weakFaceThreshold: weakThreshold < 0 ? weakThreshold : nil)
            let fusion = periocular ? (fusion: try PeriocularFusion.bundled(), model: dlib.descriptor as any FaceDescriptorModel) : nil
            // --frozen: dlib's own embedding (no head, no mirror averaging), as the evaluation and head training expect.
            // --masked-nose-y: unset = the bundled alignment (off with --frozen), 0 = off.
            let noseY = maskedNoseY.map { $0 > 0 ? $0 : nil } ?? (frozen ? nil : MaskAwareMatcher.bundledMaskedNoseY)
            let matcher = frozen ? MaskAwareMatcher(detector: try MaskDetector.bundled(), head: nil, network: dlib.descriptor, maskedNoseY: noseY)
                                 : try MaskAwareMatcher.bundled(network: dlib.descriptor, maskedNoseY: noseY)
            embedder = noMask ? dlib : MaskAwareEmbedder(base: dlib, matcher: matcher, periocular: fusion)
        } catch {
            FileHandle.standardError.write(Data("facet embed: cannot load models: \(error)\n".utf8))
            throw ExitCode(2)
        }
        let decoder = ImageDecoder()
        var failures = 0
        for path in images {
            let result: Result<(RGBImage, [FaceAnalysis]), Error> = Result {
                let image = try decoder.decodeFile(atPath: path)
                return (image, try embedder.analyze(image, upsample: upsample, jitter: jitter))
            }
            switch result {
            case .success(let (image, faces)):
                if json {
                    print(EmbedReport.line(image: path, width: image.width, height: image.height, faces: faces,
                                           extraFaceFields: { Self.maskFields(faces[$0], withHead: !frozen) }))
                } else {
                    print("\(path): \(image.width)x\(image.height), \(faces.count) face\(faces.count == 1 ? "" : "s")")
                    for (i, f) in faces.enumerated() {
                        let b = f.box
                        print(String(format: "  face %d: box [%d, %d, %d, %d], confidence %.3f, %d-D embedding",
                                     i + 1, b.left, b.top, b.right, b.bottom, f.confidence, f.embedding.count)
                              + (f.maskProbability.map { String(format: ", mask probability %.3f%@", $0,
                                                                 f.masked == true ? " (masked)" : "") } ?? ""))
                    }
                }
            case .failure(let error):
                failures += 1
                let (code, message) = Self.describe(error)
                if json {
                    print(EmbedReport.errorLine(image: path, code: code, message: message))
                } else {
                    print("\(path): error (\(code)): \(message)")
                }
            }
        }
        if !json, images.count > 1 {
            print("\(images.count) images, \(failures) failed")
        }
        if failures > 0 { throw ExitCode(1) }
    }

    /// "mask_probability", "masked", "adapted" (the unmasking head made the embedding: a face called masked, unless
    /// --frozen) and "frozen_embedding" (dlib's own) when "embedding" is not dlib's (adapted or mirror-averaged).
    static func maskFields(_ f: FaceAnalysis, withHead: Bool) -> [(String, String)] {
        let peri = f.periocularEmbedding.map { [("periocular_embedding", "[" + $0.map { "\($0)" }.joined(separator: ", ") + "]")] } ?? []
        guard let p = f.maskProbability else { return peri }
        let adapted = withHead && f.masked == true
        var fields = [("mask_probability", p.isFinite ? "\(p)" : "null"), ("masked", f.masked == true ? "true" : "false"),
                      ("adapted", adapted ? "true" : "false")]
        let frozen = l2Normalized(f.rawDescriptor)
        if f.embedding != frozen {
            fields.append(("frozen_embedding", "[" + frozen.map { "\($0)" }.joined(separator: ", ") + "]"))
        }
        return fields + peri
    }

    static func describe(_ error: Error) -> (code: String, message: String) {
        switch error {
        case let e as ImageDecodingError: return (e.code.rawValue, e.message)
        case let e as EmbedderError: return (e.code.rawValue, e.reason)
        case let e as FaceModelError: return (e.code.rawValue, e.message)
        case let e as FaceDetectorError:
            if case .imageTooLarge = e { return (ImageDecodingError.Code.tooLarge.rawValue, e.description) }
            return (EmbedderError.Code.invalidArgument.rawValue, e.description)
        case let e as FaceDescriptorError: return (EmbedderError.Code.invalidArgument.rawValue, e.description)
        default: return ("internal", "\(error)")
        }
    }
}
