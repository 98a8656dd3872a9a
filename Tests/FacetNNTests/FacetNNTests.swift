import COpenBLAS
@testable import FacetNN
import Foundation
import Testing

func modelPath(_ name: String) throws -> String {
    let dir = ProcessInfo.processInfo.environment["FACET_MODELS"] ?? FileManager.default.currentDirectoryPath + "/models"
    let path = dir + "/" + name
    guard FileManager.default.fileExists(atPath: path) else {
        throw DlibModelError(.unreadable, offset: 0, "model file \(path) not found: run scripts/setup.sh or set FACET_MODELS")
    }
    return path
}

@Suite("dlib serialisation reader")
struct DlibReaderTests {
    @Test("packed integers, negative integers, bools, strings")
    func primitives() throws {
        // 300 = 0x012C: two bytes little-endian; -5: control 0x81; "hi"; '1'
        var r = DlibReader(bytes: [0x02, 0x2C, 0x01, 0x81, 0x05, 0x01, 0x02, 0x68, 0x69, 0x31, 0x30])
        #expect(try r.readInt() == 300)
        #expect(try r.readInt() == -5)
        #expect(try r.readString() == "hi")
        #expect(try r.readBool() == true)
        #expect(try r.readBool() == false)
        #expect(r.isAtEnd)
    }

    @Test("floats are mantissa times two to the exponent")
    func floats() throws {
        // 1.0 as dlib writes it: mantissa 16 (0x01 0x10), exponent -4 (0x81 0x04)
        var r = DlibReader(bytes: [0x01, 0x10, 0x81, 0x04, 0x01, 0x03, 0x01, 0x01])
        #expect(try r.readDouble() == 1.0)
        #expect(try r.readFloat() == 6.0)
    }

    @Test("bad control bytes, bools and truncation are typed errors")
    func errors() throws {
        var r1 = DlibReader(bytes: [0x09, 1, 2])
        #expect(throws: DlibModelError.self) { try r1.readInt() }
        var r2 = DlibReader(bytes: [0x04, 1, 2])
        do { _ = try r2.readInt(); Issue.record("no error") } catch let e as DlibModelError { #expect(e.kind == .truncated) }
        var r3 = DlibReader(bytes: [0x41])
        do { _ = try r3.readBool(); Issue.record("no error") } catch let e as DlibModelError { #expect(e.kind == .malformed) }
        var r4 = DlibReader(bytes: [0x01, 0x02, 0x01, 0x01, 0x01, 0x01, 0x01, 0x02, 0x01, 0x02, 0, 0, 0x80, 0x3F])
        do { _ = try r4.readTensor(); Issue.record("no error") } catch let e as DlibModelError { #expect(e.kind == .truncated) }
    }
}

@Suite("layers against naive references")
struct LayerTests {
    func rand(_ n: Int, seed: UInt64) -> [Float] {
        var s = seed
        return (0 ..< n).map { _ in
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: s >> 11) % 2000 - 1000) / 1000
        }
    }

    func naiveConv(_ x: Tensor, _ c: ConvLayer) -> Tensor {
        let (onr, onc) = c.outputSize(nr: x.nr, nc: x.nc)
        var out = Tensor(n: x.n, k: c.numFilters, nr: onr, nc: onc)
        for s in 0 ..< x.n { for f in 0 ..< c.numFilters { for oy in 0 ..< onr { for ox in 0 ..< onc {
            var acc: Double = Double(c.biases[f])
            for ch in 0 ..< c.channels { for ky in 0 ..< c.kh { for kx in 0 ..< c.kw {
                let iy = oy * c.strideY - c.padY + ky, ix = ox * c.strideX - c.padX + kx
                guard iy >= 0, iy < x.nr, ix >= 0, ix < x.nc else { continue }
                acc += Double(c.filters[((f * c.channels + ch) * c.kh + ky) * c.kw + kx]) * Double(x[s, ch, iy, ix])
            } } }
            out[s, f, oy, ox] = Float(acc)
        } } } }
        return out
    }

    @Test("conv (im2col + sgemm) equals a naive convolution, strided and padded, batched", arguments: [
        (3, 7, 2, 0), (4, 3, 1, 1), (2, 5, 2, 0), (3, 5, 1, 2),
    ])
    func conv(channels: Int, k: Int, stride: Int, pad: Int) {
        let f = 5
        let c = ConvLayer(numFilters: f, channels: channels, kh: k, kw: k, strideY: stride, strideX: stride, padY: pad, padX: pad,
                          filters: rand(f * channels * k * k, seed: 1), biases: rand(f, seed: 2), hasBias: true)
        let x = Tensor(n: 3, k: channels, nr: 13, nc: 11, data: rand(3 * channels * 13 * 11, seed: 3))
        let got = c.forward(x), want = naiveConv(x, c)
        #expect(got.n == want.n && got.k == want.k && got.nr == want.nr && got.nc == want.nc)
        let err = zip(got.data, want.data).map { abs($0 - $1) }.max() ?? 0
        #expect(err < 1e-4)
        // a single sample through the batched path equals the same sample alone
        let one = c.forward(Tensor(n: 1, k: channels, nr: 13, nc: 11, data: Array(x.sample(1))))
        let diff = zip(Array(got.sample(1)), one.data).map { abs($0 - $1) }.max() ?? 0
        #expect(diff < 1e-5)
    }

    @Test("add_prev pads the smaller operand with zeros")
    func addPadded() {
        let a = Tensor(n: 1, k: 2, nr: 1, nc: 2, data: [1, 2, 3, 4])
        let b = Tensor(n: 1, k: 1, nr: 1, nc: 2, data: [10, 20])
        #expect(addZeroPadded(a, b).data == [11, 22, 3, 4])
        #expect(addZeroPadded(b, a).data == [11, 22, 3, 4])
    }

    @Test("pools: max 3x3/2 and global average")
    func pools() {
        let x = Tensor(n: 1, k: 1, nr: 3, nc: 3, data: [1, 2, 3, 4, 9, 6, 7, 8, 5])
        #expect(PoolLayer(nr: 3, nc: 3, strideY: 2, strideX: 2, padY: 0, padX: 0, isMax: true).forward(x).data == [9])
        #expect(PoolLayer(nr: 0, nc: 0, strideY: 1, strideX: 1, padY: 0, padX: 0, isMax: false).forward(x).data == [5])
        let y = PoolLayer(nr: 2, nc: 2, strideY: 2, strideX: 2, padY: 0, padX: 0, isMax: false).forward(x)
        #expect(y.nr == 1 && y.nc == 1 && y.data == [4])
    }

    @Test("fc is input times weights (inputs x outputs) plus bias")
    func fc() {
        let l = FCLayer(inputs: 2, outputs: 3, weights: [1, 2, 3, 4, 5, 6], biases: [1, 1, 1])
        #expect(l.forward(Tensor(n: 1, k: 2, nr: 1, nc: 1, data: [1, 1])).data == [6, 8, 10])
    }
}

@Suite("reading real dlib model files")
struct ModelFileTests {
    @Test("the ResNet and the MMOD detector load against their architectures")
    func loadsReal() throws {
        let resnet = try DlibNetwork(contentsOf: try modelPath("dlib_face_recognition_resnet_model_v1.dat"),
                                     spec: DlibArchitectures.resNetFaceV1)
        #expect(resnet.parameterCount == 5_614_592)
        #expect(resnet.input.nr == 150)
        guard case .metric = resnet.loss else { Issue.record("loss is not metric"); return }
        let mmod = try DlibNetwork(contentsOf: try modelPath("mmod_human_face_detector.dat"), spec: DlibArchitectures.mmodFaceDetector)
        guard case .mmod(let o) = mmod.loss else { Issue.record("loss is not mmod"); return }
        #expect(o.windows.count == 1 && o.windows[0].width == 80 && o.windows[0].height == 80)
        #expect(abs(o.nmsIOUThreshold - 0.338) < 0.01)
        #expect(mmod.input.pyramidPadding == 10 && mmod.input.pyramidOuterPadding == 11)
    }

    @Test("a model read against the wrong architecture is an architectureMismatch")
    func wrongArchitecture() throws {
        do {
            _ = try DlibNetwork(contentsOf: try modelPath("mmod_human_face_detector.dat"), spec: DlibArchitectures.resNetFaceV1)
            Issue.record("no error")
        } catch let e as DlibModelError {
            #expect(e.kind == .architectureMismatch || e.kind == .unexpectedVersion)
            #expect(e.path?.hasSuffix("mmod_human_face_detector.dat") == true)
        }
    }

    @Test("a missing file is unreadable")
    func missing() {
        do {
            _ = try DlibNetwork(contentsOf: "/nonexistent/model.dat", spec: DlibArchitectures.mmodFaceDetector)
            Issue.record("no error")
        } catch let e as DlibModelError { #expect(e.kind == .unreadable) } catch { Issue.record("\(error)") }
    }

    @Test("truncated copies of a real model give typed errors, never a crash")
    func truncated() throws {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: try modelPath("mmod_human_face_detector.dat"))))
        let cuts = [0, 1, 3, 10, 40, 97, 150, 1000, 5000, bytes.count / 3, bytes.count / 2, bytes.count - 100, bytes.count - 1]
        for n in cuts {
            do {
                _ = try DlibNetwork(bytes: Array(bytes[0 ..< n]), spec: DlibArchitectures.mmodFaceDetector)
                Issue.record("truncated at \(n) loaded")
            } catch let e as DlibModelError {
                #expect(e.kind == .truncated || e.kind == .malformed, "cut at \(n): \(e)")
            }
        }
    }

    @Test("corrupted copies of a real model give typed errors or load, never crash")
    func corrupted() throws {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: try modelPath("mmod_human_face_detector.dat"))))
        var state: UInt64 = 42
        func next() -> UInt64 { state = state &* 6364136223846793005 &+ 1442695040888963407; return state >> 33 }
        // Anywhere in the file: must not crash (most flips land in float data and still load).
        for _ in 0 ..< 100 {
            var b = bytes
            b[Int(next()) % b.count] ^= UInt8(truncatingIfNeeded: next() | 1)
            _ = try? DlibNetwork(bytes: b, spec: DlibArchitectures.mmodFaceDetector)
        }
        // In the structural prefix (record names, options, node versions): almost always a typed error.
        var errors = 0
        let prefix = 0x5E
        for pos in 0 ..< prefix {
            var b = bytes
            b[pos] ^= 0x40
            do { _ = try DlibNetwork(bytes: b, spec: DlibArchitectures.mmodFaceDetector) } catch is DlibModelError { errors += 1 }
        }
        #expect(errors >= prefix * 3 / 4, "only \(errors) of \(prefix) corrupted prefixes were rejected")
    }
}

@Suite("large convolutions")
struct LargeConvTests {
    @Test("a large single image goes through the row-blocked path and matches the unblocked result", arguments: [
        (3, 5, 2, 0, 957, 272), (45, 9, 1, 4, 117, 31), (3, 5, 2, 0, 1200, 900),
    ])
    func large(channels: Int, k: Int, stride: Int, pad: Int, nr: Int, nc: Int) {
        var s: UInt64 = 7
        func r() -> Float { s = s &* 6364136223846793005 &+ 1442695040888963407; return Float(Int64(bitPattern: s >> 11) % 2000) / 1000 }
        let f = 4
        let c = ConvLayer(numFilters: f, channels: channels, kh: k, kw: k, strideY: stride, strideX: stride, padY: pad, padX: pad,
                          filters: (0 ..< f * channels * k * k).map { _ in r() }, biases: (0 ..< f).map { _ in r() }, hasBias: true)
        let x = Tensor(n: 1, k: channels, nr: nr, nc: nc, data: (0 ..< channels * nr * nc).map { _ in r() })
        let y = c.forward(x)
        let (onr, onc) = c.outputSize(nr: nr, nc: nc)
        #expect(y.nr == onr && y.nc == onc && y.k == f)
        // spot-check outputs against a direct sum
        for (oy, ox) in [(0, 0), (onr - 1, onc - 1), (onr / 2, onc / 3), (onr - 1, 0)] {
            for ff in 0 ..< f {
                var acc = Double(c.biases[ff])
                for ch in 0 ..< channels { for ky in 0 ..< k { for kx in 0 ..< k {
                    let iy = oy * stride - pad + ky, ix = ox * stride - pad + kx
                    guard iy >= 0, iy < nr, ix >= 0, ix < nc else { continue }
                    acc += Double(c.filters[((ff * channels + ch) * k + ky) * k + kx]) * Double(x[0, ch, iy, ix])
                } } }
                #expect(abs(Double(y[0, ff, oy, ox]) - acc) < 1e-3 * max(1, abs(acc)))
            }
        }
    }
}
