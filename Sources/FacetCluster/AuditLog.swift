import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging
import FacetStore
import FacetWire

/// One audit record: who asked for what, when, and how it ended. Never an embedding or an image; subjects appear
/// as references (a keyed hash of the subject id, see ``AuditLog/subjectReference(_:key:)``), so the trail can be
/// searched by subject (`facet audit --subject ID`) without holding the ids of erased people.
public struct AuditEntry: Codable, Sendable, Hashable {
    /// Position in the chain, from 1.
    public var seq: UInt64
    public var unixMs: Int64
    /// ISO 8601 UTC, for people.
    public var time: String
    /// The node that wrote the record.
    public var node: String
    /// The authenticated identity: `curve:` + the client's Z85 public key, or `unauthenticated` (plaintext mode).
    public var who: String
    /// The client's self-declared id (not authenticated) and the request id.
    public var clientID: String
    public var requestID: String
    /// enrol, identify, verify, delete, retention.
    public var action: String
    public var subject: String?
    public var collection: String?
    /// `ok` or the error code.
    public var outcome: String
    /// Counts and decisions (e.g. `templates=3`, `candidates=5`, `match=true`).
    public var detail: String?
    /// Identify: references of the subjects returned, best first.
    public var results: [String]?
    /// `hmac-sha256` (keyed chain) or `sha256`.
    public var alg: String
    /// The previous record's hash (64 hex digits; zeros for the first).
    public var prev: String
}

/// The append-only, hash-chained audit trail (JSON lines).
///
/// Each line is the entry's JSON (sorted keys) with a final `"hash"` field: HMAC-SHA256 under the audit key (or
/// SHA-256 without one) of the previous hash, a newline, and the line's JSON without the hash. Changing, inserting,
/// reordering or deleting any line breaks the chain at that point; with a key, nobody without it can forge a
/// consistent chain. Dropping lines at the end is detected only against a hash recorded elsewhere (`--verify`
/// prints the last one). Lines are written with one `write` each (append mode, survives kill -9) and synced to disk
/// every second; deletions are synced at once.
public final class AuditLog: @unchecked Sendable {   // mutable state guarded by `lock`
    public let path: String
    let nodeID: String
    let key: SymmetricKey?
    private let lock = NSLock()
    private var fd: Int32
    private var seq: UInt64
    private var last: String
    private var dirty = false
    private var syncTask: Task<Void, Never>?

    public static let genesis = String(repeating: "0", count: 64)

    /// Opens (creating) the trail at `path` and continues its chain. A torn last line (a crash mid-write; never
    /// seen with kill -9, possible on power loss) is cut off with a warning.
    public init(path: String, nodeID: String, key: MasterKey?, logger: Logger) throws {
        self.path = path
        self.nodeID = nodeID
        self.key = key?.key
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        fd = Glibc.open(path, O_RDWR | O_CREAT | O_APPEND, 0o600)
        guard fd >= 0 else { throw AuditError.io("cannot open \(path): errno \(errno)") }
        let data = (try? Data(contentsOf: URL(fileURLWithPath: path))) ?? Data()
        var end = data.count
        if let lastNewline = data.lastIndex(of: UInt8(ascii: "\n")) { end = lastNewline + 1 } else { end = 0 }
        if end < data.count {
            logger.warning("audit trail ends in a torn line; cutting it off", metadata: ["path": "\(path)", "bytes": "\(data.count - end)"])
            ftruncate(fd, off_t(end))
        }
        seq = 0
        last = Self.genesis
        if end > 0 {
            let body = data[0..<(end - 1)]
            let start = body.lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? 0
            let line = String(decoding: body[start...], as: UTF8.self)
            guard let (entry, hash) = Self.split(line) else { throw AuditError.io("\(path): last line is not an audit record") }
            seq = entry.seq
            last = hash
        }
        let weak = WeakBox(self)
        syncTask = Task.detached {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                guard let log = weak.value else { return }
                log.syncIfDirty()
            }
        }
    }

    deinit { syncTask?.cancel(); Glibc.close(fd) }

    /// The trail configured for a node: `security.auditLogFile`, else `DATA/audit.jsonl` when the node has a data
    /// directory, else none.
    static func open(for configuration: NodeConfiguration, logger: Logger) throws -> AuditLog? {
        let security = configuration.securitySettings
        guard let path = security.auditLogFile ?? configuration.dataDirectory.map({ $0 + "/audit.jsonl" }) else {
            logger.warning("no audit trail configured (security.auditLogFile)")
            return nil
        }
        return try AuditLog(path: path, nodeID: configuration.nodeID ?? "node", key: try security.auditKey(), logger: logger)
    }

    public func close() {
        syncTask?.cancel()
        lock.withLock { if dirty { fdatasync(fd); dirty = false } }
    }

    private func syncIfDirty() {
        lock.withLock { if dirty { fdatasync(fd); dirty = false } }
    }

    /// The reference under which `subject` appears in the trail.
    public static func subjectReference(_ subject: String, key: SymmetricKey?) -> String {
        let bytes = Array("facet-audit-subject-v1\u{0}".utf8) + Array(subject.utf8)
        let digest: [UInt8] = key.map { Array(HMAC<SHA256>.authenticationCode(for: bytes, using: $0)) } ?? Array(SHA256.hash(data: bytes))
        return "s:" + digest.prefix(16).map { String(format: "%02x", $0) }.joined()
    }

    func reference(_ subject: String) -> String { Self.subjectReference(subject, key: key) }

    /// Appends one entry (fills seq, time, node, alg, prev); returns it with its hash.
    @discardableResult
    public func append(who: String, clientID: String, requestID: String, action: String, subject: String?, collection: String?,
                       outcome: String, detail: String?, results: [String]? = nil, sync: Bool = false) -> AuditEntry {
        lock.withLock {
            let now = nowMilliseconds()
            var e = AuditEntry(seq: seq + 1, unixMs: now, time: Self.iso(now), node: nodeID, who: who, clientID: clientID,
                               requestID: requestID, action: action, subject: subject.map(reference), collection: collection,
                               outcome: outcome, detail: detail, results: results, alg: key == nil ? "sha256" : "hmac-sha256", prev: last)
            if e.collection?.isEmpty == true { e.collection = nil }
            let body = Self.encode(e)
            let hash = Self.chainHash(prev: last, body: body, key: key)
            let line = Array(body.dropLast()) + Array(",\"hash\":\"\(hash)\"}\n".utf8)
            let n = line.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n == line.count {
                seq = e.seq
                last = hash
                dirty = true
                if sync { fdatasync(fd); dirty = false }
            }
            return e
        }
    }

    // MARK: requests

    /// Records a client request handled by the coordinator (enrol, identify, verify, delete; others are not audited).
    func record(request env: WireEnvelope, reply: WireEnvelope.OneOf_Body, authenticatedAs userID: String?) {
        let who = userID.map { "curve:" + $0 } ?? "unauthenticated"
        var outcome = "ok", detail: String? = nil, results: [String]? = nil
        if case .error(let e) = reply { outcome = "\(FacetError(e).code)" }
        let action: String, subject: String?, collection: String?
        switch env.body {
        case .enrolRequest(let r)?:
            action = "enrol"; subject = r.subjectID; collection = r.collection.isEmpty ? "default" : r.collection
            if case .enrolReply(let x) = reply { detail = "templates=\(x.templateIds.count)" }
            else { detail = "images=\(r.images.count) embeddings=\(r.embeddings.count) faces=\(r.faces.count)" }
        case .identifyRequest(let r)?:
            action = "identify"; subject = nil; collection = r.collections.isEmpty ? nil : r.collections.joined(separator: ",")
            if case .identifyReply(let x) = reply {
                detail = "k=\(r.k) candidates=\(x.candidates.count)\(x.partial ? " partial" : "")"
                results = x.candidates.map { reference($0.subjectID) }
            }
        case .verifyRequest(let r)?:
            action = "verify"; subject = r.subjectID.isEmpty ? nil : r.subjectID; collection = r.collection.isEmpty ? nil : r.collection
            if case .verifyReply(let x) = reply { detail = "match=\(x.match)" }
        case .deleteSubjectRequest(let r)?:
            action = "delete"; subject = r.subjectID; collection = r.collection.isEmpty ? nil : r.collection
            if case .deleteSubjectReply(let x) = reply {
                detail = "templates=\(x.templatesDeleted)" + (x.retrainJobID.isEmpty ? "" : " retrain=\(x.retrainJobID)")
            }
        case .startPurgeModelRequest(let r)?:
            action = "purge-model"; subject = nil; collection = nil
            detail = "model_version=\(r.modelVersion) dry_run=\(r.dryRun)" + (r.reason.isEmpty ? "" : " reason=\(r.reason)")
            if case .job(let j) = reply { detail! += " job=\(j.jobID)" }
        default:
            return
        }
        append(who: who, clientID: env.clientID, requestID: env.requestID, action: action, subject: subject, collection: collection,
               outcome: outcome, detail: detail, results: results, sync: action == "delete" || action == "purge-model")
    }

    /// Records templates deleted by the retention job.
    func recordRetention(subject: String, partition: UInt32, templates: Int, node: String) {
        append(who: "retention-job", clientID: node, requestID: "", action: "retention", subject: subject, collection: nil,
               outcome: "ok", detail: "partition=\(partition) templates=\(templates)", sync: true)
    }

    /// Records what a model purge job deleted (or counted, in a dry run) when it ends.
    func recordPurge(job: String, version: String, dryRun: Bool, count: Coordinator.PurgeCount, outcome: String) {
        append(who: "purge-job", clientID: job, requestID: "", action: dryRun ? "purge-model-counted" : "purge-model-done", subject: nil,
               collection: nil, outcome: outcome,
               detail: "model_version=\(version) templates=\(count.templates) deleted=\(count.deleted) subjects=\(count.subjects) emptied=\(count.emptied)",
               sync: true)
    }

    // MARK: reading and verifying

    static func encode(_ e: AuditEntry) -> [UInt8] {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try! enc.encode(e))
    }

    static func chainHash(prev: String, body: [UInt8], key: SymmetricKey?) -> String {
        let input = Array(prev.utf8) + [0x0A] + body
        let digest: [UInt8] = key.map { Array(HMAC<SHA256>.authenticationCode(for: input, using: $0)) } ?? Array(SHA256.hash(data: input))
        return digest.map { String(format: "%02x", $0) }.joined()
    }

    /// Splits a line into its entry and stated hash; nil when it is not an audit line.
    static func split(_ line: String) -> (AuditEntry, String)? {
        let bytes = Array(line.utf8)
        let suffixCount = 9 + 64 + 2   // ,"hash":"<64 hex>"}
        guard bytes.count > suffixCount, Array(bytes[(bytes.count - suffixCount)..<(bytes.count - 66)]) == Array(",\"hash\":\"".utf8),
              bytes.suffix(2) == [UInt8(ascii: "\""), UInt8(ascii: "}")] else { return nil }
        let hash = String(decoding: bytes[(bytes.count - 66)..<(bytes.count - 2)], as: UTF8.self)
        let body = Array(bytes[0..<(bytes.count - suffixCount)]) + [UInt8(ascii: "}")]
        guard let e = try? JSONDecoder().decode(AuditEntry.self, from: Data(body)) else { return nil }
        return (e, hash)
    }

    /// The result of checking a trail.
    public struct Verification: Sendable {
        public var records = 0
        public var lastHash = AuditLog.genesis
        /// The first line that breaks the chain, with the reason; nil when the whole trail verifies.
        public var problem: (line: Int, reason: String)?
        public var ok: Bool { problem == nil }
    }

    /// Reads the entries of a trail (lines that do not parse are skipped; `verify` reports them).
    public static func read(path: String) throws -> [AuditEntry] {
        try lines(path).compactMap { split($0)?.0 }
    }

    /// Checks the whole chain: every line parses, sequence numbers run 1, 2, 3, …, each `prev` is the previous
    /// hash, each hash recomputes (with `key` when the trail is keyed).
    public static func verify(path: String, key: MasterKey?) throws -> Verification {
        var v = Verification()
        for (i, line) in try lines(path).enumerated() {
            guard let (e, hash) = split(line) else { v.problem = (i + 1, "not an audit record"); return v }
            guard e.seq == UInt64(v.records + 1) else { v.problem = (i + 1, "sequence \(e.seq), expected \(v.records + 1)"); return v }
            guard e.prev == v.lastHash else { v.problem = (i + 1, "previous hash does not match line \(i)"); return v }
            if e.alg == "hmac-sha256" && key == nil { v.problem = (i + 1, "keyed record: give the audit key to verify it"); return v }
            let body = encode(e)
            let expected = chainHash(prev: e.prev, body: body, key: e.alg == "hmac-sha256" ? key?.key : nil)
            let raw = Array(line.utf8)
            guard Array(raw[0..<(raw.count - 75)]) + [UInt8(ascii: "}")] == body else {
                v.problem = (i + 1, "record is not in canonical form (edited)"); return v
            }
            guard expected == hash else { v.problem = (i + 1, "hash does not match the record (edited, or another key)"); return v }
            v.records += 1
            v.lastHash = hash
        }
        return v
    }

    static func lines(_ path: String) throws -> [String] {
        guard let data = FileManager.default.contents(atPath: path) else { throw AuditError.io("cannot read \(path)") }
        return String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
    }

    static func iso(_ ms: Int64) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }
}

public enum AuditError: Error, CustomStringConvertible {
    case io(String)
    public var description: String { switch self { case .io(let m): m } }
}

private final class WeakBox<T: AnyObject>: @unchecked Sendable {   // written once at creation
    weak var value: T?
    init(_ v: T) { value = v }
}
