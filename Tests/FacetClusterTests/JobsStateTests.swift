import Foundation
import Testing
import FacetClassify
import FacetClient
import FacetTestSupport
import FacetTransport
import FacetWire
@testable import FacetCluster

@Suite("Jobs: registry, model store, classifier training, batch manifests and journals")
struct JobsStateTests {
    @Test func registryLifecycleCancelAndPaging() throws {
        let r = JobRegistry(prefix: "c1", retainFinished: 3)
        let a = r.create(kind: .retrain)
        #expect(a.state == .pending && a.jobID.hasPrefix("c1-retrain-"))
        r.markRunning(a.jobID)
        r.progress(a.jobID, phase: "gathering", done: 2, total: 8)
        #expect(r.get(a.jobID)?.state == .running)
        #expect(r.get(a.jobID)?.progress.done == 2)
        // Cancelling is immediate and final: a late "succeeded" from the job's task does not overwrite it.
        let cancelled = try r.cancel(a.jobID)
        #expect(cancelled.state == .cancelled && cancelled.finishedUnixMs > 0)
        #expect(r.isCancelled(a.jobID))
        r.finish(a.jobID, state: .succeeded, result: "svm-000001")
        #expect(r.get(a.jobID)?.state == .cancelled)
        #expect(r.get(a.jobID)?.result == "")
        #expect(throws: FacetError.self) { _ = try r.cancel("nope") }

        var ids = [a.jobID]
        for _ in 0..<4 {
            let j = r.create(kind: .retrain)
            ids.append(j.jobID)
            r.finish(j.jobID, state: .succeeded)
        }
        // Only the 3 newest finished jobs are kept; listing is newest first, paged.
        let all = try r.list()
        #expect(all.jobs.map(\.jobID) == Array(ids.suffix(3).reversed()))
        let page1 = try r.list(pageSize: 2)
        #expect(page1.jobs.count == 2 && page1.nextPageToken == "2")
        let page2 = try r.list(pageSize: 2, pageToken: page1.nextPageToken)
        #expect(page2.jobs.map(\.jobID) == [ids[2]] && page2.nextPageToken.isEmpty)
        #expect(try r.list(state: .running).jobs.isEmpty)
        #expect(throws: FacetError.self) { _ = try r.list(pageToken: "x") }
    }

    @Test("startAlone refuses a second job of a kind while one is pending or running, also from many threads at once")
    func startAloneIsAtomic() throws {
        let r = JobRegistry(prefix: "c1")
        let created = LockedValue(0)
        DispatchQueue.concurrentPerform(iterations: 64) { _ in
            if case .created = r.startAlone(kind: .purgeModel, phase: "purging") { created.withLock { $0 += 1 } }
        }
        #expect(created.withLock { $0 } == 1)
        let first = try #require(r.active(kind: .purgeModel).first)
        #expect(first.state == .running && first.progress.phase == "purging" && first.startedUnixMs > 0)
        let counted = r.start(kind: .rebalance, phase: "moving", total: 7)
        #expect(counted.state == .running && counted.progress.total == 7 && r.get(counted.jobID)?.progress.phase == "moving")
        guard case .refused(let other) = r.startAlone(kind: .purgeModel, phase: "purging") else { Issue.record("not refused"); return }
        #expect(other.jobID == first.jobID)
        if case .refused = r.startAlone(kind: .retrain, phase: "gathering") { Issue.record("another kind was refused") }
        r.finish(first.jobID, state: .succeeded)
        guard case .created = r.startAlone(kind: .purgeModel, phase: "purging") else { Issue.record("refused after the first finished"); return }
    }

    @Test("a registry with a file keeps its history across a restart; jobs that were running come back failed")
    func registryHistorySurvivesARestart() throws {
        try withTemporaryDirectory { dir in
            let file = dir.path + "/jobs-c1.pb"
            let r = try JobRegistry(prefix: "c1", file: file)
            let done = r.create(kind: .retrain, parameters: ["reason": "test"])
            r.markRunning(done.jobID)
            r.finish(done.jobID, state: .succeeded, result: "svm-000001")
            let cancelled = r.create(kind: .retrain)
            _ = try r.cancel(cancelled.jobID)
            let running = r.create(kind: .purgeModel, parameters: ["model_version": "1"])
            r.markRunning(running.jobID)
            r.progress(running.jobID, phase: "purging", done: 3, total: 8)   // within 2 s of the last write: not saved yet
            let pending = r.create(kind: .retrain)                           // a creation saves everything
            #expect(r.saveError == nil)

            let again = try JobRegistry(prefix: "c1", file: file)
            #expect(try again.list().jobs.map(\.jobID) == [pending.jobID, running.jobID, cancelled.jobID, done.jobID])
            let d = try #require(again.get(done.jobID))
            #expect(d.state == .succeeded && d.result == "svm-000001" && d.parameters == ["reason": "test"] && d.finishedUnixMs > 0)
            #expect(again.get(cancelled.jobID)?.state == .cancelled)
            let f = try #require(again.get(running.jobID))
            #expect(f.state == .failed && f.kind == .purgeModel && f.progress.done == 3 && f.progress.total == 8)
            #expect(f.error == "the coordinator stopped while the job was running (purging); start it again")
            #expect(again.get(pending.jobID)?.state == .failed)
            #expect(again.get(pending.jobID)?.error.contains("while the job was waiting") == true)
            #expect(again.active(kind: .retrain).isEmpty && again.active(kind: .purgeModel).isEmpty)
            // New jobs list above the loaded ones and get fresh ids.
            let next = again.create(kind: .retrain)
            #expect(try again.list().jobs.first?.jobID == next.jobID)
            #expect(![done, cancelled, running, pending].map(\.jobID).contains(next.jobID))
            // A file that is not a job history is refused, not overwritten.
            try Data("not a protobuf \u{FF}\u{FF}".utf8).write(to: URL(fileURLWithPath: file))
            #expect(throws: FacetError.self) { _ = try JobRegistry(prefix: "c1", file: file) }
            // The coordinator starts all the same: the file is set aside (kept) and the history starts empty.
            var configuration = NodeConfiguration()
            configuration.stateDirectory = dir.path
            let jobs = try CoordinatorJobs(nodeID: "c1", configuration: configuration)
            #expect(jobs.historyWarning?.contains("starting with an empty job history") == true)
            #expect(try jobs.registry.list().jobs.isEmpty)
            let aside = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix("jobs-c1.pb.unreadable-") }
            #expect(aside.count == 1)
            let fresh = jobs.registry.create(kind: .retrain)
            #expect(try JobRegistry(prefix: "c1", file: file).get(fresh.jobID) != nil)
        }
    }

    /// Separable toy data: 3 subjects around distinct directions, 4 templates each.
    func toySamples() -> [ClassifierTraining.Sample] {
        var out: [ClassifierTraining.Sample] = []
        for (s, name) in ["ann", "bob", "cyd"].enumerated() {
            for i in 0..<4 {
                var v = [Float](repeating: 0.01, count: 8)
                v[s] = 1
                v[3 + i % 4] += 0.2
                out.append(.init(templateID: UInt64(s * 10 + i + 1), subject: name, embedding: v))
            }
        }
        return out
    }

    @Test func trainingEqualsDirectLIBLINEARAndIsCalibratedOutOfFold() throws {
        let samples = toySamples()
        let outcome = try ClassifierTraining.train(samples)
        #expect(outcome.subjects == 3)
        #expect(outcome.calibrated)
        // The final model is the plain FacetClassify model over all templates (in template id order).
        let ordered = samples.sorted { $0.templateID < $1.templateID }
        let direct = try LinearSVMTrainer.train(embeddings: ordered.map(\.embedding), labels: ordered.map(\.subject))
        #expect(outcome.model.weights == direct.weights)
        #expect(outcome.model.intercepts == direct.intercepts)
        let classifier = ActiveClassifier(metadata: ClassifierMetadata(version: "svm-000001", createdUnixMs: 0, jobID: "j",
                                                                       embeddingModelVersion: "1", templates: 12, subjects: 3,
                                                                       collections: [], calibrated: true, cost: 1,
                                                                       balancedClasses: false), model: outcome.model)
        var q = [Float](repeating: 0.01, count: 8)
        q[1] = 1
        let d = try #require(ClassifierTraining.decide(classifier, query: q))
        #expect(d.subjectID == "bob" && d.accepted && d.calibrated)
        #expect(d.top.first?.subjectID == "bob" && d.top.count == 3)
        #expect(d.probability > 0.5 && d.probability <= 1)
        #expect(abs(Double(d.decisionValue) - (try direct.decisionValues(q))[1]) < 1e-5)
        // A deleted subject is never the decision, even for its own face.
        let excluded = try #require(ClassifierTraining.decide(classifier, query: q, excluded: ["bob"]))
        #expect(excluded.subjectID != "bob" && !excluded.top.contains { $0.subjectID == "bob" })
        #expect(!excluded.accepted)
        // One template per subject: nothing held out, so no calibration; the sign decides.
        let single = try ClassifierTraining.train(samples.filter { $0.templateID % 10 == 1 })
        #expect(!single.calibrated)
        #expect(throws: FacetError.self) { _ = try ClassifierTraining.train(samples.filter { $0.subject == "ann" }) }
        #expect(throws: FacetError.self) { _ = try ClassifierTraining.train(samples, isCancelled: { true }) }
    }

    @Test func modelStorePublishesAtomicallyReloadsAndPrunes() throws {
        let dir = NSTemporaryDirectory() + "facet-models-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try ModelStore(directory: dir)
        #expect(store.activeClassifier == nil)
        #expect(store.activeEmbeddingModelVersion == "1")
        let samples = toySamples()
        let model = try ClassifierTraining.train(samples).model
        let meta = ClassifierMetadata(version: "", createdUnixMs: 1, jobID: "j1", embeddingModelVersion: "1", templates: 12,
                                      subjects: 3, collections: [], calibrated: true, cost: 1, balancedClasses: false)
        let v1 = try store.publish(model, metadata: meta, activate: true)
        #expect(v1.metadata.version == "svm-000001")
        let v2 = try store.publish(model, metadata: meta, activate: false)
        #expect(v2.metadata.version == "svm-000002")
        #expect(store.activeClassifier?.metadata.version == "svm-000001")
        // A second coordinator sharing the directory sees the active version; and a version published there.
        let other = try ModelStore(directory: dir)
        #expect(other.activeClassifier?.metadata.version == "svm-000001")
        #expect(other.activeClassifier?.model == model)
        let withoutBob = try ClassifierTraining.train(samples.filter { $0.subject != "bob" }).model
        let v3 = try other.publish(withoutBob, metadata: meta, activate: true)
        #expect(v3.metadata.version == "svm-000003")
        try other.setEmbeddingModelVersion("2")
        #expect(try store.reload())
        #expect(store.activeClassifier?.metadata.version == "svm-000003")
        #expect(store.activeEmbeddingModelVersion == "2")
        #expect(try !store.reload())
        // Erasure: inactive versions that know "bob" go, whatever the retention count.
        let deleted = store.prune(keep: 5, erased: ["bob"])
        #expect(deleted == ["svm-000001", "svm-000002"])
        #expect(store.versions() == ["svm-000003"])
        // In memory only.
        let memory = try ModelStore(directory: nil)
        #expect(try memory.publish(model, metadata: meta, activate: true).metadata.version == "svm-000001")
        #expect(memory.activeClassifier != nil)
    }

    @Test func versionedTemplateIDsKeepVersionOneAndSeparateOthers() {
        let d = TemplateIdentity.sourceDigest([9, 9])
        let v1 = TemplateIdentity.templateID(subject: "a", collection: "default", sourceDigest: d)
        #expect(TemplateIdentity.templateID(subject: "a", collection: "default", sourceDigest: d, modelVersion: "1") == v1)
        #expect(TemplateIdentity.templateID(subject: "a", collection: "default", sourceDigest: d, modelVersion: "") == v1)
        let v2 = TemplateIdentity.templateID(subject: "a", collection: "default", sourceDigest: d, modelVersion: "2")
        #expect(v2 != v1)
        #expect(v2 == TemplateIdentity.templateID(subject: "a", collection: "default", sourceDigest: d, modelVersion: "2"))
    }

    @Test func manifestsFromFoldersAndCSV() throws {
        let dir = NSTemporaryDirectory() + "facet-manifest-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fm = FileManager.default
        for (s, files) in [("bob", ["2.jpg", "1.PNG", "notes.txt"]), ("ann", ["a.jpeg"])] {
            try fm.createDirectory(atPath: "\(dir)/g/\(s)", withIntermediateDirectories: true)
            for f in files { _ = fm.createFile(atPath: "\(dir)/g/\(s)/\(f)", contents: Data([1])) }
        }
        _ = fm.createFile(atPath: "\(dir)/g/stray.jpg", contents: Data([1]))
        let folder = try BatchManifest.load("\(dir)/g")
        #expect(folder.map(\.subject) == ["ann", "bob", "bob"])
        #expect(folder.map { ($0.path as NSString).lastPathComponent } == ["a.jpeg", "1.PNG", "2.jpg"])

        let csv = "subject,image\n# comment\n\nann, g/ann/a.jpeg\n\"b, ob\",\"/abs/x.jpg\"\n"
        _ = fm.createFile(atPath: "\(dir)/m.csv", contents: Data(csv.utf8))
        let items = try BatchManifest.load("\(dir)/m.csv")
        #expect(items.map(\.subject) == ["ann", "b, ob"])
        #expect(items.map(\.path) == ["\(dir)/g/ann/a.jpeg", "/abs/x.jpg"])
        #expect(items[0].origin == "\(dir)/m.csv:4")

        _ = fm.createFile(atPath: "\(dir)/bad.csv", contents: Data("ann,a.jpg\nbob\n".utf8))
        #expect(throws: ManifestError(origin: "\(dir)/bad.csv:2", reason: "expected 2 fields (subject,image), found 1")) {
            _ = try BatchManifest.load("\(dir)/bad.csv")
        }
        _ = fm.createFile(atPath: "\(dir)/quote.csv", contents: Data("\"ann,a.jpg\n".utf8))
        #expect(throws: ManifestError.self) { _ = try BatchManifest.load("\(dir)/quote.csv") }
        #expect(throws: ManifestError.self) { _ = try BatchManifest.load("\(dir)/missing") }
        try fm.createDirectory(atPath: "\(dir)/empty", withIntermediateDirectories: true)
        #expect(throws: ManifestError.self) { _ = try BatchManifest.load("\(dir)/empty") }
    }

    @Test func journalSurvivesATornLastLineAndRefusesAnotherRun() throws {
        let path = NSTemporaryDirectory() + "facet-journal-\(UInt32.random(in: 0...UInt32.max)).jsonl"
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            let j = try EnrolJournal(path: path, collection: "default", modelVersion: "1")
            try j.append(.init(subject: "a", sha256: "aa", path: "/x", status: "enrolled", templateID: "7", alreadyPresent: false))
            try j.append(.init(subject: "b", sha256: "bb", path: "/y", status: "no_face", error: "none"))
        }
        // A crash in the middle of a write leaves half a line.
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try h.seekToEnd()
        try h.write(contentsOf: Data("{\"subject\":\"c\",\"sha2".utf8))
        try h.close()
        let j = try EnrolJournal(path: path, collection: "default", modelVersion: "1")
        #expect(j.entries.count == 2 && j.ignoredLines == 1)
        #expect(j.contains(subject: "a", sha256: "aa") && j.contains(subject: "b", sha256: "bb"))
        #expect(!j.contains(subject: "a", sha256: "bb"))
        try j.append(.init(subject: "c", sha256: "cc", path: "/z", status: "enrolled", templateID: "9"))
        let again = try EnrolJournal(path: path, collection: "default", modelVersion: "1")
        #expect(again.entries.count == 3 && again.ignoredLines == 1)
        #expect(throws: ManifestError.self) { _ = try EnrolJournal(path: path, collection: "default", modelVersion: "2") }
    }
}
