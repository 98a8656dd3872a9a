import Foundation

/// An embedding unmasking head on top of the frozen 128-D embedding, after Boutros et al. (2022),
/// "Self-restrained triplet loss for accurate masked face recognition": a small residual MLP that moves the
/// embedding of a masked face towards where the same person's unmasked embedding lies,
/// `out = normalise(x + W2 · leakyReLU(W1 · x + b1) + b2)` with `x` the unit-length embedding
/// (leaky slope 0.2, as the paper's EUM). It is applied only to faces the mask detector calls masked.
///
/// Saved as versioned JSON (`format` = `facet-unmasking-head`, `version` = 1); weights are little-endian
/// float32 arrays in base64 (W1 is hidden×input row-major, W2 input×hidden row-major).
public struct UnmaskingHead: Codable, Sendable, Equatable, VersionedModelFile {
    public static let formatName = "facet-unmasking-head"
    public static let currentVersion = 1
    public static let leakySlope: Double = 0.2

    public var format: String = UnmaskingHead.formatName
    public var version: Int = UnmaskingHead.currentVersion
    /// `Embedder.modelName` of the embeddings it maps.
    public var embeddingModel: String
    public var inputDimension: Int
    public var hiddenDimension: Int
    public var w1: [Float]
    public var b1: [Float]
    public var w2: [Float]
    public var b2: [Float]
    public var notes: [String: String] = [:]

    public init(embeddingModel: String, parameters p: UnmaskingHeadParameters, notes: [String: String] = [:]) {
        self.embeddingModel = embeddingModel
        inputDimension = p.input; hiddenDimension = p.hidden
        w1 = p.w1.map(Float.init); b1 = p.b1.map(Float.init); w2 = p.w2.map(Float.init); b2 = p.b2.map(Float.init)
        self.notes = notes
    }

    /// The weights in double precision (for further training or checks).
    public var parameters: UnmaskingHeadParameters {
        UnmaskingHeadParameters(input: inputDimension, hidden: hiddenDimension, w1: w1.map(Double.init),
                                b1: b1.map(Double.init), w2: w2.map(Double.init), b2: b2.map(Double.init))
    }

    /// Maps a (unit-length) embedding of a masked face; the result has unit length. A vector of the wrong
    /// dimension is returned unchanged (callers check `inputDimension` first; this never traps on bad input).
    public func apply(_ embedding: [Float]) -> [Float] {
        let d = inputDimension, h = hiddenDimension
        guard embedding.count == d else { return embedding }
        var hidden = [Double](repeating: 0, count: h)
        w1.withUnsafeBufferPointer { w in
            for j in 0..<h {
                var s = Double(b1[j])
                let row = j * d
                for i in 0..<d { s += Double(w[row + i]) * Double(embedding[i]) }
                hidden[j] = s > 0 ? s : UnmaskingHead.leakySlope * s
            }
        }
        var y = [Double](repeating: 0, count: d)
        w2.withUnsafeBufferPointer { w in
            for i in 0..<d {
                var s = Double(embedding[i]) + Double(b2[i])
                let row = i * h
                for j in 0..<h { s += Double(w[row + j]) * hidden[j] }
                y[i] = s
            }
        }
        let n = y.reduce(0) { $0 + $1 * $1 }.squareRoot()
        guard n > 0, n.isFinite else { return embedding }
        return y.map { Float($0 / n) }
    }

    // MARK: file

    enum CodingKeys: String, CodingKey { case format, version, embeddingModel, inputDimension, hiddenDimension, w1, b1, w2, b2, notes }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        format = try c.decode(String.self, forKey: .format)
        version = try c.decode(Int.self, forKey: .version)
        embeddingModel = try c.decode(String.self, forKey: .embeddingModel)
        inputDimension = try c.decode(Int.self, forKey: .inputDimension)
        hiddenDimension = try c.decode(Int.self, forKey: .hiddenDimension)
        func floats(_ key: CodingKeys) throws -> [Float] {
            let s = try c.decode(String.self, forKey: key)
            guard let data = Data(base64Encoded: s), data.count % 4 == 0 else {
                throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "not base64 float32 data")
            }
            return data.withUnsafeBytes { raw in
                (0..<(data.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
            }
        }
        w1 = try floats(.w1); b1 = try floats(.b1); w2 = try floats(.w2); b2 = try floats(.b2)
        notes = try c.decodeIfPresent([String: String].self, forKey: .notes) ?? [:]
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(format, forKey: .format)
        try c.encode(version, forKey: .version)
        try c.encode(embeddingModel, forKey: .embeddingModel)
        try c.encode(inputDimension, forKey: .inputDimension)
        try c.encode(hiddenDimension, forKey: .hiddenDimension)
        func b64(_ v: [Float]) -> String {
            var data = Data(capacity: v.count * 4)
            for x in v { withUnsafeBytes(of: x.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
            return data.base64EncodedString()
        }
        try c.encode(b64(w1), forKey: .w1); try c.encode(b64(b1), forKey: .b1)
        try c.encode(b64(w2), forKey: .w2); try c.encode(b64(b2), forKey: .b2)
        try c.encode(notes, forKey: .notes)
    }

    public init(contentsOf url: URL) throws {
        let model = try Self.read(from: url, kind: "unmasking head")
        let d = model.inputDimension, h = model.hiddenDimension
        guard d > 0, h > 0, model.w1.count == d * h, model.b1.count == h, model.w2.count == d * h, model.b2.count == d,
              (model.w1 + model.b1 + model.w2 + model.b2).allSatisfy(\.isFinite) else {
            throw MaskingError.resourceUnreadable(url.path, reason: "weights are mis-sized or not finite")
        }
        self = model
    }

    public func write(to url: URL) throws { try writeJSON(to: url) }

    /// The head bundled with FacetMasking (`Resources/unmasking-head-v1.json`, see docs/masks.md).
    public static func bundled() throws -> UnmaskingHead {
        try UnmaskingHead(contentsOf: MaskTemplateLibrary.resourceDirectory().appendingPathComponent("unmasking-head-v1.json"))
    }
}

/// The head's weights in double precision, with the forward pass, the self-restrained triplet loss and its
/// gradient (hand-written backward pass; checked against finite differences in the tests).
public struct UnmaskingHeadParameters: Sendable, Equatable {
    public var input: Int, hidden: Int
    public var w1: [Double], b1: [Double], w2: [Double], b2: [Double]

    public init(input: Int, hidden: Int, w1: [Double], b1: [Double], w2: [Double], b2: [Double]) {
        precondition(w1.count == input * hidden && b1.count == hidden && w2.count == input * hidden && b2.count == input)
        self.input = input; self.hidden = hidden; self.w1 = w1; self.b1 = b1; self.w2 = w2; self.b2 = b2
    }

    /// He-initialised W1, small W2 (the head starts close to the identity map), zero biases.
    public init(input: Int, hidden: Int, seed: UInt64, outputScale: Double = 0.01) {
        var rng = SplitMix64(seed: seed)
        func gaussian() -> Double {
            let u1 = max(rng.unit(), 1e-300), u2 = rng.unit()
            return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
        }
        let s1 = (2.0 / Double(input)).squareRoot()
        self.init(input: input, hidden: hidden,
                  w1: (0..<(input * hidden)).map { _ in gaussian() * s1 }, b1: [Double](repeating: 0, count: hidden),
                  w2: (0..<(input * hidden)).map { _ in gaussian() * outputScale / Double(hidden).squareRoot() },
                  b2: [Double](repeating: 0, count: input))
    }

    public var count: Int { w1.count + b1.count + w2.count + b2.count }

    /// All weights as one vector (W1, b1, W2, b2) and back, for optimisers and gradient checks.
    public var flat: [Double] { w1 + b1 + w2 + b2 }
    public mutating func setFlat(_ v: [Double]) {
        precondition(v.count == count)
        var o = 0
        func take(_ n: Int) -> [Double] { defer { o += n }; return Array(v[o..<(o + n)]) }
        w1 = take(w1.count); b1 = take(b1.count); w2 = take(w2.count); b2 = take(b2.count)
    }

    struct Trace { var z1: [Double]; var a: [Double]; var y: [Double]; var norm: Double; var out: [Double] }

    func forward(_ x: [Double]) -> Trace {
        let d = input, h = hidden
        var z1 = b1, a = [Double](repeating: 0, count: h)
        for j in 0..<h {
            var s = z1[j]; let row = j * d
            for i in 0..<d { s += w1[row + i] * x[i] }
            z1[j] = s; a[j] = s > 0 ? s : UnmaskingHead.leakySlope * s
        }
        var y = [Double](repeating: 0, count: d)
        for i in 0..<d {
            var s = x[i] + b2[i]; let row = i * h
            for j in 0..<h { s += w2[row + j] * a[j] }
            y[i] = s
        }
        let n = max(y.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-12)
        return Trace(z1: z1, a: a, y: y, norm: n, out: y.map { $0 / n })
    }

    public func apply(_ x: [Double]) -> [Double] { forward(x).out }

    /// Adds to `grad` (layout of `flat`) the gradient of `gOut · out(x)` for one input.
    func backward(_ x: [Double], _ t: Trace, gOut: [Double], into grad: inout [Double]) {
        let d = input, h = hidden
        let dot = zip(t.out, gOut).reduce(0) { $0 + $1.0 * $1.1 }
        let gy = (0..<d).map { (gOut[$0] - t.out[$0] * dot) / t.norm }
        let ow1 = 0, ob1 = d * h, ow2 = ob1 + h, ob2 = ow2 + d * h
        var ga = [Double](repeating: 0, count: h)
        for i in 0..<d {
            let g = gy[i]; if g == 0 { continue }
            grad[ob2 + i] += g
            let row = i * h
            for j in 0..<h { grad[ow2 + row + j] += g * t.a[j]; ga[j] += w2[row + j] * g }
        }
        for j in 0..<h {
            let gz = ga[j] * (t.z1[j] > 0 ? 1 : UnmaskingHead.leakySlope)
            if gz == 0 { continue }
            grad[ob1 + j] += gz
            let row = j * d
            for i in 0..<d { grad[ow1 + row + i] += gz * x[i] }
        }
    }

    /// One batch of the self-restrained triplet loss (Boutros et al. 2022) with squared Euclidean distances between
    /// unit vectors: anchor `a = head(masked)`, positive `p` and negative `n` unmasked embeddings (frozen).
    /// If the batch's mean `d(a, n)` is at least its mean `d(p, n)` (the masked anchors are already as far from the
    /// negatives as the unmasked positives are), the loss only pulls anchors to positives:
    /// `max(d(a,p) + m − mean d(p,n), 0)`; otherwise it is the triplet loss `max(d(a,p) + m − d(a,n), 0)`.
    /// Plus `identityWeight · ‖head(u) − u‖²` over `identity` inputs (unmasked embeddings the head should leave
    /// alone, so a false mask detection costs little) and `weightDecay / 2 · ‖W‖²`.
    /// Returns the loss and its gradient (layout of `flat`).
    public func srtLoss(anchors: [[Double]], positives: [[Double]], negatives: [[Double]], identity: [[Double]] = [],
                        margin: Double, identityWeight: Double = 0, weightDecay: Double = 0) -> (loss: Double, gradient: [Double], pullOnly: Bool) {
        precondition(anchors.count == positives.count && anchors.count == negatives.count && !anchors.isEmpty)
        let b = Double(anchors.count)
        func sq(_ u: [Double], _ v: [Double]) -> Double { zip(u, v).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } }
        let traces = anchors.map { forward($0) }
        let dap = zip(traces, positives).map { sq($0.out, $1) }
        let dan = zip(traces, negatives).map { sq($0.out, $1) }
        let dpn = zip(positives, negatives).map { sq($0, $1) }
        let meanPN = dpn.reduce(0, +) / b
        let pullOnly = dan.reduce(0, +) / b >= meanPN
        var grad = [Double](repeating: 0, count: count)
        var loss = 0.0
        for k in anchors.indices {
            let l = pullOnly ? dap[k] + margin - meanPN : dap[k] + margin - dan[k]
            guard l > 0 else { continue }
            loss += l / b
            let o = traces[k].out
            let g: [Double] = pullOnly
                ? (0..<input).map { 2 * (o[$0] - positives[k][$0]) / b }
                : (0..<input).map { 2 * (negatives[k][$0] - positives[k][$0]) / b }
            backward(anchors[k], traces[k], gOut: g, into: &grad)
        }
        if identityWeight > 0, !identity.isEmpty {
            let c = identityWeight / Double(identity.count)
            for u in identity {
                let t = forward(u)
                loss += c * sq(t.out, u)
                backward(u, t, gOut: (0..<input).map { 2 * c * (t.out[$0] - u[$0]) }, into: &grad)
            }
        }
        if weightDecay > 0 {
            let ow2 = w1.count + b1.count
            for i in 0..<w1.count { loss += 0.5 * weightDecay * w1[i] * w1[i]; grad[i] += weightDecay * w1[i] }
            for i in 0..<w2.count { loss += 0.5 * weightDecay * w2[i] * w2[i]; grad[ow2 + i] += weightDecay * w2[i] }
        }
        return (loss, grad, pullOnly)
    }
}

/// Embeddings to train an unmasking head on: masked faces and unmasked faces with integer identities.
public struct UnmaskingTrainingSet: Sendable {
    public var masked: [[Float]]
    public var maskedIdentity: [Int]
    public var unmasked: [[Float]]
    public var unmaskedIdentity: [Int]
    public init(masked: [[Float]], maskedIdentity: [Int], unmasked: [[Float]], unmaskedIdentity: [Int]) {
        precondition(masked.count == maskedIdentity.count && unmasked.count == unmaskedIdentity.count)
        self.masked = masked; self.maskedIdentity = maskedIdentity; self.unmasked = unmasked; self.unmaskedIdentity = unmaskedIdentity
    }
}

/// Trains an `UnmaskingHead` with the self-restrained triplet loss and Adam.
public enum UnmaskingHeadTrainer {
    public struct Options: Sendable {
        public var hidden = 128
        public var epochs = 30
        public var batchSize = 128
        public var learningRate = 1e-3
        /// Triplet margin on squared distances between unit vectors (range 0…4).
        public var margin = 0.5
        /// Weight of keeping unmasked embeddings where they are (see `srtLoss`).
        public var identityWeight = 1.0
        public var weightDecay = 1e-5
        /// Negatives: the hardest (closest to the current anchor output) of this many random other-identity
        /// unmasked embeddings.
        public var negativeCandidates = 8
        public var seed: UInt64 = 1
        public init() {}
    }

    public struct EpochLog: Sendable { public var epoch: Int; public var loss: Double; public var pullOnlyBatches: Int; public var batches: Int }

    /// - Returns: the trained head and the mean loss per epoch. Masked samples whose identity has no unmasked
    ///   embedding are skipped. `nil` when nothing can be trained (no usable triplet or fewer than two identities).
    public static func train(_ set: UnmaskingTrainingSet, options: Options, embeddingModel: String,
                             progress: ((EpochLog) -> Void)? = nil) -> (head: UnmaskingHead, log: [EpochLog])? {
        guard let d = (set.masked.first ?? set.unmasked.first)?.count, d > 0 else { return nil }
        var byIdentity: [Int: [Int]] = [:]
        for (k, id) in set.unmaskedIdentity.enumerated() where set.unmasked[k].count == d { byIdentity[id, default: []].append(k) }
        let usable = set.masked.indices.filter { set.masked[$0].count == d && byIdentity[set.maskedIdentity[$0]] != nil }
        guard !usable.isEmpty, byIdentity.count >= 2 else { return nil }
        let unmasked = set.unmasked.map { $0.map(Double.init) }
        let masked = set.masked.map { $0.map(Double.init) }
        var params = UnmaskingHeadParameters(input: d, hidden: options.hidden, seed: options.seed)
        var rng = SplitMix64(seed: options.seed ^ 0x9E37_79B9)
        var m = [Double](repeating: 0, count: params.count), v = m
        var step = 0
        let beta1 = 0.9, beta2 = 0.999, eps = 1e-8
        var logs: [EpochLog] = []
        func sq(_ u: [Double], _ w: [Double]) -> Double { zip(u, w).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } }
        for epoch in 1...max(options.epochs, 1) {
            var order = usable
            for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
            var total = 0.0, batches = 0, pullOnly = 0
            for start in stride(from: 0, to: order.count, by: options.batchSize) {
                let idx = order[start..<min(start + options.batchSize, order.count)]
                var anchors: [[Double]] = [], positives: [[Double]] = [], negatives: [[Double]] = [], identity: [[Double]] = []
                for k in idx {
                    let id = set.maskedIdentity[k]
                    let pos = byIdentity[id]!
                    let pk = pos[Int(rng.next() % UInt64(pos.count))]
                    let anchorOut = params.apply(masked[k])
                    var best = -1, bestD = Double.infinity
                    for _ in 0..<max(options.negativeCandidates, 1) {
                        var nk = Int(rng.next() % UInt64(unmasked.count))
                        var tries = 0
                        while set.unmaskedIdentity[nk] == id && tries < 16 { nk = Int(rng.next() % UInt64(unmasked.count)); tries += 1 }
                        if set.unmaskedIdentity[nk] == id { continue }
                        let dn = sq(anchorOut, unmasked[nk])
                        if dn < bestD { bestD = dn; best = nk }
                    }
                    guard best >= 0 else { continue }
                    anchors.append(masked[k]); positives.append(unmasked[pk]); negatives.append(unmasked[best])
                    identity.append(unmasked[pk])
                }
                guard !anchors.isEmpty else { continue }
                let r = params.srtLoss(anchors: anchors, positives: positives, negatives: negatives, identity: identity,
                                       margin: options.margin, identityWeight: options.identityWeight,
                                       weightDecay: options.weightDecay)
                total += r.loss; batches += 1; if r.pullOnly { pullOnly += 1 }
                step += 1
                var w = params.flat
                let c1 = 1 - pow(beta1, Double(step)), c2 = 1 - pow(beta2, Double(step))
                for i in 0..<w.count {
                    let g = r.gradient[i]
                    m[i] = beta1 * m[i] + (1 - beta1) * g
                    v[i] = beta2 * v[i] + (1 - beta2) * g * g
                    w[i] -= options.learningRate * (m[i] / c1) / ((v[i] / c2).squareRoot() + eps)
                }
                params.setFlat(w)
            }
            let log = EpochLog(epoch: epoch, loss: batches > 0 ? total / Double(batches) : 0, pullOnlyBatches: pullOnly, batches: batches)
            logs.append(log)
            progress?(log)
        }
        return (UnmaskingHead(embeddingModel: embeddingModel, parameters: params), logs)
    }
}
