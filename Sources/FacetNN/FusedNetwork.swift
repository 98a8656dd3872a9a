import CFacetConv
import Foundation

/// How one convolution is computed by `FusedNetwork`.
public enum ConvAlgorithm: String, Sendable, CaseIterable {
    /// Patch matrix (im2col on NHWC, one contiguous run per kernel row) times the filters, one `sgemm`.
    case patchGEMM
    /// Winograd F(2×2, 3×3): 16 `sgemm`s over 4×4 input tiles (3×3, stride 1, padding 1 only).
    case winograd2
    /// Winograd F(4×4, 3×3): 36 `sgemm`s over 6×6 input tiles (3×3, stride 1, padding 1 only).
    case winograd4

    var tileSize: Int { self == .winograd4 ? 4 : 2 }
}

/// A faster inference plan for a `DlibNetwork`, with the same results as `DlibNetwork.forward` up to float rounding.
///
/// - Activations are NHWC (channels innermost), so the Winograd transforms, bias, residual add and ReLU run as
///   8-wide SIMD over channels (CFacetConv, AVX2+FMA when the CPU has it) and patch rows are contiguous copies.
/// - An `affine` (or batch norm folded to affine) directly after a convolution is folded into the filters and bias;
///   a following `relu`, or `add_prev` + `relu`, is applied while the convolution writes its output.
/// - 3×3 stride-1 convolutions with a multiple of 8 channels use Winograd F(4×4,3×3) or F(2×2,3×3), chosen per
///   layer and call from the tile count and filter size (fewer multiplies against more filter bytes to stream);
///   other convolutions use a patch matrix and `sgemm`.
/// - `threads > 1` splits the tiles (or output pixels) of each convolution between threads; keep OpenBLAS at one
///   thread then (`BLASSetup.threads = 1`).
///
/// Thread-safe: the plan is immutable after init except for the lazily transformed Winograd filters, which are
/// computed once per layer and algorithm under a lock. Every call uses its own buffers.
public final class FusedNetwork: @unchecked Sendable {
    final class Conv: @unchecked Sendable {
        let layer: ConvLayer
        /// Folded per-filter scale (affine gamma) or nil.
        let scale: [Float]?
        /// Folded bias (gamma·b + beta, or b) or nil.
        let bias: [Float]?
        let winogradOK: Bool
        private let lock = NSLock()
        private var cache: [ConvAlgorithm: [Float]] = [:]

        init(layer: ConvLayer, affine: AffineLayer?) {
            self.layer = layer
            if let a = affine {
                scale = a.gamma
                bias = (0 ..< layer.numFilters).map { a.gamma[$0] * (layer.hasBias ? layer.biases[$0] : 0) + a.beta[$0] }
            } else {
                scale = nil
                bias = layer.hasBias ? layer.biases : nil
            }
            winogradOK = layer.kh == 3 && layer.kw == 3 && layer.strideY == 1 && layer.strideX == 1
                && layer.padY == 1 && layer.padX == 1 && layer.channels % 8 == 0 && layer.numFilters % 8 == 0
        }

        func weights(_ alg: ConvAlgorithm) -> [Float] {
            lock.lock()
            defer { lock.unlock() }
            if let w = cache[alg] { return w }
            let l = layer
            var w: [Float]
            let scale = self.scale ?? [Float](repeating: 1, count: l.numFilters)
            switch alg {
            case .patchGEMM:
                w = [Float](repeating: 0, count: l.channels * l.numFilters * l.kh * l.kw)
                fconv_gemm_weights(Int32(l.channels), Int32(l.numFilters), Int32(l.kh), Int32(l.kw), l.filters, scale, &w)
            case .winograd2, .winograd4:
                let a = alg.tileSize + 2
                w = [Float](repeating: 0, count: a * a * l.channels * l.numFilters)
                fconv_winograd_weights(Int32(alg.tileSize), Int32(l.channels), Int32(l.numFilters), l.filters, scale, &w)
            }
            cache[alg] = w
            return w
        }

        /// The cheapest algorithm by a simple model: multiply-adds at ~80 GFLOP/s plus streaming the (transformed)
        /// filters at ~8 GB/s once per call (rates measured here with OpenBLAS on one Zen 3 core), plus the transforms; ties go to the simpler algorithm.
        func choose(n: Int, h: Int, w: Int) -> ConvAlgorithm {
            guard winogradOK else { return .patchGEMM }
            let ck = Double(layer.channels * layer.numFilters)
            func cost(_ alg: ConvAlgorithm) -> Double {
                let positions: Double, tiles: Double
                switch alg {
                case .patchGEMM: positions = 9; tiles = Double(n * h * w)
                case .winograd2, .winograd4:
                    let m = alg.tileSize
                    positions = Double((m + 2) * (m + 2))
                    tiles = Double(n * ((h + m - 1) / m) * ((w + m - 1) / m))
                }
                let flops = 2 * positions * ck * tiles
                let bytes = 4 * positions * ck
                let transforms = alg == .patchGEMM ? 0 : tiles * positions * Double(layer.channels + layer.numFilters) * 6
                return flops / 80e9 + bytes / 8e9 + transforms / 20e9
            }
            return ConvAlgorithm.allCases.min { cost($0) < cost($1) }!
        }
    }

    enum Step {
        /// Convolution with folded affine; then `residual` tag added (zero padded along channels), then ReLU.
        case conv(Conv, residual: Int?, relu: Bool)
        case affine(AffineLayer)
        case relu
        case pool(PoolLayer)
        case addPrev(tag: Int, relu: Bool)
        case tag(Int)
        case skip(Int)
        case fc(FCLayer)
    }

    let steps: [Step]
    /// Threads that share each convolution (default 1).
    public var threads = 1
    /// Forces one algorithm wherever it applies (tests; nil: chosen per layer).
    public var forcedAlgorithm: ConvAlgorithm?
    /// Tiles per Winograd block: the transformed inputs and products of a block are about this many floats.
    static let blockFloats = 1 << 18

    public convenience init(_ network: DlibNetwork) {
        self.init(layers: network.layers)
    }

    /// A plan for layers as `DlibNetwork.layers` holds them (input to output).
    public init(layers ls: [LoadedLayer]) {
        var steps: [Step] = []
        var i = 0
        while i < ls.count {
            switch ls[i] {
            case .conv(let c):
                var j = i + 1
                var affine: AffineLayer?
                if j < ls.count, case .affine(let a) = ls[j], !a.perElement, a.gamma.count == c.numFilters {
                    affine = a; j += 1
                }
                var residual: Int?
                var relu = false
                if j < ls.count, case .relu = ls[j] {
                    relu = true; j += 1
                } else if j < ls.count, case .addPrev(let t) = ls[j] {
                    residual = t; j += 1
                    if j < ls.count, case .relu = ls[j] { relu = true; j += 1 }
                }
                steps.append(.conv(Conv(layer: c, affine: affine), residual: residual, relu: relu))
                i = j
                continue
            case .affine(let a): steps.append(.affine(a))
            case .relu: steps.append(.relu)
            case .pool(let p): steps.append(.pool(p))
            case .addPrev(let t):
                if i + 1 < ls.count, case .relu = ls[i + 1] {
                    steps.append(.addPrev(tag: t, relu: true)); i += 2; continue
                }
                steps.append(.addPrev(tag: t, relu: false))
            case .fc(let f): steps.append(.fc(f))
            case .tag(let t): steps.append(.tag(t))
            case .skip(let t): steps.append(.skip(t))
            }
            i += 1
        }
        self.steps = steps
    }

    /// Algorithms the plan would use for a batch of `n` inputs of `nr × nc` (for logs and tests).
    public func algorithms(n: Int, nr: Int, nc: Int) -> [ConvAlgorithm] {
        var out: [ConvAlgorithm] = []
        var h = nr, w = nc
        for s in steps {
            switch s {
            case .conv(let c, _, _):
                out.append(forcedAlgorithm.map { c.winogradOK || $0 == .patchGEMM ? $0 : .patchGEMM } ?? c.choose(n: n, h: h, w: w))
                (h, w) = c.layer.outputSize(nr: h, nc: w)
            case .pool(let p):
                let wh = p.nr == 0 ? h : p.nr, ww = p.nc == 0 ? w : p.nc
                (h, w) = (1 + (h + 2 * p.padY - wh) / p.strideY, 1 + (w + 2 * p.padX - ww) / p.strideX)
            default: break
            }
        }
        return out
    }

    /// Same contract as `DlibNetwork.forward`: NCHW tensor in, the last layer's output (NCHW) out.
    public func forward(_ x: Tensor) -> Tensor {
        forward(x, tags: [:])
    }

    /// `forward` with tags set before the first layer (tests of single steps).
    func forward(_ x: Tensor, tags initial: [Int: Tensor]) -> Tensor {
        run(x, tags: initial, through: steps.count - 1, capture: []).output.nchw()
    }

    /// Indices of the steps whose output ends a residual block (a convolution with its residual add, or the add
    /// of a down-sampling block's shortcut), input to output. For dlib's face ResNet: 14 blocks (3 at 32 channels
    /// 35×35, 4 at 64 channels 17×17, 3 at 128 channels 8×8, 3 at 256 channels 3×3, 1 at 256 channels 1×1).
    public var residualBlockEnds: [Int] {
        steps.indices.filter {
            switch steps[$0] {
            case .conv(_, let residual, _): return residual != nil
            case .addPrev: return true
            default: return false
            }
        }
    }

    /// The last layer's output (NCHW) and the outputs of the steps in `capture`, from one pass.
    public func forward(_ x: Tensor, capture: [Int]) -> (output: Tensor, captured: [Int: Tensor]) {
        precondition(capture.allSatisfy { steps.indices.contains($0) }, "FusedNetwork: no such step")
        let r = run(x, tags: [:], through: steps.count - 1, capture: Set(capture))
        return (r.output.nchw(), r.captured.mapValues { $0.nchw() })
    }

    /// The outputs (NCHW) of the steps in `capture`; runs only as far as the last of them.
    public func activations(_ x: Tensor, capture: [Int]) -> [Int: Tensor] {
        guard let last = capture.max() else { return [:] }
        precondition(capture.allSatisfy { steps.indices.contains($0) }, "FusedNetwork: no such step")
        return run(x, tags: [:], through: last, capture: Set(capture)).captured.mapValues { $0.nchw() }
    }

    private func run(_ x: Tensor, tags initial: [Int: Tensor], through last: Int, capture: Set<Int>)
        -> (output: Activation4, captured: [Int: Activation4]) {
        var cur = Activation4(x)
        var tags = initial.mapValues { Activation4($0) }
        var captured: [Int: Activation4] = [:]
        for (index, step) in steps.enumerated() where index <= last {
            defer { if capture.contains(index) { captured[index] = cur } }
            switch step {
            case let .conv(c, residual, relu):
                cur = conv(c, cur, residual: residual.map { tags[$0]! }, relu: relu)
            case .affine(let a):
                cur = viaNCHW(cur) { t in a.forward(&t) }
            case .relu:
                let out = Activation4(n: cur.n, h: cur.h, w: cur.w, c: cur.c)
                for i in 0 ..< cur.count { out.p[i] = cur.p[i] > 0 ? cur.p[i] : 0 }
                cur = out
            case .pool(let p):
                let wh = p.nr == 0 ? cur.h : p.nr, ww = p.nc == 0 ? cur.w : p.nc
                let oh = 1 + (cur.h + 2 * p.padY - wh) / p.strideY, ow = 1 + (cur.w + 2 * p.padX - ww) / p.strideX
                let out = Activation4(n: cur.n, h: max(oh, 0), w: max(ow, 0), c: cur.c)
                if oh > 0 && ow > 0 {
                    fconv_pool(cur.p, Int32(cur.n), Int32(cur.h), Int32(cur.w), Int32(cur.c), Int32(wh), Int32(ww),
                               Int32(p.strideY), Int32(p.strideX), Int32(p.padY), Int32(p.padX), Int32(oh), Int32(ow),
                               p.isMax ? 1 : 0, out.p)
                }
                cur = out
            case let .addPrev(tag, relu):
                cur = add(cur, tags[tag]!, relu: relu)
            case .fc(let f):
                cur = viaNCHW(cur) { t in t = f.forward(t) }
            case .tag(let t): tags[t] = cur
            case .skip(let t): cur = tags[t]!
            }
        }
        return (cur, captured)
    }

    // MARK: steps

    private func viaNCHW(_ a: Activation4, _ body: (inout Tensor) -> Void) -> Activation4 {
        var t = a.nchw()
        body(&t)
        return Activation4(t)
    }

    private func add(_ a: Activation4, _ b: Activation4, relu: Bool) -> Activation4 {
        if a.n == b.n && a.h == b.h && a.w == b.w {
            let (big, small) = a.c >= b.c ? (a, b) : (b, a)
            let out = Activation4(n: big.n, h: big.h, w: big.w, c: big.c)
            fconv_add(big.p, Int32(big.c), small.p, Int32(small.c), big.n * big.h * big.w, relu ? 1 : 0, out.p)
            return out
        }
        var t = addZeroPadded(a.nchw(), b.nchw())
        if relu { Activation.relu(&t) }
        return Activation4(t)
    }

    private func parallel(_ count: Int, _ body: (Int) -> Void) {
        if threads > 1 && count > 1 {
            DispatchQueue.concurrentPerform(iterations: count, execute: body)
        } else {
            for i in 0 ..< count { body(i) }
        }
    }

    private func conv(_ c: Conv, _ x: Activation4, residual: Activation4?, relu: Bool) -> Activation4 {
        let l = c.layer
        precondition(x.c == l.channels, "conv: input has \(x.c) channels, layer expects \(l.channels)")
        let (oh, ow) = l.outputSize(nr: x.h, nc: x.w)
        let out = Activation4(n: x.n, h: max(oh, 0), w: max(ow, 0), c: l.numFilters)
        guard oh > 0, ow > 0 else { return out }
        // The residual is fused when it only pads along channels (the ResNet case); otherwise it is added after.
        var fusedRes: Activation4?
        var after: Activation4?
        if let r = residual {
            if r.n == x.n && r.h == oh && r.w == ow && r.c <= l.numFilters && r.c % 8 == 0 { fusedRes = r } else { after = r }
        }
        let alg = forcedAlgorithm.map { c.winogradOK || $0 == .patchGEMM ? $0 : .patchGEMM } ?? c.choose(n: x.n, h: x.h, w: x.w)
        let weights = c.weights(alg)
        let bias = c.bias
        let fuseRelu = relu && after == nil
        withExtendedLifetime((weights, bias, fusedRes)) {
            weights.withUnsafeBufferPointer { wp in
                (bias ?? []).withUnsafeBufferPointer { bp in
                    let ep = fconv_epilogue(bias: bias == nil ? nil : bp.baseAddress, res: fusedRes.map { UnsafePointer($0.p) },
                                            res_c: Int32(fusedRes?.c ?? 0), relu: fuseRelu ? 1 : 0)
                    switch alg {
                    case .patchGEMM:
                        let pixels = x.n * oh * ow
                        let rows = l.channels * l.kh * l.kw
                        // Blocks of output pixels whose patch rows fit in about 1 MB; at least 2 blocks per thread.
                        var per = max(16, (1 << 18) / rows)
                        if threads > 1 { per = min(per, max(16, (pixels + threads - 1) / threads)) }
                        let blocks = (pixels + per - 1) / per
                        parallel(blocks) { b in
                            let p0 = b * per, p1 = min(pixels, p0 + per)
                            let patch = UnsafeMutablePointer<Float>.allocate(capacity: (p1 - p0) * rows)
                            defer { patch.deallocate() }
                            fconv_im2col_conv(x.p, Int32(x.n), Int32(x.h), Int32(x.w), Int32(x.c), Int32(l.numFilters),
                                              Int32(l.kh), Int32(l.kw), Int32(l.strideY), Int32(l.strideX), Int32(l.padY), Int32(l.padX),
                                              Int32(oh), Int32(ow), p0, p1, wp.baseAddress, ep, patch, out.p)
                        }
                    case .winograd2, .winograd4:
                        let m = alg.tileSize, a2 = (m + 2) * (m + 2)
                        let tiles = x.n * ((x.h + m - 1) / m) * ((x.w + m - 1) / m)
                        guard tiles > 0 else { return }
                        var per = max(16, FusedNetwork.blockFloats / (a2 * (l.channels + l.numFilters)))
                        if threads > 1 { per = min(per, max(4, (tiles + threads - 1) / threads)) }
                        per = min(per, tiles)
                        let blocks = (tiles + per - 1) / per
                        parallel(blocks) { b in
                            let t0 = b * per, t1 = min(tiles, t0 + per), tb = t1 - t0
                            let v = UnsafeMutablePointer<Float>.allocate(capacity: a2 * tb * l.channels)
                            let mm = UnsafeMutablePointer<Float>.allocate(capacity: a2 * tb * l.numFilters)
                            defer { v.deallocate(); mm.deallocate() }
                            fconv_winograd_input(Int32(m), x.p, Int32(x.n), Int32(x.h), Int32(x.w), Int32(x.c), t0, t1, v)
                            fconv_winograd_gemm(Int32(m), tb, Int32(l.channels), Int32(l.numFilters), v, wp.baseAddress, mm, 0, Int32(a2))
                            fconv_winograd_output(Int32(m), mm, Int32(x.n), Int32(oh), Int32(ow), Int32(l.numFilters), t0, t1, ep, out.p)
                        }
                    }
                }
            }
        }
        if let r = after { return add(out, r, relu: relu) }
        return out
    }
}

/// An NHWC activation buffer owned by `FusedNetwork` (uninitialised until a kernel writes it).
final class Activation4: @unchecked Sendable {
    let n: Int, h: Int, w: Int, c: Int
    let p: UnsafeMutablePointer<Float>
    var count: Int { n * h * w * c }

    init(n: Int, h: Int, w: Int, c: Int) {
        self.n = n; self.h = h; self.w = w; self.c = c
        p = .allocate(capacity: max(1, n * h * w * c))
    }

    convenience init(_ t: Tensor) {
        self.init(n: t.n, h: t.nr, w: t.nc, c: t.k)
        guard count > 0 else { return }
        t.data.withUnsafeBufferPointer { fconv_nchw_to_nhwc($0.baseAddress!, Int32(t.n), Int32(t.k), Int32(t.nr * t.nc), p) }
    }

    deinit { p.deallocate() }

    func nchw() -> Tensor {
        var t = Tensor(n: n, k: c, nr: h, nc: w)
        if count > 0 {
            t.data.withUnsafeMutableBufferPointer { fconv_nhwc_to_nchw(p, Int32(n), Int32(c), Int32(h * w), $0.baseAddress!) }
        }
        return t
    }
}
