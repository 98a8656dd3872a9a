import ArgumentParser
import Foundation
import FacetCluster
import FacetStore

/// `facet audit`: read and verify an audit trail.
struct Audit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Read (and verify) a node's hash-chained audit trail.",
        discussion: "The coordinator writes client requests (enrol, identify, verify, delete) to DATA/audit/coordinator.jsonl under `facet cluster up`; matchers write retention deletions to their own trail. Subjects appear as keyed references; --subject computes the reference of an id.")

    @Option(help: "The audit trail file (default $FACET_AUDIT_LOG).") var log: String?
    @Option(help: "The audit key file (default $FACET_AUDIT_KEY as text); needed for keyed trails and --subject.") var key: String?
    @Option(help: "Only records at or after this time: ISO 8601 (2026-11-29T07:00:00Z) or an age like 30s, 15m, 2h, 7d.") var since: String?
    @Option(help: "Only records about this subject id.") var subject: String?
    @Option(help: "Only this action (enrol, identify, verify, delete, retention).") var action: String?
    @Flag(help: "Print JSON lines (the records as stored, with their hashes).") var json = false
    @Flag(help: "Verify the whole chain first; exit 1 if it is broken.") var verify = false

    func run() throws {
        guard let path = log ?? ProcessInfo.processInfo.environment["FACET_AUDIT_LOG"] else {
            throw ValidationError("give --log FILE (or set FACET_AUDIT_LOG)")
        }
        let auditKey: MasterKey? = try key.map { try MasterKey.read(from: $0) }
            ?? ProcessInfo.processInfo.environment["FACET_AUDIT_KEY"].map { try MasterKey(text: $0) }
        if verify {
            let v = try AuditLog.verify(path: path, key: auditKey)
            if let p = v.problem {
                FileHandle.standardError.write(Data("audit trail BROKEN at line \(p.line): \(p.reason) (\(v.records) records verified before it)\n".utf8))
                throw ExitCode(1)
            }
            FileHandle.standardError.write(Data("audit trail verified: \(v.records) records, last hash \(v.lastHash)\n".utf8))
        }
        let cutoff = try since.map(Self.parseSince)
        let ref = subject.map { AuditLog.subjectReference($0, key: auditKey?.key) }
        let raw = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
        for line in raw {
            guard let e = try? JSONDecoder().decode(AuditEntry.self, from: Data(line.utf8)) else { continue }
            if let cutoff, e.unixMs < cutoff { continue }
            if let ref, e.subject != ref && !(e.results ?? []).contains(ref) { continue }
            if let action, e.action != action { continue }
            if json { print(line); continue }
            var text = "\(e.seq)\t\(e.time)\t\(e.action)\t\(e.outcome)\twho=\(e.who)"
            if let s = e.subject { text += "\tsubject=\(s)" }
            if let c = e.collection { text += "\tcollection=\(c)" }
            if let d = e.detail { text += "\t\(d)" }
            if !e.requestID.isEmpty { text += "\trequest=\(e.requestID)" }
            print(text)
        }
    }

    /// ISO 8601 or an age (`90s`, `15m`, `2h`, `7d`) → ms since the epoch.
    static func parseSince(_ text: String) throws -> Int64 {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        if let unit = text.last, let n = Double(text.dropLast()), let scale = ["s": 1.0, "m": 60, "h": 3600, "d": 86400][String(unit)] {
            return now - Int64(n * scale * 1000)
        }
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        let g = ISO8601DateFormatter()
        g.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        guard let d = f.date(from: text) ?? g.date(from: text) else { throw ValidationError("--since: not a time or age: \(text)") }
        return Int64(d.timeIntervalSince1970 * 1000)
    }
}
