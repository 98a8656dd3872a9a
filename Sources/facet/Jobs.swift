import ArgumentParser
import Foundation
import FacetClient
import FacetCluster
import FacetWire

/// `facet jobs [list|show ID|cancel ID|start svm] [--json]`
struct Jobs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs", abstract: "List, inspect, start and cancel the coordinator's jobs (classifier retraining).",
        subcommands: [List.self, Show.self, Cancel.self, Start.self], defaultSubcommand: List.self)

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "Jobs, newest first.")
        @OptionGroup var client: ClientOptions
        @Flag(help: "Print JSON.") var json = false
        @Option(help: "Only jobs in this state: pending, running, succeeded, failed, cancelled.") var state: String?
        @Option(help: "Only jobs of this kind: retrain, rebalance (shard changes), purge-model.") var kind: String?

        func run() async throws {
            let wanted: WireJobState
            switch state {
            case nil: wanted = .unspecified
            case let s?:
                guard let st = jobState(named: s) else { throw ValidationError("unknown state \(s)") }
                wanted = st
            }
            var wantedKind = WireJobKind.unspecified
            if let kind {
                guard let k = jobKind(named: kind) else { throw ValidationError("unknown kind \(kind) (retrain, rebalance, purge-model)") }
                wantedKind = k
            }
            try await client.withClient { c in
                var jobs: [WireJob] = []
                var token = ""
                repeat {
                    let page = try await c.listJobs(kind: wantedKind, state: wanted, pageToken: token)
                    jobs += page.jobs
                    token = page.nextPageToken
                } while !token.isEmpty
                if json { printJSON(["jobs": jobs.map(jobJSON)]) } else {
                    if jobs.isEmpty { print("no jobs") }
                    for j in jobs { print(jobLine(j)) }
                }
            }
        }
    }

    /// The arguments of a command on one job (`show ID`, `cancel ID`).
    struct OneJob: ParsableArguments {
        @OptionGroup var client: ClientOptions
        @Flag(help: "Print JSON.") var json = false
        @Argument(help: "Job id.") var id: String

        /// Runs `request` for the job and prints the job it returns (as JSON with --json, else with `text`).
        func run(_ request: (FacetClient, String) async throws -> WireJob, text: (WireJob) -> Void) async throws {
            try await client.withClient { c in
                let j = try await request(c, id)
                if json { printJSON(jobJSON(j)) } else { text(j) }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "One job's state and progress.")
        @OptionGroup var job: OneJob
        func run() async throws { try await job.run({ c, id in try await c.job(id: id) }, text: printJob) }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "cancel", abstract: "Cancel a pending or running job.")
        @OptionGroup var job: OneJob
        func run() async throws { try await job.run({ c, id in try await c.cancelJob(id: id) }, text: { print(jobLine($0)) }) }
    }

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "start", abstract: "Start a job: svm (classifier retraining).")
        enum Kind: String, ExpressibleByArgument { case svm }
        @Argument(help: "Job kind: svm.") var kind: Kind
        @OptionGroup var retrain: RetrainOptions

        func run() async throws { try await retrain.start() }
    }
}

/// `facet retrain`: the same as `facet jobs start svm`.
struct Retrain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retrain", abstract: "Retrain the identity classifier (one-vs-rest linear SVMs) on the enrolled templates.")
    @OptionGroup var retrain: RetrainOptions
    func run() async throws { try await retrain.start() }
}

struct RetrainOptions: ParsableArguments {
    @OptionGroup var client: ClientOptions
    @Option(help: "LIBLINEAR C (default 1).") var cost: Float = 0
    @Flag(help: "Weight classes inversely to their template counts.") var balance = false
    @Option(help: "Only templates of these collections (repeatable).") var collection: [String] = []
    @Flag(name: .customLong("no-activate"), help: "Publish the new version without making it the active one.") var noActivate = false
    @Flag(help: "Wait until the job finishes, with a progress bar on stderr.") var wait = false
    @Flag(help: "Print JSON.") var json = false

    func start() async throws {
        try await client.withClient { c in
            var r = WireStartRetrainRequest()
            r.cost = cost
            r.balanceClasses = balance
            r.collections = collection
            r.activate = !noActivate
            r.reason = "facet retrain"
            var job = try await c.startRetrain(r)
            if wait { job = try await followJob(c, job, label: "retrain", timeout: .milliseconds(client.timeoutMilliseconds)) }
            try reportJob(job, waited: wait, json: json)
        }
    }
}

/// Follows a job until it is finished, with a progress bar on stderr; returns the finished job (DEADLINE_EXCEEDED
/// after `timeout`; the job goes on).
func followJob(_ c: FacetClient, _ job: WireJob, label: String, timeout: Duration,
               interval: Duration = .milliseconds(200)) async throws -> WireJob {
    let bar = ProgressBar(label: label)
    defer { bar.finish() }
    return try await c.waitForJob(id: job.jobID, interval: interval, timeout: timeout) { j in
        bar.update(done: Int(j.progress.done), total: Int(j.progress.total), note: j.progress.phase)
    }
}

/// Prints a started job (JSON with --json), and fails with exit status 1 when it was waited for and did not succeed.
func reportJob(_ job: WireJob, waited: Bool, json: Bool) throws {
    if json { printJSON(jobJSON(job)) } else { printJob(job) }
    if waited && job.state != .succeeded { throw ExitCode(1) }
}

/// The state or kind a name given on the command line stands for (the names `JobRegistry` prints).
func jobState(named s: String) -> WireJobState? {
    WireJobState.allCases.first { $0 != .unspecified && JobRegistry.stateName($0) == s.lowercased() }
}

func jobKind(named s: String) -> WireJobKind? {
    WireJobKind.allCases.first { $0 != .unspecified && JobRegistry.kindName($0) == s.lowercased() }
}

func jobStateName(_ s: WireJobState) -> String { JobRegistry.stateName(s) }

func jobKindName(_ k: WireJobKind) -> String { JobRegistry.kindName(k) }

func jobJSON(_ j: WireJob) -> [String: Any] {
    ["id": j.jobID, "kind": jobKindName(j.kind), "state": jobStateName(j.state), "phase": j.progress.phase,
     "done": Int(j.progress.done), "total": Int(j.progress.total), "failed": Int(j.progress.failed),
     "created_unix_ms": Int(j.createdUnixMs), "started_unix_ms": Int(j.startedUnixMs), "finished_unix_ms": Int(j.finishedUnixMs),
     "result": j.result, "error": j.error, "parameters": j.parameters]
}

func jobLine(_ j: WireJob) -> String {
    let progress = j.progress.total > 0 ? "\(j.progress.done)/\(j.progress.total)" : "-"
    var line = "\(j.jobID)  \(jobKindName(j.kind))  \(jobStateName(j.state))  \(j.progress.phase)  \(progress)"
    if !j.result.isEmpty { line += "  → \(j.result)" }
    if !j.error.isEmpty { line += "  error: \(j.error)" }
    return line
}

func printJob(_ j: WireJob) {
    print(jobLine(j))
    for (k, v) in j.parameters.sorted(by: { $0.key < $1.key }) { print("  \(k): \(v)") }
    if j.finishedUnixMs > 0, j.startedUnixMs > 0 { print("  took \(j.finishedUnixMs - j.startedUnixMs) ms") }
}

/// A one-line progress bar on stderr (redrawn in place on a terminal, one line per 10% otherwise).
final class ProgressBar: @unchecked Sendable {   // used from one task
    let label: String
    let terminal = isatty(2) != 0
    var lastDecile = -1
    var lastLine = ""

    init(label: String) { self.label = label }

    func update(done: Int, total: Int, note: String = "") {
        let width = 30
        let fraction = total > 0 ? min(1, Double(done) / Double(total)) : 0
        let filled = Int(fraction * Double(width))
        let line = "\(label) [\(String(repeating: "#", count: filled))\(String(repeating: ".", count: width - filled))] \(done)/\(total) \(note)"
        if terminal {
            guard line != lastLine else { return }
            FileHandle.standardError.write(Data("\r\u{1B}[K\(line)".utf8))
        } else {
            let decile = Int(fraction * 10)
            guard decile != lastDecile || line.count != lastLine.count && done == total else { return }
            lastDecile = decile
            FileHandle.standardError.write(Data("\(line)\n".utf8))
        }
        lastLine = line
    }

    func finish() {
        if terminal && !lastLine.isEmpty { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
