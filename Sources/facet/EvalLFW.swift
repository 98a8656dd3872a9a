import ArgumentParser
import FacetClassify
import FacetEval
import FacetFace
import FacetImaging
import FacetMasking
import Foundation

/// `facet eval lfw`: the masked LFW evaluation (verification under three comparison types, baseline vs mask-aware,
/// extended impostors, SVM identification, fairness), from images or from an embedding cache.
struct EvalLFW: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lfw",
        abstract: "Masked LFW: View 2 under unmasked/masked comparisons, baseline vs mask-aware, extended impostors, SVM identification, fairness.",
        discussion: """
            Masked images come from --masks DIR (a `facet mask-dataset` copy of LFW in LFW layout) or are rendered \
            in memory with --mask-split (same masks as `facet mask-dataset --centred --split S --seed --mask-seed`, \
            JPEG quality 95 round trip included). Templates: the detected face nearest the image centre (MMOD at \
            --upsample), else the fallback crop (counted as failed to template). --cache DIR reads NAME.jsonl \
            (`facet embed --json` output run in the image root, e.g. the lead's /work/cache/lfw/unmasked.jsonl) and \
            NAME.eval.jsonl, embeds whatever is missing and appends it to NAME.eval.jsonl; NAME is `unmasked` and \
            the basename of --masks (or masked-SPLIT). See docs/eval.md for every decision.
            """)

    @Option(help: "LFW image root (ROOT/Name/Name_000i.jpg).") var lfw: String
    @Option(help: "View 2 pairs file (pairs.txt, with its 10 300 header).") var pairs: String
    @Option(help: "Folder of masked LFW images in LFW layout (facet mask-dataset output).") var masks: String?
    @Option(help: "Render masks in memory from this family instead: test or train.") var maskSplit: String?
    @Option(help: "Seed of the in-memory masks (as facet mask-dataset --seed).") var maskSeed: UInt64 = 0
    @Option(help: "Embedding cache folder (read NAME.jsonl and NAME.eval.jsonl, append to NAME.eval.jsonl).") var cache: String?
    @Option(help: "LFW demographics folder (gender lists, race_usc_sail); fairness sections need it.") var demographics: String?
    @Option(help: "Write the JSON result here ('-' = standard output).") var json: String?
    @Option(help: "Write the self-contained HTML report here.") var report: String?
    @Option(help: "Impostor pairs per fold (default: every cross-identity pair within each fold).") var impostorsPerFold: Int?
    @Option(help: "Seed of impostor sampling and of the identification split.") var seed: UInt64 = 1
    @Option(help: "Target FMR of the operating thresholds and of the fairness threshold.") var targetFmr: Double = 1e-3
    @Option(help: "Identification: identities with at least this many images are enrolled (or held out).") var idMinImages = 10
    @Option(help: "Identification: use only the first N images (by number) of each identity (0 = all).") var idMaxImages = 20
    @Option(help: "Identification: training (enrolment) images per identity; the rest are probes.") var idTrain = 5
    @Option(help: "Identification: fraction of eligible identities held out as unknown (open set).") var idHeldOut = 0.1
    @Option(help: "SVM C.") var svmC = 1.0
    @Option(help: "Use at most N View 2 pairs (half matched, half mismatched, spread over the folds).") var limit: Int?
    @Flag(help: "Partial run: keep only the View 2 pairs (and identification identities) whose images are all in the cache of both conditions.")
    var onlyCached = false
    @Flag(help: "Do not run the mask detector (mask-aware thresholds are then routed by the ground truth).") var noMaskDetector = false
    @Option(help: "Times the detector doubles the image first (0-4).") var upsample = 0
    @Option(help: "No face above MMOD's threshold: take the weak detection above this (negative) score nearest the centre before the fallback crop (0 = off, the default: on LFW the fixed crop is as good, docs/masks.md).")
    var weakThreshold = 0.0
    @Option(help: "Folder with the dlib model files (default: $FACET_MODELS, else ./models).") var models: String?
    @Option(help: "Worker threads for embedding.") var threads = 2
    @Option(help: "Folder of per-fold unmasking heads (facet mask-heads) for the mask-aware column (default: frozen embedding, per-comparison thresholds only).")
    var foldHeads: String?
    @Option(help: "Mask-aware column: adaptive score normalisation against the N nearest unmasked templates of people outside the pair's fold (0 = off).")
    var cohortSize = 0
    @Flag(help: "Mask-aware column: fuse the periocular embedding (the bundled periocular-fusion-v2.json) in decisions with a side the detector calls masked.")
    var periocular = false
    @Option(help: "Like --periocular, with this periocular fusion file.") var periocularModel: String?
    @Flag(help: "Mask-aware column: start from the frozen embeddings, not from their average with the mirror image's (what the bundled mask-aware matcher does, and the bundled thresholds are calibrated for).")
    var noMirrorAverage = false
    @Option(help: "Mask-aware column: faces the detector calls masked are matched on a chip re-cut with the nose point placed from the eyes at this template height (MaskAwareMatcher.maskedNoseY; docs/masks.md, session 11).")
    var maskedNoseY: Double?

    func validate() throws {
        if masks != nil && maskSplit != nil { throw ValidationError("give --masks or --mask-split, not both") }
        if let y = maskedNoseY, !(y > 0 && y < 1) { throw ValidationError("--masked-nose-y is a template height between 0 and 1") }
        if maskedNoseY != nil && (noMaskDetector || noMirrorAverage) { throw ValidationError("--masked-nose-y needs the mask detector and mirror averaging") }
        if let s = maskSplit, MaskFamily(rawValue: s) == nil { throw ValidationError("--mask-split must be test or train") }
        guard (0...DlibFaceEmbedder.maxUpsample).contains(upsample) else {
            throw ValidationError("--upsample must be between 0 and \(DlibFaceEmbedder.maxUpsample)")
        }
        guard targetFmr > 0 && targetFmr < 1 else { throw ValidationError("--target-fmr must be in (0, 1)") }
        if let n = impostorsPerFold, n < 1 { throw ValidationError("--impostors-per-fold must be >= 1") }
        guard idTrain >= 1, idMinImages > idTrain else { throw ValidationError("need 1 <= --id-train < --id-min-images") }
        guard idMaxImages == 0 || idMaxImages >= idMinImages else { throw ValidationError("--id-max-images must be 0 or >= --id-min-images") }
        guard idHeldOut >= 0, idHeldOut < 1 else { throw ValidationError("--id-held-out must be in [0, 1)") }
        guard svmC > 0 else { throw ValidationError("--svm-c must be > 0") }
        guard (1...64).contains(threads) else { throw ValidationError("--threads must be in 1...64") }
        if let l = limit, l < 4 { throw ValidationError("--limit must be at least 4") }
        if onlyCached && cache == nil { throw ValidationError("--only-cached needs --cache") }
    }

    func run() throws {
        let t0 = Date()
        func fail(_ message: String, code: Int32 = 1) -> ExitCode {
            FileHandle.standardError.write(Data("facet eval lfw: \(message)\n".utf8))
            return ExitCode(code)
        }
        let log: @Sendable (String) -> Void = { FileHandle.standardError.write(Data("eval lfw: \($0)\n".utf8)) }
        let root = URL(fileURLWithPath: lfw)
        let modelDir = models
        let result: LFWEvaluationResult
        do {
            var parsed = try PairsEvaluation.loadPairs(URL(fileURLWithPath: pairs), limit: limit)
            guard Set(parsed.folds).count >= 2 else { throw EvalError.invalidParameter("the pairs file needs folds") }
            let missing = parsed.missingImages(root: root)
            if let first = missing.first {
                throw EvalError.io(path: first.path, message: "image not found (\(missing.count) of the pairs file's images are missing)")
            }
            var people = try LFWPeople.scan(root: root)
            let maskedName = masks.map { URL(fileURLWithPath: $0).standardizedFileURL.lastPathComponent } ?? "masked-\(maskSplit ?? "test")"
            if onlyCached, let cache {
                let dir = URL(fileURLWithPath: cache)
                let have = try TemplateAcquisition.cachedKeys(name: "unmasked", cacheDirectory: dir)
                    .intersection(TemplateAcquisition.cachedKeys(name: maskedName, cacheDirectory: dir))
                let before = parsed.pairs.count
                parsed.pairs = parsed.pairs.filter { have.contains(TemplateCache.key($0.first)) && have.contains(TemplateCache.key($0.second)) }
                for f in Set(parsed.folds) {
                    let inFold = parsed.pairs.filter { $0.fold == f }
                    guard inFold.contains(where: \.isSame), inFold.contains(where: { !$0.isSame }) else {
                        throw EvalError.invalidParameter("--only-cached: fold \(f + 1) has no matched or no mismatched pair with cached images")
                    }
                }
                let cap = idMaxImages == 0 ? Int.max : idMaxImages
                people = LFWPeople(counts: people.counts.mapValues { min($0, cap) }.filter { name, n in
                    (1...n).allSatisfy { have.contains(TemplateCache.key(LFWImage(name: name, number: $0))) }
                })
                log("--only-cached: \(parsed.pairs.count) of \(before) View 2 pairs and \(people.counts.count) identities have all their images cached (PARTIAL RUN)")
            }
            var options = LFWEvaluationOptions()
            options.targetFMR = targetFmr
            options.impostorsPerFold = impostorsPerFold
            options.seed = seed
            options.identificationMinImages = idMinImages
            options.identificationTrainPerIdentity = idTrain
            options.identificationHeldOutFraction = idHeldOut
            options.svm = LinearSVMOptions(c: svmC)

            let impostors = try LFWProtocol.crossIdentityImpostorSet(parsed, maxPerFold: impostorsPerFold, seed: seed)
            log("\(parsed.pairs.count) View 2 pairs in \(Set(parsed.folds).count) folds, \(impostors.count) cross-identity impostor pairs")
            var split: IdentificationSplit?
            do {
                let capped = idMaxImages == 0 ? people : LFWPeople(counts: people.counts.mapValues { min($0, idMaxImages) })
                split = try LFWProtocol.identificationSplit(capped, minImages: idMinImages, trainPerIdentity: idTrain,
                                                           nonMatedFraction: idHeldOut, seed: seed)
            } catch EvalError.invalidParameter(let m) {
                log("no identification section: \(m)")
            }
            let images = LFWEvaluation.images(pairs: parsed, split: split)
            let demo = try demographics.map { try LFWDemographics.load(directory: URL(fileURLWithPath: $0)) }

            // Image sources.
            let decoder = ImageDecoder()
            let unmaskedSource = TemplateAcquisition.Source(name: "unmasked") { im in
                try decoder.decodeFile(atPath: im.path(root: root).path)
            }
            let maskedSource: TemplateAcquisition.Source
            if let masks {
                let dir = URL(fileURLWithPath: masks)
                maskedSource = .init(name: maskedName) { im in
                    try decoder.decodeFile(atPath: im.path(root: dir).path)
                }
            } else {
                let family = MaskFamily(rawValue: maskSplit ?? "test")!
                let masker = Once { try InMemoryMasker(family: family, seed: maskSeed, models: modelDir) }
                maskedSource = .init(name: maskedName) { im in
                    try masker.get().masked(try decoder.decodeFile(atPath: im.path(root: root).path), relativePath: TemplateCache.key(im))
                }
            }
            let cacheDir = cache.map { URL(fileURLWithPath: $0) }
            if let cacheDir { try FileManager.default.createDirectory(at: cacheDir, withIntermediateDirectories: true) }
            let detector = noMaskDetector ? nil : try MaskDetector.bundled()
            options.maskThreshold = detector?.threshold ?? 0.5
            let embedder = Once { () throws -> DlibFaceEmbedder in
                do {
                    return try DlibFaceEmbedder(locator: FaceModelLocator(directory: modelDir),
                                                weakFaceThreshold: weakThreshold < 0 ? weakThreshold : nil)
                } catch {
                    throw fail("cannot load models: \(error)", code: 2)
                }
            }
            let makeEmbedder: () throws -> DlibFaceEmbedder? = { try embedder.get() }
            let fusion = try (periocularModel ?? (periocular ? "bundled" : nil)).map(PeriocularFusion.named)
            options.periocularFullWeight = fusion?.fullWeight
            options.mirrorAverage = !noMirrorAverage
            let u = try TemplateAcquisition.acquire(images: images, source: unmaskedSource, cacheDirectory: cacheDir,
                                                    embedder: makeEmbedder, upsample: upsample, detector: detector,
                                                    periocular: fusion, mirrorAverage: options.mirrorAverage, maskedNoseY: maskedNoseY,
                                                    threads: threads, log: log)
            log("unmasked: \(u.statistics.fromCache) from the cache, \(u.statistics.embedded) embedded, \(u.statistics.failedToTemplate) failed to template")
            let m = try TemplateAcquisition.acquire(images: images, source: maskedSource, cacheDirectory: cacheDir,
                                                    embedder: makeEmbedder, upsample: upsample, detector: detector,
                                                    periocular: fusion, mirrorAverage: options.mirrorAverage, maskedNoseY: maskedNoseY,
                                                    threads: threads, log: log)
            log("\(maskedSource.name): \(m.statistics.fromCache) from the cache, \(m.statistics.embedded) embedded, \(m.statistics.failedToTemplate) failed to template")
            let adaptation: any EmbeddingAdaptation = try foldHeads.map {
                try FoldHeadAdaptation(directory: URL(fileURLWithPath: $0), pairs: parsed, maskThreshold: options.maskThreshold)
            } ?? IdentityAdaptation()
            options.cohortSize = cohortSize
            var r = try LFWEvaluation.run(pairs: parsed, impostors: impostors, split: split, unmasked: u.table, masked: m.table,
                                          demographics: demo, adaptation: adaptation, options: options, log: log)
            if cohortSize > 0 {
                r.notes.append("Mask-aware scores of decisions with a side the detector calls masked are cohort-normalised: z = ((d - mean_a) / std_a + (d - mean_b) / std_b) / 2, mean/std of each template's \(cohortSize) smallest distances to the unmasked mask-aware templates of people sharing no View 2 fold with it; score = -(M + S z) with M, S the average cohort mean/std (distance units); unmasked-unmasked decisions keep the plain distance.")
            }
            if options.mirrorAverage {
                r.notes.append("Mask-aware column: every embedding is first averaged with its mirror image's (normalised mean of the aligned chip's and the mirrored chip's unit embeddings; \(u.statistics.mirrorComputed + m.statistics.mirrorComputed) computed in this run); the baseline column keeps the frozen embeddings.")
            }
            if let y = maskedNoseY {
                r.notes.append("Mask-aware column: a face the detector calls masked is matched on a chip cut again with its nose point placed from the eyes at template height \(y) (ChipDetails.maskedLandmarks): its mirror-averaged and periocular embeddings come from that chip; the detector reads the standard chip.")
            }
            if let fusion {
                r.notes.append("Mask-aware scores of decisions with a side the detector calls masked fuse the full and the periocular distance: \(fusion.fullWeight) · full + \(1 - fusion.fullWeight) · periocular; periocular = the same ResNet on the aligned chip with rows \(fusion.occludeFromRow)–\(fusion.chipSize - 1) painted (\(fusion.fill.map(String.init).joined(separator: ", "))) (\(u.statistics.periocularComputed + m.statistics.periocularComputed) computed in this run)" + (cohortSize > 0 ? "; cohort statistics are fused distances too." : "."))
            }
            r.notes.append("Templates: unmasked \(u.statistics.images) images (\(u.statistics.embedded) embedded in this run, \(u.statistics.failedToTemplate) on the fallback crop); "
                           + "\(maskedSource.name) \(m.statistics.images) images (\(m.statistics.embedded) embedded in this run, \(m.statistics.failedToTemplate) on the fallback crop).")
            if onlyCached {
                r.notes.insert("PARTIAL RUN (--only-cached): only the View 2 pairs and identities whose images were all in the embedding cache.", at: 0)
            }
            r.notes.append(String(format: "Total time %.0f s.", Date().timeIntervalSince(t0)))
            result = r
        } catch let e as ExitCode {
            throw e
        } catch {
            throw fail("\(error)")
        }
        let command = (["facet"] + CommandLine.arguments.dropFirst()).joined(separator: " ")
        if let report {
            let html = result.report(title: "facet eval lfw: masked LFW", commands: [command]).html()
            do { try Data(html.utf8).write(to: URL(fileURLWithPath: report), options: .atomic) } catch {
                throw fail("cannot write report \(report): \(error.localizedDescription)")
            }
            log("report written to \(report)")
        }
        if let json {
            let data = try result.json()
            if json == "-" {
                FileHandle.standardOutput.write(data + Data("\n".utf8))
                return
            }
            do { try data.write(to: URL(fileURLWithPath: json), options: .atomic) } catch {
                throw fail("cannot write JSON \(json): \(error.localizedDescription)")
            }
            log("JSON written to \(json)")
        }
        print(result.text(), terminator: "")
    }
}

/// Renders the masks of `facet mask-dataset --centred` in memory: the LFW-centred box, dlib's 68 landmarks, the
/// family's spec drawn from `stableHash(relativePath, seed:)`, then a JPEG (quality 95) round trip so the pixels
/// equal the files mask-dataset writes.
final class InMemoryMasker: @unchecked Sendable {   // immutable after init; the parts are read-only
    let family: MaskFamily
    let seed: UInt64
    let finder: FaceFinder
    let renderer: MaskRenderer
    let encoder = ImageEncoder(jpegQuality: 95)
    let decoder = ImageDecoder()

    init(family: MaskFamily, seed: UInt64, models: String?) throws {
        self.family = family
        self.seed = seed
        var args = ["--centred"]
        if let models { args += ["--models", models] }
        finder = try FaceFinder(options: FaceFindingOptions.parse(args))
        renderer = try MaskRenderer()
    }

    func masked(_ picture: RGBImage, relativePath: String) throws -> RGBImage {
        guard let face = try finder.faces(in: picture).first else { return picture }
        let spec = family.randomSpec(key: stableHash(relativePath, seed: seed))
        let out = try renderer.apply(to: picture, landmarks: face.landmarks, spec: spec)
        return try decoder.decode(try encoder.jpeg(out.image))
    }
}

/// A value made on first use (thread-safe), e.g. the 68-point model only when an image must be masked.
final class Once<T>: @unchecked Sendable {   // guarded by `lock`
    private let lock = NSLock()
    private var value: T?
    private let make: () throws -> T
    init(_ make: @escaping () throws -> T) { self.make = make }
    func get() throws -> T {
        lock.lock()
        defer { lock.unlock() }
        if let value { return value }
        let v = try make()
        value = v
        return v
    }
}
