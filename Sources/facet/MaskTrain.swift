import ArgumentParser
import FacetEval
import FacetFace
import FacetImaging
import FacetMasking
import Foundation

/// One image's central face as `facet embed --json` reported it.
struct EmbeddedFace {
    var landmarks: [LandmarkPoint]
    var embedding: [Float]
    var box: FaceRect
}

/// Reads `facet embed --json` output in file order: each image record's path as written and its face nearest the image
/// centre (nil when no face was found). Lines that are not image records are skipped.
func readEmbedLines(_ path: String) throws -> [(image: String, face: EmbeddedFace?)] {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
        throw ValidationError("cannot read \(path)")
    }
    var out: [(image: String, face: EmbeddedFace?)] = []
    for line in text.split(separator: "\n") {
        guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
              let image = obj["image"] as? String else { continue }
        guard let faces = obj["faces"] as? [[String: Any]], let w = obj["width"] as? Double, let h = obj["height"] as? Double else {
            out.append((image, nil)); continue
        }
        var best: EmbeddedFace?, bestD = Double.infinity
        for f in faces {
            guard let b = f["box"] as? [Double], b.count == 4, let lm = f["landmarks"] as? [[Double]],
                  let e = f["embedding"] as? [Double] else { continue }
            let d = pow((b[0] + b[2]) / 2 - w / 2, 2) + pow((b[1] + b[3]) / 2 - h / 2, 2)
            if d < bestD {
                bestD = d
                best = EmbeddedFace(landmarks: lm.map { LandmarkPoint(x: $0[0], y: $0[1]) }, embedding: e.map(Float.init),
                                    box: FaceRect(left: Int(b[0]), top: Int(b[1]), right: Int(b[2]), bottom: Int(b[3])))
            }
        }
        out.append((image, best))
    }
    return out
}

/// `readEmbedLines` by relative path (without a leading "./"); a later record of the same image wins.
func loadEmbedLines(_ path: String) throws -> [String: EmbeddedFace?] {
    var out: [String: EmbeddedFace?] = [:]
    for (image, face) in try readEmbedLines(path) { out[image.hasPrefix("./") ? String(image.dropFirst(2)) : image] = .some(face) }
    return out
}

/// `masks-manifest.jsonl` of `facet mask-dataset`: relative path → mask type (nil when the image was not masked).
func loadMaskManifest(_ path: String) throws -> [String: String?] {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw ValidationError("cannot read \(path)") }
    var out: [String: String?] = [:]
    for line in text.split(separator: "\n") {
        guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
              let p = obj["path"] as? String else { continue }
        out[p] = (obj["masked"] as? Bool) == true ? (obj["type"] as? String) : nil
    }
    return out
}

/// Faces computed by `facet mask-train` (key → embedding, chip, fell back to the fixed crop), kept in a binary
/// file between runs so that re-training does not run the CNNs again.
final class FaceStoreCache {
    struct Entry { var embedding: [Float]; var chip: RGBImage; var failed: Bool }
    var entries: [String: Entry] = [:]
    var dirty = false
    let url: URL?

    init(url: URL?) {
        self.url = url
        guard let url, let data = try? Data(contentsOf: url) else { return }
        var o = 0
        func int() -> Int? {
            guard o + 8 <= data.count else { return nil }
            let v = data[o..<(o + 8)].withUnsafeBytes { Int(Int64(littleEndian: $0.loadUnaligned(as: Int64.self))) }
            o += 8; return v
        }
        while let n = int(), n > 0, n < 10_000, o + n <= data.count {
            let key = String(decoding: data[o..<(o + n)], as: UTF8.self); o += n
            guard let failed = int(), let w = int(), let h = int(), let d = int(), w > 0, h > 0, w * h < 1_000_000, d >= 0, d < 10_000,
                  o + d * 4 + w * h * 3 <= data.count else { break }
            let e = data[o..<(o + d * 4)].withUnsafeBytes { raw in (0..<d).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) } }
            o += d * 4
            let px = [UInt8](data[o..<(o + w * h * 3)]); o += w * h * 3
            entries[key] = Entry(embedding: e, chip: RGBImage(width: w, height: h, pixels: px), failed: failed != 0)
        }
    }

    func save() throws {
        guard let url, dirty else { return }
        var data = Data()
        func int(_ v: Int) { withUnsafeBytes(of: Int64(v).littleEndian) { data.append(contentsOf: $0) } }
        for key in entries.keys.sorted() {
            let e = entries[key]!
            let k = Data(key.utf8)
            int(k.count); data.append(k)
            int(e.failed ? 1 : 0); int(e.chip.width); int(e.chip.height); int(e.embedding.count)
            for x in e.embedding { withUnsafeBytes(of: x.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
            data.append(contentsOf: e.chip.pixels)
        }
        try data.write(to: url, options: .atomic)
    }
}

func personName(_ relativePath: String) -> String { String(relativePath.split(separator: "/").first ?? "") }

/// `body` over consecutive slices of at most `size` items (network passes run in mini-batches), results in order.
func inBatches<T, R>(_ items: [T], of size: Int, _ body: (ArraySlice<T>) throws -> [R]) rethrows -> [R] {
    var out: [R] = []
    out.reserveCapacity(items.count)
    for start in stride(from: 0, to: items.count, by: size) { out += try body(items[start ..< min(items.count, start + size)]) }
    return out
}

/// `facet mask-train`: mask detector, unmasking head and per-kind thresholds from people outside LFW view 2's
/// pairs, then measured on view 2 (held-out people, TEST-family masks).
struct MaskTrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mask-train",
        abstract: "Train the mask detector, the unmasking head and per-kind thresholds; measure them on LFW view 2.",
        discussion: """
        --train DIR holds the training people (LFW people outside pairs.txt): unmasked/ (images) and \
        masked-train/ (facet mask-dataset --split train --centred); their faces are taken from the LFW-centred box. --eval DIR holds the same for all of LFW with TEST-family masks: unmasked.jsonl, masked-test/, \
        masked-test.jsonl; --lfw is the unmasked LFW folder. scripts/masks/make-mask-data.sh makes both from LFW. \
        Images without a face in the JSON are embedded again here (upsample 1, then the fixed LFW fallback crop, \
        counted as failed to template), as `facet embed` and `facet eval pairs` would.
        """)

    @Option(help: "Training data folder (see above).") var train: String
    @Option(help: "Evaluation data folder (see above).") var eval: String
    @Option(help: "LFW folder (unmasked images).") var lfw: String
    @Option(help: "LFW view 2 pairs file.") var pairs: String
    @Option(help: "Folder for mask-detector-v4.json, unmasking-head-v1.json, comparison-thresholds-v3.json (v2 with --masked-nose-y 0, v1 with --no-mirror-average as well) and report.json.")
    var outDir: String
    @Option(help: "Held-out images per class for the detector measurement (0 = all).") var detectorHeldOut: Int = 3000
    @Option(help: "Pairs-file images whose cross-person pairs form the large impostor set (0 = all).") var impostorImages: Int = 2000
    @Option(help: "Hidden units of the head.") var hidden: Int = 128
    @Option(help: "Training epochs of the head.") var epochs: Int = 30
    @Option(help: "Triplet margin (squared distance between unit vectors).") var margin: Double = 0.5
    @Option(help: "Weight of the identity term for unmasked inputs.") var identityWeight: Double = 1.0
    @Option(help: "Adam learning rate.") var learningRate: Double = 1e-3
    @Option(help: "Target false-match rate for the thresholds.") var targetFmr: Double = 1e-3
    @Option(help: "Logistic-regression ridge penalty of the detector (per sample, on standardised features).") var l2: Double = 1e-2
    @Option(help: "Newton iterations of the detector's logistic regression (stops earlier when converged).") var detectorIterations: Int = 25
    @Option(help: "Decision threshold written into the trained detector (0.40 = best mean accuracy in leave-one-TRAIN-mask-type-out validation, docs/masks.md).")
    var detectorThreshold: Double = 0.5
    @Option(help: "Use this detector file instead of training one.") var detector: String?
    @Flag(help: "Choose the detector's threshold by leave-one-TRAIN-mask-type-out validation on the training people (replaces --detector-threshold).")
    var validateThreshold = false
    @Flag(help: "Weigh the detector's two classes equally (unmasked faces repeated to match the masked ones, e.g. with --extra-masked).")
    var balanceClasses = false
    @Option(help: ArgumentHelp("More TRAIN-mask draws of the training images for the detector: folders under --train made like masked-train/ (facet mask-dataset --split train --centred --seed S).", valueName: "name"))
    var extraMasked: [String] = []
    @Option(help: "Use this head file instead of training one.") var head: String?
    @Option(help: "Also calibrate per-type thresholds on fused distances for this periocular fusion file ('bundled' = periocular-fusion-v2.json); writes OUT/periocular-fusion-vN.json (N = its version) with them.")
    var periocular: String?
    @Option(help: "Folder of the dlib model files (default: $FACET_MODELS, else ./models).") var models: String?
    @Option(help: "Binary file where computed faces are kept between runs (created when missing).") var faceCache: String?
    @Flag(help: "For evaluation images without a face in the JSON, search at upsample 1 before the fallback crop (slow).")
    var retry = false
    @Option(help: .hidden) var dumpDetectorData: String?
    @Flag(help: "Mask-aware embeddings without mirror averaging (the recipe of comparison-thresholds-v1.json, before session 9).")
    var noMirrorAverage = false
    @Option(help: "Masked-face alignment of the mask-aware embeddings the thresholds are calibrated on (MaskAwareMatcher.maskedNoseY; default: the bundled 0.52; 0 = off). The thresholds, and the head's masked training faces when the head is trained here (faces called masked re-cut before the head learns from them); step 4's View 2 check keeps the standard chip (facet eval lfw measures the alignment).")
    var maskedNoseY: Double = MaskAwareMatcher.bundledMaskedNoseY

    func validate() throws {
        guard maskedNoseY >= 0 && maskedNoseY < 1 else { throw ValidationError("--masked-nose-y is a template height between 0 and 1 (0 = off)") }
    }

    func run() throws {
        let out = URL(fileURLWithPath: outDir)
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let t = URL(fileURLWithPath: train), e = URL(fileURLWithPath: eval)
        let decoder = ImageDecoder()
        let embedder = try DlibFaceEmbedder(locator: FaceModelLocator(directory: models))
        var report: [String: Any] = ["command": CommandLine.arguments.joined(separator: " ")]
        func log(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)); }

        // Training data: every image of the training people, as is and with its TRAIN-family mask.
        let trainManifest = try loadMaskManifest(t.appendingPathComponent("masked-train/masks-manifest.jsonl").path)
        let trainPaths = trainManifest.keys.sorted()
        log("training people: \(Set(trainPaths.map(personName)).count), images \(trainPaths.count)")
        /// Chip of a face in an image file; the face from the JSON, or computed (upsample 1 retry, then the fallback crop).
        let cache = FaceStoreCache(url: faceCache.map { URL(fileURLWithPath: $0) })
        log("face cache: \(cache.entries.count) faces")
        defer { try? cache.save() }
        func face(root: URL, path: String, json: EmbeddedFace??) throws -> (chip: RGBImage, embedding: [Float], failed: Bool) {
            let key = "\(retry ? "retry:" : "")\(root.path)/\(path)"
            if case .some(.some) = json {} else if let c = cache.entries[key] { return (c.chip, c.embedding, c.failed) }
            let r = try computeFace(root: root, path: path, json: json)
            if case .some(.some) = json {} else { cache.entries[key] = .init(embedding: r.embedding, chip: r.chip, failed: r.failed); cache.dirty = true }
            return r
        }
        func computeFace(root: URL, path: String, json: EmbeddedFace??) throws -> (chip: RGBImage, embedding: [Float], failed: Bool) {
            let image = try decoder.decodeFile(atPath: root.appendingPathComponent(path).path)
            if case .some(.some(let f)) = json {
                let details = ChipDetails.forFace(landmarks: f.landmarks)
                return (FaceChip.extract(image, details: details), f.embedding, false)
            }
            if retry, let f = try embedder.analyze(image, upsample: 1, jitter: 0).min(by: {
                abs(Double($0.box.left + $0.box.right) / 2 - Double(image.width) / 2) + abs(Double($0.box.top + $0.box.bottom) / 2 - Double(image.height) / 2)
                < abs(Double($1.box.left + $1.box.right) / 2 - Double(image.width) / 2) + abs(Double($1.box.top + $1.box.bottom) / 2 - Double(image.height) / 2)
            }) {
                return (FaceChip.extract(image, details: f.chip), f.embedding, false)
            }
            let box = PairsEvaluation.fallbackBox(width: image.width, height: image.height)
            let f = try embedder.analyze(image, detections: [FaceDetection(rect: box, confidence: 0)], jitter: 0)[0]
            return (FaceChip.extract(image, details: f.chip), f.embedding, true)
        }

        func dumpDetector(_ dir: String, _ name: String, _ faces: [(String, RGBImage, [Float], String)], mirror: Bool) throws {
            guard let resnet = embedder.descriptor as? ResNetFaceDescriptor else { throw ValidationError("not the ResNet") }
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            var files: [String: Data] = [:]
            var meta = ""
            let rows = faces.map { ($0, false) } + (mirror ? faces.map { ($0, true) } : [])
            let progress = ProgressReporter(total: rows.count, label: "dump \(name)")
            for start in stride(from: 0, to: rows.count, by: 64) {
                let part = rows[start ..< min(rows.count, start + 64)]
                let chips = part.map { $0.1 ? MaskDetector.mirrored($0.0.1) : $0.0.1 }
                let acts = try resnet.blockActivations(for: chips, blocks: [6, 9, 12, 13])
                for (k, r) in part.enumerated() {
                    let v3 = MaskDetector.features(chip: chips[k], embedding: r.0.2, version: 3)
                    for (key, v) in [("v3", v3), ("b6", acts[k][0]), ("b9", acts[k][1]), ("b12", acts[k][2]), ("b13", acts[k][3])] {
                        v.withUnsafeBufferPointer { files[key, default: Data()].append(Data(buffer: $0)) }
                    }
                    meta += "{\"path\":\"\(r.0.0)\",\"type\":\"\(r.0.3)\",\"mirror\":\(r.1)}\n"
                    progress.advance()
                }
            }
            progress.finish()
            for (key, d) in files { try d.write(to: URL(fileURLWithPath: "\(dir)/\(name)-\(key).f32")) }
            try Data(meta.utf8).write(to: URL(fileURLWithPath: "\(dir)/\(name)-meta.jsonl"))
        }

        // 1. Mask detector. Training faces: the LFW-centred box (no detector pass, so training stays cheap),
        // 5-point alignment and the ResNet embedding.
        var trainMaskedFaces: [(path: String, embedding: [Float], chip: RGBImage)] = []
        var trainMaskedTypes: [String] = []   // the TRAIN mask type of each masked face (for the threshold validation)
        var trainMaskedFolders: [String] = [] // the training folder each masked face is read from (masked-train or an extra one)
        var trainPlainFaces: [(path: String, embedding: [Float], chip: RGBImage)] = []
        do {
            func centred(_ root: URL, _ p: String) throws -> (embedding: [Float], chip: RGBImage)? {
                let key = "centred:\(root.path)/\(p)"
                if let c = cache.entries[key] { return (c.embedding, c.chip) }
                let image = try decoder.decodeFile(atPath: root.appendingPathComponent(p).path)
                let box = FaceFinder.centredBox(width: image.width, height: image.height)
                guard let f = try embedder.analyze(image, detections: [FaceDetection(rect: box, confidence: 1)]).first else { return nil }
                let chip = FaceChip.extract(image, details: f.chip)
                cache.entries[key] = .init(embedding: f.embedding, chip: chip, failed: false); cache.dirty = true
                return (f.embedding, chip)
            }
            // A masked training face of `folder` (when its manifest says it was masked, and with which TRAIN type).
            func addMasked(_ folder: String, _ p: String, manifest: [String: String?]) throws {
                if case .some(.some(let type)) = manifest[p], let f = try centred(t.appendingPathComponent(folder), p) {
                    trainMaskedFaces.append((p, f.embedding, f.chip))
                    trainMaskedTypes.append(type)
                    trainMaskedFolders.append(folder)
                }
            }
            let progress = ProgressReporter(total: trainPaths.count, label: "training faces")
            for p in trainPaths {
                defer { progress.advance() }
                if let f = try centred(t.appendingPathComponent("unmasked"), p) { trainPlainFaces.append((p, f.embedding, f.chip)) }
                try addMasked("masked-train", p, manifest: trainManifest)
            }
            progress.finish()
            for name in extraMasked {
                let manifest = try loadMaskManifest(t.appendingPathComponent("\(name)/masks-manifest.jsonl").path)
                guard Set(manifest.keys.map(personName)).isSubset(of: Set(trainPaths.map(personName))) else {
                    throw ValidationError("\(name) holds people outside the training people")
                }
                let extra = ProgressReporter(total: manifest.count, label: "training faces (\(name))")
                for p in manifest.keys.sorted() {
                    defer { extra.advance() }
                    try addMasked(name, p, manifest: manifest)
                }
                extra.finish()
            }
            try cache.save(); cache.dirty = false
        }
        let detectorModel: MaskDetector
        if let path = detector {
            detectorModel = try MaskDetector(contentsOf: URL(fileURLWithPath: path))
        } else {
            let v = MaskDetector.currentVersion
            let block = v >= 4 ? MaskDetector.defaultNetworkBlock : nil
            // Version 3 and later also train on every chip mirrored (same embedding); version 4 reads the network's
            // activations of each chip (computed once per face and mirror image, in batches).
            func rows(_ faces: [(path: String, embedding: [Float], chip: RGBImage)], label: String) throws -> (plain: [[Float]], mirrored: [[Float]]) {
                let progress = ProgressReporter(total: faces.count, label: "detector features (\(label))")
                var plain: [[Float]] = [], mirrored: [[Float]] = []
                for start in stride(from: 0, to: faces.count, by: 64) {
                    let part = faces[start ..< min(faces.count, start + 64)]
                    for mirror in v >= 3 ? [false, true] : [false] {
                        let chips = part.map { mirror ? MaskDetector.mirrored($0.chip) : $0.chip }
                        let acts = try block.map { b -> [[Float]] in
                            guard let resnet = embedder.descriptor as? ResNetFaceDescriptor else { throw ValidationError("detector version \(v) needs the face ResNet") }
                            return try resnet.blockActivations(for: chips, blocks: [b]).map { $0[0] }
                        }
                        let x = zip(chips, part).enumerated().map { k, cf in
                            MaskDetector.features(chip: cf.0, embedding: cf.1.embedding, activations: acts?[k], version: v)
                        }
                        if mirror { mirrored += x } else { plain += x }
                    }
                    progress.advance(by: part.count)
                }
                progress.finish()
                return (plain, mirrored)
            }
            let maskedRows = try rows(trainMaskedFaces, label: "masked"), plainRows = try rows(trainPlainFaces, label: "unmasked")
            func feats(_ r: (plain: [[Float]], mirrored: [[Float]]), _ keep: (Int) -> Bool = { _ in true }) -> [[Float]] {
                let i = r.plain.indices.filter(keep)
                return i.map { r.plain[$0] } + (r.mirrored.isEmpty ? [] : i.map { r.mirrored[$0] })
            }
            /// Unmasked rows repeated (whole copies, then a deterministic remainder) until they match the masked rows.
            func balanced(_ unmasked: [[Float]], to n: Int) -> [[Float]] {
                guard balanceClasses, !unmasked.isEmpty, n > unmasked.count else { return unmasked }
                var out: [[Float]] = []
                while out.count + unmasked.count <= n { out += unmasked }
                return out + unmasked.prefix(n - out.count)
            }
            func fit(_ masked: [[Float]], _ unmasked: [[Float]]) throws -> MaskDetector {
                guard var d = MaskDetector.train(masked: masked, unmasked: balanced(unmasked, to: masked.count),
                                                 embeddingModel: embedder.modelName, l2: l2, iterations: detectorIterations,
                                                 networkBlock: block)
                else { throw ValidationError("no detector training data") }
                d.version = v
                return d
            }
            var threshold = detectorThreshold
            if validateThreshold {
                // Leave one TRAIN mask type out: fit on the other types' masked faces of 80 % of the training people,
                // score the left-out type's masked faces and the unmasked faces of the other 20 %; the threshold with
                // the best mean balanced accuracy over the four folds wins. No TEST mask and no pairs.txt person is seen.
                let grid = stride(from: 0.20, through: 0.80, by: 0.025).map { $0 }
                var sums = [Double](repeating: 0, count: grid.count)
                let isValidation = { (path: String) in stableHash(personName(path), seed: 0x6D61_736B) % 5 == 0 }
                let types = Set(trainMaskedTypes).sorted()
                for held in types {
                    let d = try fit(feats(maskedRows) { trainMaskedTypes[$0] != held && !isValidation(trainMaskedFaces[$0].path) },
                                    feats(plainRows) { !isValidation(trainPlainFaces[$0].path) })
                    let pm = maskedRows.plain.indices.filter { trainMaskedTypes[$0] == held && isValidation(trainMaskedFaces[$0].path) }
                        .map { d.probability(features: maskedRows.plain[$0]) }
                    let pu = plainRows.plain.indices.filter { isValidation(trainPlainFaces[$0].path) }.map { d.probability(features: plainRows.plain[$0]) }
                    var line: [String] = []
                    for (i, th) in grid.enumerated() {
                        let recall = Double(pm.filter { $0 >= th }.count) / Double(max(pm.count, 1))
                        let specificity = Double(pu.filter { $0 < th }.count) / Double(max(pu.count, 1))
                        sums[i] += (recall + specificity) / 2
                        if abs(th - 0.4) < 1e-9 || abs(th - 0.5) < 1e-9 { line.append(String(format: "%.3f: %.2f%%", th, 50 * (recall + specificity))) }
                    }
                    log("detector validation: \(held) left out (\(pm.count) masked, \(pu.count) unmasked faces of held-out training people): \(line.joined(separator: ", "))")
                }
                let best = sums.indices.max { sums[$0] < sums[$1] || (sums[$0] == sums[$1] && abs(grid[$0] - 0.5) > abs(grid[$1] - 0.5)) }!
                threshold = grid[best]
                log(String(format: "detector validation: threshold %.3f (mean balanced accuracy %.2f%% over %d left-out types)",
                           threshold, 100 * sums[best] / Double(types.count), types.count))
                report["detector_validation"] = ["threshold": threshold, "mean_balanced_accuracy": sums[best] / Double(types.count),
                                                 "types": types, "grid": grid, "mean_by_threshold": sums.map { $0 / Double(types.count) }]
            }
            log("detector: training version \(v) on \(trainMaskedFaces.count) + \(trainPlainFaces.count) faces\(v >= 3 ? " and their mirror images" : "")\(balanceClasses ? ", classes balanced" : "")")
            var d = try fit(feats(maskedRows), feats(plainRows))
            d.threshold = threshold
            detectorModel = d
        }

        /// The detector's probabilities for faces (chips and embeddings), in batches (version 4 runs the network on them).
        func scores(_ faces: [(chip: RGBImage, embedding: [Float])]) throws -> [Double] {
            try inBatches(faces, of: 64) {
                try detectorModel.probabilities(chips: $0.map(\.chip), embeddings: $0.map(\.embedding), network: embedder.descriptor)
            }
        }
        func scores(_ faces: [(chip: RGBImage, embedding: [Float], failed: Bool)]) throws -> [Double] {
            try scores(faces.map { ($0.chip, $0.embedding) })
        }

        // Evaluation data (pairs people; TEST-family masks).
        let evalPlain = try loadEmbedLines(e.appendingPathComponent("unmasked.jsonl").path)
        let evalMasked = try loadEmbedLines(e.appendingPathComponent("masked-test.jsonl").path)
        let evalManifest = try loadMaskManifest(e.appendingPathComponent("masked-test/masks-manifest.jsonl").path)
        let lfwPairs = try LFWPairs.load(contentsOf: URL(fileURLWithPath: pairs))
        let trainPeople = Set(trainPaths.map(personName))
        let pairPeople = Set(lfwPairs.images.map(\.name))
        guard trainPeople.isDisjoint(with: pairPeople) else { throw ValidationError("training people appear in the pairs file") }

        // Detector on held-out people (all LFW people in pairs.txt, TEST masks): a deterministic sample.
        var detectorResult: [String: Any] = [:]
        do {
            var candidates = evalPlain.keys.filter { pairPeople.contains(personName($0)) && evalManifest[$0] != nil && evalMasked[$0] != nil }
                .sorted { stableHash($0) < stableHash($1) }
            if detectorHeldOut > 0 { candidates = Array(candidates.prefix(detectorHeldOut)) }
            var tp = 0, fn = 0, tn = 0, fp = 0
            var perType: [String: (hit: Int, n: Int)] = [:]
            let progress = ProgressReporter(total: candidates.count, label: "detector held-out")
            for start in stride(from: 0, to: candidates.count, by: 32) {
                let part = candidates[start ..< min(candidates.count, start + 32)]
                let plain = try part.map { try face(root: URL(fileURLWithPath: lfw), path: $0, json: evalPlain[$0]) }
                for p in try scores(plain) { if p >= detectorModel.threshold { fp += 1 } else { tn += 1 } }
                let maskedPaths = part.compactMap { p -> (String, String)? in
                    if case .some(.some(let type)) = evalManifest[p] { return (p, type) } else { return nil }
                }
                let masked = try maskedPaths.map { try face(root: e.appendingPathComponent("masked-test"), path: $0.0, json: evalMasked[$0.0]) }
                for (p, type) in zip(try scores(masked), maskedPaths.map(\.1)) {
                    let hit = p >= detectorModel.threshold
                    if hit { tp += 1 } else { fn += 1 }
                    perType[type, default: (0, 0)].hit += hit ? 1 : 0
                    perType[type, default: (0, 0)].n += 1
                }
                progress.advance(by: part.count)
            }
            progress.finish()
            if let dir = dumpDetectorData {
                try dumpDetector(dir, "train", trainPlainFaces.map { ($0.path, $0.chip, $0.embedding, "none") }
                                 + zip(trainMaskedFaces, trainMaskedTypes).map { ($0.0.path, $0.0.chip, $0.0.embedding, $0.1) }, mirror: true)
                var held: [(String, RGBImage, [Float], String)] = []
                for p in candidates {
                    let plain = try face(root: URL(fileURLWithPath: lfw), path: p, json: evalPlain[p])
                    held.append((p, plain.chip, plain.embedding, "none"))
                    if case .some(.some(let type)) = evalManifest[p] {
                        let m = try face(root: e.appendingPathComponent("masked-test"), path: p, json: evalMasked[p])
                        held.append((p, m.chip, m.embedding, type))
                    }
                }
                try dumpDetector(dir, "heldout", held, mirror: false)
            }
            let acc = Double(tp + tn) / Double(max(tp + tn + fp + fn, 1))
            let types = perType.keys.sorted().map { "\($0) \(perType[$0]!.hit)/\(perType[$0]!.n)" }.joined(separator: ", ")
            let trainAcc = (Double(try scores(trainMaskedFaces.map { ($0.chip, $0.embedding) }).filter { $0 >= detectorModel.threshold }.count)
                            + Double(try scores(trainPlainFaces.map { ($0.chip, $0.embedding) }).filter { $0 < detectorModel.threshold }.count))
                / Double(max(trainMaskedFaces.count + trainPlainFaces.count, 1))
            detectorResult = ["heldout_accuracy": acc, "heldout_masked_recall": Double(tp) / Double(max(tp + fn, 1)),
                              "heldout_unmasked_specificity": Double(tn) / Double(max(tn + fp, 1)),
                              "heldout_faces": tp + tn + fp + fn, "heldout_per_type": types, "train_accuracy": trainAcc,
                              "train_faces": trainMaskedFaces.count + trainPlainFaces.count]
            log(String(format: "detector: train %.2f%% (%d faces), held-out %.2f%% (%d faces; masked recall %.2f%%, unmasked specificity %.2f%%); %@",
                       100 * trainAcc, trainMaskedFaces.count + trainPlainFaces.count, 100 * acc, tp + tn + fp + fn,
                       100 * Double(tp) / Double(max(tp + fn, 1)), 100 * Double(tn) / Double(max(tn + fp, 1)), types))
        }
        if detector == nil {
            var d = detectorModel
            func pct(_ key: String) -> String { String(format: "%.2f%%", 100 * (detectorResult[key] as? Double ?? 0)) }
            d.notes = ["data": "trained on \(trainPeople.count) LFW people outside pairs.txt (TRAIN-family masks, \(trainMaskedFaces.count + trainPlainFaces.count) faces); "
                           + "held out: \(detectorResult["heldout_faces"] ?? 0) faces of people in pairs.txt with TEST-family masks",
                       "train_accuracy": pct("train_accuracy"), "heldout_accuracy": pct("heldout_accuracy"),
                       "heldout_masked_recall": pct("heldout_masked_recall"),
                       "heldout_unmasked_specificity": pct("heldout_unmasked_specificity"),
                       "heldout_per_type": detectorResult["heldout_per_type"] as? String ?? "",
                       "command": "facet mask-train (scripts/masks/train.sh)"]
            try d.write(to: out.appendingPathComponent("mask-detector-v\(d.version).json"))
        }
        report["detector"] = detectorResult

        let noseY: Double? = maskedNoseY > 0 ? maskedNoseY : nil
        /// The image of training face `path` in `folder` and the 5 landmarks of the LFW-centred box its chip was made
        /// from (what the masked-face alignment re-cuts a face called masked from).
        func source(_ folder: String, _ path: String) throws -> (image: RGBImage, landmarks: [LandmarkPoint])? {
            let image = try decoder.decodeFile(atPath: t.appendingPathComponent(folder).appendingPathComponent(path).path)
            let box = FaceFinder.centredBox(width: image.width, height: image.height)
            return try embedder.analyze(image, detections: [FaceDetection(rect: box, confidence: 1)]).first.map { (image, $0.landmarks) }
        }

        // 2. Unmasking head (training people only).
        var identities: [String: Int] = [:]
        func id(_ p: String) -> Int { let n = personName(p); if let i = identities[n] { return i }; identities[n] = identities.count; return identities.count - 1 }
        let headModel: UnmaskingHead
        if let path = head {
            headModel = try UnmaskingHead(contentsOf: URL(fileURLWithPath: path))
        } else {
            var options = UnmaskingHeadTrainer.Options()
            options.hidden = hidden; options.epochs = epochs; options.margin = margin
            options.identityWeight = identityWeight; options.learningRate = learningRate
            // With the masked-face alignment, the head learns from masked faces as it will see them: a face the detector
            // calls masked re-cut from its eyes (its frozen embedding from that chip), as scripts/masks/heads.sh trains the
            // evaluation's heads (session 12; before, the bundled head saw only standard chips).
            var maskedInputs = trainMaskedFaces.map(\.embedding)
            if let noseY {
                let realign = MaskAwareMatcher(detector: detectorModel, head: nil, network: embedder.descriptor, maskedNoseY: noseY)
                let progress = ProgressReporter(total: trainMaskedFaces.count, label: "head inputs re-aligned")
                maskedInputs = try inBatches(Array(trainMaskedFaces.indices), of: 64) { batch -> [[Float]] in
                    defer { progress.advance(by: batch.count) }
                    let idx = Array(batch)
                    return try realign.process(chips: idx.map { trainMaskedFaces[$0].chip }, embeddings: idx.map { trainMaskedFaces[$0].embedding },
                                               recut: { k in try source(trainMaskedFolders[idx[k]], trainMaskedFaces[idx[k]].path) }).faces.map(\.embedding)
                }
                progress.finish()
            }
            let set = UnmaskingTrainingSet(masked: maskedInputs, maskedIdentity: trainMaskedFaces.map { id($0.path) },
                                           unmasked: trainPlainFaces.map(\.embedding), unmaskedIdentity: trainPlainFaces.map { id($0.path) })
            guard let r = UnmaskingHeadTrainer.train(set, options: options, embeddingModel: embedder.modelName, progress: { l in
                log(String(format: "head epoch %d: loss %.4f (%d/%d batches pull-only)", l.epoch, l.loss, l.pullOnlyBatches, l.batches))
            }) else { throw ValidationError("no head training data") }
            var h = r.head
            h.notes = ["data": "\(trainMaskedFaces.count) TRAIN-masked and \(trainPlainFaces.count) unmasked faces of \(trainPeople.count) LFW people outside pairs.txt"
                           + (noseY.map { "; masked faces called masked re-cut from their eyes (nose height \($0))" } ?? ""),
                       "loss": "self-restrained triplet (margin \(margin)) + identity \(identityWeight) on unmasked inputs",
                       "epochs": "\(epochs)", "final_loss": String(format: "%.4f", r.log.last?.loss ?? 0),
                       "command": "facet mask-train (scripts/masks/train.sh)"]
            try h.write(to: out.appendingPathComponent("unmasking-head-v1.json"))
            headModel = h
        }
        let matcher = MaskAwareMatcher(detector: detectorModel, head: headModel, network: embedder.descriptor, mirrorAverage: !noMirrorAverage,
                                       maskedNoseY: noseY)
        let recipe = "\(MaskDetector.bundledFileName) + unmasking-head-v1" + (noMirrorAverage ? "" : " on mirror-averaged embeddings")
            + (noseY.map { ", masked faces re-aligned from the eyes (nose height \($0))" } ?? "")

        // 3. Thresholds from training-people impostors (TRAIN masks), for the frozen and the mask-aware embedding.
        func distance(_ a: [Float], _ b: [Float]) -> Double { unitDistance(a, b) }
        /// Mask-aware faces in batches (the detector may run the network on the chips), with the chips their matching
        /// embeddings come from. With the masked-face alignment a face called masked is cut again from its image
        /// (in `folders[i]`), with the 5 landmarks of the LFW-centred box its chip was made from.
        func awareTraining(_ faces: [(path: String, embedding: [Float], chip: RGBImage)], folders: [String], label: String) throws -> (faces: [MaskAwareFace], chips: [RGBImage]) {
            let progress = ProgressReporter(total: faces.count, label: "mask-aware (\(label))")
            let r = try inBatches(Array(faces.indices), of: 64) { batch -> [(MaskAwareFace, RGBImage)] in
                defer { progress.advance(by: batch.count) }
                let idx = Array(batch)
                let out = try matcher.process(chips: idx.map { faces[$0].chip }, embeddings: idx.map { faces[$0].embedding },
                                              recut: { k in try source(folders[idx[k]], faces[idx[k]].path) })
                return Array(zip(out.faces, out.matchingChips))
            }
            progress.finish()
            return (r.map(\.0), r.map(\.1))
        }
        let (trainPlainAware, trainPlainMatchingChips) = try awareTraining(trainPlainFaces, folders: trainPlainFaces.map { _ in "unmasked" }, label: "unmasked")
        let (trainMaskedAware, trainMaskedMatchingChips) = try awareTraining(trainMaskedFaces, folders: trainMaskedFolders, label: "masked-train")
        /// Step 4's mask-aware faces: the standard chips (its View 2 check predates `facet eval lfw`).
        func aware(_ faces: [(chip: RGBImage, embedding: [Float])]) throws -> [MaskAwareFace] {
            try inBatches(faces, of: 64) { try matcher.process(chips: $0.map(\.chip), embeddings: $0.map(\.embedding)) }
        }
        func impostors(_ a: [(String, [Float])], _ b: [(String, [Float])], same: Bool) -> [Double] {
            var d: [Double] = []
            for i in a.indices {
                for j in (same ? i + 1 : 0)..<b.count where personName(a[i].0) != personName(b[j].0) { d.append(distance(a[i].1, b[j].1)) }
            }
            return d
        }
        func thresholds(plain: [(String, [Float])], masked: [(String, [Float])], name: String) -> ComparisonThresholds {
            ComparisonThresholds.calibrate(impostorDistances: [
                .unmaskedUnmasked: impostors(plain, plain, same: true),
                .maskedUnmasked: impostors(masked, plain, same: false),
                .maskedMasked: impostors(masked, masked, same: true),
            ], targetFMR: targetFmr, embedding: name,
               notes: ["data": "impostor pairs among \(trainPeople.count) LFW people outside pairs.txt; masked = TRAIN-family masks"])
        }
        let frozenThresholds = thresholds(plain: trainPlainFaces.map { ($0.path, $0.embedding) },
                                          masked: trainMaskedFaces.map { ($0.path, $0.embedding) }, name: "frozen")
        let awareThresholds = thresholds(plain: zip(trainPlainFaces, trainPlainAware).map { ($0.0.path, $0.1.embedding) },
                                         masked: zip(trainMaskedFaces, trainMaskedAware).map { ($0.0.path, $0.1.embedding) },
                                         name: "mask-aware: \(recipe)")
        let thresholdsFile = noMirrorAverage ? "comparison-thresholds-v1.json" : (noseY == nil ? "comparison-thresholds-v2.json" : ComparisonThresholds.bundledFileName)
        try awareThresholds.write(to: out.appendingPathComponent(thresholdsFile))
        if let periocular {
            // Fused thresholds: the same impostor pairs, masked comparisons on 0.5·full + 0.5·periocular (the full
            // embedding after the head, as the cluster and the evaluation fuse), unmasked–unmasked on the full distance.
            var fusion = try PeriocularFusion.named(periocular)
            func periocularEmbeddings(_ chips: [RGBImage], _ label: String) throws -> [[Float]] {
                let progress = ProgressReporter(total: chips.count, label: "periocular (\(label))")
                let out = try inBatches(chips, of: 16) { batch in
                    defer { progress.advance(by: batch.count) }
                    return try fusion.embeddings(chips: Array(batch), model: embedder.descriptor)
                }
                progress.finish()
                return out
            }
            let plainP = try periocularEmbeddings(trainPlainMatchingChips, "unmasked")
            let maskedP = try periocularEmbeddings(trainMaskedMatchingChips, "masked")
            typealias Fused = (path: String, full: [Float], periocular: [Float])
            let plainF: [Fused] = trainPlainFaces.indices.map { (trainPlainFaces[$0].path, trainPlainAware[$0].embedding, plainP[$0]) }
            let maskedF: [Fused] = trainMaskedFaces.indices.map { (trainMaskedFaces[$0].path, trainMaskedAware[$0].embedding, maskedP[$0]) }
            func fusedImpostors(_ a: [Fused], _ b: [Fused], same: Bool) -> [Double] {
                var d: [Double] = []
                for i in a.indices {
                    for j in (same ? i + 1 : 0)..<b.count where personName(a[i].path) != personName(b[j].path) {
                        d.append(fusion.fusedDistance((a[i].full, a[i].periocular), (b[j].full, b[j].periocular)))
                    }
                }
                return d
            }
            fusion.thresholds = ComparisonThresholds.calibrate(impostorDistances: [
                .unmaskedUnmasked: impostors(plainF.map { ($0.path, $0.full) }, plainF.map { ($0.path, $0.full) }, same: true),
                .maskedUnmasked: fusedImpostors(maskedF, plainF, same: false),
                .maskedMasked: fusedImpostors(maskedF, maskedF, same: true),
            ], targetFMR: targetFmr, embedding: "mask-aware (\(recipe)) fused with periocular (\(fusion.fingerprint), full weight \(fusion.fullWeight))",
               notes: ["data": "impostor pairs among \(trainPeople.count) LFW people outside pairs.txt; masked = TRAIN-family masks; masked comparisons on fused distances, unmasked-unmasked on the full distance",
                       "command": "facet mask-train --periocular (scripts/masks/train.sh)"])
            try fusion.write(to: out.appendingPathComponent("periocular-fusion-v\(fusion.version).json"))
            log("thresholds (periocular fusion): \(ComparisonKind.allCases.map { "\($0.rawValue) \(String(format: "%.4f", fusion.thresholds!.maxDistance(for: $0)))" })")
        }
        try frozenThresholds.write(to: out.appendingPathComponent("comparison-thresholds-frozen.json"))
        log("thresholds (frozen): \(ComparisonKind.allCases.map { "\($0.rawValue) \(String(format: "%.4f", frozenThresholds.maxDistance(for: $0)))" })")
        log("thresholds (mask-aware): \(ComparisonKind.allCases.map { "\($0.rawValue) \(String(format: "%.4f", awareThresholds.maxDistance(for: $0)))" })")

        // 4. LFW view 2 under three conditions, frozen vs mask-aware.
        struct Template { var frozen: [Float]; var aware: MaskAwareFace; var failed: Bool }
        var plainT: [String: Template] = [:], maskedT: [String: Template] = [:]
        // Pairs whose images are in both JSON files (all of them once the data is complete).
        func have(_ im: LFWImage) -> Bool { let k = "\(im.name)/\(im.fileName())"; return evalPlain[k] != nil && evalMasked[k] != nil }
        let usedPairs = lfwPairs.pairs.filter { have($0.first) && have($0.second) }
        if usedPairs.count < lfwPairs.pairs.count { log("evaluating \(usedPairs.count) of \(lfwPairs.pairs.count) pairs (the others' images are not embedded yet)") }
        report["pairs_evaluated"] = usedPairs.count
        report["folds_evaluated"] = Set(usedPairs.map(\.fold)).count
        let images = Set(usedPairs.flatMap { [$0.first, $0.second] }.map { "\($0.name)/\($0.fileName())" }).sorted()
        do {
            let progress = ProgressReporter(total: images.count, label: "pair images")
            for start in stride(from: 0, to: images.count, by: 32) {
                let part = Array(images[start ..< min(images.count, start + 32)])
                let a = try part.map { try face(root: URL(fileURLWithPath: lfw), path: $0, json: evalPlain[$0]) }
                let b = try part.map { try face(root: e.appendingPathComponent("masked-test"), path: $0, json: evalMasked[$0]) }
                let aa = try aware(a.map { ($0.chip, $0.embedding) }), ba = try aware(b.map { ($0.chip, $0.embedding) })
                for (k, p) in part.enumerated() {
                    plainT[p] = Template(frozen: a[k].embedding, aware: aa[k], failed: a[k].failed)
                    maskedT[p] = Template(frozen: b[k].embedding, aware: ba[k], failed: b[k].failed)
                }
                progress.advance(by: part.count)
            }
            progress.finish()
        }
        let impostorKeys = impostorImages > 0 ? Array(images.sorted { stableHash($0) < stableHash($1) }.prefix(impostorImages)) : images
        var conditions: [[String: Any]] = []
        for (name, firstMasked, secondMasked) in [("unmasked-unmasked", false, false), ("masked-unmasked", true, false), ("masked-masked", true, true)] {
            func t(_ img: LFWImage, masked: Bool) -> Template { (masked ? maskedT : plainT)["\(img.name)/\(img.fileName())"]! }
            var row: [String: Any] = ["condition": name]
            for (variant, aware) in [("frozen", false), ("mask-aware", true)] {
                func emb(_ x: Template) -> [Float] { aware ? x.aware.embedding : x.frozen }
                let scores = usedPairs.map { -distance(emb(t($0.first, masked: firstMasked)), emb(t($0.second, masked: secondMasked))) }
                let result = try VerificationEvaluator.evaluate(scores: scores, isSame: usedPairs.map(\.isSame),
                                                                folds: usedPairs.map(\.fold), fars: [1e-3])
                // Larger impostor set: every pair of distinct people among a sample of the pairs-file images.
                let keys = impostorKeys
                let left = keys.map { firstMasked ? maskedT[$0]! : plainT[$0]! }, right = keys.map { secondMasked ? maskedT[$0]! : plainT[$0]! }
                let th = aware ? awareThresholds : frozenThresholds
                func kind(_ x: Template, masked: Bool) -> Bool { aware ? x.aware.masked : masked }
                var imp: [Double] = [], fm = 0
                imp.reserveCapacity(keys.count * keys.count / 2)
                for i in keys.indices {
                    let a = left[i], ea = emb(a), ka = kind(a, masked: firstMasked), pa = personName(keys[i])
                    for j in (i + 1)..<keys.count where personName(keys[j]) != pa {
                        let b = right[j]
                        let d = unitDistance(ea, emb(b))
                        imp.append(d)
                        if th.isMatch(distance: d, kind: ComparisonKind(firstMasked: ka, secondMasked: kind(b, masked: secondMasked))) { fm += 1 }
                    }
                }
                let genuine = usedPairs.indices.filter { usedPairs[$0].isSame }.map { -scores[$0] }
                let oracle = ComparisonThresholds.threshold(impostorDistances: imp, targetFMR: 1e-3)
                let fnmrOracle = Double(genuine.filter { $0 > oracle }.count) / Double(genuine.count)
                // Calibrated threshold from the training people, per kind of the actual decision.
                var nm = 0
                for pr in usedPairs where pr.isSame {
                    let a = t(pr.first, masked: firstMasked), b = t(pr.second, masked: secondMasked)
                    let k = ComparisonKind(firstMasked: kind(a, masked: firstMasked), secondMasked: kind(b, masked: secondMasked))
                    if !th.isMatch(distance: distance(emb(a), emb(b)), kind: k) { nm += 1 }
                }
                let r: [String: Any] = [
                    "accuracy": result.accuracy, "accuracy_std": result.accuracyStd,
                    "fnmr_at_fmr_1e-3_oracle": fnmrOracle, "impostors": imp.count,
                    "calibrated_fmr": Double(fm) / Double(imp.count), "calibrated_fnmr": Double(nm) / Double(genuine.count),
                ]
                row[variant] = r
                log(String(format: "%@ %@: 10-fold accuracy %.2f%% ± %.2f, FNMR@FMR=1e-3 (threshold on the %d test impostors) %.2f%%, "
                           + "with the training-calibrated per-kind threshold: FMR %.4f%% FNMR %.2f%%",
                           name, variant, 100 * result.accuracy, 100 * result.accuracyStd, imp.count, 100 * fnmrOracle,
                           100 * Double(fm) / Double(imp.count), 100 * Double(nm) / Double(genuine.count)))
            }
            conditions.append(row)
        }
        report["conditions"] = conditions
        report["failed_to_template"] = ["unmasked": plainT.values.filter(\.failed).count, "masked": maskedT.values.filter(\.failed).count]
        report["masked_called_masked"] = Double(maskedT.values.filter(\.aware.masked).count) / Double(max(maskedT.count, 1))
        report["unmasked_called_masked"] = Double(plainT.values.filter(\.aware.masked).count) / Double(max(plainT.count, 1))
        let data = try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys])
        try data.write(to: out.appendingPathComponent("report.json"))
        print(String(decoding: data, as: UTF8.self))
    }
}
