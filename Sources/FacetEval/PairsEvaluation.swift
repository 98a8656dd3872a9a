import FacetFace
import FacetImaging
import FacetNN
import Foundation

/// `facet eval pairs`: LFW-format verification from images to metrics.
///
/// Decisions (see docs/eval.md, "facet eval pairs"):
/// - every distinct image is embedded once; when several faces are found the one whose box centre is nearest the
///   image centre is used (LFW's images are centred on the labelled person);
/// - an image where no face is detected is still compared, on a **fallback crop**: a fixed dlib-style box at the
///   centre of the image (for a 250×250 LFW image `[72, 77, 167, 171]`, the median MMOD box over the committed
///   LFW goldens; scaled with the image size otherwise) → 5-point landmarks → aligned chip → ResNet. Such images are
///   counted in `failedToTemplate`;
/// - score = `-‖a − b‖` between L2-normalised embeddings (higher = more alike; for unit vectors this is a monotone
///   function of cosine similarity, so every metric is the same as with cosine);
/// - a missing or undecodable image aborts the run with an error naming the path (nothing is silently dropped, so
///   the pair count always equals the file's).
public enum PairsEvaluation {
    /// The fallback box as fractions of the image size (left, top, right, bottom of a 250×250 LFW image / 250).
    public static let fallbackFractions = (left: 72.0 / 250, top: 77.0 / 250, right: 167.0 / 250, bottom: 171.0 / 250)

    /// The central face region used when the detector finds nothing.
    public static func fallbackBox(width: Int, height: Int) -> FaceRect {
        let f = fallbackFractions
        return FaceRect(left: Int((f.left * Double(width)).rounded()), top: Int((f.top * Double(height)).rounded()),
                        right: Int((f.right * Double(width)).rounded()), bottom: Int((f.bottom * Double(height)).rounded()))
    }

    /// Index of the face whose box centre is nearest the image centre (ties: the first).
    public static func centralFace(_ boxes: [FaceRect], width: Int, height: Int) -> Int? {
        let cx = Double(width) / 2, cy = Double(height) / 2
        var best: Int?
        var bestD = Double.infinity
        for (i, b) in boxes.enumerated() {
            let d = (b.centerX - cx) * (b.centerX - cx) + (b.centerY - cy) * (b.centerY - cy)
            if d < bestD { bestD = d; best = i }
        }
        return best
    }

    /// One image's template.
    public struct Template: Sendable {
        public var embedding: [Float]
        /// Faces the detector found (0 means the fallback crop was used).
        public var facesFound: Int
        public var usedFallback: Bool { facesFound == 0 }
    }

    /// Template of one decoded image: central detected face, or the fallback crop.
    public static func template(of image: RGBImage, embedder: DlibFaceEmbedder, upsample: Int) throws -> Template {
        let faces = try embedder.analyze(image, upsample: upsample, jitter: 0)
        if let i = centralFace(faces.map(\.box), width: image.width, height: image.height) {
            return Template(embedding: faces[i].embedding, facesFound: faces.count)
        }
        let box = fallbackBox(width: image.width, height: image.height)
        let fallback = try embedder.analyze(image, detections: [FaceDetection(rect: box, confidence: 0)], jitter: 0)
        return Template(embedding: fallback[0].embedding, facesFound: 0)
    }

    /// Score of a pair: negative Euclidean distance between the (unit-length) embeddings.
    public static func score(_ a: [Float], _ b: [Float]) -> Double {
        var s = 0.0
        for i in a.indices { let d = Double(a[i]) - Double(b[i]); s += d * d }
        return -s.squareRoot()
    }

    /// Parses a pairs file for evaluation: `limit` keeps at most that many pairs (half matched, half mismatched,
    /// taken round-robin over the folds so every fold keeps its share); a file with fewer than two folds (no header,
    /// or View 1's `N` header) is re-folded into `min(10, matched, mismatched)` stratified folds.
    public static func loadPairs(_ url: URL, limit: Int? = nil) throws -> LFWPairs {
        try prepare(LFWPairs.load(contentsOf: url), limit: limit)
    }

    public static func prepare(_ parsed: LFWPairs, limit: Int? = nil) throws -> LFWPairs {
        var p = parsed
        if let n = limit {
            guard n >= 2 else { throw EvalError.invalidParameter("--limit must be at least 2 (one matched and one mismatched pair), got \(n)") }
            if n < p.pairs.count {
                func roundRobin(_ same: Bool) -> [Int] {
                    var perFold: [Int: [Int]] = [:]
                    for (i, q) in p.pairs.enumerated() where q.isSame == same { perFold[q.fold, default: []].append(i) }
                    let folds = perFold.keys.sorted()
                    var out: [Int] = []
                    var k = 0
                    while true {
                        var any = false
                        for f in folds where k < perFold[f]!.count { out.append(perFold[f]![k]); any = true }
                        if !any { break }
                        k += 1
                    }
                    return out
                }
                let same = roundRobin(true), diff = roundRobin(false)
                let wantSame = min(same.count, n / 2), wantDiff = min(diff.count, n - wantSame)
                let keep = (same.prefix(wantSame) + diff.prefix(wantDiff)).sorted()
                p.pairs = keep.map { p.pairs[$0] }
            }
        }
        let folds = Set(p.pairs.map(\.fold))
        if folds.count < 2 {
            let same = p.pairs.filter(\.isSame).count, diff = p.pairs.count - same
            let k = min(10, same, diff)
            guard k >= 2 else {
                throw EvalError.invalidParameter("need at least 2 matched and 2 mismatched pairs for cross-validated accuracy (matched \(same), mismatched \(diff))")
            }
            p = try p.refolded(into: k)
        }
        return p
    }

    /// Outcome of a run.
    public struct Outcome: Sendable {
        public var pairs: LFWPairs
        public var scores: [Double]
        public var result: VerificationResult
        /// Distinct images where no face was detected (compared on the fallback crop).
        public var failedToTemplate: Int
        public var failedImages: [LFWImage]
        public var imageCount: Int
        public var embedSeconds: Double

        /// `{"pairs": N, "accuracy": A, "accuracy_std": S, "tar_at_far": {"0.01": x, "0.001": y}, "eer": E,
        /// "failed_to_template": F}`, keys in this order; a TAR whose FAR is below one impostor pair is `null`.
        public func json() -> String {
            func num(_ x: Double) -> String { x.isFinite ? "\(x)" : "null" }
            func tar(_ f: Double) -> String {
                guard let p = result.tar(atFAR: f), p.resolved else { return "null" }
                return num(p.tar)
            }
            return "{\"pairs\": \(result.pairs), \"accuracy\": \(num(result.accuracy)), \"accuracy_std\": \(num(result.accuracyStd)), "
                + "\"tar_at_far\": {\"0.01\": \(tar(1e-2)), \"0.001\": \(tar(1e-3))}, \"eer\": \(num(result.eer)), "
                + "\"failed_to_template\": \(failedToTemplate)}"
        }

        /// The HTML report (one verification condition, ROC and DET).
        public func report(title: String, command: String) -> EvaluationReport {
            var r = EvaluationReport(title: title, commands: [command], notes: [
                "\(imageCount) distinct images embedded in \(String(format: "%.1f", embedSeconds)) s; \(failedToTemplate) without a detected face (compared on the fallback crop).",
                "Score: negative Euclidean distance between L2-normalised 128-D dlib ResNet embeddings; accuracy thresholds chosen on the other folds (\(Set(pairs.folds).count) folds).",
            ])
            r.add(EvaluationReport.Condition(name: "pairs", result: result, failedToTemplate: failedToTemplate))
            return r
        }
    }

    /// Embeds every distinct image of `pairs` once (on `threads` threads) and evaluates.
    /// - Throws: `EvalError.io` naming the first missing image (all missing ones are counted in the message);
    ///   image decoding errors (naming the file) and embedder errors.
    public static func run(pairs: LFWPairs, root: URL, ext: String = "jpg", embedder: DlibFaceEmbedder,
                           upsample: Int = 0, threads: Int = 1, progress: ProgressReporter? = nil) throws -> Outcome {
        let missing = pairs.missingImages(root: root, ext: ext)
        if let first = missing.first {
            throw EvalError.io(path: first.path, message: "image not found (\(missing.count) of the pairs file's images are missing under \(root.path); expected ROOT/name/name_000i.\(ext))")
        }
        let images = pairs.images
        let start = Date()
        let templates = try embedAll(images.map { $0.path(root: root, ext: ext).path }, embedder: embedder,
                                     upsample: upsample, threads: threads, progress: progress)
        let seconds = Date().timeIntervalSince(start)
        var index: [LFWImage: Int] = [:]
        for (i, im) in images.enumerated() { index[im] = i }
        let scores = pairs.pairs.map { score(templates[index[$0.first]!].embedding, templates[index[$0.second]!].embedding) }
        let result = try VerificationEvaluator.evaluate(pairs: pairs, scores: scores, fars: [1e-2, 1e-3])
        let failed = images.indices.filter { templates[$0].usedFallback }.map { images[$0] }
        return Outcome(pairs: pairs, scores: scores, result: result, failedToTemplate: failed.count, failedImages: failed,
                       imageCount: images.count, embedSeconds: seconds)
    }

    /// Templates of image files, in order. `threads > 1` runs that many workers (the embedder's parts are documented
    /// thread-safe: immutable weights, per-call buffers) with OpenBLAS set to one thread to avoid oversubscription.
    /// The first error (in file order) is rethrown.
    public static func embedAll(_ paths: [String], embedder: DlibFaceEmbedder, upsample: Int, threads: Int,
                                progress: ProgressReporter?) throws -> [Template] {
        let decoder = ImageDecoder()
        let workers = max(1, min(threads, paths.count))
        if workers > 1 { BLASSetup.threads = 1 }
        final class Box: @unchecked Sendable {   // guarded by `lock`
            let lock = NSLock()
            var next = 0
            var failed = false
            var results: [Result<Template, Error>?]
            init(_ n: Int) { results = Array(repeating: nil, count: n) }
        }
        let box = Box(paths.count)
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            while true {
                box.lock.lock()
                let i = box.next
                box.next += 1
                let stop = i >= paths.count || box.failed
                box.lock.unlock()
                if stop { return }
                let r = Result { () throws -> Template in
                    let image = try decoder.decodeFile(atPath: paths[i])
                    return try template(of: image, embedder: embedder, upsample: upsample)
                }
                box.lock.lock()
                box.results[i] = r
                if case .failure = r { box.failed = true }
                box.lock.unlock()
                progress?.advance()
            }
        }
        progress?.finish()
        var out: [Template] = []
        out.reserveCapacity(paths.count)
        for r in box.results {
            guard let r else { continue }
            out.append(try r.get())
        }
        guard out.count == paths.count else { throw EvalError.countMismatch(what: "templates", expected: paths.count, got: out.count) }
        return out
    }
}
