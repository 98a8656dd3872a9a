import Testing
import FacetIndex
import FacetTestSupport
import CFacetKernels

@Suite("Distance kernels")
struct KernelTests {
    static func naiveL2(_ a: [Float], _ b: [Float]) -> Double { zip(a, b).reduce(0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) } }
    static func naiveDot(_ a: [Float], _ b: [Float]) -> Double { zip(a, b).reduce(0) { $0 + Double($1.0) * Double($1.1) } }

    @Test("L2 and inner product match a double-precision loop", arguments: [1, 3, 7, 8, 15, 16, 31, 33, 100, 128, 129, 256, 512, 1000])
    func floatKernels(dimension: Int) {
        var rng = SplitMix64(seed: UInt64(dimension))
        let a = (0..<dimension).map { _ in Float(Int(rng.next() % 2001) - 1000) / 500 }
        let b = (0..<dimension).map { _ in Float(Int(rng.next() % 2001) - 1000) / 500 }
        let l2 = a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in Distance.l2Squared(pa.baseAddress!, pb.baseAddress!, dimension: dimension) } }
        let dot = a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in Distance.dot(pa.baseAddress!, pb.baseAddress!, dimension: dimension) } }
        let refL2 = Self.naiveL2(a, b), refDot = Self.naiveDot(a, b)
        #expect(abs(Double(l2) - refL2) <= 1e-5 * max(1, refL2))
        #expect(abs(Double(dot) - refDot) <= 1e-5 * max(1, abs(refDot)) + 1e-4)
        #expect(Distance.distance(.innerProduct, a, b) == 1 - dot)
    }

    @Test("half-precision conversion round-trips exactly representable values and rounds to nearest")
    func halfPrecision() {
        let exact: [Float] = [0, -0, 1, -1, 0.5, 65504, -65504, 6.1035156e-05, 5.9604645e-08, 0.333251953125]
        var halves = [UInt16](repeating: 0, count: exact.count)
        facet_f32_to_f16(exact, &halves, exact.count)
        var back = [Float](repeating: 0, count: exact.count)
        facet_f16_to_f32(halves, &back, exact.count)
        #expect(back == exact)
        #expect(halves[2] == 0x3C00 && halves[5] == 0x7BFF)
        var one: UInt16 = 0
        var x: Float = 1 + 1.0 / 4096   // halfway below 1+2^-10 → rounds to even (1.0)
        facet_f32_to_f16(&x, &one, 1)
        #expect(one == 0x3C00)
    }

    @Test("fp16 and uint8 distances agree with the float kernels", arguments: [16, 128, 131, 512])
    func quantisedKernels(dimension: Int) {
        var rng = SplitMix64(seed: 7)
        let a = (0..<dimension).map { _ in Float(Int(rng.next() % 201) - 100) / 128 }
        let b = (0..<dimension).map { _ in Float(Int(rng.next() % 201) - 100) / 128 }   // exactly representable in fp16
        var bh = [UInt16](repeating: 0, count: dimension)
        facet_f32_to_f16(b, &bh, dimension)
        let l2h = facet_l2sq_f16(a, bh, dimension), doth = facet_dot_f16(a, bh, dimension)
        #expect(abs(Double(l2h) - Self.naiveL2(a, b)) < 1e-4)
        #expect(abs(Double(doth) - Self.naiveDot(a, b)) < 1e-4)
        let ua = (0..<dimension).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let ub = (0..<dimension).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let ref = zip(ua, ub).reduce(UInt32(0)) { $0 + UInt32((Int($1.0) - Int($1.1)) * (Int($1.0) - Int($1.1))) }
        #expect(facet_l2sq_u8(ua, ub, dimension) == ref)
    }
}

@Suite("Exact search")
struct ExactSearchTests {
    @Test("batched BLAS search equals a naive scan", arguments: [Metric.l2Squared, .innerProduct])
    func matchesNaive(metric: Metric) {
        let base = gaussianClusters(count: 9000, dimension: 24, clusters: 50, spread: 0.3, seed: 1)
        let queries = gaussianClusters(count: 300, dimension: 24, clusters: 50, spread: 0.3, seed: 2)
        let got = ExactSearch.search(queries: queries, base: base, k: 7, metric: metric)
        for (qi, q) in queries.enumerated() {
            let scored: [(Int, Float)] = base.enumerated().map { (i, b) in (i, Distance.distance(metric, q, b)) }
            let naive = Array(scored.sorted { (x: (Int, Float), y: (Int, Float)) -> Bool in x.1 < y.1 || (x.1 == y.1 && x.0 < y.0) }.prefix(7))
            // BLAS and the kernel round differently: compare distances with a tolerance, ids where gaps are clear.
            for (g, n) in zip(got[qi], naive) { #expect(abs(g.distance - n.1) < 1e-4) }
            #expect(got[qi].count == 7)
            #expect(Set(got[qi].map { Int($0.id.rawValue) }).intersection(naive.map { $0.0 }).count >= 6)
        }
    }

    @Test("filters, k larger than the base, empty inputs")
    func edges() throws {
        let base = gaussianClusters(count: 10, dimension: 4, clusters: 2, spread: 0.1, seed: 3)
        let all = ExactSearch.search(queries: [base[0]], base: base, k: 50)
        #expect(all[0].count == 10)
        #expect(all[0][0].id == VectorID(0) && all[0][0].distance < 1e-5)
        let flat = base.flatMap { $0 }
        let even = flat.withUnsafeBufferPointer { b in base[0].withUnsafeBufferPointer { q in
            ExactSearch.search(queries: q, base: b, dimension: 4, k: 3, filter: { $0.rawValue % 2 == 1 })
        } }
        #expect(even[0].allSatisfy { $0.id.rawValue % 2 == 1 })
        #expect(ExactSearch.search(queries: [[Float]](), base: base, k: 3).isEmpty)
        let brute = try BruteForceIndex(dimension: 4)
        #expect(try brute.search(base[0], k: 3).isEmpty)
    }

    @Test("recall@k counts the overlap with the truth")
    func recall() {
        let truth = [[VectorID(1), VectorID(2)], [VectorID(3), VectorID(4)]]
        #expect(Recall.atK(2, approximate: [[VectorID(2), VectorID(1)], [VectorID(3), VectorID(9)]], truth: truth) == 0.75)
    }
}
