import Foundation
import Logging
import FacetStore
import FacetTransport

/// The security settings of a node (the `security` object of its JSON configuration; see docs/security.md).
///
/// Secure by default: a node without key files refuses to start unless `insecurePlaintext` is set, which turns off
/// CURVE on its sockets and encryption at rest (development only).
public struct SecurityConfiguration: Codable, Sendable, Hashable {
    /// Development only: plaintext sockets (no CURVE, no ZAP) and unencrypted partitions.
    public var insecurePlaintext: Bool?
    /// This node's CURVE secret key file (`facet keys generate` writes `NAME.key_secret`, mode 0600).
    public var secretKeyFile: String?
    /// Workers: the coordinator's CURVE public key file.
    public var coordinatorPublicKeyFile: String?
    /// Coordinator: allow-list of client public keys for the front end (one Z85 key per line).
    public var clientAllowListFile: String?
    /// Coordinator: allow-list of worker public keys for the back end.
    public var workerAllowListFile: String?
    /// Matchers: the at-rest master key file (`facet keys generate --master`), or `$FACET_MASTER_KEY`.
    public var masterKeyFile: String?
    /// Coordinator: the audit trail file (append-only, hash-chained JSON lines). Default `audit.jsonl` in the
    /// data directory when one is set.
    public var auditLogFile: String?
    /// Key for the audit chain's HMAC and subject references (a master-key file format), or `$FACET_AUDIT_KEY`.
    public var auditKeyFile: String?
    /// Matchers: retention period per collection in seconds ("*" applies to every other collection).
    public var retentionSeconds: [String: Int]?
    /// Matchers: how often the retention job runs (default 60 s).
    public var retentionIntervalSeconds: Double?

    public init() {}

    /// `other`'s set fields win.
    public func overridden(by other: SecurityConfiguration?) -> SecurityConfiguration {
        guard let other else { return self }
        var c = self
        if let v = other.insecurePlaintext { c.insecurePlaintext = v }
        if let v = other.secretKeyFile { c.secretKeyFile = v }
        if let v = other.coordinatorPublicKeyFile { c.coordinatorPublicKeyFile = v }
        if let v = other.clientAllowListFile { c.clientAllowListFile = v }
        if let v = other.workerAllowListFile { c.workerAllowListFile = v }
        if let v = other.masterKeyFile { c.masterKeyFile = v }
        if let v = other.auditLogFile { c.auditLogFile = v }
        if let v = other.auditKeyFile { c.auditKeyFile = v }
        if let v = other.retentionSeconds { c.retentionSeconds = v }
        if let v = other.retentionIntervalSeconds { c.retentionIntervalSeconds = v }
        return c
    }

    public var isPlaintext: Bool { insecurePlaintext ?? false }

    /// ZAP domains of the coordinator's two server sockets.
    public static let frontendDomain = "facet.front"
    public static let backendDomain = "facet.back"

    func required(_ value: String?, _ field: String, _ role: String) throws -> String {
        guard let value, !value.isEmpty else {
            throw ClusterError.configuration("""
                the \(role) needs security.\(field) (CURVE keys: `facet keys generate`), \
                or security.insecurePlaintext / --insecure-plaintext for development
                """)
        }
        return value
    }

    /// The coordinator's server security for both sockets, and the ZAP allow-lists by domain; nil for plaintext.
    func coordinatorSecurity() throws -> (keys: CurveKeyPair, allowed: [String: Set<CurveKey>])? {
        if isPlaintext { return nil }
        let keys = try CurveKeyFiles.readKeyPair(secretKeyAt: try required(secretKeyFile, "secretKeyFile", "coordinator"))
        let clients = try CurveKeyFiles.readAllowList(at: try required(clientAllowListFile, "clientAllowListFile", "coordinator"))
        let workers = try CurveKeyFiles.readAllowList(at: try required(workerAllowListFile, "workerAllowListFile", "coordinator"))
        return (keys, [Self.frontendDomain: clients, Self.backendDomain: workers])
    }

    /// A worker's client security towards the coordinator's back end.
    func workerSecurity(role: String) throws -> SocketSecurity {
        if isPlaintext { return .plaintext }
        let keys = try CurveKeyFiles.readKeyPair(secretKeyAt: try required(secretKeyFile, "secretKeyFile", role))
        let server = try CurveKeyFiles.readKey(at: try required(coordinatorPublicKeyFile, "coordinatorPublicKeyFile", role))
        return .curveClient(keys, serverPublicKey: server)
    }

    /// A matcher's at-rest master key: from `masterKeyFile`, else `$FACET_MASTER_KEY`; nil only in plaintext mode.
    func masterKey(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> MasterKey? {
        if let file = masterKeyFile, !file.isEmpty { return try MasterKey.read(from: file) }
        if let text = environment["FACET_MASTER_KEY"], !text.isEmpty { return try MasterKey(text: text) }
        if isPlaintext { return nil }
        throw ClusterError.configuration("""
            a matcher needs an at-rest master key: security.masterKeyFile (`facet keys generate --master`) or \
            $FACET_MASTER_KEY, or security.insecurePlaintext / --insecure-plaintext for development
            """)
    }

    /// The audit key: from `auditKeyFile`, else `$FACET_AUDIT_KEY`, else nil (the chain then uses plain SHA-256).
    func auditKey(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> MasterKey? {
        if let file = auditKeyFile, !file.isEmpty { return try MasterKey.read(from: file) }
        if let text = environment["FACET_AUDIT_KEY"], !text.isEmpty { return try MasterKey(text: text) }
        return nil
    }
}

extension NodeConfiguration {
    var securitySettings: SecurityConfiguration { security ?? SecurityConfiguration() }
}
