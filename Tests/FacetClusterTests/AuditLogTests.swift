import Foundation
import Logging
import Testing
import FacetStore
import FacetTestSupport
import FacetWire
@testable import FacetCluster

@Suite("Audit trail (hash chain)")
struct AuditLogTests {
    let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    func write(_ path: String, key: MasterKey?, count: Int) throws {
        let log = try AuditLog(path: path, nodeID: "coordinator", key: key, logger: logger)
        for i in 0..<count {
            log.append(who: "curve:K\(i % 2)", clientID: "c", requestID: "r-\(i)", action: i % 3 == 0 ? "enrol" : "identify",
                       subject: "person-\(i % 4)", collection: "default", outcome: "ok", detail: "n=\(i)")
        }
        log.close()
    }

    func lines(_ path: String) throws -> [String] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
    }

    func store(_ lines: [String], _ path: String) throws {
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
    }

    @Test("a written chain verifies, continues across reopening, and holds no subject ids", arguments: [true, false])
    func chainVerifies(keyed: Bool) throws {
        try withTemporaryDirectory { dir in
            let path = dir.path + "/audit.jsonl"
            let key = keyed ? MasterKey.generate() : nil
            try write(path, key: key, count: 10)
            try write(path, key: key, count: 5)   // reopened: the chain continues
            let v = try AuditLog.verify(path: path, key: key)
            #expect(v.ok, "\(String(describing: v.problem))")
            #expect(v.records == 15)
            let entries = try AuditLog.read(path: path)
            #expect(entries.map(\.seq) == Array(1...15))
            #expect(!(try String(contentsOfFile: path, encoding: .utf8)).contains("person-"))
            #expect(entries[0].subject == AuditLog.subjectReference("person-0", key: key?.key))
            let mode = (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue
            #expect(mode == 0o600)
        }
    }

    @Test("editing, deleting, inserting or reordering a record, or verifying with another key, breaks the chain at that line")
    func tamperingIsDetected() throws {
        try withTemporaryDirectory { dir in
            let path = dir.path + "/audit.jsonl"
            let key = MasterKey.generate()
            try write(path, key: key, count: 8)
            let original = try lines(path)
            let t = dir.path + "/t.jsonl"

            var edited = original
            edited[3] = edited[3].replacingOccurrences(of: "\"outcome\":\"ok\"", with: "\"outcome\":\"notFound\"")
            try store(edited, t)
            #expect(try AuditLog.verify(path: t, key: key).problem?.line == 4)

            var deleted = original
            deleted.remove(at: 5)
            try store(deleted, t)
            #expect(try AuditLog.verify(path: t, key: key).problem?.line == 6)

            var swapped = original
            swapped.swapAt(1, 2)
            try store(swapped, t)
            #expect(try AuditLog.verify(path: t, key: key).problem?.line == 2)

            var inserted = original
            inserted.insert(original[2], at: 3)
            try store(inserted, t)
            #expect(try AuditLog.verify(path: t, key: key).problem?.line == 4)

            // Re-encoding a record (same content, different JSON bytes) is an edit too.
            var reformatted = original
            reformatted[0] = reformatted[0].replacingOccurrences(of: "\":", with: "\" :")
            try store(reformatted, t)
            #expect(try AuditLog.verify(path: t, key: key).problem?.line == 1)

            #expect(try AuditLog.verify(path: path, key: MasterKey.generate()).problem?.line == 1)
            #expect(try AuditLog.verify(path: path, key: nil).problem?.line == 1)
            #expect(try AuditLog.verify(path: path, key: key).ok)
        }
    }

    @Test("a torn last line (crash mid-write) is cut off on reopening and the chain continues")
    func tornTail() throws {
        try withTemporaryDirectory { dir in
            let path = dir.path + "/audit.jsonl"
            try write(path, key: nil, count: 3)
            let h = FileHandle(forWritingAtPath: path)!
            h.seekToEndOfFile()
            h.write(Data("{\"action\":\"enr".utf8))
            try h.close()
            try write(path, key: nil, count: 2)
            let v = try AuditLog.verify(path: path, key: nil)
            #expect(v.ok && v.records == 5)
        }
    }

    @Test("requests are recorded with who, what and outcome, never with embeddings")
    func requestRecords() throws {
        try withTemporaryDirectory { dir in
            let path = dir.path + "/audit.jsonl"
            let log = try AuditLog(path: path, nodeID: "coordinator", key: nil, logger: logger)
            var enrol = WireEnrolRequest()
            enrol.subjectID = "alice"
            enrol.embeddings = [WireEmbedding(values: [Float](repeating: 0.123456, count: 128), modelVersion: "1")]
            var enrolReply = WireEnrolReply()
            enrolReply.templateIds = [42]
            log.record(request: WireEnvelope.request(.enrolRequest(enrol), id: "req-1", clientID: "app"), reply: .enrolReply(enrolReply),
                       authenticatedAs: "KEYZ85")
            var del = WireDeleteSubjectRequest()
            del.subjectID = "bob"
            log.record(request: WireEnvelope.request(.deleteSubjectRequest(del), id: "req-2", clientID: "app"),
                       reply: .error(FacetError(.notFound, "no such subject").wire), authenticatedAs: nil)
            log.record(request: WireEnvelope.request(.statusRequest(WireStatusRequest()), id: "req-3", clientID: "app"),
                       reply: .statusReply(WireStatusReply()), authenticatedAs: "KEYZ85")
            var purge = WireStartPurgeModelRequest()
            purge.modelVersion = "1"
            purge.reason = "retired"
            log.record(request: WireEnvelope.request(.startPurgeModelRequest(purge), id: "req-4", clientID: "ops"),
                       reply: .job(WireJob.with { $0.jobID = "coordinator-purge-model-1" }), authenticatedAs: "OPS")
            log.recordPurge(job: "coordinator-purge-model-1", version: "1", dryRun: false,
                            count: Coordinator.PurgeCount(templates: 80, deleted: 80, subjects: 40, emptied: 10), outcome: "ok")
            log.close()
            let e = try AuditLog.read(path: path)
            #expect(e.count == 4)   // status is not audited
            #expect(e[2].action == "purge-model" && e[2].who == "curve:OPS" && e[2].outcome == "ok"
                    && e[2].detail == "model_version=1 dry_run=false reason=retired job=coordinator-purge-model-1")
            #expect(e[3].action == "purge-model-done" && e[3].who == "purge-job" && e[3].clientID == "coordinator-purge-model-1"
                    && e[3].detail == "model_version=1 templates=80 deleted=80 subjects=40 emptied=10")
            #expect(try AuditLog.verify(path: path, key: nil).ok)
            #expect(e[0].action == "enrol" && e[0].who == "curve:KEYZ85" && e[0].requestID == "req-1" && e[0].outcome == "ok")
            #expect(e[0].detail == "templates=1" && e[0].collection == "default")
            #expect(e[1].action == "delete" && e[1].who == "unauthenticated" && e[1].outcome != "ok")
            let text = try String(contentsOfFile: path, encoding: .utf8)
            #expect(!text.contains("0.123456") && !text.contains("alice") && !text.contains("bob"))
            var floatText = ""
            withUnsafeBytes(of: Float(0.123456).bitPattern.littleEndian) { floatText = String(decoding: $0, as: UTF8.self) }
            #expect(!text.contains(floatText))
        }
    }
}

@Suite("Retention policy")
struct RetentionPolicyTests {
    @Test("per-collection periods, a default, and templates kept without a period")
    func periods() {
        let p = RetentionPolicy(seconds: ["visitors": 60, "*": 3600])
        #expect(p.expired(collection: "visitors", createdAt: 0, now: 60_000))
        #expect(!p.expired(collection: "visitors", createdAt: 1, now: 60_000))
        #expect(p.expired(collection: "staff", createdAt: 0, now: 3_600_000))
        #expect(!p.expired(collection: "staff", createdAt: 0, now: 3_599_999))
        let keepOthers = RetentionPolicy(seconds: ["visitors": 60])
        #expect(!keepOthers.expired(collection: "staff", createdAt: 0, now: .max / 2))
    }
}
