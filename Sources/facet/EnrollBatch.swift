import ArgumentParser
import Foundation
import FacetClient
import FacetEval
import FacetWire

/// `facet enroll-batch DIR_OR_MANIFEST`: enrols a gallery through the cluster (every live embedder works on it),
/// with a progress bar, idempotent by image hash and resumable after a crash (journal), optionally under a new
/// embedding model version side by side, then switching the cluster over to it.
struct EnrollBatch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enroll-batch",
        abstract: "Enrol a gallery: a folder per subject (DIR/SUBJECT/*.jpg) or a CSV of subject,image lines.",
        discussion: """
            Photos are sent one per request, several at once (--concurrency, default twice the live embedders), so the \
            coordinator spreads them over every embedder. Each finished photo is appended to a journal (default: \
            DIR_OR_MANIFEST.journal-MODEL.jsonl beside it); a rerun skips what the journal lists, so a killed run \
            resumes where it stopped. Template ids are derived from the subject and the image's SHA-256, so an image \
            sent twice is stored once.
            Re-enrolment with a new model: --model-version V writes templates of version V beside the current ones \
            (images go to embedders serving V); --switch-over makes V the version queries use once every photo is done.
            """)

    @OptionGroup var client: ClientOptions
    @Argument(help: "A folder with one sub-folder of photos per subject, or a CSV file of subject,image lines.") var source: String
    @Option(help: "Collection (default: \"default\").") var collection: String = ""
    @Option(name: .customLong("model-version"), help: "Embedding model version to enrol with (default: the cluster's active one).")
    var modelVersion: String?
    @Flag(name: .customLong("switch-over"), help: "After every photo is done, make --model-version the active version.")
    var switchOver = false
    @Option(help: "Journal file (default: beside the source).") var journal: String?
    @Option(help: "Requests in flight at once (default: 2 per live embedder).") var concurrency: Int?
    @Flag(help: "Print a JSON summary.") var json = false
    func validate() throws {
        if switchOver && modelVersion == nil { throw ValidationError("--switch-over needs --model-version") }
        if let c = concurrency, !(1...64).contains(c) { throw ValidationError("--concurrency must be in 1...64") }
    }

    func run() async throws {
        let items: [BatchItem]
        do { items = try BatchManifest.load(source) } catch { throw ValidationError("\(error)") }
        // A photo that fails with a transient error (NOT_DURABLE, UNAVAILABLE, DEADLINE_EXCEEDED, QUEUE_FULL,
        // RATE_LIMITED, STALE_SHARD_MAP) is sent again by the client up to --retries times (default 6 here), 0.2 s
        // doubling up to 5 s or the server's retry_after_ms; what still fails is left to the next run.
        let c = try client.connect(retry: FacetClient.RetryPolicy(maxAttempts: (client.retries ?? 6) + 1, initialBackoff: .milliseconds(200),
                                                                  maxBackoff: .seconds(5)))
        defer { Task { await c.close() } }
        do {
            let status = try await c.status()
            let version = modelVersion ?? status.model.version
            let embedders = status.nodes.filter { $0.role == .embedder && $0.state == .ready && $0.model.version == version }.count
            guard embedders > 0 else {
                throw FacetError(.failedPrecondition, "no live embedder serves model version \(version)")
            }
            let collectionName = collection.isEmpty ? "default" : collection
            let trimmed = source.hasSuffix("/") ? String(source.dropLast()) : source
            let journalPath = journal ?? "\(trimmed).journal-\(version).jsonl"
            let log = try EnrolJournal(path: journalPath, collection: collectionName, modelVersion: version)
            let summary = try await enrolAll(items, client: c, journal: log, version: version, workers: concurrency ?? 2 * embedders)
            var switched: WireActiveModel?
            if switchOver, summary.transientFailures == 0 {
                switched = try await c.setActiveModel(version: version)
            }
            if json {
                var out: [String: Any] = ["items": items.count, "enrolled": summary.enrolled, "already_present": summary.alreadyPresent,
                                          "skipped_journal": summary.skipped, "duplicates": summary.duplicates,
                                          "no_face": summary.noFace, "bad_image": summary.badImage, "invalid": summary.invalid,
                                          "transient_failures": summary.transientFailures, "journal": journalPath,
                                          "journal_lines_ignored": log.ignoredLines, "model_version": version,
                                          "embedders": embedders]
                if let switched { out["switched_from"] = switched.previousVersion; out["active_model_version"] = switched.modelVersion }
                out["errors"] = summary.errors
                printJSON(out)
            } else {
                print("""
                    \(items.count) photo(s): \(summary.enrolled) enrolled (\(summary.alreadyPresent) already present), \
                    \(summary.skipped) skipped (journal), \(summary.duplicates) duplicate(s), \(summary.noFace) without a face, \
                    \(summary.badImage) unreadable, \(summary.invalid) invalid, \(summary.transientFailures) to retry; journal \(journalPath)
                    """)
                for e in summary.errors.prefix(20) { print("  \(e)") }
                if let switched { printSwitched(switched) }
                else if switchOver { print("not switched over: \(summary.transientFailures) photo(s) still to retry") }
            }
            if summary.transientFailures > 0 { throw ExitCode(1) }
        } catch let e as ExitCode { throw e } catch { fail(error) }
    }

    struct Summary {
        var enrolled = 0, alreadyPresent = 0, skipped = 0, duplicates = 0, noFace = 0, badImage = 0, invalid = 0, transientFailures = 0
        var errors: [String] = []
    }

    enum Outcome: Sendable {
        case enrolled(templateID: UInt64, alreadyPresent: Bool)
        case permanent(String, FacetError)
        case transient(FacetError)
        case unreadable(String)
    }

    func enrolAll(_ items: [BatchItem], client c: FacetClient, journal: EnrolJournal, version: String, workers: Int) async throws -> Summary {
        var summary = Summary()
        // Work list: what the journal does not list yet, each (subject, image hash) once.
        var todo: [(BatchItem, Data, String)] = []
        var seen = Set<String>()
        for item in items {
            guard let data = FileManager.default.contents(atPath: item.path) else {
                summary.badImage += 1
                summary.errors.append("\(item.origin): cannot read \(item.path)")
                continue
            }
            let digest = ImageDigest.sha256Hex(data)
            let key = EnrolJournal.Entry.key(subject: item.subject, sha256: digest)
            if journal.contains(subject: item.subject, sha256: digest) { summary.skipped += 1; continue }
            if !seen.insert(key).inserted { summary.duplicates += 1; continue }
            todo.append((item, data, digest))
        }
        let progress = ProgressReporter(total: todo.count, label: "enroll-batch")
        let collectionName = collection
        try await withThrowingTaskGroup(of: (BatchItem, String, Outcome).self) { group in
            var next = 0
            func launch() {
                guard next < todo.count else { return }
                let (item, data, digest) = todo[next]
                next += 1
                group.addTask {
                    var r = WireEnrolRequest()
                    r.subjectID = item.subject
                    r.collection = collectionName
                    r.images = [WireImage.with { $0.data = data; $0.name = (item.path as NSString).lastPathComponent }]
                    r.modelVersion = version
                    do {
                        // Template ids come from the subject and the image hash: the client's retries are idempotent.
                        let reply = try await c.call(.enrolRequest(r))
                        guard case .enrolReply(let e) = reply, let t = e.templates.first else {
                            return (item, digest, .transient(FacetError(.internalError, "unexpected reply")))
                        }
                        return (item, digest, .enrolled(templateID: t.templateID, alreadyPresent: t.alreadyPresent))
                    } catch let e as FacetError {
                        switch e.code {
                        case .noFace: return (item, digest, .permanent("no_face", e))
                        case .badImage, .imageTooLarge: return (item, digest, .permanent("bad_image", e))
                        case .invalidArgument, .frameTooLarge, .modelMismatch: return (item, digest, .permanent("invalid", e))
                        default: return (item, digest, .transient(e))
                        }
                    }
                }
            }
            for _ in 0..<max(1, workers) { launch() }
            while let (item, digest, outcome) = try await group.next() {
                switch outcome {
                case .enrolled(let templateID, let already):
                    summary.enrolled += 1
                    if already { summary.alreadyPresent += 1 }
                    try journal.append(.init(subject: item.subject, sha256: digest, path: item.path, status: "enrolled",
                                             templateID: String(templateID), alreadyPresent: already))
                case .permanent(let status, let e):
                    if status == "no_face" { summary.noFace += 1 } else if status == "bad_image" { summary.badImage += 1 } else { summary.invalid += 1 }
                    summary.errors.append("\(item.origin): \(e)")
                    try journal.append(.init(subject: item.subject, sha256: digest, path: item.path, status: status, error: e.message))
                case .transient(let e):
                    summary.transientFailures += 1
                    summary.errors.append("\(item.origin): \(e) (will be retried by the next run)")
                case .unreadable(let m):
                    summary.badImage += 1
                    summary.errors.append("\(item.origin): \(m)")
                }
                progress.advance()
                launch()
            }
        }
        progress.finish()
        return summary
    }
}


/// `facet switch-model VERSION`: make another embedding model version the one queries use.
struct SwitchModel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switch-model",
        abstract: "Make VERSION the embedding model version identify and verify use (after re-enrolling with it).")
    @OptionGroup var client: ClientOptions
    @Flag(help: "Switch even if no live embedder serves VERSION.") var force = false
    @Argument(help: "Model version.") var version: String

    func run() async throws {
        let c = try client.connect()
        defer { Task { await c.close() } }
        do {
            printSwitched(try await c.setActiveModel(version: version, force: force))
        } catch { fail(error) }
    }
}

/// The switch, and what to do with the previous version's templates once the new one is trusted.
func printSwitched(_ r: WireActiveModel) {
    print("active embedding model: \(r.previousVersion) → \(r.modelVersion)")
    if !r.previousVersion.isEmpty, r.previousVersion != r.modelVersion {
        print("model \(r.previousVersion)'s templates stay stored (switching back needs them); once \(r.modelVersion) is trusted: "
              + "facet purge-model \(r.previousVersion) --dry-run, then without --dry-run")
    }
}

/// `facet purge-model VERSION [--dry-run] [--wait]`: delete a retired model version's templates everywhere.
struct PurgeModel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "purge-model",
        abstract: "Delete every template of a retired embedding model version on every replica (after a switch-over).",
        discussion: """
            Runs as a coordinator job (facet jobs show ID). Subjects left with no template of any version are erased. \
            The active version is refused. --dry-run only counts what would go.
            """)
    @OptionGroup var client: ClientOptions
    @Argument(help: "The model version to purge (not the active one).") var version: String
    @Flag(help: "Only count the templates and the subjects that would be left without any.") var dryRun = false
    @Option(help: "Why (recorded in the audit trail).") var reason = ""
    @Flag(help: "Wait until the job finishes, with a progress bar on stderr.") var wait = false
    @Option(help: "With --wait: give up waiting after this many seconds (the job goes on).") var waitSeconds = 3600
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        try await client.withClient { c in
            var job = try await c.startPurgeModel(version: version, dryRun: dryRun, reason: reason.isEmpty ? "facet purge-model" : reason)
            if wait { job = try await followJob(c, job, label: dryRun ? "count" : "purge", timeout: .seconds(waitSeconds)) }
            try reportJob(job, waited: wait, json: json)
        }
    }
}
