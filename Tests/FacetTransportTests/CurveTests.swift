import FacetTransport
import Foundation
import Testing

@Suite("CURVE and ZAP")
struct CurveTests {
    @Test func z85MatchesTheSpecificationVector() throws {
        // ZeroMQ RFC 32: these 8 bytes encode as "HelloWorld".
        let raw: [UInt8] = [0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B]
        #expect(Z85.encode(raw) == "HelloWorld")
        #expect(try Z85.decode("HelloWorld") == raw)
        #expect(throws: TransportError.self) { try Z85.decode("Hell") }
        #expect(throws: TransportError.self) { try CurveKey(z85: "too short") }
        #expect(throws: TransportError.self) { try CurveKey(bytes: [1, 2, 3]) }
    }

    @Test func keyPairsDeriveTheirPublicKey() throws {
        let pair = try CurveKeyPair.generate()
        #expect(pair.publicKey != pair.secretKey)
        let again = try CurveKeyPair(secretKey: pair.secretKey)
        #expect(again.publicKey == pair.publicKey)
        #expect(try CurveKey(z85: pair.publicKey.z85 + "\n") == pair.publicKey)
        // Secrets stay out of descriptions.
        #expect(!"\(pair)".contains(pair.secretKey.z85))
        #expect("\(pair.secretKey)" == "CurveKey(32 bytes)")
    }

    /// An allowed client key gets answers (and is seen as the message's user id); an unknown key,
    /// and a plaintext client, get nothing within a bounded wait, and the server's monitor sees
    /// the refused handshakes.
    @Test func onlyAllowListedClientsAreAnswered() async throws {
        #expect(ZMQContext.has("curve"))
        let context = try ZMQContext()
        let serverKeys = try CurveKeyPair.generate()
        let allowed = try CurveKeyPair.generate()
        let stranger = try CurveKeyPair.generate()
        let zap = try ZAPAuthenticator(context: context, allowedClientKeys: [allowed.publicKey], domain: "facet")

        var serverOptions = SocketOptions()
        serverOptions.security = .curveServer(serverKeys, zapDomain: "facet")
        let router = try ZMQChannel(context: context, type: .router, options: serverOptions,
                                    bind: ["tcp://127.0.0.1:*"], monitor: .all)
        let endpoint = router.boundEndpoints[0]
        let server = startEchoServer(router) { req in [bytes(req.userID ?? "<none>")] + req.frames }

        var good = SocketOptions()
        good.security = .curveClient(allowed, serverPublicKey: serverKeys.publicKey)
        let client = try ZMQChannel(context: context, type: .dealer, options: good, connect: [endpoint])
        try await client.send(Multipart([[], bytes("let me in")]), timeout: generous)
        let reply = try await client.receive(timeout: generous)
        #expect(reply.frames == [[], bytes(allowed.publicKey.z85), bytes("let me in")])
        #expect(zap.statistics.allowed == 1)

        var bad = SocketOptions()
        bad.security = .curveClient(stranger, serverPublicKey: serverKeys.publicKey)
        let intruder = try ZMQChannel(context: context, type: .dealer, options: bad, connect: [endpoint])
        await sendFromRefusedClient(intruder, Multipart([[], bytes("let me in too")]))
        let refused = await firstEvent(router) { $0.kind == .handshakeFailedAuth }
        #expect(refused?.value == 400)  // the ZAP status code
        await expectTimedOut { () async throws(TransportError) in try await intruder.receive(timeout: quietPeriod) }
        #expect(zap.statistics.denied >= 1)

        let plain = try ZMQChannel(context: context, type: .dealer, connect: [endpoint])
        await sendFromRefusedClient(plain, Multipart([[], bytes("plaintext")]))
        await expectTimedOut { () async throws(TransportError) in try await plain.receive(timeout: quietPeriod) }

        // Nothing from the refused clients reached the server; the allowed client still works.
        #expect(router.statistics.received == 1)
        try await client.send(Multipart([[], bytes("again")]), timeout: generous)
        #expect(try await client.receive(timeout: generous).frames.last == bytes("again"))

        // Revoking a key refuses its next connection.
        zap.revoke(allowed.publicKey)
        let revoked = try ZMQChannel(context: context, type: .dealer, options: good, connect: [endpoint])
        await sendFromRefusedClient(revoked, Multipart([[], bytes("after revoke")]))
        await expectTimedOut { () async throws(TransportError) in try await revoked.receive(timeout: quietPeriod) }

        for c in [client, intruder, plain, revoked] { await c.close() }
        await router.close()
        server.cancel()
        await zap.stop()
    }

    @Test func wrongServerKeyNeverCompletesTheHandshake() async throws {
        let context = try ZMQContext()
        let serverKeys = try CurveKeyPair.generate()
        let client = try CurveKeyPair.generate()
        let zap = try ZAPAuthenticator(context: context, allowedClientKeys: [client.publicKey])
        var so = SocketOptions()
        so.security = .curveServer(serverKeys, zapDomain: "facet")
        let router = try ZMQChannel(context: context, type: .router, options: so, bind: ["tcp://127.0.0.1:*"])
        let server = startEchoServer(router)
        var co = SocketOptions()
        co.security = .curveClient(client, serverPublicKey: try CurveKeyPair.generate().publicKey)  // not the server's
        let dealer = try ZMQChannel(context: context, type: .dealer, options: co, connect: [router.boundEndpoints[0]],
                                    monitor: .all)
        await sendFromRefusedClient(dealer, Multipart([[], bytes("hi")]))
        await expectTimedOut { () async throws(TransportError) in try await dealer.receive(timeout: quietPeriod) }
        #expect(router.statistics.received == 0)
        await dealer.close()
        await router.close()
        server.cancel()
        await zap.stop()
    }

    @Test func secondHandlerOnTheSameContextIsATypedError() async throws {
        let context = try ZMQContext()
        let first = try ZAPAuthenticator(context: context, allowedClientKeys: [])
        #expect(throws: TransportError.self) { try ZAPAuthenticator(context: context, allowedClientKeys: []) }
        await first.stop()
    }
}

@Suite("CURVE key files")
struct CurveKeyFileTests {
    func withTemporaryDirectory(_ body: (String) throws -> Void) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("facet-keys-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try body(dir)
    }

    @Test func writeAndReadBack() throws {
        try withTemporaryDirectory { dir in
            let pair = try CurveKeyPair.generate()
            let paths = try CurveKeyFiles.write(pair, base: dir + "/server")
            #expect(try CurveKeyFiles.readKey(at: paths.publicKey) == pair.publicKey)
            #expect(try CurveKeyFiles.readKeyPair(secretKeyAt: paths.secretKey) == pair)
            let mode = try FileManager.default.attributesOfItem(atPath: paths.secretKey)[.posixPermissions] as? Int
            #expect(mode == 0o600)
            #expect(throws: TransportError.self) { try CurveKeyFiles.write(try CurveKeyPair.generate(), base: dir + "/server") }
        }
    }

    @Test func allowListSkipsCommentsAndNamesBadLines() throws {
        try withTemporaryDirectory { dir in
            let a = try CurveKeyPair.generate().publicKey, b = try CurveKeyPair.generate().publicKey
            let path = dir + "/clients.allow"
            try "# site clients\n\(a.z85)\n\n  \(b.z85)  gate 2\n".write(toFile: path, atomically: true, encoding: .utf8)
            #expect(try CurveKeyFiles.readAllowList(at: path) == [a, b])
            try "\(a.z85)\nnot-a-key\n".write(toFile: path, atomically: true, encoding: .utf8)
            do {
                _ = try CurveKeyFiles.readAllowList(at: path)
                Issue.record("bad line accepted")
            } catch {
                #expect("\(error)".contains("line 2"))
            }
            #expect(throws: TransportError.self) { try CurveKeyFiles.readAllowList(at: dir + "/missing") }
        }
    }
}
