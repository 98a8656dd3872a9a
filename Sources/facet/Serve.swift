import ArgumentParser
import Foundation
import Logging
import FacetCluster
import FacetFace
import FacetMasking
import FacetTransport

/// `facet serve coordinator|matcher|embedder --config FILE`: one cluster node, until SIGTERM/SIGINT.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run one node of a Facet cluster (coordinator, matcher or embedder) until SIGTERM/SIGINT.",
        discussion: "Settings come from the JSON file given by --config (see docs/cluster.md); flags override it.")

    enum Role: String, ExpressibleByArgument, CaseIterable { case coordinator, matcher, embedder }

    @Argument(help: "The node's role: coordinator, matcher or embedder.") var role: Role
    @Option(help: "JSON configuration file.") var config: String?
    @Option(name: .customLong("node-id"), help: "Node id (matchers: must be one of the coordinator's matchers).") var nodeID: String?
    @Option(help: "Coordinator: client endpoint to bind.") var endpoint: String?
    @Option(help: "Coordinator: worker endpoint to bind; workers: the coordinator's worker endpoint.") var backend: String?
    @Option(help: "Matcher: data directory.") var data: String?
    @Option(help: "Embedder: model directory (default $FACET_MODELS or ./models).") var models: String?
    @Option(help: "Coordinator: number of partitions.") var partitions: UInt32?
    @Option(help: "Coordinator: replicas per partition.") var replicas: Int?
    @Option(help: "Coordinator: comma-separated matcher node ids.") var matchers: String?
    @Option(name: .customLong("heartbeat-ms"), help: "Heartbeat interval in milliseconds.") var heartbeatMilliseconds: Int?
    @Option(help: "Heartbeat intervals of silence after which a peer counts as dead (default 4).") var liveness: Int?
    @Option(help: "Coordinator: directory of its durable models (classifier versions, active embedding model).") var state: String?
    @Option(name: .customLong("retrain-after"), help: "Coordinator: retrain the classifier after this many template changes (0 = never).")
    var retrainAfter: Int?
    @Option(name: .customLong("model-version"), help: "Embedder: announce the model under this version tag.") var modelVersion: String?
    @Option(name: .customLong("periocular-fusion"), help: "Embedder: also send each face's periocular embedding: 'bundled' or a facet-periocular-fusion file.")
    var periocularFusion: String?
    @Option(help: "Workers: comma-separated worker endpoints of every coordinator (when several run).") var backends: String?
    @Option(name: .customLong("shard-map-file"), help: "Coordinator: file keeping the newest shard map.") var shardMapFile: String?
    @Option(help: "HOST:PORT for the HTTP listener: /metrics (Prometheus), /healthz, /readyz (port 0 = any free port).") var http: String?
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.") var logLevel: String = "info"
    @Flag(name: .customLong("insecure-plaintext"), help: "Development only: no CURVE on the sockets and no encryption at rest (security.insecurePlaintext).")
    var insecurePlaintext = false

    func resolvedConfiguration() throws -> NodeConfiguration {
        var base = NodeConfiguration()
        if let config { base = try NodeConfiguration.load(path: config) }
        var flags = NodeConfiguration()
        flags.nodeID = nodeID
        flags.frontendEndpoint = endpoint
        flags.backendEndpoint = backend
        flags.dataDirectory = data
        flags.modelsDirectory = models
        flags.partitionCount = partitions
        flags.replicationFactor = replicas
        flags.matchers = matchers.map { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } }
        flags.heartbeatIntervalMilliseconds = heartbeatMilliseconds
        flags.liveness = liveness
        if insecurePlaintext {
            var security = SecurityConfiguration()
            security.insecurePlaintext = true
            flags.security = security
        }
        flags.stateDirectory = state
        flags.retrainAfterChanges = retrainAfter
        flags.modelVersionTag = modelVersion
        flags.periocularFusion = periocularFusion
        flags.backendEndpoints = backends.map { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } }
        flags.shardMapFile = shardMapFile
        flags.httpEndpoint = http
        return base.overridden(by: flags)
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        var configuration = try resolvedConfiguration()
        if configuration.nodeID == nil { configuration.nodeID = role == .coordinator ? "coordinator" : nil }
        var logger = Logger(label: "facet.\(role.rawValue)")
        logger[metadataKey: "node.id"] = "\(configuration.nodeID ?? "-")"
        let context = try ZMQContext()
        let service: NodeService
        let metrics: NodeMetrics
        let scrape: @Sendable () -> String
        let readiness: @Sendable () -> HTTPStatusServer.Readiness
        switch role {
        case .coordinator:
            let node = try Coordinator(configuration: configuration, context: context, logger: logger)
            print("coordinator listening on \(node.frontendEndpoint) (workers: \(node.backendEndpoint))")
            service = NodeService(name: "coordinator") { await node.run() }
            metrics = node.metrics
            scrape = { node.scrape() }
            readiness = { node.readiness() }
        case .matcher:
            let node = try MatcherNode(configuration: configuration, context: context, logger: logger)
            service = NodeService(name: "matcher") { await node.run() }
            metrics = node.metrics
            scrape = { node.scrape() }
            readiness = { node.readiness() }
        case .embedder:
            let locator = FaceModelLocator(directory: configuration.modelsDirectory)
            // Mask-aware (docs/masks.md): the weak-detection fallback for masked faces, mask probability per face, and
            // the unmasking head for faces the detector calls masked — the same pipeline as `facet embed`.
            // With `periocularFusion` every face also gets its periocular embedding (Face.periocular_embedding).
            let base = try DlibFaceEmbedder(locator: locator, retryUpsampleWhenNoFace: true,
                                            weakFaceThreshold: DlibFaceEmbedder.maskedWeakFaceThreshold)
            let fusion = try configuration.periocularFusion.map { name -> (fusion: PeriocularFusion, model: any FaceDescriptorModel) in
                (try PeriocularFusion.named(name), base.descriptor)
            }
            let dlib = MaskAwareEmbedder(base: base, matcher: try .bundled(network: base.descriptor), periocular: fusion)
            let embedder: any Embedder = configuration.modelVersionTag.map { VersionTaggedEmbedder(dlib, version: $0) } ?? dlib
            let node = try EmbedderNode(configuration: configuration, embedder: embedder, context: context, logger: logger)
            service = NodeService(name: "embedder") { await node.run() }
            metrics = node.metrics
            scrape = { node.scrape() }
            readiness = { node.readiness() }
        }
        metrics.bootstrapMetricsSystem()
        var http: HTTPStatusServer?
        if let endpoint = configuration.httpEndpoint {
            http = try HTTPStatusServer(endpoint: endpoint, metrics: scrape, readiness: readiness)
            print("http listening on \(http!.endpoint) (/metrics, /healthz, /readyz)")
            logger.info("http listening", metadata: ["http": "\(http!.endpoint)"])
        }
        defer { http?.stop() }
        fflush(stdout)
        try await NodeService.runUntilSignalled([service], logger: logger)
    }
}
