import Foundation

// dlib's network type is a compile-time template; its file does not name tag ids, skip targets or which
// layers a `tag` wraps. So a reader needs the architecture, as dlib does: a `NetworkSpec` lists the layers
// from the input upward, and `DlibNetwork` checks every record of the file against it.

/// One layer of a network description, from the input upward. Padding follows dlib's default
/// (`stride != 1 ? 0 : size/2`) and is checked against the file.
public enum LayerSpec: Sendable, Equatable {
    case con(filters: Int, nr: Int, nc: Int, strideY: Int, strideX: Int)
    /// `affine_` (a `bn_` record in the file is converted, as dlib does).
    case affine
    case relu
    case maxPool(nr: Int, nc: Int, strideY: Int, strideX: Int)
    /// `avgPool(nr: 0, nc: 0, strideY: 1, strideX: 1)` is dlib's `avg_pool_everything`.
    case avgPool(nr: Int, nc: Int, strideY: Int, strideX: Int)
    case addPrev(tag: Int)
    case fc(outputs: Int, bias: Bool)
    case tag(Int)
    case skip(Int)

    var isLayer: Bool {
        switch self { case .tag, .skip: return false; default: return true }
    }

    var recordNames: [String] {
        switch self {
        case .con: return ["con_4", "con_5"]
        case .affine: return ["affine_", "affine_2", "bn_con2", "bn_fc2"]
        case .relu: return ["relu_"]
        case .maxPool: return ["max_pool_2"]
        case .avgPool: return ["avg_pool_2"]
        case .addPrev: return ["add_prev_"]
        case .fc: return ["fc_2", "fc_3"]
        case .tag, .skip: return []
        }
    }
}

public enum InputSpec: Sendable, Equatable {
    /// dlib's `input_rgb_image_sized<NR, NC>`.
    case rgbImageSized(nr: Int, nc: Int)
    /// dlib's `input_rgb_image_pyramid<pyramid_down<N>>`.
    case rgbImagePyramid
}

public enum LossSpec: Sendable, Equatable {
    case metric
    case mmod
}

public struct NetworkSpec: Sendable, Equatable {
    public var input: InputSpec
    public var layers: [LayerSpec]
    public var loss: LossSpec
    public init(input: InputSpec, layers: [LayerSpec], loss: LossSpec) {
        self.input = input; self.layers = layers; self.loss = loss
    }
}

/// The input layer's record.
public struct InputLayerRecord: Sendable, Equatable {
    public var name: String
    public var avgRed: Float
    public var avgGreen: Float
    public var avgBlue: Float
    public var nr: Int?
    public var nc: Int?
    public var pyramidPadding: Int
    public var pyramidOuterPadding: Int
}

/// dlib's `mmod_options` as far as detection needs them.
public struct MMODOptions: Sendable, Equatable {
    public struct Window: Sendable, Equatable {
        public var width: Int
        public var height: Int
        public var label: String
    }
    public var windows: [Window]
    public var lossPerFalseAlarm: Double
    public var lossPerMissedTarget: Double
    public var truthMatchIOUThreshold: Double
    public var nmsIOUThreshold: Double
    public var nmsPercentCoveredThreshold: Double
    public var ignoreIOUThreshold: Double
    public var ignorePercentCoveredThreshold: Double
    public var assumeImagePyramid: Bool
    public var useBoundingBoxRegression: Bool
    public var bbrLambda: Double
}

public enum LossRecord: Sendable, Equatable {
    case metric(margin: Float, distanceThreshold: Float)
    case mmod(MMODOptions)
}

/// A loaded layer.
public enum LoadedLayer: Sendable {
    case conv(ConvLayer)
    case affine(AffineLayer)
    case relu
    case pool(PoolLayer)
    case addPrev(tag: Int)
    case fc(FCLayer)
    case tag(Int)
    case skip(Int)
}

/// A dlib network read from a file and checked against a `NetworkSpec`, with a batched CPU forward pass.
public final class DlibNetwork: Sendable {
    public let spec: NetworkSpec
    public let input: InputLayerRecord
    public let loss: LossRecord
    public let layers: [LoadedLayer]
    /// Number of learned parameters (filters, biases, affine, fc).
    public let parameterCount: Int

    public convenience init(contentsOf path: String, spec: NetworkSpec) throws {
        BLASSetup.ensureConfigured()
        let reader = try DlibReader(contentsOf: path)
        do {
            try self.init(reader: reader, spec: spec)
        } catch var e as DlibModelError {
            e.path = path
            throw e
        }
    }

    public convenience init(bytes: [UInt8], spec: NetworkSpec) throws {
        BLASSetup.ensureConfigured()
        try self.init(reader: DlibReader(bytes: bytes), spec: spec)
    }

    init(reader r0: DlibReader, spec: NetworkSpec) throws {
        var r = r0
        self.spec = spec
        // add_loss_layer: version 1, the loss details, then the subnetwork.
        let lossVersion = try r.readInt("add_loss_layer version")
        guard lossVersion == 1 else {
            throw r.error(.unexpectedVersion, "add_loss_layer version \(lossVersion), expected 1")
        }
        self.loss = try Self.readLoss(&r, spec.loss)

        // Versions of every node, from the output down to the input.
        let nodes = spec.layers
        guard !nodes.isEmpty else { throw r.error(.architectureMismatch, "the network description has no layers") }
        var versions = [Int64](repeating: 0, count: nodes.count)
        for i in stride(from: nodes.count - 1, through: 0, by: -1) {
            let onInput = i == 0
            let v = try r.readInt("version of layer \(i)")
            let ok: Bool
            switch nodes[i] {
            case .tag: ok = onInput ? (1 ... 2).contains(v) : v == 1
            case .skip: ok = v == 1
            default: ok = onInput ? (2 ... 3).contains(v) : (1 ... 2).contains(v)
            }
            guard ok else {
                throw DlibModelError(.unexpectedVersion, offset: r.offset,
                                     "layer \(i) (\(nodes[i])) has node version \(v); the file is not this architecture")
            }
            versions[i] = v
        }
        if case .skip = nodes[0] {
            throw r.error(.architectureMismatch, "a skip layer cannot sit on the input layer")
        }
        self.input = try Self.readInput(&r, spec.input)

        var layers: [LoadedLayer] = []
        var params = 0
        var shape = Self.inputShape(spec.input)  // (k, nr?, nc?) as far as known
        var tagShapes: [Int: Int] = [:]          // tag id -> channels
        for (i, node) in nodes.enumerated() {
            let v = versions[i]
            let onInput = i == 0
            switch node {
            case .tag(let id):
                if onInput {
                    _ = try r.readTensor("cached_output of tag layer \(i)")
                    _ = try r.readTensor("grad_final of tag layer \(i)")
                    _ = try r.readBool("gradient_input_is_stale of tag layer \(i)")
                    if v >= 2 { _ = try r.readInt("sample_expansion_factor of tag layer \(i)") }
                }
                tagShapes[id] = shape
                layers.append(.tag(id))
                continue
            case .skip(let id):
                guard let k = tagShapes[id] else {
                    throw r.error(.architectureMismatch, "skip\(id) at layer \(i) has no tag\(id) below it")
                }
                shape = k
                layers.append(.skip(id))
                continue
            default: break
            }
            let (layer, count, outK) = try Self.readLayerRecord(&r, node, index: i, inputChannels: shape, tagShapes: tagShapes)
            layers.append(layer)
            params += count
            shape = outK
            _ = try r.readBool("this_layer_setup_called of layer \(i)")
            _ = try r.readBool("gradient_input_is_stale of layer \(i)")
            _ = try r.readBool("get_output_and_gradient_input_disabled of layer \(i)")
            _ = try r.readTensor("x_grad of layer \(i)")
            _ = try r.readTensor("cached_output of layer \(i)")
            if onInput {
                _ = try r.readTensor("grad_final of layer \(i)")
                if v >= 3 { _ = try r.readInt("sample_expansion_factor of layer \(i)") }
            } else if v == 2 {
                _ = try r.readTensor("params_grad of layer \(i)")
            }
        }
        self.layers = layers
        self.parameterCount = params
    }

    static func inputShape(_ spec: InputSpec) -> Int { 3 }

    static func readInput(_ r: inout DlibReader, _ spec: InputSpec) throws -> InputLayerRecord {
        let start = r.offset
        let name = try r.readString("input layer name", limit: 256)
        var rec = InputLayerRecord(name: name, avgRed: 0, avgGreen: 0, avgBlue: 0, nr: nil, nc: nil,
                                   pyramidPadding: 10, pyramidOuterPadding: 11)
        switch spec {
        case .rgbImageSized(let nr, let nc):
            guard ["input_rgb_image_sized", "input_rgb_image"].contains(name) else {
                throw DlibModelError(.architectureMismatch, offset: start, "input layer is '\(name)', expected input_rgb_image_sized")
            }
            rec.avgRed = try r.readFloat("avg_red"); rec.avgGreen = try r.readFloat("avg_green"); rec.avgBlue = try r.readFloat("avg_blue")
            if name == "input_rgb_image_sized" {
                let fnr = try r.readCount("input nr"), fnc = try r.readCount("input nc")
                guard fnr == nr, fnc == nc else {
                    throw DlibModelError(.architectureMismatch, offset: start, "input is \(fnr)x\(fnc), expected \(nr)x\(nc)")
                }
            }
            rec.nr = nr; rec.nc = nc
        case .rgbImagePyramid:
            guard ["input_rgb_image_pyramid", "input_rgb_image_pyramid2"].contains(name) else {
                throw DlibModelError(.architectureMismatch, offset: start, "input layer is '\(name)', expected input_rgb_image_pyramid")
            }
            rec.avgRed = try r.readFloat("avg_red"); rec.avgGreen = try r.readFloat("avg_green"); rec.avgBlue = try r.readFloat("avg_blue")
            if name == "input_rgb_image_pyramid2" {
                rec.pyramidPadding = try r.readCount("pyramid_padding", limit: 1 << 20)
                rec.pyramidOuterPadding = try r.readCount("pyramid_outer_padding", limit: 1 << 20)
            }
        }
        return rec
    }

    static func readLoss(_ r: inout DlibReader, _ spec: LossSpec) throws -> LossRecord {
        let start = r.offset
        let name = try r.readString("loss layer name", limit: 256)
        switch spec {
        case .metric:
            switch name {
            case "loss_metric_": return .metric(margin: 0.1, distanceThreshold: 0.75)
            case "loss_metric_2": return .metric(margin: try r.readFloat("margin"), distanceThreshold: try r.readFloat("dist_thresh"))
            default: throw DlibModelError(.architectureMismatch, offset: start, "loss layer is '\(name)', expected loss_metric_")
            }
        case .mmod:
            guard name == "loss_mmod_" else {
                throw DlibModelError(.architectureMismatch, offset: start, "loss layer is '\(name)', expected loss_mmod_")
            }
            let version = try r.readInt("mmod_options version")
            guard (1 ... 4).contains(version) else { throw r.error(.unexpectedVersion, "mmod_options version \(version)") }
            var windows: [MMODOptions.Window] = []
            if version == 1 {
                let w = try r.readCount("detector width"), h = try r.readCount("detector height")
                windows = [.init(width: w, height: h, label: "")]
            } else {
                let n = try r.readCount("number of detector windows", limit: 10_000)
                for j in 0 ..< n {
                    let dv = try r.readInt("detector window \(j) version")
                    guard dv == 1 || dv == 2 else { throw r.error(.unexpectedVersion, "detector window version \(dv)") }
                    let w = try r.readCount("detector width"), h = try r.readCount("detector height")
                    let label = dv == 2 ? try r.readString("detector label") : ""
                    windows.append(.init(width: w, height: h, label: label))
                }
            }
            guard !windows.isEmpty, windows.allSatisfy({ $0.width > 0 && $0.height > 0 }) else {
                throw r.error(.malformed, "mmod_options has no usable detector window")
            }
            var o = MMODOptions(windows: windows, lossPerFalseAlarm: 0, lossPerMissedTarget: 0, truthMatchIOUThreshold: 0,
                                nmsIOUThreshold: 0, nmsPercentCoveredThreshold: 0, ignoreIOUThreshold: 0,
                                ignorePercentCoveredThreshold: 0, assumeImagePyramid: true,
                                useBoundingBoxRegression: false, bbrLambda: 100)
            o.lossPerFalseAlarm = try r.readDouble("loss_per_false_alarm")
            o.lossPerMissedTarget = try r.readDouble("loss_per_missed_target")
            o.truthMatchIOUThreshold = try r.readDouble("truth_match_iou_threshold")
            o.nmsIOUThreshold = try r.readDouble("overlaps_nms iou")
            o.nmsPercentCoveredThreshold = try r.readDouble("overlaps_nms percent covered")
            o.ignoreIOUThreshold = try r.readDouble("overlaps_ignore iou")
            o.ignorePercentCoveredThreshold = try r.readDouble("overlaps_ignore percent covered")
            if version >= 3 { o.assumeImagePyramid = try r.readInt("assume_image_pyramid") != 0 }
            if version >= 4 {
                o.useBoundingBoxRegression = try r.readBool("use_bounding_box_regression")
                o.bbrLambda = try r.readDouble("bbr_lambda")
            }
            return .mmod(o)
        }
    }

    static func dlibPadding(_ size: Int, _ stride: Int) -> Int { stride != 1 ? 0 : size / 2 }

    /// Reads one layer's details record; returns the layer, its parameter count and its output channels.
    static func readLayerRecord(_ r: inout DlibReader, _ node: LayerSpec, index i: Int, inputChannels: Int,
                                tagShapes: [Int: Int]) throws -> (LoadedLayer, Int, Int) {
        let start = r.offset
        let name = try r.readString("record name of layer \(i)", limit: 256)
        guard node.recordNames.contains(name) else {
            throw DlibModelError(.architectureMismatch, offset: start,
                                 "layer \(i) is a '\(name)' record, expected one of \(node.recordNames.joined(separator: ", "))")
        }
        func mismatch(_ what: String) -> DlibModelError {
            DlibModelError(.architectureMismatch, offset: start, "layer \(i) (\(name)): \(what)")
        }
        switch node {
        case let .con(filters, knr, knc, sy, sx):
            let params = try r.readTensor("params of layer \(i)")
            let numFilters = try r.readCount("num_filters")
            let nr = try r.readInt("nr"), nc = try r.readInt("nc")
            let strideY = try r.readInt("stride_y"), strideX = try r.readInt("stride_x")
            let padY = try r.readInt("padding_y"), padX = try r.readInt("padding_x")
            let f = try r.readAliasTensor("filters")
            let b = try r.readAliasTensor("biases")
            _ = try r.readDouble("learning_rate_multiplier"); _ = try r.readDouble("weight_decay_multiplier")
            _ = try r.readDouble("bias_learning_rate_multiplier"); _ = try r.readDouble("bias_weight_decay_multiplier")
            var useBias = true
            if name == "con_5" { useBias = try r.readBool("use_bias") }
            guard numFilters == filters, nr == knr, nc == knc, strideY == sy, strideX == sx,
                  padY == dlibPadding(knr, sy), padX == dlibPadding(knc, sx) else {
                throw mismatch("found \(numFilters) filters \(nr)x\(nc) stride \(strideY),\(strideX) padding \(padY),\(padX); expected \(filters) filters \(knr)x\(knc) stride \(sy),\(sx)")
            }
            guard f.n == filters, f.k == inputChannels, f.nr == knr, f.nc == knc else {
                throw mismatch("filters are \(f.n)x\(f.k)x\(f.nr)x\(f.nc), expected \(filters)x\(inputChannels)x\(knr)x\(knc)")
            }
            let fcount = f.n * f.k * f.nr * f.nc
            let bcount = b.n * b.k * b.nr * b.nc
            guard bcount == 0 || bcount == filters, params.count == fcount + bcount else {
                throw mismatch("params hold \(params.count) floats for \(fcount) weights and \(bcount) biases")
            }
            let hasBias = useBias && bcount == filters
            let layer = ConvLayer(numFilters: filters, channels: inputChannels, kh: knr, kw: knc, strideY: sy, strideX: sx,
                                  padY: padY.intValue, padX: padX.intValue,
                                  filters: Array(params.data[0 ..< fcount]),
                                  biases: hasBias ? Array(params.data[fcount ..< fcount + bcount]) : [],
                                  hasBias: hasBias)
            return (.conv(layer), params.count, filters)

        case .affine:
            if name == "bn_con2" || name == "bn_fc2" {
                let params = try r.readTensor("params of layer \(i)")
                let g = try r.readAliasTensor("gamma"), be = try r.readAliasTensor("beta")
                _ = try r.readTensor("means"); _ = try r.readTensor("invstds")
                let runningMeans = try r.readTensor("running_means")
                let runningVariances = try r.readTensor("running_variances")
                _ = try r.readInt("num_updates"); _ = try r.readInt("running_stats_window_size")
                for w in ["learning_rate_multiplier", "weight_decay_multiplier", "bias_learning_rate_multiplier", "bias_weight_decay_multiplier"] {
                    _ = try r.readDouble(w)
                }
                let eps = try r.readDouble("eps")
                let gc = g.n * g.k * g.nr * g.nc
                guard gc == be.n * be.k * be.nr * be.nc, params.count == 2 * gc,
                      runningMeans.count == gc, runningVariances.count == gc else {
                    throw mismatch("batch-norm parameters of inconsistent sizes")
                }
                let perElement = name == "bn_fc2"
                guard perElement || gc == inputChannels else { throw mismatch("\(gc) channels, expected \(inputChannels)") }
                // As dlib's affine_(const bn_&): g = gamma / sqrt(running_var + eps), b = beta - g * running_mean.
                var gamma = [Float](repeating: 0, count: gc), beta = gamma
                let fe = Float(eps)
                for j in 0 ..< gc {
                    gamma[j] = params.data[j] / (runningVariances.data[j] + fe).squareRoot()
                    beta[j] = params.data[gc + j] - gamma[j] * runningMeans.data[j]
                }
                return (.affine(AffineLayer(gamma: gamma, beta: beta, perElement: perElement)), 2 * gc, inputChannels)
            }
            let params = try r.readTensor("params of layer \(i)")
            let g = try r.readAliasTensor("gamma"), be = try r.readAliasTensor("beta")
            let mode = try r.readInt("mode")
            var disabled = false
            if name == "affine_2" { disabled = try r.readBool("disabled") }
            if disabled {
                return (.affine(AffineLayer(gamma: [Float](repeating: 1, count: inputChannels),
                                            beta: [Float](repeating: 0, count: inputChannels))), 0, inputChannels)
            }
            let gc = g.n * g.k * g.nr * g.nc
            guard gc == be.n * be.k * be.nr * be.nc, params.count == 2 * gc else {
                throw mismatch("affine parameters of inconsistent sizes")
            }
            // dlib's layer_mode: CONV_MODE = 0, FC_MODE = 1.
            let perElement = mode == 1
            guard perElement || gc == inputChannels else { throw mismatch("\(gc) channels, expected \(inputChannels)") }
            return (.affine(AffineLayer(gamma: Array(params.data[0 ..< gc]), beta: Array(params.data[gc ..< 2 * gc]),
                                        perElement: perElement)), 2 * gc, inputChannels)

        case .relu:
            return (.relu, 0, inputChannels)

        case let .maxPool(pnr, pnc, sy, sx), let .avgPool(pnr, pnc, sy, sx):
            let nr = try r.readInt("nr"), nc = try r.readInt("nc")
            let strideY = try r.readInt("stride_y"), strideX = try r.readInt("stride_x")
            let padY = try r.readInt("padding_y"), padX = try r.readInt("padding_x")
            guard nr == pnr, nc == pnc, strideY == sy, strideX == sx,
                  padY == dlibPadding(pnr, sy), padX == dlibPadding(pnc, sx) else {
                throw mismatch("pool \(nr)x\(nc) stride \(strideY),\(strideX) padding \(padY),\(padX); expected \(pnr)x\(pnc) stride \(sy),\(sx)")
            }
            let isMax: Bool
            if case .maxPool = node { isMax = true } else { isMax = false }
            return (.pool(PoolLayer(nr: pnr, nc: pnc, strideY: sy, strideX: sx, padY: padY.intValue, padX: padX.intValue, isMax: isMax)),
                    0, inputChannels)

        case .addPrev(let tag):
            guard let k = tagShapes[tag] else { throw mismatch("add_prev\(tag) has no tag\(tag) below it") }
            return (.addPrev(tag: tag), 0, max(k, inputChannels))

        case let .fc(outputs, bias):
            let numOutputs = try r.readCount("num_outputs")
            let numInputs = try r.readCount("num_inputs")
            let params = try r.readTensor("params of layer \(i)")
            let w = try r.readAliasTensor("weights")
            let b = try r.readAliasTensor("biases")
            let mode = try r.readInt("bias_mode")
            for x in ["learning_rate_multiplier", "weight_decay_multiplier", "bias_learning_rate_multiplier", "bias_weight_decay_multiplier"] {
                _ = try r.readDouble(x)
            }
            var useBias = true
            if name == "fc_3" { useBias = try r.readBool("use_bias") }
            // dlib's fc_bias_mode: FC_HAS_BIAS = 0, FC_NO_BIAS = 1.
            guard numOutputs == outputs, (mode == 0) == bias else {
                throw mismatch("\(numOutputs) outputs, bias mode \(mode); expected \(outputs) outputs, bias \(bias)")
            }
            let wc = w.n * w.k * w.nr * w.nc, bc = b.n * b.k * b.nr * b.nc
            guard wc == numInputs * numOutputs, params.count == wc + bc, bc == 0 || bc == numOutputs else {
                throw mismatch("weights \(wc) and biases \(bc) do not fit \(numInputs) inputs and \(numOutputs) outputs")
            }
            let layer = FCLayer(inputs: numInputs, outputs: numOutputs, weights: Array(params.data[0 ..< wc]),
                                biases: (bias && useBias && bc > 0) ? Array(params.data[wc ..< wc + bc]) : nil)
            return (.fc(layer), params.count, numOutputs)

        case .tag, .skip:
            fatalError("unreachable: tags and skips carry no record")
        }
    }

    /// Runs the network on a batch; returns the output of the last layer (what the loss layer reads).
    public func forward(_ x: Tensor) -> Tensor {
        var cur = x
        var tags: [Int: Tensor] = [:]
        for layer in layers {
            switch layer {
            case .conv(let c): cur = c.forward(cur)
            case .affine(let a): a.forward(&cur)
            case .relu: Activation.relu(&cur)
            case .pool(let p): cur = p.forward(cur)
            case .addPrev(let id): cur = addZeroPadded(cur, tags[id]!)
            case .fc(let f): cur = f.forward(cur)
            case .tag(let id): tags[id] = cur
            case .skip(let id): cur = tags[id]!
            }
        }
        return cur
    }

    /// dlib's `output_tensor_to_input_tensor`: maps a point of the output tensor back to the input tensor
    /// through every layer's `map_output_to_input` (convolutions and pools; other layers keep points).
    public func outputToInput(x: Double, y: Double) -> (x: Double, y: Double) {
        var px = x, py = y
        for layer in layers.reversed() {
            switch layer {
            case .conv(let c):
                px = px * Double(c.strideX) - Double(c.padX) + Double(c.kw / 2)
                py = py * Double(c.strideY) - Double(c.padY) + Double(c.kh / 2)
            case .pool(let p) where p.nr != 0 && p.nc != 0:
                px = px * Double(p.strideX) - Double(p.padX) + Double(p.nc / 2)
                py = py * Double(p.strideY) - Double(p.padY) + Double(p.nr / 2)
            default: break
            }
        }
        return (px, py)
    }
}

extension Int64 {
    var intValue: Int { Int(self) }
}
