import COpenBLAS
import FacetFace
import FacetImaging
import Foundation

/// The probability that a face wears a mask, from its aligned 150×150 dlib chip and L2-normalised 128-D
/// embedding (`MaskDetector.features`): an L2-regularised logistic regression (`p = σ(w·x + b)`) on
/// standardised features, trained by Newton's method (IRLS) on faces of the training people with and without
/// TRAIN-family masks, and measured on other people wearing TEST-family masks (`facet mask-detector` does both
/// and records the held-out numbers in the file). The embedding alone separates only about 88 % on held-out
/// people and masks (dlib's embedding is built to ignore such things); the lower-face features (is the lower
/// face the colour of the skin above it, does it have the mouth's structure) lift that.
///
/// Saved as versioned JSON (`format` = `facet-mask-detector`, `version` = 1); the embedding model it was trained
/// on is recorded so that a detector is never applied to another embedder's vectors.
public struct MaskDetector: Sendable, Codable, Equatable, VersionedModelFile {
    public static let formatName = "facet-mask-detector"
    /// Version 1: `features` = embedding + colour/contrast statistics + grey patch (215 numbers).
    /// Version 2: version 1's features + `hogFeatures` of the lower face (215 + 360 numbers).
    /// Version 3: pixel features only from the chip plus the embedding: `denseHOGFeatures` (864) +
    /// `colourGridFeatures` (80) + the embedding (128) = 1,072 numbers; trained with mirrored chips too.
    /// Version 4: version 3's features + the face ResNet's own activations after its residual block `networkBlock`
    /// (13, the last: 256 channels × 2×2 positions = 1,024 numbers; the embedding averages these positions away,
    /// they keep where on the face each channel fires) = 2,096 numbers. Needs the descriptor network
    /// (`probabilities(chips:embeddings:network:)`); one more pass through all but its last layer per face.
    public static let currentVersion = 4
    public static let readableVersions = 1...4
    /// The residual block version 4 reads (`ResNetFaceDescriptor.blockActivations`).
    public static let defaultNetworkBlock = 13

    public var format: String = MaskDetector.formatName
    public var version: Int = MaskDetector.currentVersion
    /// `Embedder.modelName` of the embeddings it reads (e.g. `dlib_face_recognition_resnet_model_v1`).
    public var embeddingModel: String
    /// Per-dimension standardisation applied before the linear model: `(x − mean) / scale`.
    public var mean: [Double]
    public var scale: [Double]
    public var weights: [Double]
    public var bias: Double
    /// Decision threshold on the probability.
    public var threshold: Double = 0.5
    /// Free-form provenance and held-out results, written by the trainer.
    public var notes: [String: String] = [:]
    /// Version 4: the residual block of the descriptor network whose activations are features (nil before).
    public var networkBlock: Int?

    public init(embeddingModel: String, mean: [Double], scale: [Double], weights: [Double], bias: Double,
                threshold: Double = 0.5, notes: [String: String] = [:]) {
        precondition(mean.count == weights.count && scale.count == weights.count)
        self.embeddingModel = embeddingModel; self.mean = mean; self.scale = scale; self.weights = weights; self.bias = bias
        self.threshold = threshold; self.notes = notes
    }

    public var dimension: Int { weights.count }

    /// Probability in `[0, 1]` that the face with these features (`MaskDetector.features`) wears a mask.
    public func probability(features x: [Float]) -> Double {
        precondition(x.count == weights.count, "MaskDetector: \(x.count) features, model has \(weights.count)")
        var z = bias
        for i in 0..<weights.count { z += weights[i] * (Double(x[i]) - mean[i]) / scale[i] }
        return 1 / (1 + exp(-z))
    }

    /// Whether the detector reads the descriptor network's activations (version 4).
    public var usesNetwork: Bool { networkBlock != nil }

    /// Probability that the face wears a mask, from its aligned chip, its embedding and (version 4) the network's
    /// activations of the chip (`activations(chips:network:)`).
    public func probability(chip: RGBImage, embedding: [Float], activations: [Float]? = nil) -> Double {
        precondition(!usesNetwork || activations != nil, "MaskDetector version \(version) needs the network's activations")
        return probability(features: MaskDetector.features(chip: chip, embedding: embedding, activations: activations, version: version))
    }

    /// Probabilities of a batch of faces: aligned 150×150 chips, their embeddings, and the descriptor network that
    /// made them (used only by version 4, which reads its activations; then it must be a `ResNetFaceDescriptor`).
    /// `activations`: the network's activations of the chips when the caller has them from the pass that made the
    /// embeddings (`DlibFaceEmbedder.analyze(_:upsample:jitter:capturingBlock:)` with `networkBlock`); nil: computed here.
    public func probabilities(chips: [RGBImage], embeddings: [[Float]], network: (any FaceDescriptorModel)?,
                              activations given: [[Float]]? = nil) throws -> [Double] {
        precondition(chips.count == embeddings.count, "MaskDetector: \(chips.count) chips, \(embeddings.count) embeddings")
        precondition(given == nil || given!.count == chips.count, "MaskDetector: \(chips.count) chips, \(given!.count) activations")
        let acts = usesNetwork ? try given ?? activations(chips: chips, network: network) : nil
        return try chips.indices.map { i in
            let x = MaskDetector.features(chip: chips[i], embedding: embeddings[i], activations: acts?[i], version: version)
            guard x.count == dimension else {
                throw MaskingError.invalidArgument("mask detector has \(dimension) weights, the face gives \(x.count) features (embedding \(embeddings[i].count)-D)")
            }
            return probability(features: x)
        }
    }

    /// The network activations this detector reads for each chip, or nil when it reads none (versions 1–3).
    public func activations(chips: [RGBImage], network: (any FaceDescriptorModel)?) throws -> [[Float]]? {
        guard let block = networkBlock else { return nil }
        guard let resnet = network as? ResNetFaceDescriptor else {
            throw MaskingError.invalidArgument("mask detector version \(version) reads the face ResNet's activations; "
                + (network.map { "the descriptor is \($0.modelName)" } ?? "no descriptor network was given"))
        }
        guard resnet.modelName == embeddingModel else {
            throw MaskingError.invalidArgument("mask detector is for \(embeddingModel), the descriptor is \(resnet.modelName)")
        }
        let chips150 = chips.map { $0.width == 150 && $0.height == 150 ? $0 : MaskDetector.resampled($0, to: 150) }
        return try resnet.blockActivations(for: chips150, blocks: [block]).map { $0[0] }
    }

    /// The features a file of `version` reads (`activations`: the network's, for version 4).
    public static func features(chip: RGBImage, embedding: [Float], activations: [Float]? = nil, version: Int) -> [Float] {
        switch version {
        case ...1: return features(chip: chip, embedding: embedding)
        case 2: return features(chip: chip, embedding: embedding) + hogFeatures(chip: chip)
        default:
            let c = chip.width == 150 && chip.height == 150 ? chip : resampled(chip, to: 150)
            let v3 = denseHOGFeatures(chip: c) + colourGridFeatures(chip: c) + embedding
            return version >= 4 ? v3 + (activations ?? []) : v3
        }
    }

    /// Nearest-neighbour resampling to a square `size`×`size` image (chips are 150×150; this only guards
    /// against other chip sizes).
    static func resampled(_ chip: RGBImage, to size: Int) -> RGBImage {
        guard chip.width > 0, chip.height > 0 else { return RGBImage(width: size, height: size) }
        var out = RGBImage(width: size, height: size)
        for y in 0..<size {
            for x in 0..<size { out[x, y] = chip[min(x * chip.width / size, chip.width - 1), min(y * chip.height / size, chip.height - 1)] }
        }
        return out
    }

    /// The chip mirrored left to right (training augmentation: a mask is as much a mask mirrored).
    public static func mirrored(_ chip: RGBImage) -> RGBImage {
        var out = RGBImage(width: chip.width, height: chip.height)
        for y in 0..<chip.height { for x in 0..<chip.width { out[chip.width - 1 - x, y] = chip[x, y] } }
        return out
    }

    /// Version 3's structure features: unsigned 9-bin gradient-orientation histograms (bilinear in angle) over
    /// 10×10-pixel cells of a 150×150 chip's rows 70–150 and columns 15–135 (8×12 cells), each value the square
    /// root of the cell-bin's share of the region's total gradient magnitude: independent of brightness,
    /// contrast and of light-on-dark vs dark-on-light, so a white mask looks like a black one. 864 numbers.
    public static func denseHOGFeatures(chip: RGBImage) -> [Float] {
        gradientHistograms(chip: chip, x0: 15, y0: 70, cellsX: 12, cellsY: 8, cell: 10)
    }

    /// Version 3's colour features: for each 15×15 cell of rows 75–150, columns 15–135 (5×8 cells), the
    /// distance of the cell's rgb chromaticity from that of the skin under the eyes and on the nose bridge
    /// (×10), then for each cell |log((grey + 8) / (skin grey + 8))|. Magnitudes only, so no mask colour is
    /// preferred. 40 + 40 numbers.
    public static func colourGridFeatures(chip: RGBImage) -> [Float] {
        func mean(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, into s: inout (Double, Double, Double, Double)) {
            for y in y0..<y1 {
                for x in x0..<x1 {
                    let p = chip[min(x, chip.width - 1), min(y, chip.height - 1)]
                    s.0 += Double(p.r); s.1 += Double(p.g); s.2 += Double(p.b); s.3 += 1
                }
            }
        }
        var ref = (0.0, 0.0, 0.0, 0.0)
        mean(30, 52, 58, 64, into: &ref); mean(92, 52, 120, 64, into: &ref); mean(66, 50, 84, 66, into: &ref)
        let rr = ref.0 / ref.3, rg = ref.1 / ref.3, rb = ref.2 / ref.3
        let rs = rr + rg + rb + 1
        let rl = 0.299 * rr + 0.587 * rg + 0.114 * rb
        var chroma: [Float] = [], light: [Float] = []
        for cy in 0..<5 {
            for cx in 0..<8 {
                var s = (0.0, 0.0, 0.0, 0.0)
                mean(15 + cx * 15, 75 + cy * 15, 30 + cx * 15, 90 + cy * 15, into: &s)
                let r = s.0 / s.3, g = s.1 / s.3, b = s.2 / s.3
                let t = r + g + b + 1
                let d = ((r / t - rr / rs) * (r / t - rr / rs) + (g / t - rg / rs) * (g / t - rg / rs)
                         + (b / t - rb / rs) * (b / t - rb / rs)).squareRoot()
                chroma.append(Float(d * 10))
                light.append(Float(abs(log((0.299 * r + 0.587 * g + 0.114 * b + 8) / (rl + 8)))))
            }
        }
        return chroma + light
    }

    /// Gradient-orientation histograms of the grey chip (central differences, coordinates clamped at the
    /// border), 9 unsigned bins with bilinear angle weights, over `cellsX`×`cellsY` cells of `cell` pixels from
    /// (`x0`, `y0`), each value √(bin magnitude / total magnitude of the region).
    static func gradientHistograms(chip: RGBImage, x0: Int, y0: Int, cellsX: Int, cellsY: Int, cell: Int) -> [Float] {
        let w = chip.width, h = chip.height
        var g = [Double](repeating: 0, count: w * h)
        for y in 0..<h { for x in 0..<w { let p = chip[x, y]; g[y * w + x] = 0.299 * Double(p.r) + 0.587 * Double(p.g) + 0.114 * Double(p.b) } }
        func grey(_ x: Int, _ y: Int) -> Double { g[min(max(y, 0), h - 1) * w + min(max(x, 0), w - 1)] }
        return orientedHistograms(x0: x0, y0: y0, cellsX: cellsX, cellsY: cellsY, cell: cell, grey: grey)
    }

    /// The histogram loop both versions share: 9 unsigned orientation bins with bilinear angle weights per cell,
    /// central differences of `grey`, each value √(bin magnitude / total magnitude of the region).
    private static func orientedHistograms(x0: Int, y0: Int, cellsX: Int, cellsY: Int, cell: Int,
                                           grey: (Int, Int) -> Double) -> [Float] {
        let bins = 9
        var hist = [Double](repeating: 0, count: cellsX * cellsY * bins)
        var total = 0.0
        for y in y0..<(y0 + cellsY * cell) {
            for x in x0..<(x0 + cellsX * cell) {
                let gx = grey(x + 1, y) - grey(x - 1, y), gy = grey(x, y + 1) - grey(x, y - 1)
                let mag = (gx * gx + gy * gy).squareRoot()
                if mag == 0 { continue }
                var angle = atan2(gy, gx)
                if angle < 0 { angle += .pi }
                let pos = angle / .pi * Double(bins) - 0.5
                let lo = Int(pos.rounded(.down)), frac = pos - Double(lo)
                let c = ((y - y0) / cell) * cellsX + (x - x0) / cell
                hist[c * bins + ((lo % bins) + bins) % bins] += mag * (1 - frac)
                hist[c * bins + (((lo + 1) % bins) + bins) % bins] += mag * frac
                total += mag
            }
        }
        return hist.map { Float(($0 / max(total, 1e-9)).squareRoot()) }
    }

    /// Colour-blind structure of the lower face: histograms of oriented grey gradients (9 unsigned orientation
    /// bins, bilinear in angle) over 15×15-pixel cells of the chip's rows 75–150 and columns 15–135 (5×8 cells),
    /// each value the square root of the cell's share of the whole region's gradient magnitude (so the features do
    /// not depend on contrast or brightness). A mask replaces the nostrils, mouth corners and lips by a smooth
    /// surface with a long edge across the face where it ends. 360 numbers.
    public static func hogFeatures(chip: RGBImage) -> [Float] {
        let sx = Double(chip.width) / 150, sy = Double(chip.height) / 150
        let cellsX = 8, cellsY = 5, cell = 15, x0 = 15, y0 = 75
        func grey(_ x: Int, _ y: Int) -> Double {
            let cx = min(max(Int(Double(x) * sx), 0), chip.width - 1), cy = min(max(Int(Double(y) * sy), 0), chip.height - 1)
            let p = chip[cx, cy]
            return 0.299 * Double(p.r) + 0.587 * Double(p.g) + 0.114 * Double(p.b)
        }
        return orientedHistograms(x0: x0, y0: y0, cellsX: cellsX, cellsY: cellsY, cell: cell, grey: grey)
    }

    public func isMasked(features x: [Float]) -> Bool { probability(features: x) >= threshold }

    /// The detector's input: the embedding followed by lower-face features of dlib's aligned 150×150 chip
    /// (padding 0.25: eyes near row 46, nose base near row 88, mouth near rows 105–115):
    /// how far the lower face's mean colour and rg-chromaticity are from those of the skin under the eyes and on
    /// the nose bridge (absolute), contrast difference, log ratios of grey contrast and gradient energy (lower
    /// over upper), and the lower face as a
    /// 10×8 grey patch normalised to zero mean and unit variance. 128 + 3 + 2 + 2 + 80 = 215 numbers.
    public static func features(chip: RGBImage, embedding: [Float]) -> [Float] {
        let sx = Double(chip.width) / 150, sy = Double(chip.height) / 150
        func region(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int) -> (Int, Int, Int, Int) {
            (Int(Double(x0) * sx), Int(Double(y0) * sy), max(Int(Double(x0) * sx) + 1, Int(Double(x1) * sx)),
             max(Int(Double(y0) * sy) + 1, Int(Double(y1) * sy)))
        }
        func grey(_ x: Int, _ y: Int) -> Double {
            let p = chip[min(max(x, 0), chip.width - 1), min(max(y, 0), chip.height - 1)]
            return 0.299 * Double(p.r) + 0.587 * Double(p.g) + 0.114 * Double(p.b)
        }
        struct Stats { var r = 0.0, g = 0.0, b = 0.0, grey = 0.0, grey2 = 0.0, grad = 0.0, n = 0.0 }
        func stats(_ boxes: [(Int, Int, Int, Int)]) -> Stats {
            var s = Stats()
            for (x0, y0, x1, y1) in boxes {
                for y in y0..<y1 {
                    for x in x0..<x1 {
                        let p = chip[min(x, chip.width - 1), min(y, chip.height - 1)]
                        let v = grey(x, y)
                        s.r += Double(p.r); s.g += Double(p.g); s.b += Double(p.b)
                        s.grey += v; s.grey2 += v * v
                        s.grad += abs(grey(x + 1, y) - v) + abs(grey(x, y + 1) - v)
                        s.n += 1
                    }
                }
            }
            return s
        }
        let upper = stats([region(30, 52, 58, 64), region(92, 52, 120, 64), region(66, 50, 84, 66)])
        let lowerBox = region(40, 94, 110, 136)
        let lower = stats([lowerBox])
        func chroma(_ s: Stats) -> (Double, Double) { let t = max(s.r + s.g + s.b, 1); return (s.r / t, s.g / t) }
        func sd(_ s: Stats) -> Double { max((s.grey2 / s.n - (s.grey / s.n) * (s.grey / s.n)), 0).squareRoot() }
        var f = embedding
        // Magnitudes, not signs: a mask of any colour differs from the skin above it (the TRAIN masks are
        // darker on average than the TEST ones, so signed differences would not carry over).
        f.append(Float(abs(lower.r / lower.n - upper.r / upper.n) / 255))
        f.append(Float(abs(lower.g / lower.n - upper.g / upper.n) / 255))
        f.append(Float(abs(lower.b / lower.n - upper.b / upper.n) / 255))
        let cl = chroma(lower), cu = chroma(upper)
        f.append(Float(((cl.0 - cu.0) * (cl.0 - cu.0) + (cl.1 - cu.1) * (cl.1 - cu.1)).squareRoot()))
        f.append(Float(abs(sd(lower) - sd(upper)) / 64))
        f.append(Float(log((sd(lower) + 1) / (sd(upper) + 1))))
        f.append(Float(log((lower.grad / lower.n + 1) / (upper.grad / upper.n + 1))))
        // 10×8 patch of the lower face.
        let (x0, y0, x1, y1) = lowerBox
        var patch: [Double] = []
        for j in 0..<8 {
            for i in 0..<10 {
                let xa = x0 + (x1 - x0) * i / 10, xb = max(xa + 1, x0 + (x1 - x0) * (i + 1) / 10)
                let ya = y0 + (y1 - y0) * j / 8, yb = max(ya + 1, y0 + (y1 - y0) * (j + 1) / 8)
                var s = 0.0
                for y in ya..<yb { for x in xa..<xb { s += grey(x, y) } }
                patch.append(s / Double((xb - xa) * (yb - ya)))
            }
        }
        let m = patch.reduce(0, +) / Double(patch.count)
        let v = max(patch.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(patch.count), 1e-6).squareRoot()
        f += patch.map { Float(($0 - m) / v) }
        return f
    }

    /// Fits the logistic regression.
    /// - Parameters:
    ///   - masked / unmasked: embeddings of the two classes (same dimension).
    ///   - l2: ridge penalty on the weights (not the bias) of the standardised features, scaled by the sample count.
    /// - Returns: the detector, or `nil` when the data are empty or of mixed dimension.
    public static func train(masked: [[Float]], unmasked: [[Float]], embeddingModel: String,
                             l2: Double = 1e-2, iterations: Int = 25, networkBlock: Int? = nil) -> MaskDetector? {
        guard let d = (masked.first ?? unmasked.first)?.count, d > 0, !masked.isEmpty, !unmasked.isEmpty,
              (masked + unmasked).allSatisfy({ $0.count == d }) else { return nil }
        let all = masked + unmasked
        var mean = [Double](repeating: 0, count: d), scale = [Double](repeating: 0, count: d)
        for v in all { for j in 0..<d { mean[j] += Double(v[j]) } }
        for j in 0..<d { mean[j] /= Double(all.count) }
        for v in all { for j in 0..<d { let t = Double(v[j]) - mean[j]; scale[j] += t * t } }
        for j in 0..<d { scale[j] = max((scale[j] / Double(all.count)).squareRoot(), 1e-6) }
        // Standardised design matrix with a trailing bias column, row-major n × p.
        let n = all.count, p = d + 1
        var x = [Double](repeating: 1, count: n * p)
        for (i, v) in all.enumerated() { for j in 0..<d { x[i * p + j] = (Double(v[j]) - mean[j]) / scale[j] } }
        let y = [Double](repeating: 1, count: masked.count) + [Double](repeating: 0, count: unmasked.count)
        let nd = Double(n)
        var w = [Double](repeating: 0, count: p)
        var z = [Double](repeating: 0, count: n), resid = [Double](repeating: 0, count: n)
        var xw = [Double](repeating: 0, count: n * p)
        for _ in 0..<iterations {
            // z = X w; residuals μ − y; rows scaled by √(μ(1 − μ)); gradient Xᵀ(μ − y); Hessian (√R X)ᵀ(√R X).
            cblas_dgemv(CblasRowMajor, CblasNoTrans, Int32(n), Int32(p), 1, x, Int32(p), w, 1, 0, &z, 1)
            for i in 0..<n {
                let mu = 1 / (1 + exp(-z[i]))
                resid[i] = mu - y[i]
                let s = max(mu * (1 - mu), 1e-9).squareRoot()
                for j in 0..<p { xw[i * p + j] = s * x[i * p + j] }
            }
            var grad = [Double](repeating: 0, count: p)
            cblas_dgemv(CblasRowMajor, CblasTrans, Int32(n), Int32(p), 1, x, Int32(p), resid, 1, 0, &grad, 1)
            var hess = [Double](repeating: 0, count: p * p)
            cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, Int32(p), Int32(n), 1, xw, Int32(p), 0, &hess, Int32(p))
            for j in 0..<p { for k in 0..<j { hess[j * p + k] = hess[k * p + j] } }
            for j in 0..<d {
                grad[j] += l2 * nd * w[j]
                hess[j * p + j] += l2 * nd
            }
            hess[d * p + d] += 1e-9 * nd
            guard let step = solveSymmetric(hess, grad, p) else { break }
            var norm = 0.0
            for j in 0..<p { w[j] -= step[j]; norm += step[j] * step[j] }
            if norm.squareRoot() < 1e-10 { break }
        }
        var model = MaskDetector(embeddingModel: embeddingModel, mean: mean, scale: scale, weights: Array(w[0..<d]), bias: w[d])
        model.networkBlock = networkBlock
        if networkBlock == nil { model.version = min(model.version, 3) }
        return model
    }

    public init(contentsOf url: URL) throws {
        let model = try Self.read(from: url, kind: "mask detector")
        guard !model.weights.isEmpty, model.mean.count == model.weights.count, model.scale.count == model.weights.count,
              (model.weights + model.mean + model.scale).allSatisfy(\.isFinite), model.scale.allSatisfy({ $0 > 0 }),
              model.bias.isFinite else {
            throw MaskingError.resourceUnreadable(url.path, reason: "weights are empty, mis-sized or not finite")
        }
        guard (model.version >= 4) == (model.networkBlock != nil) else {
            throw MaskingError.resourceUnreadable(url.path, reason: "version \(model.version) with network block \(model.networkBlock.map(String.init) ?? "none") (version 4 and only version 4 names one)")
        }
        self = model
    }

    public func write(to url: URL) throws { try writeJSON(to: url) }

    public static let bundledFileName = "mask-detector-v4.json"

    /// The detector bundled with FacetMasking (`Resources/\(bundledFileName)`), trained by
    /// `facet mask-detector train` on LFW (see docs/masks.md).
    public static func bundled() throws -> MaskDetector {
        try MaskDetector(contentsOf: MaskTemplateLibrary.resourceDirectory().appendingPathComponent(bundledFileName))
    }
}

/// Solves `A x = b` for a symmetric positive-definite `A` (n×n, row-major) by Gaussian elimination with
/// partial pivoting; `nil` when singular.
func solveSymmetric(_ a: [Double], _ b: [Double], _ n: Int) -> [Double]? {
    var m = a, r = b
    for col in 0..<n {
        var pivot = col
        for row in col..<n where abs(m[row * n + col]) > abs(m[pivot * n + col]) { pivot = row }
        guard abs(m[pivot * n + col]) > 1e-300 else { return nil }
        if pivot != col {
            for k in 0..<n { m.swapAt(col * n + k, pivot * n + k) }
            r.swapAt(col, pivot)
        }
        let inv = 1 / m[col * n + col]
        for row in (col + 1)..<n {
            let f = m[row * n + col] * inv
            if f == 0 { continue }
            for k in col..<n { m[row * n + k] -= f * m[col * n + k] }
            r[row] -= f * r[col]
        }
    }
    var x = [Double](repeating: 0, count: n)
    for row in stride(from: n - 1, through: 0, by: -1) {
        var s = r[row]
        for k in (row + 1)..<n { s -= m[row * n + k] * x[k] }
        x[row] = s / m[row * n + row]
    }
    return x
}
