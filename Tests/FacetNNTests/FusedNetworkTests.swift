import CFacetConv
@testable import FacetNN
import Foundation
import Testing

/// FusedNetwork (NHWC, folded affine, Winograd / patch GEMM from CFacetConv) against naive double-precision
/// references and against `DlibNetwork.forward`.
@Suite("fused NHWC executor")
struct FusedNetworkTests {
    static func rand(_ n: Int, seed: UInt64) -> [Float] {
        var s = seed
        return (0 ..< n).map { _ in
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: s >> 11) % 2000 - 1000) / 1000
        }
    }

    /// conv (+ bias) → per-channel affine → optional residual (zero padded along channels) → optional ReLU, in double.
    static func naive(_ x: Tensor, _ c: ConvLayer, gamma: [Float]?, beta: [Float]?, residual: Tensor?, relu: Bool) -> Tensor {
        let (onr, onc) = c.outputSize(nr: x.nr, nc: x.nc)
        var out = Tensor(n: x.n, k: c.numFilters, nr: onr, nc: onc)
        for s in 0 ..< x.n { for f in 0 ..< c.numFilters { for oy in 0 ..< onr { for ox in 0 ..< onc {
            var acc = Double(c.biases[f])
            for ch in 0 ..< c.channels { for ky in 0 ..< c.kh { for kx in 0 ..< c.kw {
                let iy = oy * c.strideY - c.padY + ky, ix = ox * c.strideX - c.padX + kx
                guard iy >= 0, iy < x.nr, ix >= 0, ix < x.nc else { continue }
                acc += Double(c.filters[((f * c.channels + ch) * c.kh + ky) * c.kw + kx]) * Double(x[s, ch, iy, ix])
            } } }
            if let g = gamma, let b = beta { acc = Double(g[f]) * acc + Double(b[f]) }
            if let r = residual, f < r.k { acc += Double(r[s, f, oy, ox]) }
            if relu { acc = max(acc, 0) }
            out[s, f, oy, ox] = Float(acc)
        } } } }
        return out
    }

    static func maxError(_ a: Tensor, _ b: Tensor) -> Float {
        precondition(a.n == b.n && a.k == b.k && a.nr == b.nr && a.nc == b.nc, "shapes differ")
        return zip(a.data, b.data).map { abs($0 - $1) }.max() ?? 0
    }

    static func conv(_ ch: Int, _ f: Int, k: Int, stride: Int, pad: Int, seed: UInt64) -> ConvLayer {
        ConvLayer(numFilters: f, channels: ch, kh: k, kw: k, strideY: stride, strideX: stride, padY: pad, padX: pad,
                  filters: rand(f * ch * k * k, seed: seed), biases: rand(f, seed: seed + 1), hasBias: true)
    }

    @Test("every algorithm equals a naive 3x3 convolution with folded affine, residual and ReLU", arguments: [
        (ConvAlgorithm.patchGEMM, 1), (.winograd2, 1), (.winograd4, 1), (.winograd4, 2), (.winograd2, 2),
    ])
    func winograd(alg: ConvAlgorithm, threads: Int) {
        // Sizes that tile exactly and ones that leave partial tiles (35 = 8·4 + 3, 17, 2, 1).
        for (h, w) in [(8, 8), (35, 35), (17, 13), (2, 2), (1, 3), (6, 9)] {
            let ch = 16, f = 24
            let c = Self.conv(ch, f, k: 3, stride: 1, pad: 1, seed: UInt64(h * 100 + w))
            let gamma = Self.rand(f, seed: 7).map { 0.5 + abs($0) }, beta = Self.rand(f, seed: 8)
            let x = Tensor(n: 3, k: ch, nr: h, nc: w, data: Self.rand(3 * ch * h * w, seed: 9))
            let res = Tensor(n: 3, k: 8, nr: h, nc: w, data: Self.rand(3 * 8 * h * w, seed: 10))
            let layers: [LoadedLayer] = [.conv(c), .affine(AffineLayer(gamma: gamma, beta: beta)), .addPrev(tag: 2), .relu]
            let plan = FusedNetwork(layers: layers)
            plan.forcedAlgorithm = alg
            plan.threads = threads
            let got = plan.forward(x, tags: [2: res])
            let want = Self.naive(x, c, gamma: gamma, beta: beta, residual: res, relu: true)
            let err = Self.maxError(got, want)
            // Winograd F(4x4) trades a little accuracy for speed; the inputs here are O(1) with 144 terms per output.
            #expect(err < (alg == .winograd4 ? 2e-4 : 2e-5), "\(alg) \(h)x\(w): max error \(err)")
        }
    }

    @Test("patch GEMM handles strides, paddings, odd channel counts and large kernels", arguments: [
        (3, 7, 2, 0), (3, 5, 1, 2), (5, 3, 2, 1), (8, 3, 2, 0), (45, 5, 1, 2),
    ])
    func patch(channels: Int, k: Int, stride: Int, pad: Int) {
        let c = Self.conv(channels, 9, k: k, stride: stride, pad: pad, seed: UInt64(channels * 10 + k))
        let x = Tensor(n: 2, k: channels, nr: 19, nc: 23, data: Self.rand(2 * channels * 19 * 23, seed: 3))
        for threads in [1, 2] {
            let plan = FusedNetwork(layers: [.conv(c), .relu])
            plan.threads = threads
            let err = Self.maxError(plan.forward(x), Self.naive(x, c, gamma: nil, beta: nil, residual: nil, relu: true))
            #expect(err < 1e-4, "max error \(err)")
        }
    }

    @Test("pools, zero-padded add, standalone affine and fc match the reference layers")
    func otherSteps() {
        let x = Tensor(n: 2, k: 8, nr: 9, nc: 7, data: Self.rand(2 * 8 * 9 * 7, seed: 21))
        let small = Tensor(n: 2, k: 8, nr: 4, nc: 3, data: Self.rand(2 * 8 * 4 * 3, seed: 22))
        let aff = AffineLayer(gamma: Self.rand(8, seed: 23), beta: Self.rand(8, seed: 24))
        let fc = FCLayer(inputs: 8 * 4 * 3, outputs: 5, weights: Self.rand(8 * 12 * 5, seed: 25), biases: Self.rand(5, seed: 26))
        let maxPool = PoolLayer(nr: 3, nc: 3, strideY: 2, strideX: 2, padY: 0, padX: 0, isMax: true)
        let avgPool = PoolLayer(nr: 2, nc: 2, strideY: 2, strideX: 2, padY: 0, padX: 0, isMax: false)
        let global = PoolLayer(nr: 0, nc: 0, strideY: 1, strideX: 1, padY: 0, padX: 0, isMax: false)
        let cases: [(String, [LoadedLayer], (Tensor) -> Tensor)] = [
            ("max pool", [.pool(maxPool)], { maxPool.forward($0) }),
            ("avg pool", [.pool(avgPool)], { avgPool.forward($0) }),
            ("global pool", [.pool(global)], { global.forward($0) }),
            ("affine + relu", [.affine(aff), .relu], { var t = $0; aff.forward(&t); Activation.relu(&t); return t }),
            ("pool + add + fc", [.tag(1), .pool(avgPool), .addPrev(tag: 3), .fc(fc)],
             { fc.forward(addZeroPadded(avgPool.forward($0), small)) }),
        ]
        for (name, layers, reference) in cases {
            let got = FusedNetwork(layers: layers).forward(x, tags: [3: small])
            let err = Self.maxError(got, reference(x))
            #expect(err < 1e-5, "\(name): max error \(err)")
        }
    }

    @Test("the real ResNet: fused plan equals DlibNetwork.forward for every algorithm and 1-2 threads")
    func realResNet() throws {
        let net = try DlibNetwork(contentsOf: try modelPath("dlib_face_recognition_resnet_model_v1.dat"),
                                  spec: DlibArchitectures.resNetFaceV1)
        // Chip-like inputs: (pixel - mean)/256 lies in about [-0.5, 0.6].
        let x = Tensor(n: 3, k: 3, nr: 150, nc: 150, data: Self.rand(3 * 3 * 150 * 150, seed: 31).map { $0 * 0.5 })
        let want = net.forward(x)
        #expect(want.n == 3 && want.k == 128)
        let plan = FusedNetwork(net)
        #expect(plan.algorithms(n: 1, nr: 150, nc: 150).count == 29)
        #expect(plan.algorithms(n: 8, nr: 150, nc: 150).contains(.winograd4))
        for (alg, threads) in [(ConvAlgorithm?.none, 1), (nil, 2), (.patchGEMM, 1), (.winograd2, 1), (.winograd4, 2)] {
            plan.forcedAlgorithm = alg
            plan.threads = threads
            let got = plan.forward(x)
            // Descriptor distance as the golden tests measure it (dlib's same-person threshold is 0.6).
            for s in 0 ..< 3 {
                let d = zip(got.sample(s), want.sample(s)).map { Double($0 - $1) * Double($0 - $1) }.reduce(0, +).squareRoot()
                #expect(d < 1e-4, "\(String(describing: alg)) threads \(threads) sample \(s): L2 \(d)")
            }
            // One sample alone gives what it gives inside the batch.
            let one = plan.forward(Tensor(n: 1, k: 3, nr: 150, nc: 150, data: Array(x.sample(2))))
            let d1 = zip(one.data, got.sample(2)).map { abs($0 - $1) }.max() ?? 0
            #expect(d1 < 1e-4)
        }
        // An empty batch gives an empty result of the right shape.
        let empty = plan.forward(Tensor(n: 0, k: 3, nr: 150, nc: 150))
        #expect(empty.n == 0 && empty.k == 128)
    }
}
