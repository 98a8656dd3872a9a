import Dispatch
import Foundation
import Logging
import FacetFace
import FacetImaging
import FacetTransport
import FacetWire

/// An embedder: answers EmbedRequests with the faces in an image (largest first) and their embeddings, using an
/// ``Embedder`` (``DlibFaceEmbedder`` in production). Decoding and the CNNs run on a dedicated queue, one image at
/// a time, never on the socket thread or the cooperative pool; heartbeats keep flowing meanwhile.
public final class EmbedderNode: Sendable {
    public let nodeID: String
    let configuration: NodeConfiguration
    let embedder: any Embedder
    let logger: Logger
    /// Identity, start time, CURVE settings and the links to the coordinators (shared with ``MatcherNode``).
    let links: WorkerLinks
    let inFlight = LockedValue(0)
    let work = DispatchQueue(label: "facet.embedder.work")
    let decoder = ImageDecoder()
    public let metrics = NodeMetrics(role: "embedder")
    public static let maxFaces = 32

    public init(configuration: NodeConfiguration, embedder: any Embedder, context: ZMQContext, logger: Logger) throws {
        let id = configuration.nodeID ?? "embedder-\(ProcessInfo.processInfo.processIdentifier)"
        nodeID = id
        links = try WorkerLinks(nodeID: id, role: .embedder, roleName: "embedder", configuration: configuration, context: context, logger: logger)
        self.configuration = configuration
        self.embedder = embedder
        self.logger = logger
    }

    var model: WireEmbeddingModel {
        var m = WireEmbeddingModel()
        m.name = embedder.modelName
        m.version = embedder.modelVersion
        m.dimension = UInt32(embedder.dimension)
        return m
    }

    public func run() async {
        logger.info("embedder running", metadata: ["node.id": "\(nodeID)", "model": "\(embedder.modelName)"])
        await links.run { self.link(to: $0) }
        logger.info("embedder stopped", metadata: ["node.id": "\(nodeID)"])
    }

    private func link(to endpoint: String) -> WorkerLink {
        links.link(to: endpoint, capacity: 1,
                   register: { [self] r in r.model = model },
                   heartbeat: { [self] h in h.inFlight = UInt32(inFlight.withLock { $0 }) },
                   handle: { [self] env in await handle(env) })
    }

    func handle(_ env: WireEnvelope) async -> WireEnvelope.OneOf_Body {
        guard case .embedRequest(let r)? = env.body else {
            return .error(FacetError(.invalidArgument, "an embedder serves only embed requests", nodeID: nodeID).wire)
        }
        inFlight.withLock { $0 += 1 }
        defer { inFlight.withLock { $0 -= 1 } }
        let started = ContinuousClock.now
        let result = await offload(work) { [self] in embed(r) }
        metrics.request("embedRequest", outcome: (try? result.get()) != nil ? "ok" : "error", duration: started.duration(to: .now))
        switch result {
        case .success(let reply):
            logger.debug("embedded", metadata: ["request.id": "\(env.requestID)", "faces": "\(reply.faces.count)",
                                                "elapsed": "\(started.duration(to: .now))"])
            return .embedReply(reply)
        case .failure(let e):
            logger.info("embed failed", metadata: ["request.id": "\(env.requestID)", "error": "\(e)"])
            return .error(e.wire)
        }
    }

    func embed(_ r: WireEmbedRequest) -> Result<WireEmbedReply, FacetError> {
        let image: RGBImage
        do { image = try decoder.decode(Array(r.image.data), source: r.image.name.isEmpty ? "<request>" : r.image.name) } catch {
            let code: FacetError.Code = error.code == .tooLarge ? .imageTooLarge : .badImage
            return .failure(FacetError(code, "\(error)", field: "image", nodeID: nodeID))
        }
        let faces: [FaceAnalysis]
        do {
            faces = try embedder.analyze(image, upsample: Int(r.upsample), jitter: Int(r.jitter))
        } catch let e as EmbedderError {
            return .failure(FacetError(.invalidArgument, e.reason, nodeID: nodeID))
        } catch {
            return .failure(FacetError(.internalError, "embedding failed: \(error)", nodeID: nodeID))
        }
        let limit = r.maxFaces == 0 ? Self.maxFaces : min(Int(r.maxFaces), Self.maxFaces)
        let ordered = faces.sorted { a, b in
            let aa = (a.box.right - a.box.left + 1) * (a.box.bottom - a.box.top + 1)
            let bb = (b.box.right - b.box.left + 1) * (b.box.bottom - b.box.top + 1)
            return aa != bb ? aa > bb : a.confidence > b.confidence
        }.prefix(limit)
        var reply = WireEmbedReply()
        reply.model = model
        reply.imageWidth = UInt32(image.width)
        reply.imageHeight = UInt32(image.height)
        reply.faces = ordered.map { f in
            var w = WireFace()
            var box = WireBox()
            box.left = Int32(clamping: f.box.left); box.top = Int32(clamping: f.box.top)
            box.right = Int32(clamping: f.box.right); box.bottom = Int32(clamping: f.box.bottom)
            w.box = box
            w.confidence = Float(f.confidence)
            w.landmarks = f.landmarks.map { var p = WirePoint(); p.x = Float($0.x); p.y = Float($0.y); return p }
            if let p = f.maskProbability { w.maskProbability = Float(p); w.masked = f.masked ?? false }   // MaskAwareEmbedder
            if !r.skipEmbedding {
                w.embedding = WireEmbedding(values: f.embedding, modelVersion: embedder.modelVersion)
                if let p = f.periocularEmbedding { w.periocularEmbedding = WireEmbedding(values: p, modelVersion: embedder.modelVersion) }
            }
            return w
        }
        return .success(reply)
    }
}
