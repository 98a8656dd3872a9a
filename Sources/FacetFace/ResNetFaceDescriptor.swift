import FacetImaging
import FacetNN
import Foundation

/// A typed error for inputs the descriptor network cannot take.
public enum FaceDescriptorError: Error, CustomStringConvertible, Equatable, Sendable {
    /// A chip is not the network's input size (150×150).
    case wrongChipSize(index: Int, width: Int, height: Int, expected: Int)
    /// A jitter count below zero.
    case invalidJitter(Int)
    /// Another invalid argument (what and why).
    case invalidArgument(String)

    public var description: String {
        switch self {
        case let .wrongChipSize(i, w, h, e): return "face chip \(i) is \(w)x\(h), the descriptor network needs \(e)x\(e)"
        case let .invalidJitter(n): return "jitter count \(n) is negative"
        case let .invalidArgument(why): return why
        }
    }
}

/// dlib's face recognition ResNet (`dlib_face_recognition_resnet_model_v1.dat`) in native Swift on OpenBLAS:
/// 150×150 RGB face chips in, 128-D descriptors out, as dlib's `compute_face_descriptor` of a chip.
///
/// Thread-safe: the weights are immutable and every call works on its own buffers; only the jitter random
/// generator is shared, behind a lock (so jittered results depend on call order, exactly as with one dlib
/// model object, whose `dlib::rand` also lives as long as the model).
public final class ResNetFaceDescriptor: @unchecked Sendable {
    public let network: DlibNetwork
    /// The fast NHWC executor of `network` (folded affine, Winograd 3×3 convolutions); used unless
    /// `useFusedExecutor` is false (then `DlibNetwork.forward`, the plain im2col path, runs).
    public let fused: FusedNetwork
    public var useFusedExecutor = true
    public let modelPath: String
    public var name: String { "dlib_face_recognition_resnet_model_v1" }
    public var version: String { "1" }
    public var dimension: Int { 128 }
    public static let chipSize = 150

    private let means: (Float, Float, Float)
    private let lock = NSLock()
    private var rng = DlibRand()
    /// Samples per forward pass (dlib's Python binding uses mini-batches of 16).
    public var batchSize = 16
    /// Threads that run mini-batches side by side (default 1: one batch at a time, OpenBLAS threading inside).
    /// With `workers > 1` set `BLASSetup.threads = 1` to avoid oversubscribing the cores.
    public var workers: Int

    public init(modelPath: String) throws {
        self.modelPath = modelPath
        self.network = try DlibNetwork(contentsOf: modelPath, spec: DlibArchitectures.resNetFaceV1)
        self.fused = FusedNetwork(network)
        let inp = network.input
        self.means = (inp.avgRed, inp.avgGreen, inp.avgBlue)
        self.workers = 1
    }

    /// Packs chips as dlib's `input_rgb_image_sized` does: planar R, G, B, each `(pixel - mean) / 256`.
    func inputTensor(_ chips: ArraySlice<RGBImage>) -> Tensor {
        let s = Self.chipSize, plane = s * s
        var t = Tensor(n: chips.count, k: 3, nr: s, nc: s)
        t.data.withUnsafeMutableBufferPointer { d in
            for (j, chip) in chips.enumerated() {
                let base = j * 3 * plane
                chip.pixels.withUnsafeBufferPointer { p in
                    for i in 0 ..< plane {
                        d[base + i] = (Float(p[3 * i]) - means.0) / 256
                        d[base + plane + i] = (Float(p[3 * i + 1]) - means.1) / 256
                        d[base + 2 * plane + i] = (Float(p[3 * i + 2]) - means.2) / 256
                    }
                }
            }
        }
        return t
    }

    func check(_ chips: [RGBImage]) throws {
        for (i, c) in chips.enumerated() where c.width != Self.chipSize || c.height != Self.chipSize {
            throw FaceDescriptorError.wrongChipSize(index: i, width: c.width, height: c.height, expected: Self.chipSize)
        }
    }

    /// Descriptors of aligned 150×150 chips (as `dlib.get_face_chip` / `extract_image_chips` cut them).
    public func descriptors(for chips: [RGBImage]) throws -> [[Float]] {
        try check(chips)
        return run(chips)
    }

    func run(_ chips: [RGBImage]) -> [[Float]] {
        guard !chips.isEmpty else { return [] }
        var result = [[Float]](repeating: [], count: chips.count)
        var ranges: [Range<Int>] = []
        // With several workers, split the chips evenly so that every worker gets a share.
        let perBatch = workers > 1 ? min(max(1, batchSize), (chips.count + workers - 1) / workers) : max(1, batchSize)
        var i = 0
        while i < chips.count { let e = min(chips.count, i + perBatch); ranges.append(i ..< e); i = e }
        let outputs = UnsafeMutableBufferPointer<[[Float]]>.allocate(capacity: ranges.count)
        outputs.initialize(repeating: [])
        defer { outputs.deallocate() }
        let work = { (b: Int) in
            let r = ranges[b]
            let input = self.inputTensor(chips[r])
            let out = self.useFusedExecutor ? self.fused.forward(input) : self.network.forward(input)
            outputs[b] = (0 ..< r.count).map { Array(out.sample($0)) }
        }
        if workers > 1 && ranges.count > 1 {
            // concurrentPerform uses one thread per core; the ranges are sized so that there are about `workers`.
            DispatchQueue.concurrentPerform(iterations: ranges.count, execute: work)
        } else {
            for b in ranges.indices { work(b) }
        }
        for (b, r) in ranges.enumerated() { for (j, d) in outputs[b].enumerated() { result[r.lowerBound + j] = d } }
        return result
    }

    /// Activations of each chip after the residual blocks `blocks` (indices into `fused.residualBlockEnds`, 0-based,
    /// input to output), each flattened in NCHW order (channel, row, column); the network runs only as far as the
    /// last block asked for. Mini-batches as `descriptors(for:)`.
    public func blockActivations(for chips: [RGBImage], blocks: [Int]) throws -> [[[Float]]] {
        try check(chips)
        let ends = fused.residualBlockEnds
        guard blocks.allSatisfy({ ends.indices.contains($0) }) else {
            throw FaceDescriptorError.invalidArgument("blocks \(blocks): the network has \(ends.count) residual blocks")
        }
        var result: [[[Float]]] = []
        result.reserveCapacity(chips.count)
        var i = 0
        while i < chips.count {
            let e = min(chips.count, i + max(1, batchSize))
            let out = fused.activations(inputTensor(chips[i ..< e]), capture: blocks.map { ends[$0] })
            for j in 0 ..< e - i { result.append(blocks.map { Array(out[ends[$0]]!.sample(j)) }) }
            i = e
        }
        return result
    }

    /// Descriptors of aligned 150×150 chips and each chip's activations after residual block `block` (as
    /// `blockActivations(for:blocks: [block])`), from one pass through the network per mini-batch: what a caller
    /// needing both (the version-4 mask detector next to the embedding) would otherwise pay for twice.
    public func descriptorsAndActivations(for chips: [RGBImage], block: Int) throws -> (descriptors: [[Float]], activations: [[Float]]) {
        try check(chips)
        let ends = fused.residualBlockEnds
        guard ends.indices.contains(block) else {
            throw FaceDescriptorError.invalidArgument("block \(block): the network has \(ends.count) residual blocks")
        }
        var descriptors: [[Float]] = [], activations: [[Float]] = []
        descriptors.reserveCapacity(chips.count); activations.reserveCapacity(chips.count)
        var i = 0
        while i < chips.count {
            let e = min(chips.count, i + max(1, batchSize))
            let out = fused.forward(inputTensor(chips[i ..< e]), capture: [ends[block]])
            for j in 0 ..< e - i {
                descriptors.append(Array(out.output.sample(j)))
                activations.append(Array(out.captured[ends[block]]!.sample(j)))
            }
            i = e
        }
        return (descriptors, activations)
    }

    /// Descriptors with dlib's jittering: for `count > 1`, each chip is randomly jittered `count` times with
    /// `dlib::jitter_image` and this object's `dlib::rand` (default seed, advancing across calls, as one dlib model
    /// object's does), and the descriptors of the crops are averaged. `count <= 1` is the plain descriptor.
    /// (`descriptors(for:jitter:)` of `FaceDescriptorModel` should call this.)
    public func jitteredDescriptors(for chips: [RGBImage], count: Int) throws -> [[Float]] {
        guard count >= 0 else { throw FaceDescriptorError.invalidJitter(count) }
        try check(chips)
        if count <= 1 { return run(chips) }
        var result: [[Float]] = []
        for chip in chips {
            let crops: [RGBImage] = lock.withLock {
                (0 ..< count).map { _ in DlibJitter.jitter(chip, rng: &rng) }
            }
            let ds = run(crops)
            // dlib: mean(mat(descriptors)) sums the float vectors in order, then divides by the count.
            var mean = [Float](repeating: 0, count: dimension)
            for d in ds { for j in 0 ..< dimension { mean[j] += d[j] } }
            for j in 0 ..< dimension { mean[j] /= Float(ds.count) }
            result.append(mean)
        }
        return result
    }
}
