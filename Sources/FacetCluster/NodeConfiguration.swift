import Foundation

/// Settings of one node, read from a JSON file (`facet serve ROLE --config FILE`) and overridden by flags.
/// Every field is optional in the file; ``resolved()`` fills defaults.
public struct NodeConfiguration: Codable, Sendable, Hashable {
    /// Node id (matchers: stable across restarts, it names the node in the shard map).
    public var nodeID: String?
    /// Coordinator: where clients connect (ROUTER bind). Default tcp://127.0.0.1:5555.
    public var frontendEndpoint: String?
    /// Coordinator: where workers connect (ROUTER bind). Workers: the endpoint they connect to. Default tcp://127.0.0.1:5556.
    public var backendEndpoint: String?
    /// Matchers: the directory holding one LMDB partition per sub-directory.
    public var dataDirectory: String?
    /// Embedders: the model directory (default $FACET_MODELS or ./models).
    public var modelsDirectory: String?
    /// Coordinator: the shard map.
    public var partitionCount: UInt32?
    public var replicationFactor: Int?
    public var matchers: [String]?
    /// Heartbeat interval and the number of missed intervals before a peer counts as dead.
    public var heartbeatIntervalMilliseconds: Int?
    public var liveness: Int?
    /// Coordinator: deadline applied to client requests that carry none.
    public var defaultDeadlineMilliseconds: Int?
    /// Coordinator: how long one replica may take before the request fails over to another replica.
    public var replicaTimeoutMilliseconds: Int?
    /// Coordinator: how long an embedder may take for one image.
    public var embedTimeoutMilliseconds: Int?
    /// Maximum frame size on every socket.
    public var maxFrameBytes: Int?
    /// Matchers: default HNSW search breadth.
    public var defaultEf: Int?
    /// Coordinator: one flat decision threshold (Euclidean distance between unit embeddings) for every comparison
    /// type; when set it replaces the per-type thresholds of `comparisonThresholds`.
    public var verifyThreshold: Float?
    /// Coordinator: the per-comparison-type decision thresholds (unmasked–unmasked, masked–unmasked, masked–masked)
    /// used when the request names none: a `facet-comparison-thresholds` JSON file (`facet mask-train` writes one),
    /// or "bundled" (the default: the file shipped with FacetMasking, FMR 1e-3 on LFW people outside pairs.txt).
    public var comparisonThresholds: String?
    /// Coordinator: requests worked on at once before QUEUE_FULL.
    public var maxInFlight: Int?
    /// CURVE keys, allow-lists, at-rest and audit keys, retention (``SecurityConfiguration``, docs/security.md).
    public var security: SecurityConfiguration?
    /// Coordinator: directory of its durable models (classifier versions, active embedding model version);
    /// several coordinators may share it (docs/jobs.md). Nil = in memory only.
    public var stateDirectory: String?
    /// Coordinator: start a classifier retraining after this many templates were enrolled or deleted (0 = never).
    public var retrainAfterChanges: Int?
    /// Coordinator: Platt probability at which the classifier accepts its best subject (default 0.5).
    public var classifierThreshold: Float?
    /// Coordinator: how long a job waits for a partition without a ready replica before it fails.
    public var jobWaitMilliseconds: Int?
    /// Embedders: the model version they announce and stamp on embeddings (default: the model's own, "1"); the same
    /// network under another tag stands in for a second model when re-enrolment is exercised.
    public var modelVersionTag: String?
    /// Embedders: also compute each face's periocular embedding (`Face.periocular_embedding`): "bundled" (FacetMasking's
    /// `periocular-fusion-v2.json`) or a `facet-periocular-fusion` file; absent = off (one descriptor pass less per face).
    /// Coordinator: verify of two images fuses the full and the periocular distance when a side is masked and both
    /// faces carry periocular embeddings, deciding at the file's calibrated thresholds (the file must have them).
    public var periocularFusion: String?
    /// Coordinator: requests per second each client may send (token bucket keyed by CURVE key, else client id);
    /// absent or 0 = no limit. Over it: RATE_LIMITED with a retry hint.
    public var rateLimitPerSecond: Double?
    /// Coordinator: requests a client may send at once before the rate applies (default max(1, rate)).
    public var rateLimitBurst: Double?
    /// Workers: every coordinator's worker endpoint, when more than one coordinator runs (default: `backendEndpoint`).
    public var backendEndpoints: [String]?
    /// Coordinator: where it keeps the newest shard map (read at start, rewritten on every change). Optional: the
    /// matchers store the map too, and a coordinator adopts the newest one they report.
    public var shardMapFile: String?
    /// Every node: `HOST:PORT` of the HTTP listener for `/metrics` (Prometheus text format), `/healthz` and
    /// `/readyz`; port 0 picks a free port (logged). Absent = no listener.
    public var httpEndpoint: String?

    public init() {}

    public static func load(path: String) throws -> NodeConfiguration {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return try JSONDecoder().decode(NodeConfiguration.self, from: data)
    }

    public func write(path: String) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try enc.encode(self).write(to: URL(fileURLWithPath: path))
    }

    /// `other`'s set fields win.
    public func overridden(by other: NodeConfiguration) -> NodeConfiguration {
        var c = self
        if let v = other.nodeID { c.nodeID = v }
        if let v = other.frontendEndpoint { c.frontendEndpoint = v }
        if let v = other.backendEndpoint { c.backendEndpoint = v }
        if let v = other.dataDirectory { c.dataDirectory = v }
        if let v = other.modelsDirectory { c.modelsDirectory = v }
        if let v = other.partitionCount { c.partitionCount = v }
        if let v = other.replicationFactor { c.replicationFactor = v }
        if let v = other.matchers { c.matchers = v }
        if let v = other.heartbeatIntervalMilliseconds { c.heartbeatIntervalMilliseconds = v }
        if let v = other.liveness { c.liveness = v }
        if let v = other.defaultDeadlineMilliseconds { c.defaultDeadlineMilliseconds = v }
        if let v = other.replicaTimeoutMilliseconds { c.replicaTimeoutMilliseconds = v }
        if let v = other.embedTimeoutMilliseconds { c.embedTimeoutMilliseconds = v }
        if let v = other.maxFrameBytes { c.maxFrameBytes = v }
        if let v = other.defaultEf { c.defaultEf = v }
        if let v = other.verifyThreshold { c.verifyThreshold = v }
        if let v = other.comparisonThresholds { c.comparisonThresholds = v }
        if let v = other.maxInFlight { c.maxInFlight = v }
        if let v = other.security { c.security = (c.security ?? SecurityConfiguration()).overridden(by: v) }
        if let v = other.stateDirectory { c.stateDirectory = v }
        if let v = other.retrainAfterChanges { c.retrainAfterChanges = v }
        if let v = other.classifierThreshold { c.classifierThreshold = v }
        if let v = other.jobWaitMilliseconds { c.jobWaitMilliseconds = v }
        if let v = other.modelVersionTag { c.modelVersionTag = v }
        if let v = other.periocularFusion { c.periocularFusion = v }
        if let v = other.rateLimitPerSecond { c.rateLimitPerSecond = v }
        if let v = other.rateLimitBurst { c.rateLimitBurst = v }
        if let v = other.backendEndpoints { c.backendEndpoints = v }
        if let v = other.shardMapFile { c.shardMapFile = v }
        if let v = other.httpEndpoint { c.httpEndpoint = v }
        return c
    }

    var heartbeatInterval: Duration { .milliseconds(heartbeatIntervalMilliseconds ?? 250) }
    var livenessCount: Int { max(2, liveness ?? 4) }
    var frameLimit: Int { maxFrameBytes ?? (16 << 20) }
    var frontend: String { frontendEndpoint ?? "tcp://127.0.0.1:5555" }
    var backend: String { backendEndpoint ?? "tcp://127.0.0.1:5556" }
    /// Workers: the coordinators to connect to.
    var backends: [String] { backendEndpoints.flatMap { $0.isEmpty ? nil : $0 } ?? [backend] }
}
