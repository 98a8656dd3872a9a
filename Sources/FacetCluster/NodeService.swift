import Logging
import ServiceLifecycle

/// A node's main loop as a swift-service-lifecycle ``Service``: graceful shutdown (SIGTERM/SIGINT through the
/// ``ServiceGroup``) cancels the loop, which then finishes its work in hand (matchers checkpoint their indexes,
/// workers tell the coordinator they leave, sockets close).
public struct NodeService: Service {
    let name: String
    let body: @Sendable () async -> Void

    public init(name: String, body: @escaping @Sendable () async -> Void) {
        self.name = name
        self.body = body
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown { await body() }
    }

    /// Runs `services` until SIGTERM or SIGINT.
    public static func runUntilSignalled(_ services: [NodeService], logger: Logger) async throws {
        let group = ServiceGroup(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
    }
}
