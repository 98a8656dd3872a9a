import FacetMasking
import Foundation
import Testing
import FacetClient
import FacetIndex
import FacetStore
import FacetTestSupport
import FacetTransport
import FacetWire
@testable import FacetCluster

/// One enrolled template, as the test expects the cluster to hold it.
struct Expected: Hashable {
    let id: UInt64
    let subject: String
    let vector: [Float]
}

/// The exact top-k over everything (the reference a merged cluster result must equal).
func exactTopK(_ query: [Float], _ all: [Expected], k: Int) -> [(UInt64, Float)] {
    var scored: [(UInt64, Float)] = all.map { e -> (UInt64, Float) in (e.id, euclideanDistance(query, e.vector)) }
    scored.sort { (a: (UInt64, Float), b: (UInt64, Float)) -> Bool in a.1 != b.1 ? a.1 < b.1 : a.0 < b.0 }
    return Array(scored.prefix(k))
}

/// Expects `body` to fail with a FacetError of `code`.
func expectError(_ code: FacetError.Code, sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> Void) async {
    do {
        try await body()
        Issue.record("expected \(code), got success", sourceLocation: sourceLocation)
    } catch let e as FacetError {
        #expect(e.code == code, "\(e)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected \(code), got \(error)", sourceLocation: sourceLocation)
    }
}

func expectEqualsExact(_ reply: WireIdentifyReply, _ query: [Float], _ all: [Expected], k: Int,
                       sourceLocation: SourceLocation = #_sourceLocation) {
    let exact = exactTopK(query, all, k: k)
    #expect(!reply.partial, "partial result, missing \(reply.missingPartitions)", sourceLocation: sourceLocation)
    #expect(reply.candidates.map(\.templateID) == exact.map(\.0), sourceLocation: sourceLocation)
    for (c, e) in zip(reply.candidates, exact) {
        #expect(abs(c.distance - e.1) <= 1e-4 * max(1, e.1), sourceLocation: sourceLocation)
    }
}

func gallery(seed: UInt64, count: Int, queries: Int) throws -> FaceLikeGenerator.Gallery {
    var generator = FaceLikeGenerator(statistics: try FaceEmbeddingStatistics.bundled(), seed: seed)
    return generator.makeGallery(count: count, photosPerIdentity: 3, queryCount: queries)
}

/// Enrols each identity's vectors as one subject; returns what was acknowledged.
func enrolGallery(_ client: FacetClient, _ g: FaceLikeGenerator.Gallery, prefix: String) async throws -> [Expected] {
    var out: [Expected] = []
    let identities = Dictionary(grouping: 0..<g.count, by: { g.baseIdentities[$0] })
    for (identity, rows) in identities.sorted(by: { $0.key < $1.key }) {
        let subject = "\(prefix)\(identity)"
        let vectors = rows.map { g.baseVector($0) }
        let reply = try await client.enrol(subjectID: subject, embeddings: vectors.map { WireEmbedding(values: $0, modelVersion: "1") })
        #expect(reply.templateIds.count == vectors.count)
        #expect(!reply.durability.durableOn.isEmpty)
        for (id, v) in zip(reply.templateIds, vectors) { out.append(Expected(id: id, subject: subject, vector: v)) }
    }
    return out
}

let fixtureImages = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("FacetFaceTests/Fixtures/images")

@Suite("Cluster of real processes on 127.0.0.1", .serialized)
struct ClusterProcessTests {
    @Test("enrol, identify equals one exact index, verify, delete, idempotent re-enrol", .timeLimit(.minutes(5)))
    func enrolIdentifyVerifyDelete() async throws {
        try await withCluster { harness, client in
            let g = try gallery(seed: 11, count: 150, queries: 20)
            var all = try await enrolGallery(client, g, prefix: "s")
            #expect(all.count == 150)

            // Status counts come with the matchers' heartbeats: they converge within a few beats.
            let people = UInt64(Set(all.map(\.subject)).count)
            func counts() async throws -> (templates: UInt64, subjects: UInt64, status: WireStatusReply) {
                var status = try await client.status(includePartitions: true)
                for _ in 0..<100 {
                    #expect(status.healthy)
                    if status.templates == UInt64(all.count) && status.subjects == UInt64(Set(all.map(\.subject)).count) { break }
                    try await Task.sleep(for: .milliseconds(100))
                    status = try await client.status(includePartitions: true)
                }
                return (status.templates, status.subjects, status)
            }
            var (counted, subjects, status) = try await counts()
            #expect(counted == 150 && status.partitions.map(\.templates).reduce(0, +) == 150)
            #expect(subjects == people && status.partitions.map(\.subjects).reduce(0, +) == people)

            for q in 0..<20 {
                let query = g.queryVector(q)
                let reply = try await client.identify(embedding: WireEmbedding(values: query, modelVersion: "1"), k: 10)
                expectEqualsExact(reply, query, all, k: 10)
            }

            // Verify against a subject: the distance to its nearest template.
            let query = g.queryVector(0)
            let subject = "s\(g.queryIdentities[0])"
            var v = WireVerifyRequest()
            v.probeEmbedding = WireEmbedding(values: query, modelVersion: "1")
            v.subjectID = subject
            let verdict = try await client.verify(v)
            let nearest = all.filter { $0.subject == subject }.map { euclideanDistance(query, $0.vector) }.min()!
            #expect(abs(verdict.distance - nearest) < 1e-4)
            #expect(verdict.match == (nearest <= verdict.threshold))
            // And two embeddings directly.
            var pair = WireVerifyRequest()
            pair.probeEmbedding = WireEmbedding(values: query, modelVersion: "1")
            pair.referenceEmbedding = WireEmbedding(values: g.baseVector(0), modelVersion: "1")
            #expect(abs(try await client.verify(pair).distance - euclideanDistance(query, g.baseVector(0))) < 1e-5)

            // Re-enrolling the same embeddings is idempotent: same ids, nothing new.
            let again = try await client.enrol(subjectID: subject, embeddings: all.filter { $0.subject == subject }
                .map { WireEmbedding(values: $0.vector, modelVersion: "1") })
            #expect(Set(again.templateIds) == Set(all.filter { $0.subject == subject }.map(\.id)))
            let allPresent = again.templates.allSatisfy { $0.alreadyPresent }
            #expect(allPresent)

            // Delete removes the subject everywhere.
            let deleted = try await client.deleteSubject(subject)
            #expect(deleted.templatesDeleted == 3)
            #expect(deleted.durability.durableOn.count == harness.replicas)
            all.removeAll { $0.subject == subject }
            for q in 0..<5 {
                let query = g.queryVector(q)
                let reply = try await client.identify(embedding: WireEmbedding(values: query, modelVersion: "1"), k: 10)
                expectEqualsExact(reply, query, all, k: 10)
                #expect(!reply.candidates.contains { $0.subjectID == subject })
            }
            await expectError(.notFound) { _ = try await client.verify(v) }
            // Status counts one subject and three templates fewer; deleting it again, or a subject never enrolled,
            // is NOT_FOUND (nothing of it is stored).
            (counted, subjects, status) = try await counts()
            #expect(counted == 147 && subjects == people - 1)
            await expectError(.notFound) { _ = try await client.deleteSubject(subject) }
            await expectError(.notFound) { _ = try await client.deleteSubject("never-enrolled") }

            // Bad input gets typed errors.
            await expectError(.invalidArgument) { _ = try await client.identify(embedding: WireEmbedding(values: [1, 2, 3], modelVersion: "1")) }
            await expectError(.invalidArgument) {
                _ = try await client.enrol(subjectID: "x", embeddings: [WireEmbedding(values: [Float](repeating: .nan, count: 128), modelVersion: "1")])
            }
        }
    }

    @Test("kill -9 of a matcher during enrolments and queries: nothing acknowledged is lost, no query fails, it catches up",
          .timeLimit(.minutes(6)))
    func killMatcherDuringLoad() async throws {
        try await withCluster { harness, client in
            let g = try gallery(seed: 23, count: 60, queries: 20)
            let base = try await enrolGallery(client, g, prefix: "b")
            let stream = try gallery(seed: 29, count: 120, queries: 0)
            let layout = try ShardLayout(partitionCount: harness.partitions, replicationFactor: harness.replicas, matchers: harness.matchers)
            let victim = "matcher-1"

            let acknowledged = LockedValue<[Expected]>(base)
            let writerDone = LockedValue(false)
            let queryFailures = LockedValue<[String]>([])
            let queries = LockedValue(0)
            // Queries run all the time; each must succeed with a complete result.
            let reader = Task {
                var i = 0
                while !writerDone.withLock({ $0 }) {
                    let query = g.queryVector(i % 20)
                    do {
                        let r = try await client.identify(embedding: WireEmbedding(values: query, modelVersion: "1"), k: 5)
                        if r.partial { queryFailures.withLock { $0.append("partial: \(r.missingPartitions)") } }
                        if r.candidates.count != 5 { queryFailures.withLock { $0.append("\(r.candidates.count) candidates") } }
                    } catch {
                        queryFailures.withLock { $0.append("\(error)") }
                    }
                    queries.withLock { $0 += 1 }
                    i += 1
                }
            }
            // Enrolments, one subject at a time; kill -9 the victim after a third of them.
            var enrolFailures: [String] = []
            let identities = Dictionary(grouping: 0..<stream.count, by: { stream.baseIdentities[$0] }).sorted { $0.key < $1.key }
            // Results just before the kill, compared with the same queries right after it (no enrolment between):
            // the surviving replicas must give exactly the same answers.
            func results() async throws -> [[UInt64]] {
                var out: [[UInt64]] = []
                for q in 0..<20 {
                    let r = try await client.identify(embedding: WireEmbedding(values: g.queryVector(q), modelVersion: "1"), k: 10)
                    #expect(!r.partial, "partial result, missing \(r.missingPartitions)")
                    out.append(r.candidates.map(\.templateID))
                }
                return out
            }
            for (n, (identity, rows)) in identities.enumerated() {
                if n == identities.count / 3 {
                    let before = try await results()
                    harness.kill9(victim)
                    let after = try await results()
                    #expect(after == before, "results changed when \(victim) was killed")
                }
                let subject = "w\(identity)"
                let vectors = rows.map { stream.baseVector($0) }
                do {
                    let r = try await client.enrol(subjectID: subject, embeddings: vectors.map { WireEmbedding(values: $0, modelVersion: "1") })
                    acknowledged.withLock { a in for (id, v) in zip(r.templateIds, vectors) { a.append(Expected(id: id, subject: subject, vector: v)) } }
                } catch {
                    enrolFailures.append("\(subject): \(error)")
                }
            }
            writerDone.withLock { $0 = true }
            await reader.value
            #expect(enrolFailures.isEmpty, "\(enrolFailures)")
            #expect(queryFailures.withLock { $0 }.isEmpty, "\(queryFailures.withLock { $0 })")
            #expect(queries.withLock { $0 } > 0)

            // Every acknowledged template is found; results equal one exact index over everything.
            let all = acknowledged.withLock { $0 }
            #expect(all.count == 180)
            for q in 0..<20 {
                let query = g.queryVector(q)
                let reply = try await client.identify(embedding: WireEmbedding(values: query, modelVersion: "1"), k: 10)
                expectEqualsExact(reply, query, all, k: 10)
            }
            for e in all.filter({ $0.subject.hasPrefix("w") }).prefix(40) {
                let reply = try await client.identify(embedding: WireEmbedding(values: e.vector, modelVersion: "1"), k: 1)
                #expect(reply.candidates.first?.templateID == e.id)
            }

            // Restart the victim: it is filled from the other replicas, then serves again.
            try harness.start(victim)
            try await harness.waitUntilHealthy(client, seconds: 90)
            // Stop it gracefully and read its LMDB partitions directly: exactly the acknowledged templates.
            #expect(harness.stop(victim) == 0)
            var held = Set<UInt64>()
            for p in layout.partitions(of: victim) {
                let dir = harness.directory + "/" + victim + "/" + MatcherNode.directoryName(p)
                guard FileManager.default.fileExists(atPath: dir) else { continue }
                let part = try Partition.open(at: dir)
                try part.forEachTemplate { held.insert($0.id.rawValue); return true }
            }
            let expectedHeld = Set(all.filter { layout.replicas(of: layout.partition(of: $0.subject)).contains(victim) }.map(\.id))
            #expect(held == expectedHeld)
            #expect(!expectedHeld.isEmpty)
        }
    }

    @Test("images go through the embedder: enrol photos, identify another photo of the same person", .timeLimit(.minutes(5)))
    func imagesThroughTheEmbedder() async throws {
        try await withCluster(embedder: true) { harness, client in
            func image(_ name: String) throws -> Data { try Data(contentsOf: fixtureImages.appendingPathComponent(name)) }
            // The embedder loads its models after starting; wait (bounded) until it serves.
            var ready = false
            for _ in 0..<600 where !ready {
                if let s = try? await client.status(), s.nodes.contains(where: { $0.role == .embedder && $0.state == .ready }) { ready = true }
                else { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(ready, "embedder never registered:\n\(harness.log("embedder-0").suffix(2000))")
            let demo = fixtureImages.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent("demo/images")
            let hopkins = try await client.enrol(subjectID: "hopkins", images: [try image("lfw-sample-Anthony_Hopkins_0001.jpg")])
            #expect(hopkins.templateIds.count == 1)
            _ = try await client.enrol(subjectID: "bush", images: [try image("lfw-George_W_Bush_0001.jpg")])
            _ = try await client.enrol(subjectID: "powell", images: [try image("lfw-Colin_Powell_0001.jpg")])

            let probe = try await client.identify(image: try image("lfw-sample-Anthony_Hopkins_0002.jpg"), k: 3)
            #expect(probe.candidates.first?.subjectID == "hopkins")
            #expect(probe.candidates.first?.match == true)
            #expect(probe.candidates.count == 3)
            let bushProbe = try Data(contentsOf: demo.appendingPathComponent("probes/George_W_Bush_0003.jpg"))
            let bush = try await client.identify(image: bushProbe, k: 3)
            #expect(bush.candidates.first?.subjectID == "bush")

            let same = try await client.verify(probe: try image("lfw-sample-Anthony_Hopkins_0001.jpg"),
                                               reference: try image("lfw-sample-Anthony_Hopkins_0002.jpg"))
            #expect(same.match)
            let other = try await client.verify(probe: try image("lfw-sample-Anthony_Hopkins_0001.jpg"),
                                                reference: try image("lfw-Colin_Powell_0001.jpg"))
            #expect(!other.match)
            #expect(other.distance > same.distance)
            let subject = try await client.verify(probe: bushProbe, subjectID: "bush")
            #expect(subject.match)

            // The embedder node is mask-aware (Serve.swift builds MaskAwareEmbedder): every face carries the mask
            // detector's probability; a TEST-masked LFW face (no MMOD face above 0 at upsample 0) is found and called masked.
            let plainReply = try await client.embed(image: try image("lfw-sample-Anthony_Hopkins_0001.jpg"))
            let plainFace = try #require(plainReply.faces.first)
            #expect(plainFace.maskProbability > 0 && plainFace.maskProbability < 0.5 && !plainFace.masked,
                    "p(mask) \(plainFace.maskProbability)")
            let maskedURL = fixtureImages.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("FacetMaskingTests/Fixtures/masked/AJ_Lamas_0001.jpg")
            let maskedReply = try await client.embed(image: try Data(contentsOf: maskedURL))
            #expect(maskedReply.faces.count == 1)
            let maskedFace = try #require(maskedReply.faces.first)
            #expect(maskedFace.masked && maskedFace.maskProbability > 0.5, "p(mask) \(maskedFace.maskProbability)")
            #expect(maskedFace.embedding.values.count == 128)
            // The harness's embedder runs with `--periocular-fusion bundled`: every face also carries its periocular
            // embedding (unit length, 128-D, not the full embedding); what it is worth for matching is measured by
            // `facet eval lfw --periocular` and the FacetMaskingTests periocular suite.
            for face in [plainFace, maskedFace] {
                let p = face.periocularEmbedding.values
                #expect(p.count == 128)
                #expect(abs(p.reduce(0) { $0 + $1 * $1 } - 1) < 1e-3)
                #expect(p != face.embedding.values)
            }
            // ... and the coordinator (also `--periocular-fusion bundled`) fuses them when verifying two images with a
            // masked side: the distance is 0.5·full + 0.5·periocular of exactly these embeddings, decided at the fusion
            // file's masked–unmasked threshold. Two unmasked photos are not fused.
            let fusion = try PeriocularFusion.bundled()
            let fusedReply = try await client.verify(probe: try Data(contentsOf: maskedURL), reference: try image("lfw-sample-Anthony_Hopkins_0001.jpg"))
            #expect(fusedReply.periocularFused && fusedReply.probeMasked && !fusedReply.referenceMasked)
            #expect(fusedReply.comparison == .maskedUnmasked)
            let expected = fusion.fusedDistance((maskedFace.embedding.values, maskedFace.periocularEmbedding.values),
                                                (plainFace.embedding.values, plainFace.periocularEmbedding.values))
            #expect(abs(Double(fusedReply.distance) - expected) < 1e-4, "fused \(fusedReply.distance), expected \(expected)")
            let fusedThreshold = try #require(fusion.thresholds).maxDistance(for: .maskedUnmasked)
            #expect(abs(Double(fusedReply.threshold) - fusedThreshold) < 1e-6)
            #expect(fusedReply.match == (fusedReply.distance <= fusedReply.threshold))
            #expect(!same.periocularFused && !other.periocularFused)

            // Identify and verify against enrolled subjects fuse too: templates enrolled from images keep their
            // periocular embedding (TemplateRecord layout v2), the matchers re-rank by the fused distance wherever the
            // probe or the template is masked, and `match` uses the fused thresholds.
            let maskedEnrol = try await client.enrol(subjectID: "lamas-masked", images: [try Data(contentsOf: maskedURL)])
            #expect(maskedEnrol.templates.first?.masked == true)
            let unmaskedProbe = try await client.identify(image: try image("lfw-sample-Anthony_Hopkins_0001.jpg"), k: 4)
            #expect(!unmaskedProbe.face.hasPeriocularEmbedding && !unmaskedProbe.face.hasEmbedding)
            for c in unmaskedProbe.candidates {
                #expect(c.periocularFused == c.templateMasked, "\(c.subjectID): fused \(c.periocularFused), template masked \(c.templateMasked)")
            }
            let towardsMasked = try #require(unmaskedProbe.candidates.first { $0.subjectID == "lamas-masked" })
            #expect(abs(Double(towardsMasked.distance) - expected) < 1e-4, "fused \(towardsMasked.distance), expected \(expected)")
            #expect(towardsMasked.match == (Double(towardsMasked.distance) <= fusedThreshold))
            let maskedProbe = try await client.identify(image: try Data(contentsOf: maskedURL), k: 4)
            #expect(maskedProbe.face.masked && maskedProbe.candidates.allSatisfy(\.periocularFused))
            #expect(maskedProbe.candidates.first?.subjectID == "lamas-masked" && maskedProbe.candidates.first?.match == true)
            let hopkinsFused = try #require(maskedProbe.candidates.first { $0.subjectID == "hopkins" })
            #expect(abs(Double(hopkinsFused.distance) - expected) < 1e-4)
            let bySubject = try await client.verify(probe: try Data(contentsOf: maskedURL), subjectID: "hopkins")
            #expect(bySubject.periocularFused && bySubject.comparison == .maskedUnmasked)
            #expect(abs(Double(bySubject.distance) - expected) < 1e-4 && abs(Double(bySubject.threshold) - fusedThreshold) < 1e-6)
            let plainBySubject = try await client.verify(probe: try image("lfw-sample-Anthony_Hopkins_0002.jpg"), subjectID: "hopkins")
            #expect(!plainBySubject.periocularFused && plainBySubject.match)

            // Embed once, then identify, verify and enrol by the faces the embed replies gave: the same answers as by
            // the images (mask state and periocular embedding carried), without a second pass through an embedder.
            let byFace = try await client.identify(face: maskedFace, k: 4)
            #expect(byFace.face.masked && !byFace.face.hasEmbedding && !byFace.face.hasPeriocularEmbedding)
            #expect(byFace.candidates.map(\.subjectID) == maskedProbe.candidates.map(\.subjectID))
            for (a, b) in zip(byFace.candidates, maskedProbe.candidates) {
                #expect(abs(a.distance - b.distance) < 1e-5 && a.periocularFused == b.periocularFused && a.match == b.match, "\(a.subjectID)")
            }
            let faceVerify = try await client.verify(probeFace: maskedFace, referenceFace: plainFace)
            #expect(faceVerify.periocularFused && faceVerify.probeMasked && !faceVerify.referenceMasked)
            #expect(abs(faceVerify.distance - fusedReply.distance) < 1e-5 && faceVerify.threshold == fusedReply.threshold
                    && faceVerify.match == fusedReply.match && faceVerify.comparison == .maskedUnmasked)
            let faceBySubject = try await client.verify(probeFace: maskedFace, subjectID: "hopkins")
            #expect(faceBySubject.periocularFused && abs(faceBySubject.distance - bySubject.distance) < 1e-5)
            // The same embedding without the face's state is an unmasked probe: nothing fused, the unmasked threshold.
            let byEmbedding = try await client.identify(embedding: maskedFace.embedding, k: 4)
            #expect(!byEmbedding.face.masked && byEmbedding.candidates.allSatisfy { !$0.periocularFused })
            let faceEnrol = try await client.enrol(subjectID: "lamas-face", faces: [maskedFace])
            #expect(faceEnrol.templates.first?.masked == true)
            let again = try await client.enrol(subjectID: "lamas-face", faces: [maskedFace])
            #expect(again.templateIds == faceEnrol.templateIds && again.templates.first?.alreadyPresent == true)
            let towardsFace = try #require(try await client.identify(face: plainFace, k: 6).candidates.first { $0.subjectID == "lamas-face" })
            #expect(towardsFace.templateMasked && towardsFace.periocularFused)
            #expect(abs(Double(towardsFace.distance) - expected) < 1e-4, "fused \(towardsFace.distance), expected \(expected)")
            var noEmbedding = maskedFace
            noEmbedding.clearEmbedding()
            await expectError(.invalidArgument) { _ = try await client.identify(face: noEmbedding) }
            var short = maskedFace
            short.embedding.values.removeLast()
            await expectError(.invalidArgument) { _ = try await client.enrol(subjectID: "short", faces: [short]) }
            var otherModel = maskedFace
            otherModel.embedding.modelVersion = "9"
            await expectError(.modelMismatch) { _ = try await client.enrol(subjectID: "other-model", faces: [otherModel]) }
            // Two faces of different embedding models are not compared.
            await expectError(.modelMismatch) { _ = try await client.verify(probeFace: plainFace, referenceFace: otherModel) }
            // Nor is a probe compared with a subject's templates of another model (hopkins has model-1 templates only).
            await expectError(.modelMismatch) { _ = try await client.verify(probeFace: otherModel, subjectID: "hopkins") }
            _ = try await client.deleteSubject("lamas-face")
            _ = try await client.deleteSubject("lamas-masked")

            // Delete removes the subject: identify no longer finds it, verify against it is NOT_FOUND.
            let deleted = try await client.deleteSubject("hopkins")
            #expect(deleted.templatesDeleted == 1)
            let after = try await client.identify(image: try image("lfw-sample-Anthony_Hopkins_0002.jpg"), k: 3)
            #expect(!after.candidates.contains { $0.subjectID == "hopkins" })
            await expectError(.notFound) {
                _ = try await client.verify(probe: try image("lfw-sample-Anthony_Hopkins_0002.jpg"), subjectID: "hopkins")
            }

            await expectError(.noFace) { _ = try await client.enrol(subjectID: "nobody", images: [try image("no-face.jpg")]) }
            await expectError(.badImage) { _ = try await client.enrol(subjectID: "junk", images: [Data("not an image".utf8)]) }
        }
    }
}

@Suite("facet cluster up", .serialized)
struct ClusterUpTests {
    @Test("starts every node, serves, and stops cleanly on SIGTERM", .timeLimit(.minutes(3)))
    func upServeStop() async throws {
        let binary = try facetBinaryPath()
        let dir = NSTemporaryDirectory() + "facet-up-test-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let port = LoopbackPorts.reserve(4)
        let endpoint = "tcp://127.0.0.1:\(port)"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = ["cluster", "up", "--data", dir, "--matchers", "2", "--replicas", "2", "--embedders", "0",
                       "--partitions", "4", "--endpoint", endpoint, "--heartbeat-ms", "100", "--liveness", "10",
                       "--periocular-fusion", "bundled"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() } }
        // cluster up generates CURVE keys for its nodes and the command-line client under DATA/keys.
        let client = try FacetClient(endpoint: endpoint, curve: try await clusterUpClientCurve(keys: dir + "/keys"), timeout: .seconds(5))
        var healthy = false
        for _ in 0..<600 where !healthy {
            if let s = try? await client.status(includePartitions: true, timeout: .seconds(1)),
               s.healthy, s.partitions.allSatisfy({ $0.liveReplicas == 2 }) { healthy = true }
            else { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(healthy)
        let r = try await client.enrol(subjectID: "a", embeddings: [WireEmbedding(values: [Float](repeating: 0.1, count: 128), modelVersion: "1")])
        #expect(r.durability.durableOn.count == 2)
        await client.close()
        kill(p.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(30)
        while p.isRunning && Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(!p.isRunning)
        if !p.isRunning { #expect(p.terminationStatus == 0) }
        let text = String(decoding: out.fileHandleForReading.availableData, as: UTF8.self)
        #expect(text.contains("clients connect to \(endpoint)"))
        // --periocular-fusion reaches the coordinator's configuration (and it started with it: the fusion file loaded).
        #expect(text.contains("periocular fusion bundled"))
        let coordinatorConfig = try NodeConfiguration.load(path: dir + "/config/coordinator.json")
        #expect(coordinatorConfig.periocularFusion == "bundled")
        #expect(try NodeConfiguration.load(path: dir + "/config/matcher-0.json").periocularFusion == nil)
        #expect(text.contains("stopped"))
        // Every node logged a clean stop.
        for node in ["coordinator", "matcher-0", "matcher-1"] {
            let log = (try? String(contentsOfFile: "\(dir)/logs/\(node).log", encoding: .utf8)) ?? ""
            #expect(log.contains("stopped"), "\(node) log:\n\(log.suffix(1500))")
        }
    }
}
