import COpenBLAS

/// A convolution as dlib's `con_`: `filters` is `numFilters × channels × kh × kw` row-major, plus one bias per
/// filter (zero when the layer has none). Computed as im2col + `cblas_sgemm`, batched over samples.
public struct ConvLayer: Sendable {
    public let numFilters: Int
    public let channels: Int
    public let kh: Int
    public let kw: Int
    public let strideY: Int
    public let strideX: Int
    public let padY: Int
    public let padX: Int
    public let filters: [Float]
    public let biases: [Float]
    public let hasBias: Bool

    public init(numFilters: Int, channels: Int, kh: Int, kw: Int, strideY: Int, strideX: Int, padY: Int, padX: Int,
                filters: [Float], biases: [Float], hasBias: Bool) {
        precondition(filters.count == numFilters * channels * kh * kw)
        self.numFilters = numFilters; self.channels = channels; self.kh = kh; self.kw = kw
        self.strideY = strideY; self.strideX = strideX; self.padY = padY; self.padX = padX
        self.filters = filters; self.biases = hasBias ? biases : [Float](repeating: 0, count: numFilters)
        self.hasBias = hasBias
    }

    public func outputSize(nr: Int, nc: Int) -> (nr: Int, nc: Int) {
        (1 + (nr + 2 * padY - kh) / strideY, 1 + (nc + 2 * padX - kw) / strideX)
    }

    /// Maximum floats of the im2col buffer for one image; larger single images are processed in row blocks.
    static let maxColumnFloats = 6 << 20
    /// Samples are batched into one GEMM while their im2col matrix stays under this many floats (4 MB), which
    /// helps the small late layers (4×4 to 17×17 outputs) without thrashing the cache on the large early ones.
    static let batchColumnFloats = 1 << 20

    public func forward(_ x: Tensor) -> Tensor {
        precondition(x.k == channels, "conv: input has \(x.k) channels, layer expects \(channels)")
        let (onr, onc) = outputSize(nr: x.nr, nc: x.nc)
        guard onr > 0, onc > 0, x.n > 0 else { return Tensor(n: x.n, k: numFilters, nr: max(onr, 0), nc: max(onc, 0)) }
        let hw = onr * onc
        let rows = channels * kh * kw
        let perChunk = max(1, min(x.n, ConvLayer.batchColumnFloats / max(1, rows * hw)))
        var out = Tensor(n: x.n, k: numFilters, nr: onr, nc: onc)
        var col = [Float](repeating: 0, count: min(rows * hw * perChunk, max(ConvLayer.maxColumnFloats, rows * onc)))
        var gemmOut = perChunk > 1 ? [Float](repeating: 0, count: numFilters * hw * perChunk) : []
        x.data.withUnsafeBufferPointer { src in
            out.data.withUnsafeMutableBufferPointer { dst in
                col.withUnsafeMutableBufferPointer { colp in
                    gemmOut.withUnsafeMutableBufferPointer { gop in
                        filters.withUnsafeBufferPointer { w in
                            var s0 = 0
                            while s0 < x.n {
                                let m = min(perChunk, x.n - s0)
                                let ldc = m * hw
                                let blocked = m == 1 && rows * hw > ConvLayer.maxColumnFloats
                                if !blocked {
                                    for j in 0 ..< m {
                                        im2col(src.baseAddress! + (s0 + j) * x.sampleSize, nr: x.nr, nc: x.nc,
                                               onr: onr, onc: onc, col: colp.baseAddress! + j * hw, ld: ldc)
                                    }
                                }
                                if blocked {
                                    // One large image: im2col and multiply in blocks of output rows.
                                    let o = dst.baseAddress! + s0 * numFilters * hw
                                    let blockRows = max(1, ConvLayer.maxColumnFloats / max(1, rows * onc))
                                    var r0 = 0
                                    while r0 < onr {
                                        let nrows = min(blockRows, onr - r0)
                                        let n = nrows * onc
                                        im2col(src.baseAddress! + s0 * x.sampleSize, nr: x.nr, nc: x.nc,
                                               onr: onr, onc: onc, col: colp.baseAddress!, ld: n, rowRange: r0 ..< r0 + nrows)
                                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(numFilters), Int32(n), Int32(rows),
                                                    1, w.baseAddress!, Int32(rows), colp.baseAddress!, Int32(n), 0, o + r0 * onc, Int32(hw))
                                        r0 += nrows
                                    }
                                    addBias(o, hw: hw)
                                } else if m == 1 {
                                    let o = dst.baseAddress! + s0 * numFilters * hw
                                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(numFilters), Int32(hw), Int32(rows),
                                                1, w.baseAddress!, Int32(rows), colp.baseAddress!, Int32(ldc), 0, o, Int32(hw))
                                    addBias(o, hw: hw)
                                } else {
                                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(numFilters), Int32(ldc), Int32(rows),
                                                1, w.baseAddress!, Int32(rows), colp.baseAddress!, Int32(ldc), 0, gop.baseAddress!, Int32(ldc))
                                    for j in 0 ..< m {
                                        let o = dst.baseAddress! + (s0 + j) * numFilters * hw
                                        for f in 0 ..< numFilters {
                                            (o + f * hw).update(from: gop.baseAddress! + f * ldc + j * hw, count: hw)
                                        }
                                        addBias(o, hw: hw)
                                    }
                                }
                                s0 += m
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    @inline(__always)
    private func addBias(_ o: UnsafeMutablePointer<Float>, hw: Int) {
        guard hasBias else { return }
        for f in 0 ..< numFilters {
            let b = biases[f]
            let p = o + f * hw
            for i in 0 ..< hw { p[i] += b }
        }
    }

    /// Writes the `rows × (onr·onc)` patch matrix of one sample into `col` (row stride `ld`), zero outside the image.
    private func im2col(_ src: UnsafePointer<Float>, nr: Int, nc: Int, onr: Int, onc: Int,
                        col: UnsafeMutablePointer<Float>, ld: Int, rowRange: Range<Int>? = nil) {
        let outRows = rowRange ?? 0 ..< onr
        var row = 0
        for c in 0 ..< channels {
            let plane = src + c * nr * nc
            for ky in 0 ..< kh {
                for kx in 0 ..< kw {
                    let dstRow = col + row * ld
                    for oy in outRows {
                        let iy = oy * strideY - padY + ky
                        let d = dstRow + (oy - outRows.lowerBound) * onc
                        if iy < 0 || iy >= nr {
                            d.update(repeating: 0, count: onc)
                            continue
                        }
                        let srow = plane + iy * nc
                        if strideX == 1 {
                            // contiguous: ix = ox - padX + kx
                            let off = kx - padX
                            let lo = min(max(0, -off), onc)
                            let hi = min(max(nc - off, lo), onc)
                            if lo > 0 { d.update(repeating: 0, count: lo) }
                            if hi > lo { (d + lo).update(from: srow + lo + off, count: hi - lo) }
                            if hi < onc { (d + hi).update(repeating: 0, count: onc - hi) }
                        } else {
                            for ox in 0 ..< onc {
                                let ix = ox * strideX - padX + kx
                                d[ox] = (ix >= 0 && ix < nc) ? srow[ix] : 0
                            }
                        }
                    }
                    row += 1
                }
            }
        }
    }
}

/// dlib's `affine_` in convolution mode (per-channel `gamma·x + beta`), also what a `bn_` becomes at inference.
public struct AffineLayer: Sendable {
    public let gamma: [Float]
    public let beta: [Float]
    /// `true` for dlib's FC_MODE: one gamma/beta per input element instead of per channel.
    public let perElement: Bool

    public init(gamma: [Float], beta: [Float], perElement: Bool = false) {
        precondition(gamma.count == beta.count)
        self.gamma = gamma; self.beta = beta; self.perElement = perElement
    }

    public func forward(_ x: inout Tensor) {
        let plane = perElement ? 1 : x.planeSize
        let perSample = perElement ? x.sampleSize : x.k
        precondition(gamma.count == perSample, "affine: \(gamma.count) parameters for \(perSample) inputs")
        x.data.withUnsafeMutableBufferPointer { p in
            gamma.withUnsafeBufferPointer { g in
                beta.withUnsafeBufferPointer { b in
                    var i = 0
                    for _ in 0 ..< x.n {
                        for c in 0 ..< perSample {
                            let gc = g[c], bc = b[c]
                            for _ in 0 ..< plane { p[i] = gc * p[i] + bc; i += 1 }
                        }
                    }
                }
            }
        }
    }
}

public enum Activation {
    public static func relu(_ x: inout Tensor) {
        x.data.withUnsafeMutableBufferPointer { p in
            for i in p.indices where !(p[i] > 0) { p[i] = 0 }
        }
    }
}

/// Pooling geometry as dlib's `max_pool_`/`avg_pool_`; `nr == 0`/`nc == 0` means the whole input plane.
public struct PoolLayer: Sendable, Equatable {
    public let nr: Int
    public let nc: Int
    public let strideY: Int
    public let strideX: Int
    public let padY: Int
    public let padX: Int
    public let isMax: Bool

    public init(nr: Int, nc: Int, strideY: Int, strideX: Int, padY: Int, padX: Int, isMax: Bool) {
        self.nr = nr; self.nc = nc; self.strideY = strideY; self.strideX = strideX
        self.padY = padY; self.padX = padX; self.isMax = isMax
    }

    public func forward(_ x: Tensor) -> Tensor {
        let wh = nr == 0 ? x.nr : nr
        let ww = nc == 0 ? x.nc : nc
        let onr = 1 + (x.nr + 2 * padY - wh) / strideY
        let onc = 1 + (x.nc + 2 * padX - ww) / strideX
        var out = Tensor(n: x.n, k: x.k, nr: max(onr, 0), nc: max(onc, 0))
        guard onr > 0, onc > 0 else { return out }
        x.data.withUnsafeBufferPointer { src in
            out.data.withUnsafeMutableBufferPointer { dst in
                for plane in 0 ..< x.n * x.k {
                    let s = src.baseAddress! + plane * x.planeSize
                    let d = dst.baseAddress! + plane * onr * onc
                    for oy in 0 ..< onr {
                        let y0 = max(0, oy * strideY - padY), y1 = min(x.nr, oy * strideY - padY + wh)
                        for ox in 0 ..< onc {
                            let x0 = max(0, ox * strideX - padX), x1 = min(x.nc, ox * strideX - padX + ww)
                            if isMax {
                                var m = -Float.infinity
                                for yy in y0 ..< y1 { for xx in x0 ..< x1 { m = max(m, s[yy * x.nc + xx]) } }
                                d[oy * onc + ox] = (y1 > y0 && x1 > x0) ? m : 0
                            } else {
                                var acc: Float = 0
                                for yy in y0 ..< y1 { for xx in x0 ..< x1 { acc += s[yy * x.nc + xx] } }
                                let area = (y1 - y0) * (x1 - x0)
                                d[oy * onc + ox] = area > 0 ? acc / Float(area) : 0
                            }
                        }
                    }
                }
            }
        }
        return out
    }
}

/// A fully connected layer as dlib's `fc_`: `weights` is `inputs × outputs` row-major.
public struct FCLayer: Sendable {
    public let inputs: Int
    public let outputs: Int
    public let weights: [Float]
    public let biases: [Float]?

    public init(inputs: Int, outputs: Int, weights: [Float], biases: [Float]?) {
        precondition(weights.count == inputs * outputs)
        self.inputs = inputs; self.outputs = outputs; self.weights = weights; self.biases = biases
    }

    public func forward(_ x: Tensor) -> Tensor {
        precondition(x.sampleSize == inputs, "fc: input has \(x.sampleSize) values per sample, layer expects \(inputs)")
        var out = Tensor(n: x.n, k: outputs, nr: 1, nc: 1)
        guard x.n > 0 else { return out }
        x.data.withUnsafeBufferPointer { a in
            weights.withUnsafeBufferPointer { w in
                out.data.withUnsafeMutableBufferPointer { c in
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(x.n), Int32(outputs), Int32(inputs),
                                1, a.baseAddress!, Int32(inputs), w.baseAddress!, Int32(outputs), 0, c.baseAddress!, Int32(outputs))
                }
            }
        }
        if let b = biases {
            for s in 0 ..< x.n { for o in 0 ..< outputs { out.data[s * outputs + o] += b[o] } }
        }
        return out
    }
}

/// dlib's `add_prev_`: the sum has the larger size in every dimension, and each operand counts as zero
/// outside its own extent (so a 64-channel block plus a 32-channel shortcut keeps channels 32..63 as they are).
public func addZeroPadded(_ a: Tensor, _ b: Tensor) -> Tensor {
    if a.n == b.n && a.k == b.k && a.nr == b.nr && a.nc == b.nc {
        var out = a
        out.data.withUnsafeMutableBufferPointer { o in
            b.data.withUnsafeBufferPointer { q in for i in o.indices { o[i] += q[i] } }
        }
        return out
    }
    var out = Tensor(n: max(a.n, b.n), k: max(a.k, b.k), nr: max(a.nr, b.nr), nc: max(a.nc, b.nc))
    for t in [a, b] {
        for s in 0 ..< t.n { for c in 0 ..< t.k { for r in 0 ..< t.nr { for x in 0 ..< t.nc {
            out.data[((s * out.k + c) * out.nr + r) * out.nc + x] += t.data[((s * t.k + c) * t.nr + r) * t.nc + x]
        } } } }
    }
    return out
}
