import FacetFace
import FacetImaging
import FacetNN
import Foundation
import Testing

@Suite("ResNet face descriptor against dlib")
struct ResNetFaceDescriptorTests {
    static let modelName = "dlib_face_recognition_resnet_model_v1.dat"

    struct Golden { let chip: RGBImage; let name: String; let descriptor: [Double]; let jitter4: [Double] }

    static func goldens() throws -> [Golden] {
        let obj = try NNFixtures.json("descriptors.json")
        let chips = obj["chips"] as! [[String: Any]]
        return try chips.map { c in
            Golden(chip: try NNFixtures.png(c["chip"] as! String), name: c["chip"] as! String,
                   descriptor: c["descriptor"] as! [Double], jitter4: c["jitter4"] as! [Double])
        }
    }

    @Test("loads the model: 29 convolutions, 5.6M parameters, dlib's input means")
    func loads() throws {
        let d = try ResNetFaceDescriptor(modelPath: try NNFixtures.modelPath(Self.modelName))
        #expect(d.dimension == 128)
        #expect(d.network.parameterCount == 5_614_592 + 2 * 0)  // see FINDINGS: 5,614,592 learned values
        let convs = d.network.layers.filter { if case .conv = $0 { return true } else { return false } }
        #expect(convs.count == 29)
        #expect(abs(d.network.input.avgRed - 122.782) < 1e-4)
        #expect(abs(d.network.input.avgGreen - 117.001) < 1e-4)
        #expect(abs(d.network.input.avgBlue - 104.298) < 1e-4)
    }

    @Test("descriptors of dlib's chips are within L2 0.001 of dlib's, one by one and batched")
    func matchesDlib() throws {
        let d = try ResNetFaceDescriptor(modelPath: try NNFixtures.modelPath(Self.modelName))
        let gs = try Self.goldens()
        #expect(gs.count >= 5)
        let batched = try d.descriptors(for: gs.map(\.chip))
        for (i, g) in gs.enumerated() {
            let single = try d.descriptors(for: [g.chip])[0]
            #expect(single.count == 128)
            let e1 = l2(single, g.descriptor), e2 = l2(batched[i], g.descriptor)
            #expect(e1 < 0.001, "\(g.name): L2 \(e1)")
            #expect(e2 < 0.001, "\(g.name) batched: L2 \(e2)")
        }
        print("ResNet: largest L2 to dlib \(gs.indices.map { l2(batched[$0], gs[$0].descriptor) }.max() ?? 0)")
        // Different people are far apart (sanity that the goldens are not all the same vector).
        #expect(l2(batched[0], gs[1].descriptor) > 0.6)
    }

    @Test("block activations: 14 residual blocks; the last one averaged over its 2×2 positions through the fc layer is the descriptor")
    func blockActivations() throws {
        let d = try ResNetFaceDescriptor(modelPath: try NNFixtures.modelPath(Self.modelName))
        #expect(d.fused.residualBlockEnds.count == 14)
        let chips = try Self.goldens().map(\.chip)
        let acts = try d.blockActivations(for: chips, blocks: [9, 13])
        let descriptors = try d.descriptors(for: chips)
        guard case .fc(let fc)? = d.network.layers.last else { Issue.record("last layer is not fc"); return }
        for (k, a) in acts.enumerated() {
            #expect(a[0].count == 128 * 8 * 8 && a[1].count == 256 * 2 * 2)
            // NCHW per sample: channel c's four positions are a[1][4c ..< 4c + 4].
            let pooled = (0 ..< 256).map { c in (0 ..< 4).reduce(Float(0)) { $0 + a[1][4 * c + $1] } / 4 }
            let out = fc.forward(Tensor(n: 1, k: 256, nr: 1, nc: 1, data: pooled)).data
            #expect(zip(out, descriptors[k]).map { abs($0 - $1) }.max()! < 1e-4)
        }
        #expect(throws: FaceDescriptorError.self) { try d.blockActivations(for: chips, blocks: [14]) }
        // Both from one pass: the same descriptors and the same block activations.
        let both = try d.descriptorsAndActivations(for: chips, block: 13)
        #expect(both.descriptors == descriptors)
        #expect(both.activations == acts.map { $0[1] })
        #expect(throws: FaceDescriptorError.self) { try d.descriptorsAndActivations(for: chips, block: -1) }
    }

    @Test("two workers give the same descriptors as one")
    func workers() throws {
        let d = try ResNetFaceDescriptor(modelPath: try NNFixtures.modelPath(Self.modelName))
        let chips = try Self.goldens().map(\.chip)
        let one = try d.descriptors(for: chips + chips)
        d.workers = 2
        let two = try d.descriptors(for: chips + chips)
        #expect(one.count == two.count)
        for (a, b) in zip(one, two) { #expect(zip(a, b).map { abs($0 - $1) }.max()! < 1e-5) }
    }

    @Test("wrong chip size is a typed error")
    func wrongSize() throws {
        let d = try ResNetFaceDescriptor(modelPath: try NNFixtures.modelPath(Self.modelName))
        #expect(throws: FaceDescriptorError.wrongChipSize(index: 1, width: 10, height: 150, expected: 150)) {
            _ = try d.descriptors(for: [RGBImage(width: 150, height: 150), RGBImage(width: 10, height: 150)])
        }
        #expect(try d.descriptors(for: []).isEmpty)
    }
}

@Suite("ResNet jitter as dlib's")
struct ResNetJitterTests {
    @Test("dlib::rand: MT19937 default seed, primed by 10,000 draws (values from dlib C++ 19.24)")
    func rand() {
        var r = DlibRand()
        #expect(r.next32() == 725_333_953)
        #expect(r.next32() == 251_387_296)
        #expect(abs(r.nextDouble() - 0.7626503136151922) < 1e-15)
    }

    @Test("jittered descriptors of a fresh model match dlib's num_jitters=4")
    func jitterMatchesDlib() throws {
        let d = try ResNetFaceDescriptor(modelPath: try NNFixtures.modelPath(ResNetFaceDescriptorTests.modelName))
        var worst = 0.0
        for g in try ResNetFaceDescriptorTests.goldens() {
            let j = try d.jitteredDescriptors(for: [g.chip], count: 4)[0]
            let e = l2(j, g.jitter4)
            worst = max(worst, e)
            #expect(e < 0.001, "\(g.name): L2 \(e) from dlib's jittered descriptor")
            #expect(l2(j, g.descriptor) > 1e-4, "jitter changed nothing")
        }
        print("jitter: largest L2 to dlib \(worst)")
        #expect(throws: FaceDescriptorError.invalidJitter(-1)) { _ = try d.jitteredDescriptors(for: [], count: -1) }
    }
}
