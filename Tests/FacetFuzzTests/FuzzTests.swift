import Foundation
import Logging
import Testing
import FacetImaging
import FacetNN
import FacetTransport
import FacetWire
@testable import FacetCluster
@testable import FacetFace

/// Bounded fuzzing passes over the committed corpus (Corpus/…): every input must end in a value or a typed error —
/// a crash, a trap or an untyped failure fails the suite. Iteration counts are fixed (times FACET_FUZZ_SCALE), the
/// random numbers seeded, so a failure reproduces; `scripts/fuzz.sh` runs the same passes with a larger scale.
@Suite("Fuzzing (deterministic mutation, bounded)", .serialized)
struct FuzzTests {
    @Test("image decoder: mutated JPEG/PNG/other bytes decode or fail with ImageDecodingError", .timeLimit(.minutes(5)))
    func imageDecoder() throws {
        var fuzzer = MutationFuzzer(seed: 0xFACE_0001, corpus: try corpus("images"), maxLength: 64 << 10)
        let decoder = ImageDecoder(limits: ImageDecodingLimits(maxPixels: 4_000_000, maxBytes: 1 << 20))
        var decoded = 0, rejected: [ImageDecodingError.Code: Int] = [:]
        for _ in 0..<(3000 * MutationFuzzer.scale) {
            let input = fuzzer.input()
            do {
                let image = try decoder.decode(input, source: "fuzz")
                #expect(image.width > 0 && image.height > 0 && image.pixels.count == image.width * image.height * 3)
                decoded += 1
            } catch {
                rejected[error.code, default: 0] += 1
            }
        }
        print("image fuzz: \(decoded) decoded, rejected \(rejected)")
        #expect(decoded > 0, "no mutated input decoded: the corpus or the mutations are too destructive")
        #expect(!rejected.isEmpty)
    }

    @Test("dlib model readers: mutated networks and shape predictors load or fail with a typed error", .timeLimit(.minutes(5)))
    func dlibModels() throws {
        // Seeds: the committed header fragments plus the real models (FACET_MODELS; required, not skipped) — whole,
        // and cut to their first 64 KiB so that most mutations land in the structure rather than in the weights.
        let models = ProcessInfo.processInfo.environment["FACET_MODELS"] ?? "models"
        let mmod = [UInt8](try Data(contentsOf: URL(fileURLWithPath: models + "/mmod_human_face_detector.dat")))
        let shape = [UInt8](try Data(contentsOf: URL(fileURLWithPath: models + "/shape_predictor_5_face_landmarks.dat")))
        let fragments = try corpus("dlib")

        var network = MutationFuzzer(seed: 0xFACE_0002, corpus: fragments + [mmod, Array(mmod.prefix(64 << 10))], maxLength: 2 << 20)
        var loaded = 0, failed = 0
        for _ in 0..<(300 * MutationFuzzer.scale) {
            let input = network.input()
            do {
                _ = try DlibNetwork(bytes: input, spec: DlibArchitectures.mmodFaceDetector)
                loaded += 1
            } catch is DlibModelError {
                failed += 1
            } catch {
                Issue.record("untyped error from the network reader: \(error)")
            }
        }
        var predictor = MutationFuzzer(seed: 0xFACE_0003, corpus: fragments + [shape, Array(shape.prefix(64 << 10))], maxLength: 16 << 20)
        var shapesLoaded = 0, shapesFailed = 0
        for _ in 0..<(60 * MutationFuzzer.scale) {
            do {
                _ = try ShapePredictor(serialized: predictor.input(), path: "fuzz")
                shapesLoaded += 1
            } catch {
                shapesFailed += 1   // typed: FaceModelError
            }
        }
        print("dlib fuzz: networks \(loaded) loaded / \(failed) rejected; shape predictors \(shapesLoaded) / \(shapesFailed)")
        #expect(loaded > 0 && failed > 0)
        #expect(shapesLoaded + shapesFailed == 60 * MutationFuzzer.scale)
    }

    @Test("wire handlers: mutated envelopes through WireFrame.decode, a real matcher's handler and the coordinator's", .timeLimit(.minutes(5)))
    func wireHandlers() async throws {
        let dir = NSTemporaryDirectory() + "facet-fuzz-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let context = try ZMQContext()
        var logger = Logger(label: "fuzz")
        logger.logLevel = .critical
        var mc = NodeConfiguration()
        mc.nodeID = "matcher-0"
        mc.dataDirectory = dir
        var plaintext = SecurityConfiguration()
        plaintext.insecurePlaintext = true
        mc.security = plaintext
        let matcher = try MatcherNode(configuration: mc, context: context, logger: logger)
        var cc = NodeConfiguration()
        cc.nodeID = "coordinator"
        cc.matchers = ["matcher-0"]
        cc.partitionCount = 4
        cc.replicationFactor = 1
        cc.security = plaintext
        cc.frontendEndpoint = "inproc://fuzz-front-\(UInt32.random(in: 0...UInt32.max))"
        cc.backendEndpoint = "inproc://fuzz-back-\(UInt32.random(in: 0...UInt32.max))"
        let coordinator = try Coordinator(configuration: cc, context: context, logger: logger)

        var fuzzer = MutationFuzzer(seed: 0xFACE_0004, corpus: try corpus("envelopes"), maxLength: 64 << 10)
        var undecodable = 0, served = 0, errors: [String: Int] = [:]
        for _ in 0..<(1500 * MutationFuzzer.scale) {
            let input = fuzzer.input()
            let env: WireEnvelope
            do { env = try WireFrame.decode(frame: input, maxBytes: 64 << 10) } catch {
                _ = error.facetError   // every decoding failure maps to a reply
                undecodable += 1
                continue
            }
            // The matcher serves partition requests; keep partition numbers in the range a shard map can name so a
            // run does not create thousands of LMDB environments (the coordinator never sends others).
            var m = env
            switch m.body {
            case .partitionInsertRequest(var r)?: r.partition %= 4; m.body = .partitionInsertRequest(r)
            case .partitionDeleteRequest(var r)?: r.partition %= 4; m.body = .partitionDeleteRequest(r)
            case .streamRecordsRequest(var r)?: r.partition %= 4; r.maxRecords %= 4096; m.body = .streamRecordsRequest(r)
            case .partitionSearchRequest(var r)?: r.partitions = r.partitions.prefix(8).map { $0 % 4 }; m.body = .partitionSearchRequest(r)
            default: break
            }
            if case .error(let e) = await matcher.handle(m) { errors["matcher \(FacetError(e).code)", default: 0] += 1 }
            do {
                _ = try await coordinator.serve(env, RequestContext(id: env.requestID, deadline: nowMilliseconds() + 200, logger: logger))
            } catch {
                errors["coordinator \(error.code)", default: 0] += 1
            }
            served += 1
        }
        await coordinator.front.close()
        await coordinator.back.close()
        print("wire fuzz: \(undecodable) undecodable, \(served) served, errors \(errors.sorted { $0.key < $1.key })")
        #expect(served > 0 && undecodable > 0)
    }
}
