import Foundation
import FacetClassify
import FacetTransport
#if canImport(Glibc)
import Glibc
#endif

/// What a classifier version was trained on (written beside the model as `svm-NNNNNN.meta.json`).
public struct ClassifierMetadata: Codable, Sendable, Hashable {
    /// "svm-000003": the file stem, increasing with every published version.
    public var version: String
    public var createdUnixMs: Int64
    public var jobID: String
    /// Embedding model version of the templates it was trained on (queries of another version are not classified).
    public var embeddingModelVersion: String
    public var templates: Int
    public var subjects: Int
    public var collections: [String]
    public var calibrated: Bool
    public var cost: Double
    public var balancedClasses: Bool
}

/// A classifier version ready to answer: the model and what it was trained on.
public struct ActiveClassifier: Sendable {
    public let metadata: ClassifierMetadata
    public let model: LinearSVMModel
}

/// The coordinator's durable models, in one directory (`stateDirectory`, default `DATA/coordinator` under
/// `facet cluster up`):
///
/// ```
/// classifier/svm-000001.json        the one-vs-rest linear SVMs (FacetClassify's versioned JSON)
/// classifier/svm-000001.meta.json   ClassifierMetadata
/// classifier/CURRENT                the active version's name ("svm-000001")
/// embedding-model                   the active embedding model version ("1" when absent)
/// ```
///
/// A version is claimed by hard-linking a fully written temporary file to its final name (`link` fails if the name
/// exists, so two coordinators sharing the directory never publish the same version); `CURRENT` and
/// `embedding-model` are replaced by `rename`, which is atomic. In memory the active classifier is swapped under a
/// lock, so a query sees either the old or the new model, never a mix. Every coordinator re-reads the pointers
/// once a second (``reload()``): a restarted coordinator, or a second one sharing the directory, serves the
/// same versions.
///
/// Without a directory (nil) everything stays in memory and is lost on restart.
public final class ModelStore: Sendable {
    public let directory: String?
    private let classifier = LockedValue<ActiveClassifier?>(nil)
    private let embeddingVersion = LockedValue("1")
    public static let defaultEmbeddingModelVersion = "1"

    public init(directory: String?) throws {
        self.directory = directory
        if let directory {
            try FileManager.default.createDirectory(atPath: directory + "/classifier", withIntermediateDirectories: true)
            _ = try reload()
        }
    }

    var classifierDirectory: String? { directory.map { $0 + "/classifier" } }

    /// The classifier queries use now (nil before the first training).
    public var activeClassifier: ActiveClassifier? { classifier.withLock { $0 } }

    /// The embedding model version identify and verify use.
    public var activeEmbeddingModelVersion: String { embeddingVersion.withLock { $0 } }

    /// Re-reads `CURRENT` and `embedding-model`; loads a classifier version that changed. Returns whether anything
    /// changed. A pointer to a missing or unreadable file leaves the loaded version in place and throws.
    @discardableResult
    public func reload() throws -> Bool {
        guard let directory, let cdir = classifierDirectory else { return false }
        var changed = false
        if let text = try? String(contentsOfFile: directory + "/embedding-model", encoding: .utf8) {
            let v = text.trimmingCharacters(in: .whitespacesAndNewlines)
            if !v.isEmpty { changed = embeddingVersion.withLock { old in defer { old = v }; return old != v } || changed }
        }
        if let text = try? String(contentsOfFile: cdir + "/CURRENT", encoding: .utf8) {
            let name = text.trimmingCharacters(in: .whitespacesAndNewlines)
            if !name.isEmpty, activeClassifier?.metadata.version != name {
                let loaded = try load(name)
                classifier.withLock { $0 = loaded }
                changed = true
            }
        }
        return changed
    }

    /// Reads version `name` from the directory.
    public func load(_ name: String) throws -> ActiveClassifier {
        guard let cdir = classifierDirectory else { throw ClusterError.configuration("no model directory") }
        let model = try LinearSVMModel.load(from: URL(fileURLWithPath: "\(cdir)/\(name).json"))
        let meta = try JSONDecoder().decode(ClassifierMetadata.self,
                                            from: Data(contentsOf: URL(fileURLWithPath: "\(cdir)/\(name).meta.json")))
        guard meta.version == name else { throw ClusterError.configuration("\(name).meta.json names version \(meta.version)") }
        return ActiveClassifier(metadata: meta, model: model)
    }

    /// Published classifier versions, oldest first.
    public func versions() -> [String] {
        guard let cdir = classifierDirectory,
              let names = try? FileManager.default.contentsOfDirectory(atPath: cdir) else {
            return activeClassifier.map { [$0.metadata.version] } ?? []
        }
        return names.compactMap { n -> String? in
            guard n.hasPrefix("svm-"), n.hasSuffix(".json"), !n.hasSuffix(".meta.json") else { return nil }
            let stem = String(n.dropLast(5))
            return Int(stem.dropFirst(4)) != nil ? stem : nil
        }.sorted()
    }

    static func versionName(_ n: Int) -> String { String(format: "svm-%06d", n) }

    /// Writes `model` as a new version and, if `activate`, makes it the active one. Returns the version name.
    public func publish(_ model: LinearSVMModel, metadata: ClassifierMetadata, activate: Bool) throws -> ActiveClassifier {
        var meta = metadata
        guard let cdir = classifierDirectory else {
            let next = (activeClassifier.flatMap { Int($0.metadata.version.dropFirst(4)) } ?? 0) + 1
            meta.version = Self.versionName(next)
            let published = ActiveClassifier(metadata: meta, model: model)
            if activate { classifier.withLock { $0 = published } }
            return published
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let tmp = "\(cdir)/.tmp-\(UUID().uuidString)"
        defer { unlink(tmp) }
        try model.save(to: URL(fileURLWithPath: tmp))
        var n = (versions().last.flatMap { Int($0.dropFirst(4)) } ?? 0) + 1
        while true {
            let name = Self.versionName(n)
            // Metadata first (a model file without metadata would not load); the model file's link is the claim.
            meta.version = name
            if link(tmp, "\(cdir)/\(name).json") == 0 {
                try write(encoder.encode(meta), to: "\(cdir)/\(name).meta.json")
                break
            }
            guard errno == EEXIST else {
                throw ClusterError.configuration("cannot write \(cdir)/\(name).json: \(String(cString: strerror(errno)))")
            }
            n += 1
        }
        let published = ActiveClassifier(metadata: meta, model: model)
        if activate {
            try write(Data((meta.version + "\n").utf8), to: "\(cdir)/CURRENT")
            classifier.withLock { $0 = published }
        }
        return published
    }

    /// Makes `version` the embedding model version queries use.
    public func setEmbeddingModelVersion(_ version: String) throws {
        if let directory { try write(Data((version + "\n").utf8), to: directory + "/embedding-model") }
        embeddingVersion.withLock { $0 = version }
    }

    /// Deletes every classifier version but the active one and the `keep - 1` newest others, and every inactive
    /// version that knows a subject in `erased` (an erased subject must not survive in an old model file).
    /// Returns the versions deleted.
    @discardableResult
    public func prune(keep: Int, erased: Set<String>) -> [String] {
        guard let cdir = classifierDirectory else { return [] }
        let active = activeClassifier?.metadata.version
        let all = versions()
        let kept = Set(all.filter { $0 != active }.suffix(max(0, keep - 1)))
        var deleted: [String] = []
        for v in all where v != active {
            var drop = !kept.contains(v)
            if !drop, !erased.isEmpty, let m = try? LinearSVMModel.load(from: URL(fileURLWithPath: "\(cdir)/\(v).json")) {
                drop = m.labels.classes.contains { erased.contains($0) }
            }
            if drop {
                unlink("\(cdir)/\(v).json")
                unlink("\(cdir)/\(v).meta.json")
                deleted.append(v)
            }
        }
        return deleted
    }

    /// Subjects deleted whose removal from the classifier is not published yet (`erased-subjects.json`), so that a
    /// restarted coordinator still excludes them and retrains.
    public func loadErased() -> Set<String> {
        guard let directory, let data = FileManager.default.contents(atPath: directory + "/erased-subjects.json"),
              let list = try? JSONDecoder().decode([String].self, from: data) else { return [] }
        return Set(list)
    }

    public func saveErased(_ subjects: Set<String>) throws {
        guard let directory else { return }
        try write(JSONEncoder().encode(subjects.sorted()), to: directory + "/erased-subjects.json")
    }

    /// Writes `data` to a temporary file, fsyncs it, and renames it over `path`.
    private func write(_ data: Data, to path: String) throws {
        let tmp = path + ".tmp-\(UUID().uuidString)"
        guard FileManager.default.createFile(atPath: tmp, contents: data) else {
            throw ClusterError.configuration("cannot write \(tmp)")
        }
        let fd = open(tmp, O_RDONLY)
        if fd >= 0 { fsync(fd); close(fd) }
        guard rename(tmp, path) == 0 else {
            unlink(tmp)
            throw ClusterError.configuration("cannot rename \(tmp) to \(path): \(String(cString: strerror(errno)))")
        }
    }
}
