import Testing
@testable import FacetWire

@Suite("Error codes")
struct FacetErrorTests {
    @Test(arguments: WireErrorCode.allCases)
    func everyWireCodeRoundTrips(_ code: WireErrorCode) {
        let c = FacetError.Code(code)
        #expect(c.wire == code)
        if case .unrecognized = c { Issue.record("known code \(code) mapped to unrecognized") }
    }

    @Test func namesMatchTheProtoFile() {
        #expect(FacetError.Code.frameTooLarge.description == "FRAME_TOO_LARGE")
        #expect(FacetError.Code.internalError.description == "INTERNAL")
        #expect(FacetError.Code.invalidArgument.description == "INVALID_ARGUMENT")
        #expect(FacetError.Code.unrecognized(77).description == "UNRECOGNIZED(77)")
    }

    @Test func unknownCodeFromANewerPeerIsKept() throws {
        var w = WireError()
        w.code = .UNRECOGNIZED(77)
        w.message = "from the future"
        let e = FacetError(w)
        #expect(e.code == .unrecognized(77))
        #expect(e.wire.code == .UNRECOGNIZED(77))
        // Through bytes as well.
        let env = WireEnvelope.errorReply(requestID: "q", e)
        let back = try WireFrame.decode(frame: try WireFrame.encode(env))
        #expect(back.facetError?.code == .unrecognized(77))
    }

    @Test func errorReplyEchoesTheRequest() {
        let req = WireEnvelope.request(.statusRequest(WireStatusRequest()), id: "abc", timeout: .milliseconds(1500),
                                       clientID: "cli", now: 10_000)
        let rep = WireEnvelope.errorReply(to: req, FacetError(.queueFull, "busy", retryAfterMilliseconds: 50, limit: 128),
                                          senderID: "coord", now: 10_010)
        #expect(rep.requestID == "abc")
        #expect(rep.deadlineUnixMs == 11_500)
        #expect(rep.clientID == "coord")
        let err = rep.facetError
        #expect(err?.code == .queueFull)
        #expect(err?.code.isRetryable == true)
        #expect(err?.retryAfterMilliseconds == 50)
        #expect(err?.limit == 128)
    }

    @Test func deadlines() {
        let req = WireEnvelope.request(.statusRequest(WireStatusRequest()), id: "a", timeout: .milliseconds(250), now: 1_000)
        #expect(req.remainingMilliseconds(now: 1_100) == 150)
        #expect(!req.isExpired(now: 1_249))
        #expect(req.isExpired(now: 1_250))
        #expect(req.remainingMilliseconds(now: 2_000) == 0)
        let none = WireEnvelope.request(.statusRequest(WireStatusRequest()), id: "b", now: 1_000)
        #expect(none.remainingMilliseconds(now: 5_000) == nil)
        #expect(!none.isExpired(now: .max))
        #expect(Duration.microseconds(1).wireMilliseconds == 1)
        #expect(Duration.milliseconds(2).wireMilliseconds == 2)
    }
}

@Suite("Embeddings and partitions")
struct EmbeddingTests {
    @Test func packed512DimensionalRoundTrip() throws {
        var rng = SplitMix64(state: 7)
        let values = (0..<512).map { _ in Float.random(in: -1...1, using: &rng) }
        let e = WireEmbedding(values: values, modelVersion: "m512")
        #expect(e.dimension == 512)
        var env = WireEnvelope.request(.identifyRequest(WireIdentifyRequest()), id: "x")
        env.identifyRequest.embedding = e
        let frame = try WireFrame.encode(env)
        // Packed float32: 512 × 4 bytes plus small headers, not 512 × 5 as unpacked would be.
        #expect(frame.count < 512 * 4 + 64)
        let back = try WireFrame.decode(frame: frame)
        #expect(try back.identifyRequest.embedding.validatedValues(expectedDimension: 512) == values)
    }

    @Test func littleEndianBytesRoundTrip() throws {
        let e = WireEmbedding(values: [1.0, -2.5, .leastNonzeroMagnitude, 3.25e7], modelVersion: "v")
        let bytes = e.littleEndianBytes
        #expect(bytes.count == 16)
        #expect(Array(bytes[0..<4]) == [0x00, 0x00, 0x80, 0x3f])  // 1.0f
        let back = try WireEmbedding(littleEndianBytes: bytes, modelVersion: "v")
        #expect(back == e)
        #expect(throws: WireEmbeddingError.byteCountNotMultipleOfFour(5)) {
            try WireEmbedding(littleEndianBytes: [1, 2, 3, 4, 5], modelVersion: "v")
        }
    }

    @Test func validationRejectsBadEmbeddings() {
        var e = WireEmbedding(values: [1, 2, 3], modelVersion: "a")
        e.dimension = 4
        #expect(throws: WireEmbeddingError.dimensionMismatch(declared: 4, values: 3)) { try e.validatedValues() }
        #expect(throws: WireEmbeddingError.empty) { try WireEmbedding().validatedValues() }
        #expect(throws: WireEmbeddingError.notFinite(index: 1)) {
            try WireEmbedding(values: [0, .nan], modelVersion: "a").validatedValues()
        }
        #expect(throws: WireEmbeddingError.modelMismatch(expected: "b", got: "a")) {
            try WireEmbedding(values: [0], modelVersion: "a").validatedValues(expectedModelVersion: "b")
        }
        #expect(throws: WireEmbeddingError.dimensionTooLarge(5000, limit: 4096)) {
            try WireEmbedding(values: [Float](repeating: 0, count: 5000), modelVersion: "a").validatedValues()
        }
        #expect(WireEmbeddingError.modelMismatch(expected: "b", got: "a").facetError.code == .modelMismatch)
        #expect(WireEmbeddingError.empty.facetError.code == .invalidArgument)
    }

    @Test func fnv1aKnownVectors() {
        // Reference values of 64-bit FNV-1a (Fowler/Noll/Vo test suite).
        #expect(WirePartitioning.fnv1a64("") == 0xcbf2_9ce4_8422_2325)
        #expect(WirePartitioning.fnv1a64("a") == 0xaf63_dc4c_8601_ec8c)
        #expect(WirePartitioning.fnv1a64("foobar") == 0x8594_4171_f739_67e8)
        #expect(WirePartitioning.partition(of: "foobar", partitionCount: 256) == 0xe8)
    }

    @Test func partitionsSpreadEvenly() {
        var counts = [Int](repeating: 0, count: 16)
        for i in 0..<16_000 { counts[Int(WirePartitioning.partition(of: "subject-\(i)", partitionCount: 16))] += 1 }
        // 1000 expected per partition; a hash this bad would be a bug, not noise.
        #expect(counts.allSatisfy { $0 > 800 && $0 < 1200 })
    }
}
