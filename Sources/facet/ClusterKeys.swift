import Foundation
import FacetCluster
import FacetStore
import FacetTransport

/// Keys of a local cluster (`facet cluster up`), under DATA/keys (mode 0700): a CURVE pair per node and for the
/// command-line client, the allow-lists of client and worker public keys, a master key per matcher and the audit
/// key. Existing keys are kept, so restarting on the same data directory reuses them.
enum ClusterKeys {
    /// Creates what is missing and returns each node's security settings by node name.
    static func prepare(directory: String, nodes: [(name: String, role: String)]) throws -> [String: SecurityConfiguration] {
        let keys = directory + "/keys"
        try FileManager.default.createDirectory(atPath: keys, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        func pair(_ name: String) throws -> CurveKeyPair {
            let secret = "\(keys)/\(name).key_secret"
            if FileManager.default.fileExists(atPath: secret) { return try CurveKeyFiles.readKeyPair(secretKeyAt: secret) }
            let p = try CurveKeyPair.generate()
            try CurveKeyFiles.write(p, base: "\(keys)/\(name)")
            return p
        }
        func master(_ name: String) throws -> String {
            let path = "\(keys)/\(name).master"
            if !FileManager.default.fileExists(atPath: path) { try MasterKey.generate().write(to: path) }
            return path
        }
        _ = try pair("coordinator")
        let client = try pair("client")
        var workers: [String] = []
        for n in nodes where n.role != "coordinator" {
            let key = try pair(n.name).publicKey.z85
            workers.append("\(key) \(n.name)")
        }
        try ("# client public keys allowed on the coordinator's front end\n\(client.publicKey.z85) client\n")
            .write(toFile: keys + "/clients.allow", atomically: true, encoding: .utf8)
        try ("# worker public keys allowed on the coordinator's back end\n" + workers.map { $0 + "\n" }.joined())
            .write(toFile: keys + "/workers.allow", atomically: true, encoding: .utf8)
        let auditKey = try master("audit")
        var out: [String: SecurityConfiguration] = [:]
        for n in nodes {
            var s = SecurityConfiguration()
            s.secretKeyFile = "\(keys)/\(n.name).key_secret"
            switch n.role {
            case "coordinator":
                s.clientAllowListFile = keys + "/clients.allow"
                s.workerAllowListFile = keys + "/workers.allow"
                s.auditLogFile = directory + "/audit/coordinator.jsonl"
                s.auditKeyFile = auditKey
            case "matcher":
                s.coordinatorPublicKeyFile = keys + "/coordinator.key"
                s.masterKeyFile = try master(n.name)
                s.auditLogFile = directory + "/audit/\(n.name).jsonl"
                s.auditKeyFile = auditKey
            default:
                s.coordinatorPublicKeyFile = keys + "/coordinator.key"
            }
            out[n.name] = s
        }
        return out
    }
}

/// The node configurations of a local cluster on loopback, as `facet cluster up`, `facet bench soak` and
/// `facet bench cluster` start it: a coordinator named "coordinator" (state under DIR/coordinator), matchers with
/// their data under DIR/NAME, embedders; all on the same front and back endpoints and heartbeat settings.
struct LocalNodes {
    var nodes: [(name: String, role: String, config: NodeConfiguration)] = []

    init(directory: String, frontend: String, backend: String, heartbeatMilliseconds: Int, liveness: Int? = nil,
         partitions: UInt32, replicas: Int, matchers: [String], embedders: [String] = [], models: String? = nil) {
        var base = NodeConfiguration()
        base.frontendEndpoint = frontend
        base.backendEndpoint = backend
        base.heartbeatIntervalMilliseconds = heartbeatMilliseconds
        base.liveness = liveness
        var c = base
        c.nodeID = "coordinator"
        c.partitionCount = partitions
        c.replicationFactor = replicas
        c.matchers = matchers
        c.stateDirectory = directory + "/coordinator"
        nodes.append(("coordinator", "coordinator", c))
        for id in matchers {
            var m = base
            m.nodeID = id
            m.dataDirectory = directory + "/" + id
            nodes.append((id, "matcher", m))
        }
        for id in embedders {
            var e = base
            e.nodeID = id
            e.modelsDirectory = models
            nodes.append((id, "embedder", e))
        }
    }

    /// Changes the configuration of every node of `role`.
    mutating func configure(_ role: String, _ change: (inout NodeConfiguration) -> Void) {
        for i in nodes.indices where nodes[i].role == role { change(&nodes[i].config) }
    }

    /// CURVE keys, at-rest keys and audit keys for every node (`ClusterKeys`, under DIR/keys), or, with `secure`
    /// false, development mode (plaintext sockets, no encryption at rest).
    mutating func secure(_ secure: Bool, directory: String) throws {
        if secure {
            let security = try ClusterKeys.prepare(directory: directory, nodes: nodes.map { ($0.name, $0.role) })
            for i in nodes.indices { nodes[i].config.security = security[nodes[i].name] }
        } else {
            var s = SecurityConfiguration()
            s.insecurePlaintext = true
            for i in nodes.indices { nodes[i].config.security = s }
        }
    }

    /// Writes DIR/config/NAME.json for every node.
    func write(directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory + "/config", withIntermediateDirectories: true)
        for n in nodes { try n.config.write(path: "\(directory)/config/\(n.name).json") }
    }
}
