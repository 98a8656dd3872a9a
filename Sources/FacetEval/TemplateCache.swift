import FacetFace
import Foundation

/// One face as `facet embed --json` writes it.
public struct CachedFace: Sendable, Equatable {
    public var box: FaceRect
    public var confidence: Double
    public var landmarks: [LandmarkPoint]
    public var embedding: [Float]

    public init(box: FaceRect, confidence: Double, landmarks: [LandmarkPoint], embedding: [Float]) {
        self.box = box
        self.confidence = confidence
        self.landmarks = landmarks
        self.embedding = embedding
    }

    public init(_ a: FaceAnalysis) {
        self.init(box: a.box, confidence: a.confidence, landmarks: a.landmarks, embedding: a.embedding)
    }
}

/// What the cache knows about one image.
public struct CacheEntry: Sendable, Equatable {
    public var width = 0
    public var height = 0
    /// Detected faces (nil: the image has not been embedded yet; empty: embedded, nothing detected).
    public var faces: [CachedFace]?
    /// The fallback-crop face (only for images without a detected face).
    public var fallback: CachedFace?
    /// Mask probability of the face used, with the fingerprint of the detector that gave it.
    public var maskProbability: (detector: String, p: Double)?
    /// Periocular embedding of the face used (`PeriocularFusion`), with the fingerprint of the settings behind it.
    public var periocular: (model: String, embedding: [Float])?
    /// The face used's embedding averaged with its mirror image's (`MaskAwareMatcher.mirrorAveraged`), with the
    /// model it came from (`TemplateCache.mirrorModel`).
    public var mirrorAveraged: (model: String, embedding: [Float])?
    /// The error `facet embed` reported for the image (it is then embedded again).
    public var error: String?

    public init() {}

    public static func == (a: CacheEntry, b: CacheEntry) -> Bool {
        a.width == b.width && a.height == b.height && a.faces == b.faces && a.fallback == b.fallback
            && a.maskProbability?.detector == b.maskProbability?.detector && a.maskProbability?.p == b.maskProbability?.p
            && a.periocular?.model == b.periocular?.model && a.periocular?.embedding == b.periocular?.embedding
            && a.mirrorAveraged?.model == b.mirrorAveraged?.model && a.mirrorAveraged?.embedding == b.mirrorAveraged?.embedding
            && a.error == b.error
    }

    /// The face the evaluation uses: the detected face nearest the image centre, else the fallback crop.
    /// nil when the image needs embedding (not embedded, an error, or no face and no fallback yet).
    public var template: PairsEvaluation.Template? {
        guard error == nil, let faces else { return nil }
        if let i = PairsEvaluation.centralFace(faces.map(\.box), width: width, height: height) {
            return PairsEvaluation.Template(embedding: faces[i].embedding, facesFound: faces.count)
        }
        if let fallback { return PairsEvaluation.Template(embedding: fallback.embedding, facesFound: 0) }
        return nil
    }

    /// The face behind `template` (for its landmarks).
    public var templateFace: CachedFace? {
        guard error == nil, let faces else { return nil }
        if let i = PairsEvaluation.centralFace(faces.map(\.box), width: width, height: height) { return faces[i] }
        return fallback
    }
}

/// The embedding cache of `facet eval lfw`: JSON Lines in the format of `facet embed --json`
/// (`{"image": "./Name/Name_0001.jpg", "width", "height", "faces": [{"box", "confidence", "landmarks",
/// "embedding"}]}`), so the output of `cd LFW && facet embed --json ./*/*.jpg > unmasked.jsonl` is a cache as is.
/// Facet adds two kinds of lines, appended to a separate file so an imported cache is never modified:
/// - `{"image": P, "width": W, "height": H, "faces": [], "fallback": {face}}`: an image without a detected face,
///   embedded on the fallback crop (`PairsEvaluation.fallbackBox`);
/// - `{"image": P, "mask_probability": p, "mask_detector": "fingerprint"}`: the mask detector's output;
/// - `{"image": P, "periocular": [..], "periocular_model": "fingerprint"}`: the periocular embedding of the face used;
/// - `{"image": P, "mirror_averaged": [..], "mirror_model": "fingerprint"}`: its embedding averaged with its mirror image's.
/// Lines are merged in file order (a later line's fields replace earlier ones; a later `faces` line also drops the
/// mask probability and periocular embedding computed from the earlier face). Image keys are relative paths without a
/// leading `./` (`Name/Name_0001.jpg`).
public enum TemplateCache {
    /// `./A/A_0001.jpg`, `A/A_0001.jpg`, `/abs/root/A/A_0001.jpg` → `A/A_0001.jpg` (the last two components).
    public static func key(_ path: String) -> String {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        return parts.suffix(2).joined(separator: "/")
    }

    public static func key(_ image: LFWImage, ext: String = "jpg") -> String { "\(image.name)/\(image.fileName(ext: ext))" }

    /// The cache files of condition `name` in `directory`, in merge order: `NAME.jsonl`, then any other
    /// `NAME.*.jsonl` (e.g. shards embedded by other processes, or symbolic links to another cache) sorted by name,
    /// then `NAME.eval.jsonl` (what `facet eval lfw` appends). Broken links and missing files are skipped.
    public static func files(name: String, in directory: URL) -> [URL] {
        let listing = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        let shards = listing.filter { $0.hasPrefix(name + ".") && $0.hasSuffix(".jsonl") && $0 != "\(name).eval.jsonl" && $0 != "\(name).jsonl" }.sorted()
        return ([name + ".jsonl"] + shards + [name + ".eval.jsonl"]).map { directory.appendingPathComponent($0) }
    }

    /// Reads and merges JSON Lines files (missing files are skipped). Throws `EvalError.labelsFormat` naming the
    /// file and line of a line that is not a JSON object with an `image` key.
    public static func read(_ urls: [URL], into table: inout [String: CacheEntry]) throws {
        for url in urls where FileManager.default.fileExists(atPath: url.path) {
            let data: Data
            do { data = try Data(contentsOf: url, options: .mappedIfSafe) } catch {
                throw EvalError.io(path: url.path, message: error.localizedDescription)
            }
            var lineNo = 0
            var start = data.startIndex
            while start < data.endIndex {
                let end = data[start...].firstIndex(of: 0x0A) ?? data.endIndex
                lineNo += 1
                let line = data[start..<end]
                start = end < data.endIndex ? data.index(after: end) : end
                if line.allSatisfy({ $0 == 0x20 || $0 == 0x0D || $0 == 0x09 }) { continue }
                guard let obj = try? JSONSerialization.jsonObject(with: line) as? [String: Any],
                      let image = obj["image"] as? String else {
                    // A truncated last line (a run killed while writing) is ignored; anything else is an error.
                    if end == data.endIndex { break }
                    throw EvalError.labelsFormat(file: url.path, line: lineNo, message: "not a JSON object with an \"image\" key")
                }
                var e = table[key(image)] ?? CacheEntry()
                do { try merge(obj, into: &e) } catch let m as CacheFormatError {
                    throw EvalError.labelsFormat(file: url.path, line: lineNo, message: m.message)
                }
                table[key(image)] = e
            }
        }
    }

    static func merge(_ obj: [String: Any], into e: inout CacheEntry) throws {
        if let err = obj["error"] as? [String: Any] {
            e.error = (err["message"] as? String) ?? "error"
            e.faces = nil
            return
        }
        if let w = number(obj["width"]) { e.width = Int(w) }
        if let h = number(obj["height"]) { e.height = Int(h) }
        if let faces = obj["faces"] as? [Any] {
            e.faces = try faces.map(face)
            e.error = nil
            e.fallback = nil
            // A newer embedding of the image: what was computed from the old face no longer applies.
            e.maskProbability = nil
            e.periocular = nil
            e.mirrorAveraged = nil
        }
        if let fb = obj["fallback"] { e.fallback = try face(fb) }
        if let p = number(obj["mask_probability"]), let d = obj["mask_detector"] as? String {
            e.maskProbability = (d, p)
        }
        if let m = obj["periocular_model"] as? String {
            guard let v = numbers(obj["periocular"]), !v.isEmpty else { throw CacheFormatError(message: "periocular is not a list of numbers") }
            e.periocular = (m, v.map { Float($0) })
        }
        if let m = obj["mirror_model"] as? String {
            guard let v = numbers(obj["mirror_averaged"]), !v.isEmpty else { throw CacheFormatError(message: "mirror_averaged is not a list of numbers") }
            e.mirrorAveraged = (m, v.map { Float($0) })
        }
    }

    static func face(_ any: Any) throws -> CachedFace {
        guard let f = any as? [String: Any] else { throw CacheFormatError(message: "a face is not an object") }
        guard let b = numbers(f["box"]), b.count == 4 else { throw CacheFormatError(message: "a face has no box [l, t, r, b]") }
        guard let emb = numbers(f["embedding"]), !emb.isEmpty else { throw CacheFormatError(message: "a face has no embedding") }
        var lm: [LandmarkPoint] = []
        for p in (f["landmarks"] as? [Any]) ?? [] {
            guard let xy = numbers(p), xy.count == 2 else { throw CacheFormatError(message: "a landmark is not [x, y]") }
            lm.append(LandmarkPoint(x: xy[0], y: xy[1]))
        }
        return CachedFace(box: FaceRect(left: Int(b[0]), top: Int(b[1]), right: Int(b[2]), bottom: Int(b[3])),
                          confidence: number(f["confidence"]) ?? 0, landmarks: lm, embedding: emb.map { Float($0) })
    }

    /// A JSON number as JSONSerialization returns it (Int, Double or NSNumber, depending on the platform).
    static func number(_ any: Any?) -> Double? {
        switch any {
        case let d as Double: return d
        case let i as Int: return Double(i)
        case let n as NSNumber: return n.doubleValue
        default: return nil
        }
    }

    static func numbers(_ any: Any?) -> [Double]? {
        guard let a = any as? [Any] else { return nil }
        var out: [Double] = []
        out.reserveCapacity(a.count)
        for x in a {
            guard let v = number(x) else { return nil }
            out.append(v)
        }
        return out
    }

    static func faceJSON(_ f: CachedFace) -> String {
        func n(_ v: Double) -> String { v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : "\(v)" }
        let b = f.box
        return "{\"box\": [\(b.left), \(b.top), \(b.right), \(b.bottom)], \"confidence\": \(n(f.confidence)), "
            + "\"landmarks\": [" + f.landmarks.map { "[\(n($0.x)), \(n($0.y))]" }.joined(separator: ", ") + "], "
            + "\"embedding\": [" + f.embedding.map { "\($0)" }.joined(separator: ", ") + "]}"
    }

    /// The cache line of a freshly embedded image: detected faces as `facet embed --json`, plus `fallback` when
    /// none was detected.
    public static func line(image key: String, width: Int, height: Int, faces: [CachedFace], fallback: CachedFace?) -> String {
        var s = "{\"image\": \(EmbedReport.quote("./" + key)), \"width\": \(width), \"height\": \(height), \"faces\": ["
        s += faces.map(faceJSON).joined(separator: ", ") + "]"
        if let fallback { s += ", \"fallback\": " + faceJSON(fallback) }
        return s + "}"
    }

    public static func maskLine(image key: String, probability: Double, detector: String) -> String {
        "{\"image\": \(EmbedReport.quote("./" + key)), \"mask_probability\": \(probability), \"mask_detector\": \(EmbedReport.quote(detector))}"
    }

    public static func periocularLine(image key: String, embedding: [Float], model: String) -> String {
        "{\"image\": \(EmbedReport.quote("./" + key)), \"periocular\": [" + embedding.map { "\($0)" }.joined(separator: ", ")
            + "], \"periocular_model\": \(EmbedReport.quote(model))}"
    }

    /// The fingerprint of mirror-averaged embeddings of `modelName`'s descriptors.
    public static func mirrorModel(_ modelName: String) -> String { "mirror1-\(modelName)" }

    public static func mirrorLine(image key: String, embedding: [Float], model: String) -> String {
        "{\"image\": \(EmbedReport.quote("./" + key)), \"mirror_averaged\": [" + embedding.map { "\($0)" }.joined(separator: ", ")
            + "], \"mirror_model\": \(EmbedReport.quote(model))}"
    }

    /// Appends lines to a file (created if missing), one write per call.
    public final class Appender: @unchecked Sendable {   // guarded by `lock`
        private let lock = NSLock()
        private let handle: FileHandle?
        public let url: URL?

        /// `url == nil`: a no-op appender (no cache).
        public init(url: URL?) throws {
            self.url = url
            guard let url else { handle = nil; return }
            if !FileManager.default.fileExists(atPath: url.path) {
                guard FileManager.default.createFile(atPath: url.path, contents: nil) else {
                    throw EvalError.io(path: url.path, message: "cannot create the cache file")
                }
            }
            do {
                let h = try FileHandle(forWritingTo: url)
                try h.seekToEnd()
                handle = h
            } catch {
                throw EvalError.io(path: url.path, message: error.localizedDescription)
            }
        }

        public func append(_ lines: [String]) {
            guard let handle, !lines.isEmpty else { return }
            lock.lock()
            defer { lock.unlock() }
            handle.write(Data((lines.joined(separator: "\n") + "\n").utf8))
        }

        deinit { try? handle?.close() }
    }
}

/// A malformed cache line (turned into `EvalError.labelsFormat` with the file and line).
struct CacheFormatError: Error { let message: String }
