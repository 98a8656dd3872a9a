import FacetFace
import FacetImaging
import FacetMasking
import FacetNN
import Foundation

/// The templates of one image condition (e.g. unmasked LFW, or LFW with TEST-family masks): one unit-length
/// embedding per image, in the order of `images`, with whether the fallback crop was used and the mask
/// detector's probability.
public struct TemplateTable: Sendable {
    public let images: [LFWImage]
    public let dimension: Int
    /// `images.count × dimension`, row-major, each row L2-normalised.
    public var vectors: [Float]
    public var usedFallback: [Bool]
    /// Mask probability per image (nil when no mask detector was run).
    public var maskProbability: [Double]?
    /// Periocular embeddings (`PeriocularFusion`), `images.count × dimension`, unit rows (nil: not computed).
    public var periocular: [Float]?
    /// Embeddings averaged with their mirror image's (`MaskAwareMatcher.mirrorAveraged`), `images.count × dimension`,
    /// unit rows (nil: not computed).
    public var mirrorAveraged: [Float]?

    public init(images: [LFWImage], dimension: Int, vectors: [Float], usedFallback: [Bool], maskProbability: [Double]?) throws {
        guard vectors.count == images.count * dimension else {
            throw EvalError.countMismatch(what: "template values", expected: images.count * dimension, got: vectors.count)
        }
        guard usedFallback.count == images.count else {
            throw EvalError.countMismatch(what: "fallback flags", expected: images.count, got: usedFallback.count)
        }
        if let m = maskProbability, m.count != images.count {
            throw EvalError.countMismatch(what: "mask probabilities", expected: images.count, got: m.count)
        }
        self.images = images
        self.dimension = dimension
        self.vectors = vectors
        self.usedFallback = usedFallback
        self.maskProbability = maskProbability
    }

    public func vector(_ i: Int) -> [Float] { Array(vectors[(i * dimension)..<((i + 1) * dimension)]) }

    public var failedToTemplate: Int { usedFallback.lazy.filter { $0 }.count }

    /// L2-normalises `v` in place (a zero vector stays zero).
    static func normalise(_ v: inout [Float]) {
        var s: Float = 0
        for x in v { s += x * x }
        let n = s.squareRoot()
        if n > 0 { for i in v.indices { v[i] /= n } }
    }
}

/// Work queue and results of `parallelMap`.
private final class ParallelBox<T>: @unchecked Sendable {   // guarded by `lock`
    let lock = NSLock()
    var next = 0
    var failed = false
    var results: [Result<T, Error>?]
    init(_ n: Int) { results = Array(repeating: nil, count: n) }
}

/// Runs `body(i)` for `0..<count` on `threads` workers; results in index order. The first error (in index order)
/// is rethrown; after an error no new items start.
public func parallelMap<T: Sendable>(_ count: Int, threads: Int, progress: ProgressReporter?,
                                     _ body: @Sendable (Int) throws -> T) throws -> [T] {
    let box = ParallelBox<T>(count)
    let workers = max(1, min(threads, count))
    DispatchQueue.concurrentPerform(iterations: workers) { _ in
        while true {
            box.lock.lock()
            let i = box.next
            box.next += 1
            let stop = i >= count || box.failed
            box.lock.unlock()
            if stop { return }
            let r = Result { try body(i) }
            box.lock.lock()
            box.results[i] = r
            if case .failure = r { box.failed = true }
            box.lock.unlock()
            progress?.advance()
        }
    }
    progress?.finish()
    var out: [T] = []
    out.reserveCapacity(count)
    for r in box.results {
        guard let r else { continue }
        out.append(try r.get())
    }
    guard out.count == count else { throw EvalError.countMismatch(what: "results", expected: count, got: out.count) }
    return out
}

/// Fills a `TemplateTable` from the embedding cache and embeds what the cache lacks.
public enum TemplateAcquisition {
    /// Where one condition's images and cached templates come from.
    public struct Source: Sendable {
        /// Short name, used for the cache files (`NAME.jsonl` is read, `NAME.eval.jsonl` read and appended to).
        public var name: String
        /// Decodes (or renders) one image of this condition.
        public var load: @Sendable (LFWImage) throws -> RGBImage

        public init(name: String, load: @escaping @Sendable (LFWImage) throws -> RGBImage) {
            self.name = name
            self.load = load
        }
    }

    public struct Statistics: Sendable, Codable, Equatable {
        public var images: Int
        public var fromCache: Int
        public var embedded: Int
        public var maskScored: Int
        public var periocularComputed: Int = 0
        public var mirrorComputed: Int = 0
        public var failedToTemplate: Int
        public var seconds: Double
    }

    /// Keys (`Name/Name_0001.jpg`) of the images the cache of `name` has embedded (with or without a face).
    public static func cachedKeys(name: String, cacheDirectory: URL) throws -> Set<String> {
        var cache: [String: CacheEntry] = [:]
        try TemplateCache.read(TemplateCache.files(name: name, in: cacheDirectory), into: &cache)
        return Set(cache.filter { $0.value.faces != nil && $0.value.error == nil }.keys)
    }

    /// A stable fingerprint of a mask detector (FNV-1a 64 of its sorted-key JSON), stored next to cached
    /// mask probabilities so a retrained detector invalidates them.
    public static func fingerprint(_ d: MaskDetector) -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        let data = (try? enc.encode(d)) ?? Data()
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in data { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return "v\(d.version)-" + String(h, radix: 16)
    }

    /// The face used for an image: the detected face nearest the centre, else the fallback crop.
    public static func analyse(_ image: RGBImage, embedder: DlibFaceEmbedder, upsample: Int) throws
        -> (faces: [FaceAnalysis], used: FaceAnalysis, fallback: Bool) {
        let faces = try embedder.analyze(image, upsample: upsample, jitter: 0)
        if let i = PairsEvaluation.centralFace(faces.map(\.box), width: image.width, height: image.height) {
            return (faces, faces[i], false)
        }
        let box = PairsEvaluation.fallbackBox(width: image.width, height: image.height)
        let fb = try embedder.analyze(image, detections: [FaceDetection(rect: box, confidence: 0)], jitter: 0)
        return (faces, fb[0], true)
    }

    /// - Parameters:
    ///   - cacheDirectory: read `NAME.jsonl`, `NAME.*.jsonl` and `NAME.eval.jsonl` (`TemplateCache.files`), append
    ///     new templates to `NAME.eval.jsonl`
    ///     (nil: no cache, everything is embedded).
    ///   - embedder: called only when something is missing (returning nil then fails with a clear error), so a
    ///     fully cached run never loads the models.
    ///   - detector: when given, every image gets a mask probability (cached with the detector's fingerprint).
    ///   - mirrorAverage: every image also gets its embedding averaged with its mirror image's (cached).
    ///   - maskedNoseY: a face the detector calls masked gets its mirror-averaged and periocular embeddings from the
    ///     chip of `ChipDetails.maskedLandmarks` (as `MaskAwareMatcher.maskedNoseY`; cached under fingerprints that
    ///     name it).
    public static func acquire(images: [LFWImage], source: Source, cacheDirectory: URL?,
                               embedder: () throws -> DlibFaceEmbedder?, upsample: Int,
                               detector: MaskDetector?, periocular: PeriocularFusion? = nil, mirrorAverage: Bool = false,
                               maskedNoseY: Double? = nil, threads: Int,
                               log: @escaping @Sendable (String) -> Void = { _ in })
        throws -> (table: TemplateTable, statistics: Statistics) {
        let start = Date()
        var cache: [String: CacheEntry] = [:]
        var appendURL: URL?
        if let dir = cacheDirectory {
            let files = TemplateCache.files(name: source.name, in: dir)
            try TemplateCache.read(files, into: &cache)
            appendURL = dir.appendingPathComponent("\(source.name).eval.jsonl")
            log("\(source.name): \(cache.count) cached images in \(files.filter { FileManager.default.fileExists(atPath: $0.path) }.map(\.lastPathComponent).joined(separator: ", "))")
        }
        let appender = try TemplateCache.Appender(url: appendURL)
        let keys = images.map { TemplateCache.key($0) }
        let missing = images.indices.filter { cache[keys[$0]]?.template == nil }
        let fingerprint = detector.map(fingerprint)
        var embedded = 0, scored = 0, periocularComputed = 0, mirrorComputed = 0
        let alignmentTag = maskedNoseY.map { " masked-nose-y \($0)" } ?? ""
        /// Whether a face with mask probability `p` is matched on its re-cut chip.
        @Sendable func realigned(_ p: Double?) -> Bool {
            maskedNoseY != nil && p != nil && p! >= (detector?.threshold ?? 0.5)
        }
        @Sendable func mirrorFingerprint(_ model: String, realigned r: Bool) -> String { TemplateCache.mirrorModel(model) + (r ? alignmentTag : "") }
        @Sendable func periocularFingerprint(realigned r: Bool) -> String? { periocular.map { $0.fingerprint + (r ? alignmentTag : "") } }
        /// What is computed from one face's chip — this detector's mask probability (`knownP`: the cached one), these
        /// settings' periocular embedding, the mirror-averaged embedding, each when asked for and not cached under its
        /// fingerprint (`cached`) — with the cache lines that record them.
        @Sendable func fromChip(_ image: RGBImage, face: CachedFace, key: String, knownP: Double?, cached: CacheEntry?,
                                network: (any FaceDescriptorModel)?)
            throws -> (p: Double?, v: (String, [Float])?, mirror: (String, [Float])?, lines: [String]) {
            var p = knownP, v: (String, [Float])?, m: (String, [Float])?, lines: [String] = []
            let chip = FaceChip.extract(image, details: ChipDetails.forFace(landmarks: face.landmarks))
            let embedding = l2Normalized(face.embedding)
            if p == nil, let detector, let fingerprint {
                p = try detector.probabilities(chips: [chip], embeddings: [embedding], network: network)[0]
                lines.append(TemplateCache.maskLine(image: key, probability: p!, detector: fingerprint))
            }
            let r = realigned(p)
            let matchingChip = r ? FaceChip.extract(image, details: ChipDetails.forFace(
                landmarks: ChipDetails.maskedLandmarks(face.landmarks, noseY: maskedNoseY!))) : chip
            if let periocular, let network, let fp = periocularFingerprint(realigned: r), cached?.periocular?.model != fp {
                v = (fp, try periocular.embeddings(chips: [matchingChip], model: network)[0])
                lines.append(TemplateCache.periocularLine(image: key, embedding: v!.1, model: fp))
            }
            if mirrorAverage, let network, case let fp = mirrorFingerprint(network.modelName, realigned: r), cached?.mirrorAveraged?.model != fp {
                m = (fp, try MaskAwareMatcher.mirrorAveraged(chips: [matchingChip], embeddings: r ? nil : [embedding], model: network)[0])
                lines.append(TemplateCache.mirrorLine(image: key, embedding: m!.1, model: fp))
            }
            return (p, v, m, lines)
        }
        if !missing.isEmpty {
            guard let model = try embedder() else {
                throw EvalError.invalidParameter("\(missing.count) \(source.name) images are not in the cache (first: \(keys[missing[0]])) and no embedder was given")
            }
            if threads > 1 { BLASSetup.threads = 1 }
            let progress = ProgressReporter(total: missing.count, label: "\(source.name): embedding")
            let fresh = try parallelMap(missing.count, threads: threads, progress: progress) { k -> CacheEntry in
                let i = missing[k]
                let image = try source.load(images[i])
                let a = try analyse(image, embedder: model, upsample: upsample)
                var e = CacheEntry()
                e.width = image.width
                e.height = image.height
                e.faces = a.faces.map(CachedFace.init)
                e.fallback = a.fallback ? CachedFace(a.used) : nil
                // What is computed from the face's chip comes from this decoding of the image too.
                let c = try fromChip(image, face: CachedFace(a.used), key: keys[i], knownP: nil, cached: nil, network: model.descriptor)
                if let p = c.p, let fingerprint { e.maskProbability = (fingerprint, p) }
                e.periocular = c.v
                e.mirrorAveraged = c.mirror
                appender.append([TemplateCache.line(image: keys[i], width: image.width, height: image.height,
                                                    faces: e.faces!, fallback: e.fallback)] + c.lines)
                return e
            }
            for (k, i) in missing.enumerated() { cache[keys[i]] = fresh[k] }
            embedded = missing.count
            if periocular != nil { periocularComputed = missing.count }
            if mirrorAverage { mirrorComputed = missing.count }
        }
        // Cached faces still missing what is computed from their chip — this detector's mask probability, the
        // periocular embedding of these settings — get both from one decoding of the image and one chip.
        func cachedP(_ i: Int) -> Double? {
            guard let fingerprint, let m = cache[keys[i]]?.maskProbability, m.detector == fingerprint else { return nil }
            return m.p
        }
        func needsMask(_ i: Int) -> Bool { fingerprint != nil && cachedP(i) == nil }
        // Unknown mask probability: computed first, then the rest as the face is called.
        func needsPeriocular(_ i: Int) -> Bool {
            guard periocular != nil else { return false }
            return needsMask(i) || cache[keys[i]]?.periocular?.model != periocularFingerprint(realigned: realigned(cachedP(i)))
        }
        func needsMirror(_ i: Int) -> Bool {
            guard mirrorAverage else { return false }
            guard let model = cache[keys[i]]?.mirrorAveraged?.model else { return true }
            let tagged = model.contains(" masked-nose-y ")
            if needsMask(i) { return maskedNoseY != nil || tagged }
            return realigned(cachedP(i)) ? !model.hasSuffix(alignmentTag) : tagged
        }
        let chipWork = images.indices.filter { needsMask($0) || needsPeriocular($0) || needsMirror($0) }
        if !chipWork.isEmpty {
            let maskWork = chipWork.contains(where: needsMask), periocularWork = chipWork.contains(where: needsPeriocular)
            let mirrorWork = chipWork.contains(where: needsMirror)
            // A version-4 detector reads the descriptor network's activations, the periocular and mirror embeddings
            // are its output.
            let networkWork = periocularWork || mirrorWork || (maskWork && detector?.usesNetwork == true)
            let model: DlibFaceEmbedder? = networkWork ? try embedder() : nil
            if networkWork {
                guard model != nil else {
                    throw EvalError.invalidParameter("\(chipWork.count) \(source.name) mask probabilities or periocular embeddings are not in the cache and no embedder was given")
                }
                if threads > 1 { BLASSetup.threads = 1 }
            }
            let label = [maskWork ? "mask detector" : nil, periocularWork ? "periocular" : nil, mirrorWork ? "mirror" : nil]
                .compactMap { $0 }.joined(separator: " + ")
            let progress = ProgressReporter(total: chipWork.count, label: "\(source.name): \(label)")
            let known = chipWork.map(cachedP)
            let snapshot = cache
            let results = try parallelMap(chipWork.count, threads: threads, progress: progress) { k -> (p: Double?, v: (String, [Float])?, m: (String, [Float])?) in
                let i = chipWork[k]
                guard let face = snapshot[keys[i]]?.templateFace, face.landmarks.count == 5 else {
                    throw EvalError.io(path: keys[i], message: "cached face has no 5-point landmarks for its chip (mask detector, periocular embedding)")
                }
                let image = try source.load(images[i])
                let c = try fromChip(image, face: face, key: keys[i], knownP: known[k], cached: snapshot[keys[i]], network: model?.descriptor)
                appender.append(c.lines)
                return (known[k] == nil ? c.p : nil, c.v, c.mirror)
            }
            for (k, i) in chipWork.enumerated() {
                if let p = results[k].p, let fingerprint { cache[keys[i]]!.maskProbability = (fingerprint, p); scored += 1 }
                if let v = results[k].v { cache[keys[i]]!.periocular = v; periocularComputed += 1 }
                if let m = results[k].m { cache[keys[i]]!.mirrorAveraged = m; mirrorComputed += 1 }
            }
        }
        guard let first = cache[keys.first ?? ""]?.template else { throw EvalError.empty("\(source.name) images") }
        let d = first.embedding.count
        var vectors: [Float] = []
        vectors.reserveCapacity(images.count * d)
        var fallback: [Bool] = []
        var probs: [Double] = []
        var periocularVectors: [Float] = []
        var mirrorVectors: [Float] = []
        for (i, k) in keys.enumerated() {
            guard let t = cache[k]?.template else { throw EvalError.io(path: k, message: "no template after embedding") }
            guard t.embedding.count == d else {
                throw EvalError.countMismatch(what: "embedding dimension of \(images[i])", expected: d, got: t.embedding.count)
            }
            var v = t.embedding
            TemplateTable.normalise(&v)
            vectors += v
            fallback.append(t.usedFallback)
            if detector != nil { probs.append(cache[k]!.maskProbability!.p) }
            if periocular != nil {
                var p = cache[k]!.periocular!.embedding
                guard p.count == d else { throw EvalError.countMismatch(what: "periocular dimension of \(images[i])", expected: d, got: p.count) }
                TemplateTable.normalise(&p)
                periocularVectors += p
            }
            if mirrorAverage {
                var m = cache[k]!.mirrorAveraged!.embedding
                guard m.count == d else { throw EvalError.countMismatch(what: "mirror-averaged dimension of \(images[i])", expected: d, got: m.count) }
                TemplateTable.normalise(&m)
                mirrorVectors += m
            }
        }
        var table = try TemplateTable(images: images, dimension: d, vectors: vectors, usedFallback: fallback,
                                      maskProbability: detector == nil ? nil : probs)
        if periocular != nil { table.periocular = periocularVectors }
        if mirrorAverage { table.mirrorAveraged = mirrorVectors }
        let stats = Statistics(images: images.count, fromCache: images.count - embedded, embedded: embedded,
                               maskScored: scored, periocularComputed: periocularComputed, mirrorComputed: mirrorComputed,
                               failedToTemplate: table.failedToTemplate,
                               seconds: Date().timeIntervalSince(start))
        return (table, stats)
    }
}
