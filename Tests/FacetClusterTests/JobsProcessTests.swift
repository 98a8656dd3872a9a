import Foundation
import Testing
import FacetClassify
import FacetClient
import FacetTestSupport
import FacetWire
@testable import FacetCluster
#if canImport(Glibc)
import Glibc
#endif

/// Like `withCluster`, with a hook to set node arguments before anything starts.
func withJobsCluster<R>(embedder: Bool = false, configure: (ClusterHarness) -> Void = { _ in },
                        _ body: (ClusterHarness, FacetClient) async throws -> R) async throws -> R {
    let harness = try ClusterHarness()
    defer { harness.shutdown() }
    configure(harness)
    try harness.startAll(embedder: embedder)
    let client = try FacetClient(endpoint: harness.frontend, timeout: .seconds(20))
    do {
        try await harness.waitUntilHealthy(client)
        let r = try await body(harness, client)
        await client.close()
        return r
    } catch {
        await client.close()
        throw error
    }
}

/// Waits (bounded) until a job is finished.
func finished(_ client: FacetClient, _ id: String, seconds: Int = 120) async throws -> WireJob {
    try await client.waitForJob(id: id, interval: .milliseconds(100), timeout: .seconds(seconds))
}

/// Waits (bounded) until `predicate` holds for the status.
func waitForStatus(_ client: FacetClient, seconds: Double = 60, _ what: String,
                   _ predicate: (WireStatusReply) -> Bool) async throws {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if let s = try? await client.status(includePartitions: true, timeout: .seconds(2)), predicate(s) { return }
        try await Task.sleep(for: .milliseconds(100))
    }
    throw HarnessError("timed out waiting for \(what)")
}

@Suite("Jobs on a cluster of real processes", .serialized)
struct JobsProcessTests {
    @Test("retraining after enrolment: identify returns the SVM decision (equal to an in-process training of the same templates); delete retrains without the subject; a restarted coordinator loads the model",
          .timeLimit(.minutes(6)))
    func retrainClassifyDeleteRestart() async throws {
        try await withJobsCluster(configure: { $0.extraArguments["coordinator"] = ["--retrain-after", "0"] }) { harness, client in
            let g = try gallery(seed: 41, count: 120, queries: 40)
            let all = try await enrolGallery(client, g, prefix: "c")
            #expect(try await client.status().classifierVersion.isEmpty)
            // Before any training there is no decision.
            let before = try await client.identify(embedding: WireEmbedding(values: g.queryVector(0), modelVersion: "1"), k: 3,
                                                   withClassifier: true)
            #expect(!before.hasDecision)

            var r = WireStartRetrainRequest()
            r.activate = true
            let started = try await client.startRetrain(r)
            #expect(started.kind == .retrain)
            let job = try await finished(client, started.jobID)
            #expect(job.state == .succeeded, "\(job.error)\n\(harness.log("coordinator").suffix(2000))")
            #expect(job.result == "svm-000001")
            #expect(job.progress.total == UInt64(all.count))
            #expect(try await client.status().classifierVersion == "svm-000001")
            #expect(try await client.listJobs().jobs.map(\.jobID) == [started.jobID])

            // The reference: the same training, in process, on what the test enrolled.
            let samples = all.map { ClassifierTraining.Sample(templateID: $0.id, subject: $0.subject, embedding: $0.vector) }
            let reference = try ClassifierTraining.train(samples)
            #expect(reference.calibrated)
            let meta = ClassifierMetadata(version: "ref", createdUnixMs: 0, jobID: "", embeddingModelVersion: "1", templates: all.count,
                                          subjects: reference.subjects, collections: [], calibrated: true, cost: 1, balancedClasses: false)
            let referenceClassifier = ActiveClassifier(metadata: meta, model: reference.model)
            var correct = 0
            for q in 0..<40 {
                let query = g.queryVector(q)
                let reply = try await client.identify(embedding: WireEmbedding(values: query, modelVersion: "1"), k: 3, withClassifier: true)
                #expect(reply.hasDecision)
                #expect(reply.decision.classifierVersion == "svm-000001")
                let expected = try #require(ClassifierTraining.decide(referenceClassifier, query: query))
                #expect(reply.decision.top.map(\.subjectID) == expected.top.map(\.subjectID))
                #expect(abs(reply.decision.decisionValue - expected.decisionValue) < 1e-4)
                #expect(abs(reply.decision.probability - expected.probability) < 1e-4)
                #expect(reply.decision.accepted == expected.accepted)
                if reply.decision.subjectID == "c\(g.queryIdentities[q])" { correct += 1 }
            }
            // Seeded data: the classifier names the right subject for most queries.
            #expect(correct >= 30, "\(correct) of 40 correct")

            // Delete a subject the classifier knows: its decision disappears at once, a retraining removes it for good.
            let victim = "c\(g.queryIdentities[0])"
            let victimQuery = g.queryVector(0)
            let deleted = try await client.deleteSubject(victim)
            #expect(deleted.templatesDeleted == 3)
            #expect(!deleted.retrainJobID.isEmpty)
            let during = try await client.identify(embedding: WireEmbedding(values: victimQuery, modelVersion: "1"), k: 3, withClassifier: true)
            #expect(!during.decision.top.contains { $0.subjectID == victim })
            let retrained = try await finished(client, deleted.retrainJobID)
            #expect(retrained.state == .succeeded, "\(retrained.error)")
            #expect(retrained.result == "svm-000002")
            #expect(retrained.parameters["automatic"] == "true")
            let after = try await client.identify(embedding: WireEmbedding(values: victimQuery, modelVersion: "1"), k: 3, withClassifier: true)
            #expect(after.decision.classifierVersion == "svm-000002")
            #expect(!after.decision.top.contains { $0.subjectID == victim })
            // The new model does not know the subject, and no model file that knows it is left.
            let stateDir = harness.directory + "/coordinator-state/classifier"
            let current = try LinearSVMModel.load(from: URL(fileURLWithPath: stateDir + "/svm-000002.json"))
            #expect(!current.labels.classes.contains(victim))
            #expect(current.labels.classes.count == reference.subjects - 1)
            #expect(!FileManager.default.fileExists(atPath: stateDir + "/svm-000001.json"))

            // A restarted coordinator serves the same classifier (read from its state directory).
            #expect(harness.stop("coordinator") == 0)
            try harness.start("coordinator")
            try await harness.waitUntilHealthy(client, seconds: 60)
            #expect(try await client.status().classifierVersion == "svm-000002")
            let restarted = try await client.identify(embedding: WireEmbedding(values: g.queryVector(1), modelVersion: "1"), k: 3,
                                                      withClassifier: true)
            #expect(restarted.decision.classifierVersion == "svm-000002")
            let expectedAfterRestart = ClassifierTraining.decide(ActiveClassifier(metadata: meta, model: current), query: g.queryVector(1))
            #expect(restarted.decision.top.map(\.subjectID) == expectedAfterRestart?.top.map(\.subjectID))
            // Its job history came back from the state directory: both retrainings, finished, with their results.
            let history = try await client.job(id: deleted.retrainJobID)
            #expect(history.state == .succeeded && history.result == "svm-000002" && history.parameters["automatic"] == "true")
            #expect(try await client.listJobs(kind: .retrain, state: .succeeded).jobs.map(\.result).prefix(2) == ["svm-000002", "svm-000001"])
            // Unknown jobs are typed errors.
            await expectError(.notFound) { _ = try await client.job(id: "nope") }
            await expectError(.notFound) { _ = try await client.cancelJob(id: "nope") }
            // `facet retrain --wait --no-activate` follows the job to its end; the published version is not active.
            let cli = try await runFacet(["retrain", "--wait", "--json", "--no-activate", "--endpoint", harness.frontend, "--insecure-plaintext"])
            #expect(cli.status == 0, "\(cli.output)")
            let printed = try jsonObject(cli.output)
            #expect(printed["state"] as? String == "succeeded" && printed["result"] as? String == "svm-000003", "\(cli.output)")
            #expect(try await client.status().classifierVersion == "svm-000002")
        }
    }

    @Test("a retraining starts by itself after enough enrolments; a running retraining is cancelled and publishes nothing",
          .timeLimit(.minutes(5)))
    func automaticTriggerAndCancel() async throws {
        try await withJobsCluster(configure: { $0.extraArguments["coordinator"] = ["--retrain-after", "6"] }) { harness, client in
            let g = try gallery(seed: 43, count: 6, queries: 0)
            _ = try await enrolGallery(client, g, prefix: "a")   // 2 subjects × 3 templates = 6 changes
            var jobs: [WireJob] = []
            for _ in 0..<100 where jobs.isEmpty {
                jobs = try await client.listJobs(kind: .retrain).jobs
                if jobs.isEmpty { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(jobs.count == 1)
            let auto = try #require(jobs.first)
            #expect(auto.parameters["automatic"] == "true")
            let done = try await finished(client, auto.jobID)
            #expect(done.state == .succeeded, "\(done.error)")
            #expect(try await client.status().classifierVersion == done.result)

            // No matcher answers: the retraining waits for its partitions, and is cancelled while it waits.
            for m in harness.matchers { harness.kill9(m) }
            try await waitForStatus(client, "every matcher dead") { s in
                s.nodes.filter { $0.role == .matcher }.allSatisfy { $0.state == .dead }
            }
            var r = WireStartRetrainRequest()
            r.activate = true
            let started = try await client.startRetrain(r)
            var seen = started
            for _ in 0..<100 where !(seen.state == .running && seen.progress.phase.hasPrefix("waiting")) {
                try await Task.sleep(for: .milliseconds(50))
                seen = try await client.job(id: started.jobID)
            }
            #expect(seen.state == .running && seen.progress.phase.hasPrefix("waiting"), "\(seen)")
            // `facet status` lists the job under way (the cluster is degraded: it still answers).
            let status = try await runFacet(["status", "--endpoint", harness.frontend, "--insecure-plaintext"])
            #expect(status.output.contains("DEGRADED") && status.output.contains("jobs under way:"), "\(status.output)")
            #expect(status.output.split(separator: "\n").contains { $0.contains(started.jobID) && $0.contains("running") }, "\(status.output)")
            let cancelled = try await client.cancelJob(id: started.jobID)
            #expect(cancelled.state == .cancelled)
            // Matchers come back; the cancelled job stays cancelled and nothing new was published.
            for m in harness.matchers { try harness.start(m) }
            try await harness.waitUntilHealthy(client, seconds: 90)
            try await Task.sleep(for: .milliseconds(500))
            #expect(try await client.job(id: started.jobID).state == .cancelled)
            #expect(try await client.status().classifierVersion == done.result)
            #expect(try await client.listJobs(state: .cancelled).jobs.map(\.jobID) == [started.jobID])
            // The next retraining runs to the end.
            let next = try await finished(client, try await client.startRetrain(r).jobID)
            #expect(next.state == .succeeded, "\(next.error)")
            #expect(next.result > done.result)
        }
    }

    @Test("purge a retired model version: refused while active; a dry run counts; the purge (with a matcher down) deletes it on every replica, erases the subjects left with nothing, keeps the new version; a second purge finds nothing",
          .timeLimit(.minutes(5)))
    func purgeRetiredModelVersion() async throws {
        try await withJobsCluster { harness, client in
            let g = try gallery(seed: 79, count: 135, queries: 0)   // 45 identities, 3 photos each
            let rows = Dictionary(grouping: 0..<g.count, by: { Int(g.baseIdentities[$0]) })
            try #require(rows.count == 45 && rows.values.allSatisfy { $0.count == 3 })
            func enrol(_ identity: Int, photos: [Int], version: String) async throws -> [UInt64] {
                var r = WireEnrolRequest()
                r.subjectID = "p\(identity)"
                r.modelVersion = version
                r.embeddings = photos.map { WireEmbedding(values: g.baseVector(rows[identity]![$0]), modelVersion: version) }
                guard case .enrolReply(let reply) = try await client.call(.enrolRequest(r)) else { throw HarnessError("no enrol reply") }
                return reply.templateIds
            }
            // Model 1 (active): people 0-39, two photos each. Model 2: the third photo of people 0-29, and people 40-44
            // only in model 2. So purging model 1 leaves people 30-39 with nothing.
            var v1: Set<UInt64> = [], v2: Set<UInt64> = []
            for i in 0..<40 { v1.formUnion(try await enrol(i, photos: [0, 1], version: "1")) }
            for i in 0..<30 { v2.formUnion(try await enrol(i, photos: [2], version: "2")) }
            for i in 40..<45 { v2.formUnion(try await enrol(i, photos: [0, 1, 2], version: "2")) }
            #expect(v1.count == 80 && v2.count == 45)
            try await waitForStatus(client, "125 templates") { s in s.partitions.map(\.templates).reduce(0, +) == 125 }

            // The active version cannot be purged; nor can an empty one be named.
            await expectError(.failedPrecondition) { _ = try await client.startPurgeModel(version: "1") }
            await expectError(.invalidArgument) { _ = try await client.startPurgeModel(version: "") }
            // The switch through the CLI, which points at the purge.
            let switched = try await runFacet(["switch-model", "2", "--force", "--endpoint", harness.frontend, "--insecure-plaintext"])
            #expect(switched.status == 0 && switched.output.contains("active embedding model: 1 → 2"), "\(switched.output)")
            #expect(switched.output.contains("facet purge-model 1 --dry-run"), "\(switched.output)")
            #expect(try await client.status().model.version == "2")

            // A dry run counts and deletes nothing.
            let dry = try await finished(client, try await client.startPurgeModel(version: "1", dryRun: true).jobID)
            #expect(dry.state == .succeeded, "\(dry.error)")
            #expect(dry.kind == .purgeModel && dry.parameters["dry_run"] == "true" && dry.progress.done == UInt64(harness.partitions))
            #expect(dry.result == "dry run: 80 templates of model 1 in 40 subjects would be deleted; 10 subjects would be left without templates (erased)")
            #expect(try await client.status(includePartitions: true).partitions.map(\.templates).reduce(0, +) == 125)

            // The purge, through the CLI (it waits for the job and prints it as JSON), while matcher-0 is down: its
            // copies miss the deletes, are marked stale by the others, and are filled when it is back.
            harness.kill9("matcher-0")
            try await waitForStatus(client, "matcher-0 dead") { s in s.nodes.contains { $0.nodeID == "matcher-0" && $0.state == .dead } }
            let run = try await runFacet(["purge-model", "1", "--wait", "--json", "--reason", "model 1 retired",
                                          "--endpoint", harness.frontend, "--insecure-plaintext"])
            #expect(run.status == 0, "\(run.output)")
            let job = try jsonObject(run.output)
            #expect(job["kind"] as? String == "purge-model" && job["state"] as? String == "succeeded")
            #expect(job["result"] as? String == "deleted 80 of 80 templates of model 1 (40 subjects; 10 left without templates, erased)")
            try harness.start("matcher-0")
            try await harness.waitUntilHealthy(client, seconds: 90)
            try await waitForStatus(client, "45 templates") { s in s.partitions.map(\.templates).reduce(0, +) == 45 }
            var subjects: [String] = []
            var token = ""
            repeat {
                let page = try await client.listSubjects(pageToken: token)
                subjects += page.subjects.map(\.subjectID)
                token = page.nextPageToken
            } while !token.isEmpty
            #expect(Set(subjects) == Set((0..<30).map { "p\($0)" } + (40..<45).map { "p\($0)" }))
            // Queries (model 2) still find the model-2 templates.
            for i in [0, 29, 44] {
                let reply = try await client.identify(embedding: WireEmbedding(values: g.baseVector(rows[i]![2]), modelVersion: "2"), k: 1)
                #expect(reply.candidates.first?.subjectID == "p\(i)" && v2.contains(reply.candidates.first?.templateID ?? 0))
            }

            // Purging again finds nothing; the coordinator said what it did.
            let again = try await finished(client, try await client.startPurgeModel(version: "1").jobID)
            #expect(again.state == .succeeded && again.result.hasPrefix("deleted 0 of 0 templates"), "\(again.result) \(again.error)")
            #expect(harness.log("coordinator").contains("purge done"))
            // Prometheus: jobs by kind and state (set every second by the coordinator).
            let http = try await harness.httpEndpoint("coordinator")
            var purges: Double?
            for _ in 0..<50 {
                purges = metricValue(try httpGet(http, "/metrics").1, "facet_jobs", ["kind": "purge-model", "state": "succeeded"])
                if purges == 3 { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(purges == 3)
            let listed = try await runFacet(["jobs", "list", "--kind", "purge-model", "--json", "--endpoint", harness.frontend, "--insecure-plaintext"])
            let jobsListed = try #require(try jsonObject(listed.output)["jobs"] as? [[String: Any]])
            #expect(jobsListed.count == 3 && jobsListed.allSatisfy { $0["kind"] as? String == "purge-model" }, "\(listed.output)")
            // (125 enrolments started an automatic retraining: the list without a kind has more.)
            let everything = try await runFacet(["jobs", "list", "--json", "--endpoint", harness.frontend, "--insecure-plaintext"])
            #expect(((try jsonObject(everything.output)["jobs"] as? [Any])?.count ?? 0) > 3, "\(everything.output)")
            let none = try await runFacet(["jobs", "list", "--kind", "rebalance", "--json", "--endpoint", harness.frontend, "--insecure-plaintext"])
            #expect((try jsonObject(none.output)["jobs"] as? [Any])?.isEmpty == true, "\(none.output)")
            #expect(metricValue(try httpGet(http, "/metrics").1, "facet_jobs", ["kind": "purge-model", "state": "running"]) == 0)

            // On disk: no replica keeps a model-1 template; every model-2 template is on both of its replicas.
            var stored: [UInt64: Int] = [:]
            for m in harness.matchers {
                #expect(harness.stop(m) == 0)
                for ids in try storedTemplates(harness, m).values { for id in ids { stored[id, default: 0] += 1 } }
            }
            #expect(Set(stored.keys).isDisjoint(with: v1))
            #expect(Set(stored.keys) == v2 && stored.values.allSatisfy { $0 == harness.replicas })
        }
    }
}

/// Runs the `facet` binary to completion (bounded); returns its exit status and standard output.
func runFacet(_ arguments: [String], seconds: Double = 300) async throws -> (status: Int32, output: String) {
    let outputPath = NSTemporaryDirectory() + "facet-run-\(UInt32.random(in: 0...UInt32.max)).out"
    defer { try? FileManager.default.removeItem(atPath: outputPath) }
    _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
    let out = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
    let p = Process()
    p.executableURL = URL(fileURLWithPath: try facetBinaryPath())
    p.arguments = arguments
    p.standardOutput = out
    p.standardError = FileHandle.nullDevice
    try p.run()
    let deadline = Date().addingTimeInterval(seconds)
    while p.isRunning && Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
    if p.isRunning { kill(p.processIdentifier, SIGKILL) }
    p.waitUntilExit()
    try out.close()
    return (p.terminationStatus, (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "")
}

func journalEntries(_ path: String) -> [EnrolJournal.Entry] {
    guard let data = FileManager.default.contents(atPath: path) else { return [] }
    return data.split(separator: UInt8(ascii: "\n")).dropFirst().compactMap { try? JSONDecoder().decode(EnrolJournal.Entry.self, from: Data($0)) }
}

func jsonObject(_ text: String) throws -> [String: Any] {
    guard let start = text.firstIndex(of: "{"),
          let object = try JSONSerialization.jsonObject(with: Data(text[start...].utf8)) as? [String: Any] else {
        throw HarnessError("no JSON object in output:\n\(text)")
    }
    return object
}

@Suite("facet enroll-batch on a cluster of real processes", .serialized)
struct EnrollBatchProcessTests {
    static let demo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("demo/images")

    @Test("enrol the demo gallery, kill -9 the CLI, resume: every photo once; the SVM names the probes; re-enrol with model version 2 side by side and switch over",
          .timeLimit(.minutes(10)))
    func killResumeClassifySwitchModel() async throws {
        try await withJobsCluster(embedder: true, configure: { $0.extraArguments["coordinator"] = ["--retrain-after", "0"] }) { harness, client in
            try await waitForStatus(client, seconds: 120, "the embedder") { s in s.nodes.contains { $0.role == .embedder && $0.state == .ready } }
            let gallery = Self.demo.appendingPathComponent("gallery").path
            let items = try BatchManifest.load(gallery)
            #expect(items.count == 12)
            func expectedIDs(version: String) throws -> Set<UInt64> {
                Set(try items.map { item in
                    let data = try Data(contentsOf: URL(fileURLWithPath: item.path))
                    return TemplateIdentity.templateID(subject: item.subject, collection: "default",
                                                       sourceDigest: TemplateIdentity.sourceDigest(Array(data)), modelVersion: version)
                })
            }
            let v1 = try expectedIDs(version: "1")
            let common = ["--endpoint", harness.frontend, "--timeout-ms", "60000", "--insecure-plaintext"]

            // Run 1, killed (SIGKILL) once the first photos are journalled.
            let journal = harness.directory + "/gallery.journal"
            let first = Process()
            first.executableURL = URL(fileURLWithPath: try facetBinaryPath())
            first.arguments = ["enroll-batch", gallery, "--journal", journal, "--concurrency", "1"] + common
            first.standardOutput = FileHandle.nullDevice
            first.standardError = FileHandle.nullDevice
            try first.run()
            let deadline = Date().addingTimeInterval(180)
            while first.isRunning && journalEntries(journal).count < 2 && Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
            let wasRunning = first.isRunning
            kill(first.processIdentifier, SIGKILL)
            first.waitUntilExit()
            #expect(wasRunning, "the batch finished before it could be killed")
            #expect(first.terminationReason == .uncaughtSignal)
            let journalled = journalEntries(journal).count
            #expect(journalled >= 2 && journalled < 12, "\(journalled) journalled")

            // Run 2 resumes: what the journal lists is skipped, the rest is enrolled.
            let second = try await runFacet(["enroll-batch", gallery, "--journal", journal, "--json"] + common)
            #expect(second.status == 0, "\(second.output)")
            let summary = try jsonObject(second.output)
            #expect(summary["skipped_journal"] as? Int == journalled)
            #expect(summary["enrolled"] as? Int == 12 - journalled)
            #expect(summary["transient_failures"] as? Int == 0)
            let entries = journalEntries(journal)
            #expect(entries.count == 12)
            #expect(entries.allSatisfy { $0.status == "enrolled" })
            #expect(Set(entries.compactMap { $0.templateID.flatMap(UInt64.init) }) == v1)
            // The cluster holds each photo once.
            try await waitForStatus(client, "12 templates") { s in s.partitions.map(\.templates).reduce(0, +) == 12 }

            // Run 3 with a fresh journal: every photo is already there (template ids come from the image hash).
            let third = try await runFacet(["enroll-batch", gallery, "--journal", harness.directory + "/again.journal", "--json"] + common)
            #expect(third.status == 0, "\(third.output)")
            let again = try jsonObject(third.output)
            #expect(again["enrolled"] as? Int == 12)
            #expect(again["already_present"] as? Int == 12)
            try await Task.sleep(for: .milliseconds(600))
            #expect(try await client.status(includePartitions: true).partitions.map(\.templates).reduce(0, +) == 12)

            // Retrain; the classifier names the subject of every probe (another photo of each person).
            let trained = try await finished(client, try await client.startRetrain(WireStartRetrainRequest.with { $0.activate = true }).jobID)
            #expect(trained.state == .succeeded, "\(trained.error)")
            let probes = try FileManager.default.contentsOfDirectory(atPath: Self.demo.appendingPathComponent("probes").path).sorted()
            #expect(probes.count == 6)
            func probe(_ name: String) throws -> Data { try Data(contentsOf: Self.demo.appendingPathComponent("probes/\(name)")) }
            for name in probes {
                let subject = String(name.dropLast("_0003.jpg".count))
                let reply = try await client.identify(image: try probe(name), k: 2, withClassifier: true)
                #expect(reply.candidates.first?.subjectID == subject)
                #expect(v1.contains(reply.candidates.first?.templateID ?? 0))
                #expect(reply.decision.classifierVersion == trained.result)
                #expect(reply.decision.top.first?.subjectID == subject, "\(name): \(reply.decision)")
            }

            // Model version 2 (the same network under another tag) beside version 1.
            harness.extraArguments["embedder-1"] = ["--model-version", "2"]
            try harness.start("embedder-1")
            try await waitForStatus(client, seconds: 120, "an embedder of model 2") { s in
                s.nodes.contains { $0.role == .embedder && $0.state == .ready && $0.model.version == "2" }
            }
            let reenrol = try await runFacet(["enroll-batch", gallery, "--model-version", "2", "--switch-over", "--json",
                                        "--journal", harness.directory + "/v2.journal"] + common)
            #expect(reenrol.status == 0, "\(reenrol.output)")
            let switched = try jsonObject(reenrol.output)
            #expect(switched["enrolled"] as? Int == 12)
            #expect(switched["already_present"] as? Int == 0)
            #expect(switched["active_model_version"] as? String == "2")
            let v2 = try expectedIDs(version: "2")
            #expect(v2.isDisjoint(with: v1))
            let status = try await client.status()
            #expect(status.model.version == "2")
            try await waitForStatus(client, "24 templates") { s in s.partitions.map(\.templates).reduce(0, +) == 24 }
            // Queries now use version 2 templates only; version 1 stays stored side by side.
            for name in probes.prefix(3) {
                let subject = String(name.dropLast("_0003.jpg".count))
                let reply = try await client.identify(image: try probe(name), k: 3)
                #expect(reply.candidates.first?.subjectID == subject)
                #expect(reply.candidates.allSatisfy { v2.contains($0.templateID) })
            }
            // The switch retrains the classifier on version 2 templates.
            var retrain: WireJob?
            for _ in 0..<100 where retrain == nil {
                retrain = try await client.listJobs(kind: .retrain).jobs.first { $0.jobID != trained.jobID }
                if retrain == nil { try await Task.sleep(for: .milliseconds(50)) }
            }
            let second2 = try await finished(client, try #require(retrain).jobID)
            #expect(second2.state == .succeeded, "\(second2.error)")
            let last = try await client.identify(image: try probe(probes[0]), k: 1, withClassifier: true)
            #expect(last.decision.classifierVersion == second2.result)
            #expect(last.decision.top.first?.subjectID == String(probes[0].dropLast("_0003.jpg".count)))
            // No embedder of an unknown version: switching is refused.
            await expectError(.failedPrecondition) { _ = try await client.setActiveModel(version: "9") }
        }
    }
}
