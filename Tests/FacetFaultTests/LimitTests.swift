import Foundation
import Testing
import FacetClient
import FacetCluster
import FacetTestSupport
import FacetTransport
import FacetWire
#if canImport(Glibc)
import Glibc
#endif

/// A plain DEALER speaking the wire protocol, for sending exactly the frames a test wants (oversize, pipelined).
final class RawClient {
    let context: ZMQContext
    let socket: ZMQSocket
    init(endpoint: String, receiveLimit: Int = 64 << 20) throws {
        context = try ZMQContext()
        var options = SocketOptions()
        options.maxFrameBytes = receiveLimit
        socket = try ZMQSocket(context: context, type: .dealer, options: options)
        try socket.connect(endpoint)
    }
    func send(_ env: WireEnvelope) throws {
        let bytes = try WireFrame.encode(env, maxBytes: 64 << 20)
        _ = try socket.send(Multipart([[], bytes]))
    }
    /// The next reply, at most `seconds` away.
    func receive(seconds: Int = 20) throws -> WireEnvelope {
        let m = try socket.receive(timeout: .seconds(seconds))
        guard let frame = m.frames.last else { throw FaultError("empty reply") }
        return try WireFrame.decode(frame: frame, maxBytes: 64 << 20)
    }
    func close() { socket.close() }
}

func identifyRequest(_ vector: [Float], k: UInt32 = 3) -> WireEnvelope.OneOf_Body {
    var r = WireIdentifyRequest()
    r.embedding = WireEmbedding(values: vector, modelVersion: "1")
    r.k = k
    return .identifyRequest(r)
}

/// A PNG of a few dozen bytes whose header declares `width` × `height` pixels (the pixel data is absent): the
/// decoder must refuse it from the header alone.
func pngHeader(width: UInt32, height: UInt32) -> Data {
    func crc32(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            c ^= UInt32(b)
            for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0xEDB8_8320 : c >> 1 }
        }
        return ~c
    }
    func be(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }
    func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let body = Array(type.utf8) + data
        return be(UInt32(data.count)) + body + be(crc32(body))
    }
    let ihdr = be(width) + be(height) + [8, 2, 0, 0, 0]   // 8-bit RGB
    let idat: [UInt8] = [0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]   // an empty zlib stream
    return Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", ihdr) + chunk("IDAT", idat) + chunk("IEND", []))
}

@Suite("Limits answer with typed errors over real sockets", .serialized)
struct LimitTests {
    @Test("a frame over the coordinator's limit gets FRAME_TOO_LARGE, and the connection keeps working", .timeLimit(.minutes(3)))
    func frameSize() async throws {
        let cluster = try FaultCluster(matchers: 1, replicas: 1, partitions: 2)
        cluster.coordinatorSettings.maxFrameBytes = 64 << 10
        try await withFaultCluster(cluster) { cluster, client in
            let raw = try RawClient(endpoint: cluster.frontend)
            defer { raw.close() }
            var embed = WireEmbedRequest()
            embed.image.data = Data(repeating: 0xAB, count: 100_000)   // over 64 KiB, under libzmq's 2x disconnect limit
            try raw.send(WireEnvelope.request(.embedRequest(embed), id: "big", timeout: .seconds(10), clientID: "frames"))
            let reply = try raw.receive()
            guard case .error(let e)? = reply.body else { Issue.record("expected an error, got \(reply.bodyKind)"); return }
            #expect(FacetError(e).code == .frameTooLarge, "\(e)")
            #expect(e.limit == 64 << 10)
            // The same connection is still served.
            try raw.send(WireEnvelope.request(.statusRequest(WireStatusRequest()), id: "small", timeout: .seconds(10), clientID: "frames"))
            let ok = try raw.receive()
            #expect(ok.requestID == "small")
            guard case .statusReply? = ok.body else { Issue.record("expected a status reply, got \(ok.bodyKind)"); return }
        }
    }

    @Test("a client over its request rate gets RATE_LIMITED with a retry hint; other clients are not affected", .timeLimit(.minutes(3)))
    func requestRate() async throws {
        let cluster = try FaultCluster(matchers: 1, replicas: 1, partitions: 2)
        // Five requests at once, then one per 1000 s: the test never waits long enough for a refill.
        cluster.coordinatorSettings.rateLimitPerSecond = 0.001
        cluster.coordinatorSettings.rateLimitBurst = 5
        try await withFaultCluster(cluster) { cluster, _ in
            let g = try faceGallery(seed: 5, count: 3, queries: 1)
            let greedy = try FacetClient(endpoint: cluster.frontend, clientID: "greedy", timeout: .seconds(20))
            let polite = try FacetClient(endpoint: cluster.frontend, clientID: "polite", timeout: .seconds(20))
            var served = 0
            var limited: [FacetError] = []
            for _ in 0..<8 {
                do throws(FacetError) {
                    _ = try await greedy.identify(embedding: WireEmbedding(values: g.queryVector(0), modelVersion: "1"), k: 1)
                    served += 1
                } catch {
                    limited.append(error)
                }
            }
            #expect(served == 5)
            #expect(limited.count == 3)
            for e in limited {
                #expect(e.code == .rateLimited, "\(e)")
                #expect(e.retryAfterMilliseconds > 0)
                #expect(e.code.isRetryable)
            }
            // Status (the operators' view) is not rate limited; another client is served.
            _ = try await greedy.status()
            _ = try await polite.identify(embedding: WireEmbedding(values: g.queryVector(0), modelVersion: "1"), k: 1)
            await greedy.close()
            await polite.close()
        }
    }

    @Test("requests beyond maxInFlight get QUEUE_FULL at once; admitted ones still finish", .timeLimit(.minutes(3)))
    func queueDepth() async throws {
        let cluster = try FaultCluster(matchers: 1, replicas: 1, partitions: 2)
        cluster.coordinatorSettings.maxInFlight = 2
        // The stopped matcher must stay "live" for the test's few seconds, so the admitted identifies wait for it.
        cluster.coordinatorSettings.liveness = 300
        cluster.workerSettings.liveness = 300
        cluster.coordinatorSettings.replicaTimeoutMilliseconds = 20_000
        try await withFaultCluster(cluster) { cluster, client in
            let g = try faceGallery(seed: 7, count: 6, queries: 1)
            for s in subjects(g, prefix: "q") {
                _ = try await client.enrol(subjectID: s.subject, embeddings: s.vectors.map { WireEmbedding(values: $0, modelVersion: "1") })
            }
            let raw = try RawClient(endpoint: cluster.frontend)
            defer { raw.close() }
            cluster.signal("matcher-0", SIGSTOP)
            // One connection, read in order by the coordinator: the first two are admitted and wait for the stopped
            // matcher, the third finds two in flight.
            for i in 0..<3 {
                try raw.send(WireEnvelope.request(identifyRequest(g.queryVector(0)), id: "q\(i)", timeout: .seconds(60), clientID: "queue"))
            }
            let first = try raw.receive()
            #expect(first.requestID == "q2")
            if case .error(let w)? = first.body {
                let e = FacetError(w)
                #expect(e.code == .queueFull, "\(e)")
                #expect(e.limit == 2)
                #expect(e.retryAfterMilliseconds > 0)
            } else {
                Issue.record("expected QUEUE_FULL, got \(first.bodyKind)")
            }
            cluster.signal("matcher-0", SIGCONT)
            var answered = Set<String>()
            for _ in 0..<2 {
                let r = try raw.receive(seconds: 30)
                answered.insert(r.requestID)
                guard case .identifyReply(let reply)? = r.body else { Issue.record("expected an identify reply, got \(r.bodyKind)"); continue }
                #expect(!reply.candidates.isEmpty)
            }
            #expect(answered == ["q0", "q1"])
        }
    }

    @Test("an image whose header declares too many pixels gets IMAGE_TOO_LARGE through the embedder", .timeLimit(.minutes(4)))
    func imagePixels() async throws {
        let cluster = try FaultCluster(matchers: 1, replicas: 1, partitions: 2, embedders: 1)
        try await withFaultCluster(cluster) { _, client in
            let huge = pngHeader(width: 30_000, height: 30_000)   // 900 Mpx > the 40 Mpx limit, 70 bytes on the wire
            #expect(huge.count < 100)
            let e1 = await expectFacetError(.imageTooLarge) { _ = try await client.identify(image: huge, k: 1) }
            #expect(e1?.field == "image")
            #expect(e1?.message.contains("30000x30000") == true, "\(String(describing: e1))")
            await expectFacetError(.imageTooLarge) { _ = try await client.enrol(subjectID: "big", images: [huge]) }
            // A truncated but small image is BAD_IMAGE, not IMAGE_TOO_LARGE.
            await expectFacetError(.badImage) { _ = try await client.identify(image: pngHeader(width: 64, height: 64), k: 1) }
        }
    }
}
