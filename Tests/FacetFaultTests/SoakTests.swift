import FacetTestSupport
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The soak with faults (`facet bench soak`, Sources/facet/BenchSoak.swift) run briefly: the same command, the same
/// cluster (coordinator + 3 matchers as processes, R = 2, CURVE and encryption at rest), one fault of each kind.
@Suite("Soak with faults (facet bench soak, short)", .serialized)
struct SoakTests {
    /// The parts of the JSON report the test checks.
    struct Report: Decodable {
        struct Enrolments: Decodable {
            var preloadAcknowledged: Int, preloadNotAcknowledged: Int, attempted: Int, acknowledged: Int, notAcknowledged: Int, calls: Int
            var callsFailedByCode: [String: Int]
        }
        struct Identifies: Decodable { var attempted: Int; var succeeded: Int; var failedByCode: [String: Int]; var partial: Int }
        struct Templates: Decodable { var acknowledged: Int; var lost: Int; var unverified: Int }
        struct ReplicaCheck: Decodable { var stoppedMatcher: String; var subjectsListed: Int; var missingSubjects: Int; var subjectsWithMissingTemplates: Int; var error: String? }
        struct FaultWindow: Decodable { var fault: String; var target: String; var startSeconds: Double; var healedAtSeconds: Double? }
        struct Latency: Decodable { var count: Int; var failed: Int }
        struct Phase: Decodable { var name: String; var identify: Latency; var enrol: Latency }
        struct NodeMemory: Decodable { var node: String; var startKiB: Int?; var endKiB: Int?; var restarts: Int }
        var enrolments: Enrolments
        var identify: Identifies
        var templates: Templates
        var healthyAtEnd: Bool
        var replicaChecks: [ReplicaCheck]
        var faults: [FaultWindow]
        var phases: [Phase]
        var memory: [NodeMemory]
    }

    /// The soak's whole log, the last 20,000 characters of each node's log (DIR/cluster/logs), and where the data
    /// directory was copied (under the system temporary directory, kept).
    static func failureDump(dir: String) -> String {
        var out = "SOAK-FAILURE — facet bench soak log:\n" + ((try? String(contentsOfFile: dir + "/soak.log", encoding: .utf8)) ?? "(none)")
        let logs = dir + "/cluster/logs"
        for name in ((try? FileManager.default.contentsOfDirectory(atPath: logs)) ?? []).sorted() {
            let text = (try? String(contentsOfFile: logs + "/" + name, encoding: .utf8)) ?? ""
            out += "\n===== node log \(name) (last 20000 of \(text.count) characters) =====\n" + text.suffix(20_000)
        }
        let kept = NSTemporaryDirectory() + "facet-soak-failure-\(Int(Date().timeIntervalSince1970))"
        if (try? FileManager.default.copyItem(atPath: dir, toPath: kept)) != nil { out += "\n(data directory copied to \(kept))" }
        return out
    }

    // Liveness 10 × 100 ms (as the cluster test harness): with the default 4 (0.4 s of silence) a CI run with other
    // process suites beside it made matchers and the coordinator drop each other again and again, fills restarted
    // until the 90 s heal budget ran out and the test's 360 s limit stopped the soak before its durability check
    // (session 7, CI log via `failureDump`).
    // Found lost acknowledged enrolments before the durable replica marks (docs/ops.md, "Soak with faults"); must pass
    // every time.
    @Test("kill -9 + restart of a matcher, SIGSTOP/SIGCONT of a matcher, kill -9 + restart of the coordinator under load: nothing acknowledged is lost",
          .timeLimit(.minutes(8)))
    func soakWithFaults() async throws {
        let binary = try facetBinaryPath()
        let dir = NSTemporaryDirectory() + "facet-soak-test-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let port = LoopbackPorts.reserve(4)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = ["bench", "soak", "--seconds", "24", "--identify-rate", "10", "--enrol-rate", "2", "--preload", "30",
                       "--partitions", "8", "--fault-seconds", "2", "--coordinator-down-seconds", "1", "--timeout-ms", "3000",
                       "--report-seconds", "4", "--heal-seconds", "90", "--heartbeat-ms", "100", "--liveness", "10", "--port", "\(port)",
                       "--data", dir + "/cluster", "--json-out", dir + "/report.json", "--markdown-out", dir + "/report.md"]
        let log = dir + "/soak.log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let h = FileHandle(forWritingAtPath: log)!
        p.standardOutput = h
        p.standardError = h
        try p.run()
        // Bounded: SIGTERM (the soak kills its nodes), then SIGKILL, then any node it left behind (DIR/pids).
        let deadline = Date().addingTimeInterval(360)
        while p.isRunning && Date() < deadline { try await Task.sleep(for: .milliseconds(200)) }
        let timedOut = p.isRunning
        if timedOut {
            kill(p.processIdentifier, SIGTERM)
            let grace = Date().addingTimeInterval(15)
            while p.isRunning && Date() < grace { try await Task.sleep(for: .milliseconds(100)) }
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        }
        p.waitUntilExit()
        if let pids = try? String(contentsOfFile: dir + "/cluster/pids", encoding: .utf8) {
            for line in pids.split(separator: "\n") {
                if let pid = Int32(line.split(separator: " ").first ?? "") { kill(pid, SIGCONT); kill(pid, SIGKILL) }
            }
        }
        if timedOut || p.terminationStatus != 0 {
            // Everything needed to diagnose it after the fact: the whole soak log and every node's log (the CI keeps
            // only the test output), and the data directory copied out of the one `defer` removes.
            print(Self.failureDump(dir: dir))
        }
        #expect(!timedOut, "the soak did not finish within 360 s (whole soak and node logs printed above)")
        #expect(p.terminationStatus == 0, "facet bench soak exited with \(p.terminationStatus) (whole soak and node logs printed above)")
        let data = try Data(contentsOf: URL(fileURLWithPath: dir + "/report.json"))
        let r = try JSONDecoder().decode(Report.self, from: data)
        print("SOAK-REPORT\n" + ((try? String(contentsOfFile: dir + "/report.md", encoding: .utf8)) ?? ""))
        if !r.healthyAtEnd || r.templates.lost != 0 || r.faults.contains(where: { $0.healedAtSeconds == nil }) {
            print(Self.failureDump(dir: dir))
        }

        // Every fault was injected and healed by itself.
        #expect(r.faults.map(\.fault) == ["matcher-kill", "matcher-stop", "coordinator-kill"])
        #expect(r.faults.map(\.target) == ["matcher-1", "matcher-2", "coordinator"])
        for f in r.faults { #expect(f.healedAtSeconds != nil, "\(f.fault) on \(f.target) did not heal") }
        #expect(r.healthyAtEnd)

        // Load really ran, in the steady phase and during each fault.
        #expect(r.enrolments.preloadAcknowledged == 30 && r.enrolments.preloadNotAcknowledged == 0)
        #expect(r.enrolments.acknowledged > 0 && r.enrolments.attempted == r.enrolments.acknowledged + r.enrolments.notAcknowledged)
        #expect(r.identify.attempted > 0 && r.identify.succeeded > 0)
        #expect(r.phases.map(\.name) == ["steady", "matcher-kill matcher-1", "matcher-stop matcher-2", "coordinator-kill coordinator"])
        for ph in r.phases { #expect(ph.identify.count > 0, "no identify in phase \(ph.name)") }

        // Nothing acknowledged is lost: every template found on the healed cluster, and with each matcher stopped in
        // turn the other replicas list every acknowledged subject with all its templates.
        #expect(r.templates.acknowledged == 3 * (r.enrolments.preloadAcknowledged + r.enrolments.acknowledged))
        #expect(r.templates.lost == 0)
        #expect(r.templates.unverified == 0)
        #expect(r.replicaChecks.map(\.stoppedMatcher) == ["matcher-0", "matcher-1", "matcher-2"])
        for c in r.replicaChecks {
            #expect(c.error == nil && c.missingSubjects == 0 && c.subjectsWithMissingTemplates == 0, "with \(c.stoppedMatcher) stopped: \(c)")
        }

        // Failures are only the ones a fault may cause (a deadline, an unavailable or not-durable write), never a
        // malformed reply or an internal error.
        let allowed: Set<String> = ["DEADLINE_EXCEEDED", "UNAVAILABLE", "NOT_DURABLE", "STALE_SHARD_MAP", "QUEUE_FULL"]
        for code in r.identify.failedByCode.keys { #expect(allowed.contains(code), "identify failed with \(code)") }
        for code in r.enrolments.callsFailedByCode.keys { #expect(allowed.contains(code), "enrol failed with \(code)") }

        // Memory was read from /proc for every node at the start and the end; the killed ones were restarted once.
        #expect(r.memory.map(\.node) == ["coordinator", "matcher-0", "matcher-1", "matcher-2", "client"])
        for m in r.memory { #expect(m.startKiB != nil && m.endKiB != nil, "\(m.node) RSS missing") }
        #expect(r.memory.map(\.restarts) == [1, 0, 1, 0, 0])
    }
}
