import Foundation
import Logging
import FacetTransport
import FacetWire

/// What the worker nodes (``MatcherNode``, ``EmbedderNode``) share: their identity and start time, the CURVE settings
/// of their connections, and one ``WorkerLink`` per configured coordinator (`backendEndpoints`), whose registration
/// and heartbeats carry the common fields filled in here; each node adds its role's own fields.
struct WorkerLinks: Sendable {
    let nodeID: String
    let role: WireNodeRole
    let configuration: NodeConfiguration
    let context: ZMQContext
    let logger: Logger
    /// CURVE client settings towards the coordinators' back ends (plaintext in development mode).
    let security: SocketSecurity
    let started = nowMilliseconds()

    /// `roleName` names the role in configuration errors ("matcher", "embedder").
    init(nodeID: String, role: WireNodeRole, roleName: String, configuration: NodeConfiguration, context: ZMQContext,
         logger: Logger) throws {
        self.nodeID = nodeID
        self.role = role
        self.configuration = configuration
        self.context = context
        self.logger = logger
        security = try configuration.securitySettings.workerSecurity(role: roleName)
    }

    /// A link to the coordinator at `endpoint`. The registration carries node id, role, `capacity`, software version
    /// and start time, heartbeats node id and state, and `register` / `heartbeat` add the role's fields; `handle`
    /// answers requests, `observe` sees the coordinator's heartbeats and registration replies, `handleNow` takes the
    /// requests it can answer without a task (see ``WorkerLink``).
    func link(to endpoint: String, capacity: UInt32,
              register: @escaping @Sendable (inout WireWorkerRegister) -> Void,
              heartbeat: @escaping @Sendable (inout WireHeartbeat) -> Void,
              handle: @escaping @Sendable (WireEnvelope) async -> WireEnvelope.OneOf_Body,
              observe: @escaping @Sendable (WireEnvelope) -> Void = { _ in },
              handleNow: (@Sendable (WireEnvelope, _ reply: @escaping @Sendable (WireEnvelope.OneOf_Body) -> Void) -> Bool)? = nil) -> WorkerLink {
        let nodeID = nodeID, role = role, started = started
        return WorkerLink(
            context: context, endpoint: endpoint, nodeID: nodeID, interval: configuration.heartbeatInterval,
            liveness: configuration.livenessCount, maxFrameBytes: configuration.frameLimit, logger: logger,
            makeRegister: {
                var r = WireWorkerRegister()
                r.nodeID = nodeID
                r.role = role
                r.capacity = capacity
                r.softwareVersion = FacetCluster.softwareVersion
                r.startedUnixMs = started
                register(&r)
                return r
            },
            makeHeartbeat: {
                var h = WireHeartbeat()
                h.nodeID = nodeID
                h.state = .ready
                heartbeat(&h)
                return h
            },
            handle: handle, security: security, observe: observe, handleNow: handleNow)
    }

    /// Runs `link(endpoint)` for every configured coordinator, and the `alongside` tasks, until cancelled.
    func run(_ link: @escaping @Sendable (String) -> WorkerLink, alongside: [@Sendable () async -> Void] = []) async {
        await withTaskGroup(of: Void.self) { group in
            for endpoint in configuration.backends { group.addTask { await link(endpoint).run() } }
            for task in alongside { group.addTask { await task() } }
            await group.waitForAll()
        }
    }
}
