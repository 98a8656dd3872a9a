import ArgumentParser
import Dispatch
import Foundation
import FacetCluster
#if canImport(Glibc)
import Glibc
#endif

/// `facet cluster up`: a local cluster of real processes on loopback.
struct Cluster: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster", abstract: "Run a local Facet cluster.", subcommands: [Up.self])

    struct Up: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "up",
            abstract: "Start a coordinator, matchers and embedders as separate processes on 127.0.0.1; restart any that dies; stop all on Ctrl-C/SIGTERM.")

        @Option(help: "Data directory (matcher partitions, configs, logs). Default: a new temporary directory.") var data: String?
        @Option(help: "Number of matchers.") var matchers: Int = 3
        @Option(help: "Replicas per partition.") var replicas: Int = 2
        @Option(help: "Number of embedders.") var embedders: Int = 1
        @Option(help: "Number of partitions.") var partitions: UInt32 = 32
        @Option(help: "Client endpoint of the coordinator.") var endpoint: String = "tcp://127.0.0.1:5555"
        @Option(help: "Worker endpoint of the coordinator (default: the client port + 1).") var backend: String?
        @Option(help: "Model directory for the embedders (default $FACET_MODELS or ./models).") var models: String?
        @Option(name: .customLong("heartbeat-ms"), help: "Heartbeat interval in milliseconds.") var heartbeatMilliseconds: Int = 250
        @Option(help: "Heartbeat intervals of silence after which a node counts as dead.") var liveness: Int = 4
        @Option(name: .customLong("periocular-fusion"), help: "Embedders send periocular embeddings and the coordinator fuses them in verify of two images: 'bundled' or a facet-periocular-fusion file (docs/masks.md).")
        var periocularFusion: String?
        @Flag(name: .customLong("insecure-plaintext"), help: "Development only: no CURVE keys, no encryption at rest, no audit key.")
        var insecurePlaintext = false

        func validate() throws {
            guard matchers >= 1 else { throw ValidationError("--matchers must be at least 1") }
            guard (1...matchers).contains(replicas) else { throw ValidationError("--replicas must be in 1...\(matchers)") }
            guard embedders >= 0 else { throw ValidationError("--embedders must be 0 or more") }
            guard partitions >= 1 else { throw ValidationError("--partitions must be at least 1") }
            guard endpoint.hasPrefix("tcp://"), endpoint.split(separator: ":").last.flatMap({ Int($0) }) != nil else {
                throw ValidationError("--endpoint must look like tcp://127.0.0.1:PORT")
            }
        }

        func run() async throws {
            let dir = data ?? (NSTemporaryDirectory() + "facet-cluster-\(ProcessInfo.processInfo.processIdentifier)")
            let fm = FileManager.default
            try fm.createDirectory(atPath: dir + "/config", withIntermediateDirectories: true)
            try fm.createDirectory(atPath: dir + "/logs", withIntermediateDirectories: true)
            let port = Int(endpoint.split(separator: ":").last!)!
            let host = endpoint.dropLast(String(port).count + 1)
            let backendEndpoint = backend ?? "\(host):\(port + 1)"
            let matcherIDs = (0..<matchers).map { "matcher-\($0)" }

            var local = LocalNodes(directory: dir, frontend: endpoint, backend: backendEndpoint, heartbeatMilliseconds: heartbeatMilliseconds,
                                   liveness: liveness, partitions: partitions, replicas: replicas, matchers: matcherIDs,
                                   embedders: (0..<embedders).map { "embedder-\($0)" }, models: models)
            if let periocularFusion {
                let path = periocularFusion == "bundled" ? periocularFusion : URL(fileURLWithPath: periocularFusion).standardizedFileURL.path
                local.configure("coordinator") { $0.periocularFusion = path }
                local.configure("embedder") { $0.periocularFusion = path }
            }
            try local.secure(!insecurePlaintext, directory: dir)
            try local.write(directory: dir)
            let nodes = local.nodes

            let supervisor = Supervisor(executable: try Self.executablePath(), directory: dir,
                                        nodes: nodes.map { ($0.name, $0.role) })
            // Ctrl-C and SIGTERM stop everything; the children get SIGTERM (graceful) and SIGKILL after 10 s.
            signal(SIGINT, SIG_IGN)
            signal(SIGTERM, SIG_IGN)
            let stop = AsyncStream<Int32> { continuation in
                for sig in [SIGINT, SIGTERM] {
                    let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
                    source.setEventHandler { continuation.yield(sig) }
                    source.resume()
                    Supervisor.keep(source as AnyObject)
                }
            }
            supervisor.startAll()
            print("facet cluster up: clients connect to \(endpoint) (workers: \(backendEndpoint))")
            print("  \(matchers) matchers, \(replicas) replicas per partition, \(partitions) partitions, \(embedders) embedders"
                  + (periocularFusion.map { ", periocular fusion \($0)" } ?? ""))
            print("  data and logs under \(dir); stop with Ctrl-C or SIGTERM (pid \(ProcessInfo.processInfo.processIdentifier))")
            if insecurePlaintext {
                print("  INSECURE development mode: clients connect with --insecure-plaintext")
            } else {
                print("  CURVE keys under \(dir)/keys; for the facet client commands: export FACET_KEYS=\(dir)/keys")
                print("  audit trail: facet audit --log \(dir)/audit/coordinator.jsonl --key \(dir)/keys/audit.master --verify")
            }
            fflush(stdout)
            for await sig in stop {
                print("facet cluster: signal \(sig), stopping")
                fflush(stdout)
                break
            }
            await supervisor.stopAll(grace: .seconds(10))
            print("facet cluster: stopped")
        }

        static func executablePath() throws -> String {
            let path = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
            return path
        }
    }
}

/// Starts the node processes, restarts any that exits unexpectedly (after a second), and stops them all.
final class Supervisor: @unchecked Sendable {  // mutable state guarded by `lock`
    let executable: String
    let directory: String
    let nodes: [(name: String, role: String)]
    private let lock = NSLock()
    private var processes: [String: Process] = [:]
    private var stopping = false
    private static let sources = NSLock()
    nonisolated(unsafe) private static var kept: [AnyObject] = []

    static func keep(_ o: AnyObject) { sources.lock(); kept.append(o); sources.unlock() }

    init(executable: String, directory: String, nodes: [(String, String)]) {
        self.executable = executable
        self.directory = directory
        self.nodes = nodes
    }

    func startAll() {
        for n in nodes { start(n.name, role: n.role) }
    }

    private func start(_ name: String, role: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = ["serve", role, "--config", "\(directory)/config/\(name).json"]
        let logPath = "\(directory)/logs/\(name).log"
        if !FileManager.default.fileExists(atPath: logPath) { FileManager.default.createFile(atPath: logPath, contents: nil) }
        if let h = FileHandle(forWritingAtPath: logPath) {
            h.seekToEndOfFile()
            p.standardOutput = h
            p.standardError = h
        }
        p.terminationHandler = { [weak self] proc in
            guard let self else { return }
            let wasStopping = self.lock.withLock { self.stopping }
            guard !wasStopping else { return }
            print("facet cluster: \(name) exited (status \(proc.terminationStatus)); restarting in 1 s")
            fflush(stdout)
            DispatchQueue.global().asyncAfter(deadline: .now() + 1) {
                guard !self.lock.withLock({ self.stopping }) else { return }
                self.start(name, role: role)
            }
        }
        do {
            try p.run()
            lock.withLock { processes[name] = p }
        } catch {
            print("facet cluster: cannot start \(name): \(error)")
        }
    }

    func stopAll(grace: Duration) async {
        let all = lock.withLock { () -> [Process] in
            stopping = true
            return Array(processes.values)
        }
        for p in all where p.isRunning { kill(p.processIdentifier, SIGTERM) }
        let deadline = ContinuousClock.now.advanced(by: grace)
        while all.contains(where: \.isRunning), ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(50)) }
        for p in all where p.isRunning { kill(p.processIdentifier, SIGKILL) }
        for p in all { p.waitUntilExit() }
    }
}
