import ArgumentParser
import Foundation
import FacetClient
import FacetCluster
import FacetTestSupport
import FacetTransport
import FacetWire
#if canImport(Glibc)
import Glibc
#endif

/// `facet bench soak`: a soak with faults. A real local cluster (coordinator + matchers as separate processes on
/// 127.0.0.1, CURVE on every socket, templates encrypted at rest) gets a steady open-loop identify + enrol load
/// from the client library while faults are injected on a schedule (kill -9 + restart of a matcher, SIGSTOP/SIGCONT
/// of a matcher, kill -9 + restart of the coordinator). At the end every acknowledged enrolment is checked (identify
/// finds each template at distance 0 on the healed cluster; the subject listing with each matcher stopped in turn
/// shows every subject with all its templates on the other replica), and a report gives operations attempted /
/// acknowledged / lost, failed queries by error code, latency per phase, each node's memory at start and end, and
/// throughput and memory over time (JSON and Markdown).
struct BenchSoak: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "soak",
        abstract: "Soak with faults: steady identify + enrol load on a local CURVE cluster while matchers and the coordinator are killed, stopped and restarted; checks that nothing acknowledged is lost.",
        discussion: """
        Synthetic face-like embeddings (no images, no embedder). Load is open loop: requests start on a fixed
        schedule, not when the previous one finished, so a stalled cluster shows as latency and errors. Enrolments
        are retried (idempotent template ids) on retryable errors, as a client should; identify queries are not.
        Faults are spread evenly over --seconds, one after the other: each waits until the cluster is healthy again
        (every partition with --replicas live replicas) before the next starts; the load runs until the last fault
        has healed even if that is after --seconds. A request belongs to the phase in which it started: a fault's
        phase runs from the injection until the cluster is healthy again. Progress goes to stderr, the Markdown
        report to stdout (and --markdown-out), the JSON report to --json-out.
        """)

    @Option(help: "Seconds of load (faults are spread over them).") var seconds: Double = 600
    @Option(help: "Identify requests per second.") var identifyRate: Double = 20
    @Option(help: "Enrolments (one subject with 3 templates each) per second.") var enrolRate: Double = 2
    @Option(help: "Subjects enrolled before the load starts (the identify queries search them).") var preload: Int = 200
    @Option(help: "Matchers.") var matchers: Int = 3
    @Option(help: "Replicas per partition.") var replicas: Int = 2
    @Option(help: "Partitions.") var partitions: UInt32 = 8
    @Option(help: "Comma-separated faults in order: matcher-kill, matcher-stop, coordinator-kill, coordinator-stop (empty = none).")
    var faults: String = "matcher-kill,matcher-stop,coordinator-kill"
    @Option(help: "Seconds a matcher stays killed (before its restart) or stopped (before SIGCONT).") var faultSeconds: Double = 5
    @Option(help: "Seconds the coordinator stays killed or stopped.") var coordinatorDownSeconds: Double = 2
    @Option(name: .customLong("timeout-ms"), help: "Client deadline of every request in milliseconds.") var timeoutMilliseconds: Int = 5000
    @Option(help: "Retries of an enrolment after a retryable error (0.5 s apart).") var enrolRetries: Int = 5
    @Option(help: "Seconds per row of the throughput/memory timeline.") var reportSeconds: Double = 10
    @Option(help: "Seconds to wait for the cluster to become healthy (start, after each fault, before the checks).")
    var healSeconds: Double = 120
    @Option(help: "First TCP port (the coordinator's client port; +1 for its workers).") var port: Int = 27_655
    @Option(help: "Data directory (default: a new temporary directory, removed at the end unless --keep).") var data: String?
    @Flag(help: "Keep the data directory (logs, partitions, keys).") var keep = false
    @Option(help: "Seed of the synthetic embeddings.") var seed: UInt64 = 11
    @Option(name: .customLong("heartbeat-ms"), help: "Heartbeat interval of the nodes in milliseconds.") var heartbeatMilliseconds: Int = 250
    @Option(help: "Heartbeat intervals of silence after which a node counts as dead (default 4).") var liveness: Int?
    @Option(help: "Write the JSON report here.") var jsonOut: String?
    @Option(help: "Write the Markdown report here.") var markdownOut: String?
    @Flag(name: .customLong("insecure-plaintext"), help: "No CURVE, no encryption at rest (to compare; the soak normally runs secured).")
    var insecurePlaintext = false

    var faultList: [SoakFault] { faults.split(separator: ",").compactMap { SoakFault(rawValue: $0.trimmingCharacters(in: .whitespaces)) } }

    func validate() throws {
        guard seconds > 0, identifyRate >= 0, enrolRate >= 0, identifyRate + enrolRate > 0 else {
            throw ValidationError("--seconds must be positive and at least one of --identify-rate, --enrol-rate positive")
        }
        guard matchers >= 1, (1...matchers).contains(replicas), partitions >= 1 else {
            throw ValidationError("--matchers ≥ 1, --replicas in 1...matchers, --partitions ≥ 1")
        }
        let names = faults.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        for n in names where SoakFault(rawValue: n) == nil {
            throw ValidationError("unknown fault '\(n)' (matcher-kill, matcher-stop, coordinator-kill, coordinator-stop)")
        }
        if faultList.contains(where: { $0 == .matcherKill || $0 == .matcherStop }) {
            guard replicas >= 2 else { throw ValidationError("matcher faults need --replicas ≥ 2 (else data is unavailable, by design)") }
        }
        guard preload >= 1, timeoutMilliseconds >= 100, enrolRetries >= 0, reportSeconds > 0 else {
            throw ValidationError("--preload ≥ 1, --timeout-ms ≥ 100, --enrol-retries ≥ 0, --report-seconds > 0")
        }
    }

    @Sendable func say(_ s: String) { FileHandle.standardError.write(Data("[soak] \(s)\n".utf8)) }

    func run() async throws {
        let dir = data ?? (NSTemporaryDirectory() + "facet-soak-\(getpid())")
        let removeAtEnd = data == nil && !keep
        let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let cluster = try SoakCluster(executable: executable, directory: dir, matchers: matchers, replicas: replicas,
                                      partitions: partitions, port: port, heartbeatMilliseconds: heartbeatMilliseconds,
                                      liveness: liveness, secure: !insecurePlaintext)
        SoakCluster.installSignalCleanup(cluster)
        defer {
            cluster.shutdown()
            if removeAtEnd { try? FileManager.default.removeItem(atPath: dir) }
        }
        let report = try await SoakRun(options: self, cluster: cluster, say: say).run()
        let md = report.markdown()
        print(md)
        fflush(stdout)
        if let markdownOut { try md.write(toFile: markdownOut, atomically: true, encoding: .utf8) }
        if let jsonOut {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            try enc.encode(report).write(to: URL(fileURLWithPath: jsonOut))
        }
        if report.lostTotal > 0 || report.templates.unverified > 0 {
            say("FAILED: \(report.lostTotal) acknowledged templates or subjects lost, \(report.templates.unverified) unverified")
            throw ExitCode(2)
        }
        if report.faults.contains(where: { $0.healedAtSeconds == nil }) {
            say("FAILED: the cluster did not heal after every fault")
            throw ExitCode(3)
        }
    }
}

enum SoakFault: String, Codable, Sendable {
    case matcherKill = "matcher-kill", matcherStop = "matcher-stop", coordinatorKill = "coordinator-kill", coordinatorStop = "coordinator-stop"
}

// MARK: the cluster

/// The coordinator and matchers as child processes (`facet serve ROLE --config FILE`), with CURVE keys, at-rest
/// keys and audit trails as `facet cluster up` makes them. Nodes are started, killed, stopped and continued by the
/// soak; the child pids are kept in DIR/pids so that whoever kills the soak itself can clean up.
final class SoakCluster: @unchecked Sendable {   // mutable state guarded by `lock`
    let executable: String
    let directory: String
    let matcherNames: [String]
    let partitions: UInt32
    let replicas: Int
    let frontend: String
    let curve: FacetClient.Curve?
    private let lock = NSLock()
    private var processes: [String: Process] = [:]
    private var starts: [String: Int] = [:]

    init(executable: String, directory: String, matchers: Int, replicas: Int, partitions: UInt32, port: Int,
         heartbeatMilliseconds: Int, liveness: Int? = nil, secure: Bool) throws {
        self.executable = executable
        self.directory = directory
        matcherNames = (0..<matchers).map { "matcher-\($0)" }
        self.partitions = partitions
        self.replicas = replicas
        frontend = "tcp://127.0.0.1:\(port)"
        let fm = FileManager.default
        try fm.createDirectory(atPath: directory + "/config", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: directory + "/logs", withIntermediateDirectories: true)
        var local = LocalNodes(directory: directory, frontend: frontend, backend: "tcp://127.0.0.1:\(port + 1)",
                               heartbeatMilliseconds: heartbeatMilliseconds, liveness: liveness, partitions: partitions,
                               replicas: replicas, matchers: matcherNames)
        local.configure("coordinator") { $0.maxInFlight = 1024 }
        try local.secure(secure, directory: directory)
        if secure {
            let keys = directory + "/keys"
            curve = FacetClient.Curve(clientKeys: try CurveKeyFiles.readKeyPair(secretKeyAt: keys + "/client.key_secret"),
                                      serverPublicKey: try CurveKeyFiles.readKey(at: keys + "/coordinator.key"))
        } else {
            curve = nil
        }
        try local.write(directory: directory)
    }

    var nodeNames: [String] { ["coordinator"] + matcherNames }

    func start(_ name: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = ["serve", name == "coordinator" ? "coordinator" : "matcher", "--config", "\(directory)/config/\(name).json",
                       "--log-level", "notice"]
        let log = "\(directory)/logs/\(name).log"
        if !FileManager.default.fileExists(atPath: log) { _ = FileManager.default.createFile(atPath: log, contents: nil) }
        let h = FileHandle(forWritingAtPath: log)!
        h.seekToEndOfFile()
        p.standardOutput = h
        p.standardError = h
        try p.run()
        lock.withLock {
            processes[name] = p
            starts[name, default: 0] += 1
            writePids()
        }
    }

    func startAll() throws { for n in nodeNames { try start(n) } }

    private func writePids() {   // lock held
        let text = processes.keys.sorted().compactMap { n in processes[n].map { "\($0.processIdentifier) \(n)\n" } }.joined()
        try? text.write(toFile: directory + "/pids", atomically: true, encoding: .utf8)
    }

    func pid(_ name: String) -> pid_t? { lock.withLock { processes[name]?.processIdentifier } }
    func restarts(_ name: String) -> Int { lock.withLock { max(0, (starts[name] ?? 0) - 1) } }

    func signal(_ name: String, _ sig: Int32) {
        guard let pid = pid(name) else { return }
        ProcessSignals.send(sig, to: pid)   // after SIGSTOP: once every thread is stopped
    }

    /// kill -9 and reap.
    func kill9(_ name: String) {
        guard let p = lock.withLock({ processes.removeValue(forKey: name) }) else { return }
        if p.isRunning { kill(p.processIdentifier, SIGCONT); kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        lock.withLock { writePids() }
    }

    /// VmRSS in KiB from /proc/PID/status (nil when not running).
    static func rssKiB(pid: pid_t) -> Int? {
        guard let s = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = s.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return nil }
        return Int(line.split(separator: " ").dropFirst().first ?? "")
    }

    func rssKiB() -> [String: Int] {
        var out: [String: Int] = [:]
        for n in nodeNames { if let pid = pid(n), let r = Self.rssKiB(pid: pid) { out[n] = r } }
        if let r = Self.rssKiB(pid: getpid()) { out["client"] = r }
        return out
    }

    /// SIGCONT + SIGKILL every node and reap it.
    func shutdown() {
        let all = lock.withLock { () -> [Process] in let a = Array(processes.values); processes.removeAll(); writePids(); return a }
        for p in all where p.isRunning { kill(p.processIdentifier, SIGCONT); kill(p.processIdentifier, SIGKILL) }
        for p in all { p.waitUntilExit() }
    }

    nonisolated(unsafe) private static var cleanupSources: [DispatchSourceSignal] = []

    /// SIGINT/SIGTERM: kill the nodes, then exit (so an interrupted soak leaves no processes behind).
    static func installSignalCleanup(_ cluster: SoakCluster) {
        for sig in [SIGINT, SIGTERM] {
            Glibc.signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                cluster.shutdown()
                FileHandle.standardError.write(Data("[soak] signal \(sig): nodes killed, exiting\n".utf8))
                exit(130)
            }
            source.resume()
            cleanupSources.append(source)
        }
    }

    /// Every partition has `replicas` live replicas (and the coordinator answers).
    func isHealthy(_ client: FacetClient) async -> Bool {
        guard let s = try? await client.status(includePartitions: true, timeout: .seconds(2)) else { return false }
        return s.healthy && s.partitions.count == Int(partitions) && s.partitions.allSatisfy { Int($0.liveReplicas) == replicas }
    }

    /// Waits (bounded) until healthy; returns false on time-out.
    func waitUntilHealthy(_ client: FacetClient, seconds: Double) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if await isHealthy(client) { return true }
            try? await Task.sleep(for: .milliseconds(250))
        }
        return false
    }

    /// Waits (bounded) until the coordinator no longer counts `node` as ready.
    func waitUntilNotReady(_ client: FacetClient, node: String, seconds: Double) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let s = try? await client.status(timeout: .seconds(2)),
               !s.nodes.contains(where: { $0.nodeID == node && $0.state == .ready }) { return true }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return false
    }
}

// MARK: the run

/// One client call as the soak saw it.
struct SoakCall: Sendable {
    enum Kind: Sendable { case identify, enrol }
    var kind: Kind
    var startSeconds: Double        // since the load started
    var milliseconds: Double
    var error: String?              // FacetError code, nil = success
    var partial = false
}

struct SoakRun {
    let options: BenchSoak
    let cluster: SoakCluster
    let say: @Sendable (String) -> Void

    func run() async throws -> SoakReport {
        let o = options
        let timeout = Duration.milliseconds(o.timeoutMilliseconds)
        var generator = FaceLikeGenerator(statistics: try FaceEmbeddingStatistics.bundled(), seed: o.seed)
        let enrolCount = o.preload + Int((o.seconds * 1.5 + 120) * o.enrolRate) + 10
        let gallery = generator.makeGallery(count: enrolCount * 3, photosPerIdentity: 3, queryCount: 1000)
        let subjects = Dictionary(grouping: 0..<gallery.count, by: { gallery.baseIdentities[$0] }).sorted { $0.key < $1.key }
            .map { (subject: "soak-\($0.key)", rows: $0.value) }
        guard subjects.count >= enrolCount else { throw ValidationError("the generator made \(subjects.count) subjects, \(enrolCount) needed") }

        say("starting coordinator + \(o.matchers) matchers (R = \(o.replicas), \(o.partitions) partitions, \(o.insecurePlaintext ? "PLAINTEXT" : "CURVE + encryption at rest")) in \(cluster.directory)")
        try cluster.startAll()
        let client = try FacetClient(endpoint: cluster.frontend, curve: cluster.curve, clientID: "soak", timeout: timeout)
        guard await cluster.waitUntilHealthy(client, seconds: o.healSeconds) else {
            throw ValidationError("the cluster was not healthy after \(o.healSeconds) s (logs in \(cluster.directory)/logs)")
        }

        // Preload (sequential; retried like the load's enrolments).
        let acked = LockedValue<[(subject: Int, ids: [UInt64])]>([])
        let enrolOps = LockedValue(SoakReport.Enrolments())
        say("preloading \(o.preload) subjects")
        for s in 0..<o.preload {
            if let ids = await enrol(client, subjects[s], gallery: gallery, timeout: timeout, retries: max(o.enrolRetries, 20), record: { _ in }) {
                acked.withLock { $0.append((s, ids)) }
                enrolOps.withLock { $0.preloadAcknowledged += 1 }
            } else {
                enrolOps.withLock { $0.preloadNotAcknowledged += 1 }
            }
        }
        let rssStart = cluster.rssKiB()
        let pidsStart = Dictionary(uniqueKeysWithValues: cluster.nodeNames.compactMap { n in cluster.pid(n).map { (n, $0) } })
        say("load: \(o.identifyRate) identify/s + \(o.enrolRate) enrol/s for \(o.seconds) s; faults: \(o.faultList.map(\.rawValue))")

        let calls = LockedValue<[SoakCall]>([])
        let samples = LockedValue<[SoakReport.Sample]>([])
        let windows = LockedValue<[SoakReport.FaultWindow]>([])
        let stopLoad = LockedValue(false)
        let begin = ContinuousClock.now
        @Sendable func now() -> Double { let d = begin.duration(to: .now); return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }
        let nextSubject = LockedValue(o.preload)
        let queryCount = 1000

        await withTaskGroup(of: Void.self) { group in
            // Identify load (open loop).
            if o.identifyRate > 0 {
                group.addTask {
                    await Self.schedule(rate: o.identifyRate, begin: begin, stop: stopLoad) { i in
                        let t0 = now()
                        var call = SoakCall(kind: .identify, startSeconds: t0, milliseconds: 0)
                        do throws(FacetError) {
                            let r = try await client.identify(embedding: WireEmbedding(values: gallery.queryVector(i % queryCount), modelVersion: "1"),
                                                              k: 5, timeout: timeout)
                            call.partial = r.partial
                        } catch {
                            call.error = "\(error.code)"
                        }
                        call.milliseconds = (now() - t0) * 1000
                        calls.withLock { $0.append(call) }
                    }
                }
            }
            // Enrol load (open loop; each enrolment retried on retryable errors).
            if o.enrolRate > 0 {
                group.addTask {
                    await Self.schedule(rate: o.enrolRate, begin: begin, stop: stopLoad) { _ in
                        guard let s = nextSubject.withLock({ v -> Int? in guard v < subjects.count else { return nil }; v += 1; return v - 1 }) else { return }
                        enrolOps.withLock { $0.attempted += 1 }
                        let ids = await enrol(client, subjects[s], gallery: gallery, timeout: timeout, retries: o.enrolRetries) { call in
                            var c = call
                            c.startSeconds = now() - c.milliseconds / 1000
                            calls.withLock { $0.append(c) }
                        }
                        if let ids {
                            acked.withLock { $0.append((s, ids)) }
                            enrolOps.withLock { $0.acknowledged += 1 }
                        } else {
                            enrolOps.withLock { $0.notAcknowledged += 1 }
                        }
                    }
                }
            }
            // Memory and progress every --report-seconds.
            group.addTask {
                var k = 1
                while !stopLoad.withLock({ $0 }) {
                    let due = begin.advanced(by: .milliseconds(Int(Double(k) * o.reportSeconds * 1000)))
                    while ContinuousClock.now < due, !stopLoad.withLock({ $0 }) { try? await Task.sleep(for: .milliseconds(100)) }
                    if stopLoad.withLock({ $0 }) { break }
                    let rss = cluster.rssKiB()
                    samples.withLock { $0.append(SoakReport.Sample(atSeconds: now(), rssKiB: rss)) }
                    let (n, e) = calls.withLock { c in (c.count, c.filter { $0.error != nil }.count) }
                    say(String(format: "t=%.0f s: %d calls, %d failed; RSS ", now(), n, e)
                        + rss.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value / 1024) MiB" }.joined(separator: ", "))
                    k += 1
                }
            }
            // Faults, one after the other, then the end of the load.
            group.addTask {
                let list = o.faultList
                for (i, fault) in list.enumerated() {
                    let at = o.seconds * (Double(i) + 0.5) / Double(list.count)
                    while now() < at { try? await Task.sleep(for: .milliseconds(100)) }
                    let w = await inject(fault, index: i, client: client, now: now)
                    windows.withLock { $0.append(w) }
                    say("fault \(fault.rawValue) on \(w.target): injected at \(String(format: "%.1f", w.startSeconds)) s, "
                        + (w.healedAtSeconds.map { String(format: "healthy again at %.1f s", $0) } ?? "NOT healthy after \(o.healSeconds) s"))
                }
                // Faults that heal late extend the load: it ends at --seconds or 2 s after the last fault healed.
                let last = windows.withLock { $0.last }
                let lastHealed = last.map { w in (w.healedAtSeconds ?? w.repairedAtSeconds) + 2 } ?? 0
                while now() < max(o.seconds, lastHealed) { try? await Task.sleep(for: .milliseconds(100)) }
                stopLoad.withLock { $0 = true }
            }
        }
        let loadSeconds = now()
        say(String(format: "load finished after %.1f s; checking every acknowledged enrolment", loadSeconds))

        // Checks: (1) healthy, (2) every acknowledged template is its own nearest neighbour, (3) with each matcher
        // stopped in turn, the listing (served by the other replicas) shows every acknowledged subject with all
        // its templates.
        let healthyAtEnd = await cluster.waitUntilHealthy(client, seconds: o.healSeconds)
        let ackedList = acked.withLock { $0 }
        var lost = 0, unverified = 0, checkErrors: [String: Int] = [:]
        let ackedTemplates = ackedList.reduce(0) { $0 + $1.ids.count }
        for (n, a) in ackedList.enumerated() {
            for (row, id) in zip(subjects[a.subject].rows, a.ids) {
                var found: Bool?
                for _ in 0..<5 where found == nil {
                    do throws(FacetError) {
                        let r = try await client.identify(embedding: WireEmbedding(values: gallery.baseVector(row), modelVersion: "1"), k: 3,
                                                          timeout: .seconds(20))
                        if r.partial { checkErrors["PARTIAL", default: 0] += 1; try? await Task.sleep(for: .milliseconds(200)); continue }
                        found = r.candidates.contains { $0.templateID == id && $0.distance <= 1e-3 }
                    } catch {
                        checkErrors["\(error.code)", default: 0] += 1
                        try? await Task.sleep(for: .milliseconds(200))
                    }
                }
                switch found {
                case true?: break
                case false?: lost += 1
                case nil: unverified += 1
                }
            }
            if (n + 1) % 500 == 0 { say("checked \(n + 1) of \(ackedList.count) subjects") }
        }
        var replicaChecks: [SoakReport.ReplicaCheck] = []
        if o.replicas >= 2 {
            for m in cluster.matcherNames {
                cluster.signal(m, SIGSTOP)
                var check = SoakReport.ReplicaCheck(stoppedMatcher: m, subjectsListed: 0, missingSubjects: 0, subjectsWithMissingTemplates: 0, error: nil)
                if await cluster.waitUntilNotReady(client, node: m, seconds: 30) {
                    do throws(FacetError) {
                        let listed = try await client.allSubjects(timeout: .seconds(20))
                        check.subjectsListed = listed.count
                        let counts = Dictionary(listed.map { ($0.subjectID, Int($0.templateCount)) }, uniquingKeysWith: max)
                        for a in ackedList {
                            guard let c = counts[subjects[a.subject].subject] else { check.missingSubjects += 1; continue }
                            if c < Set(a.ids).count { check.subjectsWithMissingTemplates += 1 }
                        }
                    } catch {
                        check.error = "\(error)"
                    }
                } else {
                    check.error = "the coordinator still counted \(m) as ready after 30 s"
                }
                cluster.signal(m, SIGCONT)
                _ = await cluster.waitUntilHealthy(client, seconds: o.healSeconds)
                say("replica check with \(m) stopped: \(check.subjectsListed) subjects listed, \(check.missingSubjects) missing, "
                    + "\(check.subjectsWithMissingTemplates) with missing templates\(check.error.map { ", error: \($0)" } ?? "")")
                replicaChecks.append(check)
            }
        }
        let rssEnd = cluster.rssKiB()
        await client.close()

        // The report.
        let allCalls = calls.withLock { $0 }
        let ws = windows.withLock { $0 }
        var ops = enrolOps.withLock { $0 }
        let enrolCalls = allCalls.filter { $0.kind == .enrol }
        ops.calls = enrolCalls.count
        ops.callsFailedByCode = Self.countCodes(enrolCalls)
        let identifies = allCalls.filter { $0.kind == .identify }
        let identify = SoakReport.Identifies(attempted: identifies.count, succeeded: identifies.filter { $0.error == nil }.count,
                                             failedByCode: Self.countCodes(identifies), partial: identifies.filter { $0.error == nil && $0.partial }.count)
        func phase(of t: Double) -> String {
            for w in ws where t >= w.startSeconds && t < (w.healedAtSeconds ?? loadSeconds) { return w.name }
            return "steady"
        }
        var phases: [SoakReport.Phase] = []
        for name in ["steady"] + ws.map(\.name) {
            let cs = allCalls.filter { phase(of: $0.startSeconds) == name }
            phases.append(SoakReport.Phase(name: name,
                                           identify: SoakReport.Latency(cs.filter { $0.kind == .identify }),
                                           enrol: SoakReport.Latency(cs.filter { $0.kind == .enrol })))
        }
        var timeline: [SoakReport.Bin] = []
        var t = 0.0
        let sampleList = samples.withLock { $0 }
        while t < loadSeconds - 1e-9 {
            let end = min(t + o.reportSeconds, loadSeconds)
            let cs = allCalls.filter { $0.startSeconds >= t && $0.startSeconds < end }
            let idOK = cs.filter { $0.kind == .identify && $0.error == nil }
            let span = max(end - t, 1e-3)
            timeline.append(SoakReport.Bin(
                fromSeconds: t, toSeconds: end, phase: Set(cs.map { phase(of: $0.startSeconds) }).sorted().joined(separator: "+"),
                identifyPerSecond: Double(idOK.count) / span,
                enrolCallsOKPerSecond: Double(cs.filter { $0.kind == .enrol && $0.error == nil }.count) / span,
                failedCalls: cs.filter { $0.error != nil }.count,
                identifyP99Milliseconds: SoakReport.Latency(idOK).p99,
                rssKiB: sampleList.last(where: { $0.atSeconds <= end + 0.5 })?.rssKiB ?? [:]))
            t = end
        }
        var memory: [SoakReport.NodeMemory] = []
        for n in cluster.nodeNames + ["client"] {
            memory.append(SoakReport.NodeMemory(node: n, startKiB: rssStart[n], endKiB: rssEnd[n], restarts: n == "client" ? 0 : cluster.restarts(n),
                                                samePidAtEnd: n == "client" ? true : pidsStart[n] == cluster.pid(n)))
        }
        var config = SoakReport.Configuration()
        config.seconds = o.seconds; config.identifyRate = o.identifyRate; config.enrolRate = o.enrolRate; config.preload = o.preload
        config.matchers = o.matchers; config.replicas = o.replicas; config.partitions = Int(o.partitions); config.faults = o.faultList.map(\.rawValue)
        config.faultSeconds = o.faultSeconds; config.coordinatorDownSeconds = o.coordinatorDownSeconds; config.timeoutMilliseconds = o.timeoutMilliseconds
        config.enrolRetries = o.enrolRetries; config.curve = !o.insecurePlaintext; config.heartbeatMilliseconds = o.heartbeatMilliseconds
        config.command = "facet " + CommandLine.arguments.dropFirst().joined(separator: " ")
        return SoakReport(configuration: config, loadSeconds: loadSeconds, enrolments: ops, identify: identify,
                          templates: SoakReport.Templates(acknowledged: ackedTemplates, lost: lost, unverified: unverified, checkErrors: checkErrors),
                          healthyAtEnd: healthyAtEnd, replicaChecks: replicaChecks, faults: ws, phases: phases, memory: memory, timeline: timeline,
                          loadAverage: (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "")
    }

    static func countCodes(_ calls: [SoakCall]) -> [String: Int] {
        var out: [String: Int] = [:]
        for c in calls { if let e = c.error { out[e, default: 0] += 1 } }
        return out
    }

    /// Starts `body(i)` at begin + i / rate until `stop` is set; waits for the started ones.
    static func schedule(rate: Double, begin: ContinuousClock.Instant, stop: LockedValue<Bool>,
                         _ body: @escaping @Sendable (Int) async -> Void) async {
        await withTaskGroup(of: Void.self) { inner in
            var i = 0
            while !stop.withLock({ $0 }) {
                let due = begin.advanced(by: .nanoseconds(Int64(Double(i) / rate * 1e9)))
                if ContinuousClock.now < due { try? await Task.sleep(until: due, clock: .continuous) }
                if stop.withLock({ $0 }) { break }
                let n = i
                inner.addTask { await body(n) }
                i += 1
            }
        }
    }

    /// One enrolment, retried on retryable errors; every call is reported. Returns the template ids when acknowledged.
    func enrol(_ client: FacetClient, _ s: (subject: String, rows: [Int]), gallery: FaceLikeGenerator.Gallery, timeout: Duration,
               retries: Int, record: (SoakCall) -> Void) async -> [UInt64]? {
        let embeddings = s.rows.map { WireEmbedding(values: gallery.baseVector($0), modelVersion: "1") }
        for attempt in 0...retries {
            let t0 = ContinuousClock.now
            var call = SoakCall(kind: .enrol, startSeconds: 0, milliseconds: 0)
            var result: [UInt64]?
            var retryable = false
            do throws(FacetError) {
                let r = try await client.enrol(subjectID: s.subject, embeddings: embeddings, timeout: timeout)
                result = r.templateIds
            } catch {
                call.error = "\(error.code)"
                retryable = error.code.isRetryable
            }
            let d = t0.duration(to: .now)
            call.milliseconds = (Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18) * 1000
            record(call)
            if let result { return result }
            if !retryable || attempt == retries { return nil }
            try? await Task.sleep(for: .milliseconds(500))
        }
        return nil
    }

    /// Injects one fault, repairs it after its duration and waits until the cluster is healthy again.
    func inject(_ fault: SoakFault, index: Int, client: FacetClient, now: () -> Double) async -> SoakReport.FaultWindow {
        let o = options
        let ms = cluster.matcherNames
        let target: String
        switch fault {
        case .matcherKill, .matcherStop: target = ms[(1 + index) % ms.count]
        case .coordinatorKill, .coordinatorStop: target = "coordinator"
        }
        let down = target == "coordinator" ? o.coordinatorDownSeconds : o.faultSeconds
        let start = now()
        switch fault {
        case .matcherKill, .coordinatorKill: cluster.kill9(target)
        case .matcherStop, .coordinatorStop: cluster.signal(target, SIGSTOP)
        }
        try? await Task.sleep(for: .milliseconds(Int(down * 1000)))
        switch fault {
        case .matcherKill, .coordinatorKill:
            do { try cluster.start(target) } catch { say("cannot restart \(target): \(error)") }
        case .matcherStop, .coordinatorStop: cluster.signal(target, SIGCONT)
        }
        let repaired = now()
        let healed = await cluster.waitUntilHealthy(client, seconds: o.healSeconds) ? now() : nil
        let action: String
        switch fault {
        case .matcherKill, .coordinatorKill: action = String(format: "kill -9, restart after %.0f s", down)
        case .matcherStop, .coordinatorStop: action = String(format: "SIGSTOP, SIGCONT after %.0f s", down)
        }
        return SoakReport.FaultWindow(name: "\(fault.rawValue) \(target)", fault: fault.rawValue, target: target, action: action,
                                      startSeconds: start, repairedAtSeconds: repaired, healedAtSeconds: healed)
    }
}

// MARK: the report

struct SoakReport: Codable, Sendable {
    struct Configuration: Codable, Sendable {
        var command = "", seconds = 0.0, identifyRate = 0.0, enrolRate = 0.0, preload = 0, matchers = 0, replicas = 0, partitions = 0
        var faults: [String] = [], faultSeconds = 0.0, coordinatorDownSeconds = 0.0, timeoutMilliseconds = 0, enrolRetries = 0
        var curve = true, heartbeatMilliseconds = 0
    }
    struct Enrolments: Codable, Sendable {
        var preloadAcknowledged = 0, preloadNotAcknowledged = 0
        /// Enrolment operations during the load (one subject, 3 templates, retried on retryable errors).
        var attempted = 0, acknowledged = 0, notAcknowledged = 0
        /// Client calls of those operations (retries included) and the failed ones by error code.
        var calls = 0
        var callsFailedByCode: [String: Int] = [:]
    }
    struct Identifies: Codable, Sendable {
        var attempted: Int, succeeded: Int
        var failedByCode: [String: Int]
        var partial: Int
    }
    struct Templates: Codable, Sendable {
        var acknowledged: Int, lost: Int, unverified: Int
        var checkErrors: [String: Int]
    }
    struct ReplicaCheck: Codable, Sendable {
        var stoppedMatcher: String
        var subjectsListed: Int, missingSubjects: Int, subjectsWithMissingTemplates: Int
        var error: String?
    }
    struct FaultWindow: Codable, Sendable {
        var name: String, fault: String, target: String, action: String
        var startSeconds: Double, repairedAtSeconds: Double
        var healedAtSeconds: Double?
    }
    struct Latency: Codable, Sendable {
        var count = 0, failed = 0
        var failedByCode: [String: Int] = [:]
        var p50 = 0.0, p99 = 0.0, max = 0.0     // milliseconds, every call (failed ones included)
        init(_ calls: [SoakCall]) {
            count = calls.count
            failed = calls.filter { $0.error != nil }.count
            failedByCode = SoakRun.countCodes(calls)
            let s = calls.map(\.milliseconds).sorted()
            func p(_ q: Double) -> Double { quantile(ofSorted: s, q) ?? 0 }
            p50 = p(0.5); p99 = p(0.99); self.max = s.last ?? 0
        }
    }
    struct Phase: Codable, Sendable { var name: String; var identify: Latency; var enrol: Latency }
    struct NodeMemory: Codable, Sendable {
        var node: String
        var startKiB: Int?, endKiB: Int?
        var restarts: Int
        var samePidAtEnd: Bool
    }
    struct Sample: Codable, Sendable { var atSeconds: Double; var rssKiB: [String: Int] }
    struct Bin: Codable, Sendable {
        var fromSeconds: Double, toSeconds: Double, phase: String
        var identifyPerSecond: Double, enrolCallsOKPerSecond: Double, failedCalls: Int, identifyP99Milliseconds: Double
        var rssKiB: [String: Int]
    }

    var configuration: Configuration
    var loadSeconds: Double
    var enrolments: Enrolments
    var identify: Identifies
    var templates: Templates
    var healthyAtEnd: Bool
    var replicaChecks: [ReplicaCheck]
    var faults: [FaultWindow]
    var phases: [Phase]
    var memory: [NodeMemory]
    var timeline: [Bin]
    var loadAverage: String

    /// Lost = acknowledged templates not found, plus subjects missing from a replica's listing.
    var lostTotal: Int {
        templates.lost + replicaChecks.reduce(0) { $0 + $1.missingSubjects + $1.subjectsWithMissingTemplates }
    }

    func markdown() -> String {
        func codes(_ d: [String: Int]) -> String { d.isEmpty ? "—" : d.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") }
        func f(_ x: Double) -> String { String(format: x < 10 ? "%.1f" : "%.0f", x) }
        func mib(_ k: Int?) -> String { k.map { String(format: "%.0f", Double($0) / 1024) } ?? "—" }
        let c = configuration
        var s = "### Soak with faults\n\n"
        s += "`\(c.command)`\n\n"
        s += "\(f(loadSeconds)) s of load (" + (c.seconds == loadSeconds ? "as asked" : "asked \(f(c.seconds)) s, extended until the last fault healed")
            + "), \(c.matchers) matchers, R = \(c.replicas), \(c.partitions) partitions, " + (c.curve ? "CURVE + encryption at rest" : "plaintext")
            + "; \(f(c.identifyRate)) identify/s + \(f(c.enrolRate)) enrol/s (3 templates each), \(c.preload) subjects preloaded; "
            + "client deadline \(c.timeoutMilliseconds) ms; load average at the end \(loadAverage).\n\n"
        s += "| operations | attempted | acknowledged / succeeded | failed | lost |\n|---|---:|---:|---|---:|\n"
        s += "| enrolments during the load (subjects) | \(enrolments.attempted) | \(enrolments.acknowledged) | \(enrolments.notAcknowledged) not acknowledged after \(c.enrolRetries) retries | — |\n"
        s += "| enrol calls (retries included) | \(enrolments.calls) | \(enrolments.calls - enrolments.callsFailedByCode.values.reduce(0, +)) | \(codes(enrolments.callsFailedByCode)) | — |\n"
        s += "| templates acknowledged (preload + load) | — | \(templates.acknowledged) | — | **\(templates.lost)**\(templates.unverified > 0 ? " (+\(templates.unverified) unverified)" : "") |\n"
        s += "| identify queries | \(identify.attempted) | \(identify.succeeded) (\(identify.partial) partial) | \(codes(identify.failedByCode)) | — |\n"
        for r in replicaChecks {
            s += "| listing with \(r.stoppedMatcher) stopped (other replicas) | — | \(r.subjectsListed) subjects | \(r.error ?? "—") | \(r.missingSubjects + r.subjectsWithMissingTemplates) |\n"
        }
        s += "\n| phase | fault | window | identify n / failed | identify p50 / p99 / max ms | enrol calls n / failed | enrol p50 / p99 / max ms |\n|---|---|---|---|---|---|---|\n"
        for p in phases {
            let w = faults.first { $0.name == p.name }
            let window = w.map { w in
                "\(f(w.startSeconds))–" + (w.healedAtSeconds.map { f($0) } ?? "end") + " s (repaired at \(f(w.repairedAtSeconds)) s, healthy "
                    + (w.healedAtSeconds.map { String(format: "%.1f s later", $0 - w.repairedAtSeconds) } ?? "NEVER") + ")"
            } ?? "rest of the load"
            s += "| \(p.name) | \(w?.action ?? "—") | \(window) | \(p.identify.count) / \(p.identify.failed)\(p.identify.failed > 0 ? " (\(codes(p.identify.failedByCode)))" : "") | "
                + "\(f(p.identify.p50)) / \(f(p.identify.p99)) / \(f(p.identify.max)) | \(p.enrol.count) / \(p.enrol.failed)\(p.enrol.failed > 0 ? " (\(codes(p.enrol.failedByCode)))" : "") | "
                + "\(f(p.enrol.p50)) / \(f(p.enrol.p99)) / \(f(p.enrol.max)) |\n"
        }
        s += "\n| node | RSS start MiB | RSS end MiB | restarts |\n|---|---:|---:|---:|\n"
        for m in memory { s += "| \(m.node) | \(mib(m.startKiB)) | \(mib(m.endKiB)) | \(m.restarts) |\n" }
        let nodes = memory.map(\.node)
        s += "\n| t (s) | phase | identify/s | enrol calls ok/s | failed calls | identify p99 ms | RSS MiB (" + nodes.joined(separator: ", ") + ") |\n|---|---|---:|---:|---:|---:|---|\n"
        for b in timeline {
            s += "| \(f(b.fromSeconds))–\(f(b.toSeconds)) | \(b.phase) | \(f(b.identifyPerSecond)) | \(f(b.enrolCallsOKPerSecond)) | \(b.failedCalls) | \(f(b.identifyP99Milliseconds)) | "
                + nodes.map { mib(b.rssKiB[$0]) }.joined(separator: " / ") + " |\n"
        }
        return s
    }
}
