import Foundation
import SwiftProtobuf
import Testing
@testable import FacetWire

/// A small deterministic generator (SplitMix64) so that the random inputs are the same on every run.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func fixture(_ name: String) throws -> [UInt8] {
    let url = try #require(Bundle.module.url(forResource: name, withExtension: "bin", subdirectory: "Fixtures"))
    return Array(try Data(contentsOf: url))
}

@Suite("Envelope framing")
struct WireFrameTests {
    func sampleEnvelope() -> WireEnvelope {
        var q = WireIdentifyRequest()
        q.embedding = WireEmbedding(values: (0..<512).map { Float($0) / 512 - 0.5 }, modelVersion: "test-512")
        q.k = 5
        return WireEnvelope.request(.identifyRequest(q), id: "r-1", timeout: .seconds(2), clientID: "tests", now: 1_000)
    }

    @Test func roundTripKeepsEveryField() throws {
        let e = sampleEnvelope()
        let frame = try WireFrame.encode(e)
        let back = try WireFrame.decode(frame: frame)
        #expect(back == e)
        #expect(back.protocolVersion == WireProtocol.version)
        #expect(back.deadlineUnixMs == 3_000)
        #expect(back.bodyKind == "identifyRequest")
        guard case .identifyRequest(let q)? = back.body else { Issue.record("wrong body"); return }
        #expect(q.embedding.values.count == 512)
        #expect(q.embedding.dimension == 512)
    }

    @Test func oversizedFrameIsRejectedBeforeParsing() throws {
        let frame = try WireFrame.encode(sampleEnvelope())
        #expect(throws: WireDecodingError.frameTooLarge(size: frame.count, limit: 100)) {
            try WireFrame.decode(frame: frame, maxBytes: 100)
        }
        // Exactly at the limit is accepted.
        _ = try WireFrame.decode(frame: frame, maxBytes: frame.count)
        #expect(throws: WireDecodingError.frameTooLarge(size: frame.count, limit: 100)) {
            try WireFrame.encode(sampleEnvelope(), maxBytes: 100)
        }
    }

    @Test func emptyFrameIsRejected() {
        #expect(throws: WireDecodingError.emptyFrame) { try WireFrame.decode(frame: [UInt8]()) }
    }

    @Test func malformedFixtureIsRejectedWithTypedError() throws {
        let bytes = try fixture("malformed")
        do {
            _ = try WireFrame.decode(frame: bytes)
            Issue.record("malformed bytes decoded")
        } catch {
            guard case .malformed = error else { Issue.record("wrong error \(error)"); return }
            #expect(error.facetError.code == .malformedMessage)
        }
    }

    @Test func unknownVersionAndMissingBodyAreRejected() throws {
        var e = sampleEnvelope()
        e.protocolVersion = 99
        #expect(throws: WireDecodingError.unsupportedVersion(99)) { try WireFrame.decode(frame: try e.serializedBytes() as [UInt8]) }
        #expect(WireDecodingError.unsupportedVersion(99).facetError.code == .unsupportedVersion)
        var empty = WireEnvelope()
        empty.protocolVersion = WireProtocol.version
        empty.requestID = "x"
        #expect(throws: WireDecodingError.missingBody) { try WireFrame.decode(frame: try empty.serializedBytes() as [UInt8]) }
    }

    /// Truncations, bit flips and random bytes: every outcome is an envelope or a WireDecodingError
    /// (the typed throw guarantees no other error type); the loop must simply finish without a crash.
    @Test func corruptedFramesNeverCrash() throws {
        let good = try WireFrame.encode(sampleEnvelope())
        var rng = SplitMix64(state: 42)
        var rejected = 0
        for cut in stride(from: 1, to: good.count, by: 7) {
            do { _ = try WireFrame.decode(frame: Array(good[..<cut])) } catch { rejected += 1 }
        }
        for _ in 0..<2000 {
            var bad = good
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let i = Int.random(in: 0..<bad.count, using: &rng)
                bad[i] ^= UInt8.random(in: 1...255, using: &rng)
            }
            do { _ = try WireFrame.decode(frame: bad) } catch { rejected += 1 }
        }
        for _ in 0..<2000 {
            let n = Int.random(in: 1...300, using: &rng)
            let junk = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            do { _ = try WireFrame.decode(frame: junk) } catch { rejected += 1 }
        }
        // Truncating a length-delimited 2 kB message almost always breaks it.
        #expect(rejected > good.count / 7 / 2)
    }

    @Test func deeplyNestedInputIsRejectedNotOverflowingTheStack() {
        // Field 16 (embed_request, length-delimited) nested 10_000 times: tag 0x82 0x01, then a length.
        var inner: [UInt8] = []
        for _ in 0..<10_000 {
            var len: [UInt8] = []
            var n = inner.count
            repeat {
                var b = UInt8(n & 0x7f)
                n >>= 7
                if n > 0 { b |= 0x80 }
                len.append(b)
            } while n > 0
            inner = [0x82, 0x01] + len + inner
            if inner.count > 200_000 { break }
        }
        #expect(throws: WireDecodingError.self) { try WireFrame.decode(frame: inner, maxBytes: 1 << 20) }
    }
}

@Suite("Cross-language fixtures (Python protobuf 4.21)")
struct CrossLanguageTests {
    @Test func identifyRequestFromPythonDecodesAndReencodesIdentically() throws {
        let bytes = try fixture("identify_request")
        let e = try WireFrame.decode(frame: bytes)
        #expect(e.requestID == "req-0001")
        #expect(e.deadlineUnixMs == 1_700_000_005_000)
        #expect(e.clientID == "python-fixture")
        guard case .identifyRequest(let q)? = e.body else { Issue.record("wrong body \(e.bodyKind)"); return }
        let values = try q.embedding.validatedValues(expectedDimension: 512, expectedModelVersion: "test-512")
        #expect(values == (0..<512).map { Float($0) / 512 - 0.5 })
        #expect(q.k == 7)
        #expect(q.collections == ["staff", "visitors"])
        #expect(q.maxDistance == 0.5)
        #expect(q.withClassifier)
        #expect(try WireFrame.encode(e) == bytes)
    }

    @Test func errorReplyFromPythonMapsToFacetError() throws {
        let bytes = try fixture("error_reply")
        let e = try WireFrame.decode(frame: bytes)
        let err = try #require(e.facetError)
        #expect(err.code == .noFace)
        #expect(err.message == "no face found in image 0")
        #expect(err.field == "images[0]")
        #expect(err.nodeID == "embedder-3")
        #expect("\(err)" == "NO_FACE: no face found in image 0 (field images[0]) [node embedder-3]")
        #expect(try WireFrame.encode(e) == bytes)
    }

    @Test func enrolReplyFromPython() throws {
        let bytes = try fixture("enrol_reply")
        let e = try WireFrame.decode(frame: bytes)
        guard case .enrolReply(let r)? = e.body else { Issue.record("wrong body"); return }
        #expect(r.templateIds == [1, (1 << 63) + 5])
        #expect(r.partition == 201)
        #expect(r.durability.policy == .quorum)
        #expect(r.durability.durableOn == ["matcher-0", "matcher-2"])
        #expect(try WireFrame.encode(e) == bytes)
    }
}
