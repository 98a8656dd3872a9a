import FacetIndex
import CLMDB
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Settings of one partition. Dimension and metric are recorded in the store and checked on reopen.
public struct PartitionConfiguration: Sendable {
    public var dimension: Int
    public var metric: Metric
    public var m: Int
    public var efConstruction: Int
    /// Initial LMDB map size; it doubles automatically when full.
    public var initialMapSize: Int
    /// Write an index snapshot after this many logged changes (inserts + deletes) since the last one.
    public var snapshotInterval: Int
    /// Subject filters covering at most this many templates are answered by exact search.
    public var exactFilterLimit: Int
    public var codec: any TemplateCodec
    public var sealer: any TemplateSealer
    /// After a subject's last template is deleted: compact the index (zeroing the freed vectors) and write a new
    /// snapshot at once, so that no index file keeps the subject's vectors (erasure within one call).
    public var snapshotOnErasure: Bool = true

    public init(dimension: Int = 128, metric: Metric = .l2Squared, m: Int = 16, efConstruction: Int = 200,
                initialMapSize: Int = 64 << 20, snapshotInterval: Int = 50_000, exactFilterLimit: Int = 4096,
                codec: any TemplateCodec = BinaryTemplateCodec(), sealer: any TemplateSealer = PlaintextSealer()) {
        self.dimension = dimension; self.metric = metric; self.m = m; self.efConstruction = efConstruction
        self.initialMapSize = initialMapSize; self.snapshotInterval = snapshotInterval; self.exactFilterLimit = exactFilterLimit
        self.codec = codec; self.sealer = sealer
    }
}

/// Which templates a search may return.
public struct TemplateFilter: Sendable, Hashable {
    public var subjects: Set<SubjectID>?
    public var collections: Set<String>?
    public var masked: Bool?
    /// Only templates made by these embedding model versions (re-enrolment keeps versions side by side).
    public var modelVersions: Set<String>?
    public init(subjects: Set<SubjectID>? = nil, collections: Set<String>? = nil, masked: Bool? = nil,
                modelVersions: Set<String>? = nil) {
        self.modelVersions = modelVersions
        self.subjects = subjects; self.collections = collections; self.masked = masked
    }
}

/// One search hit in a partition.
public struct TemplateMatch: Hashable, Sendable {
    public var template: TemplateID
    public var subject: SubjectID
    public var distance: Float
    public var masked: Bool
}

/// How a partition came up: for logs and the startup-time measurement.
public struct PartitionOpenReport: Sendable, CustomStringConvertible {
    public enum IndexSource: String, Sendable { case snapshot, rebuilt, empty }
    public var templates: Int
    public var indexSource: IndexSource
    public var replayedChanges: Int
    public var seconds: Double
    public var description: String {
        "\(templates) templates, index from \(indexSource.rawValue), \(replayedChanges) changes replayed, \(seconds) s"
    }
}

/// One durable partition of the template gallery: templates in LMDB, the HNSW index in memory.
///
/// Every write (``insert(_:)``, ``delete(_:)``, ``deleteSubject(_:)``) commits one LMDB transaction
/// before it returns, and then updates the index. Each change is also appended to a log table in the
/// same transaction, under a sequence number; the index is snapshotted to `index.snapshot` together
/// with the sequence number it reflects. Opening loads the snapshot and replays newer log records, so
/// after `kill -9` at any moment the partition holds exactly the committed templates and a working index.
/// A missing or damaged snapshot is rebuilt from the templates table.
///
/// Thread safety: searches and reads run concurrently; writes are serialised.
public final class Partition: @unchecked Sendable {   // mutable state guarded by `writer` and `infoLock`
    public let directory: String
    public let configuration: PartitionConfiguration
    public let environment: LMDBEnvironment
    public private(set) var openReport: PartitionOpenReport
    let index: HNSWIndex
    /// The configuration's sealer bound to this partition (e.g. its key vault).
    let sealer: any TemplateSealer

    let meta: LMDBDatabase, templates: LMDBDatabase, subjects: LMDBDatabase, log: LMDBDatabase
    private let writer = StoreMutex()
    private let infoLock = StoreReadWriteLock()
    private var snapshotSequence: UInt64 = 0
    private var sequence: UInt64 = 0

    // In-memory template facts for filters and results (guarded by `infoLock`).
    struct Info { var subject: UInt32; var collection: UInt32; var masked: Bool; var model: UInt32 = 0 }
    private var info: [UInt64: Info] = [:]
    private var subjectCodes: [String: UInt32] = [:], subjectNames: [String] = []
    private var collectionCodes: [String: UInt32] = [:], collectionNames: [String] = []
    private var modelCodes: [String: UInt32] = [:], modelNames: [String] = []
    private var subjectTemplates: [UInt32: Set<UInt64>] = [:]
    /// Subjects with at least one template (kept with `subjectTemplates`).
    private var liveSubjects = 0

    var snapshotPath: String { directory + "/index.snapshot" }

    enum LogOperation: UInt8 { case insert = 1, delete = 2 }
    static let sequenceKey = Array("sequence".utf8), dimensionKey = Array("dimension".utf8), metricKey = Array("metric".utf8)

    // MARK: open

    /// Opens the partition stored in `directory`, creating it when absent.
    /// - Throws: ``StoreError/configurationMismatch(path:reason:)`` when the store was made with another
    ///   dimension or metric; ``StoreError/lmdb(_:)`` for storage failures.
    public static func open(at directory: String, configuration: PartitionConfiguration = PartitionConfiguration()) throws(StoreError) -> Partition {
        try Partition(directory: directory, configuration: configuration)
    }

    private init(directory: String, configuration: PartitionConfiguration) throws(StoreError) {
        let started = Self.now()
        self.directory = directory
        self.configuration = configuration
        if mkdir(directory, 0o750) != 0 && errno != EEXIST { throw .io(path: directory, reason: "mkdir failed: errno \(errno)") }
        sealer = try configuration.sealer.bind(toPartitionAt: directory)
        do {
            environment = try LMDBEnvironment(directory: directory, mapSize: configuration.initialMapSize)
            meta = try environment.openDatabase("meta")
            templates = try environment.openDatabase("templates")
            subjects = try environment.openDatabase("subjects", flags: [.duplicateSort, .duplicateFixed])
            log = try environment.openDatabase("log")
        } catch { throw .lmdb(error) }
        do throws(IndexError) {
            index = try HNSWIndex(configuration: HNSWConfiguration(dimension: configuration.dimension, metric: configuration.metric,
                                                                   m: configuration.m, efConstruction: configuration.efConstruction))
        } catch { throw .index(error) }
        openReport = PartitionOpenReport(templates: 0, indexSource: .empty, replayedChanges: 0, seconds: 0)
        try checkOrRecordSettings()
        try loadInfo()
        try sealer.retainKeys(of: Set(subjectTemplates.filter { !$0.value.isEmpty }.keys.map { SubjectID(subjectNames[Int($0)]) }))
        let (loaded, replayed) = try recoverIndex()
        try sealer.snapshotCommitted()
        openReport = PartitionOpenReport(templates: info.count, indexSource: loaded, replayedChanges: replayed,
                                         seconds: Self.now() - started)
    }

    private func checkOrRecordSettings() throws(StoreError) {
        let dim = StoreKey.uint64(UInt64(configuration.dimension)), metric = Array(configuration.metric.rawValue.utf8)
        let stored: ([UInt8]?, [UInt8]?, UInt64)
        do {
            stored = try environment.read { (txn) throws(LMDBError) in
                (try txn.get(meta, Self.dimensionKey), try txn.get(meta, Self.metricKey),
                 try txn.get(meta, Self.sequenceKey).flatMap { $0.withUnsafeBytes(StoreKey.uint64) } ?? 0)
            }
        } catch { throw .lmdb(error) }
        if let d = stored.0, d != dim {
            throw .configurationMismatch(path: directory, reason: "dimension \(d.withUnsafeBytes(StoreKey.uint64) ?? 0), asked for \(configuration.dimension)")
        }
        if let m = stored.1, m != metric {
            throw .configurationMismatch(path: directory, reason: "metric \(String(decoding: m, as: UTF8.self)), asked for \(configuration.metric.rawValue)")
        }
        sequence = stored.2
        if stored.0 == nil {
            do throws(LMDBError) {
                try environment.write { (txn) throws(LMDBError) in
                    try txn.put(meta, Self.dimensionKey, dim)
                    try txn.put(meta, Self.metricKey, metric)
                }
            } catch { throw .lmdb(error) }
        }
    }

    /// Reads every template's subject, collection and mask flag into memory.
    private func loadInfo() throws(StoreError) {
        var failure: StoreError?
        do throws(LMDBError) {
            try environment.read { (txn) throws(LMDBError) in
                try txn.forEach(templates) { (key, value) throws(LMDBError) -> Bool in
                    guard let raw = StoreKey.uint64(key) else { return true }
                    do throws(StoreError) {
                        let record = try decode(Array(value), id: TemplateID(raw))
                        remember(record)
                    } catch { failure = error; return false }
                    return true
                }
            }
        } catch { throw .lmdb(error) }
        if let failure { throw failure }
    }

    /// Loads the snapshot and replays newer log records, or rebuilds the index from the templates.
    private func recoverIndex() throws(StoreError) -> (PartitionOpenReport.IndexSource, Int) {
        if let (snapshot, metadata) = try? HNSWIndex.load(from: snapshotPath, sealing: sealer.snapshotSealing),
           metadata.count == 8, let snapSeq = metadata.withUnsafeBytes(StoreKey.uint64), snapSeq <= sequence,
           snapshot.configuration.dimension == configuration.dimension, snapshot.configuration.metric == configuration.metric {
            // Collect the log records after the snapshot; they must start right after it.
            var changes: [(UInt64, LogOperation, UInt64)] = []
            do throws(LMDBError) {
                try environment.read { (txn) throws(LMDBError) in
                    try txn.forEach(log, from: StoreKey.uint64(snapSeq + 1)) { (k, v) -> Bool in
                        if let s = StoreKey.uint64(k), v.count == 9, let op = LogOperation(rawValue: v[0]),
                           let id = StoreKey.uint64(UnsafeRawBufferPointer(rebasing: v[1...])) {
                            changes.append((s, op, id))
                        }
                        return true
                    }
                }
            } catch { throw .lmdb(error) }
            let contiguous = changes.enumerated().allSatisfy { $0.element.0 == snapSeq + 1 + UInt64($0.offset) }
                && (changes.last?.0 ?? snapSeq) == sequence
            if contiguous {
                adopt(snapshot)
                for (_, op, id) in changes {
                    switch op {
                    case .delete: index.remove(VectorID(id))
                    case .insert:
                        let record: TemplateRecord?
                        do { record = try environment.read { (txn) throws(LMDBError) in try txn.get(templates, StoreKey.uint64(id)) } .map { try decode($0, id: TemplateID(id)) } }
                        catch let e as LMDBError { throw .lmdb(e) } catch { throw error as! StoreError }
                        if let record { do throws(IndexError) { try index.insert(record.embedding, id: VectorID(id)) } catch { throw .index(error) } }
                        else { index.remove(VectorID(id)) }   // inserted, then deleted later in the log
                    }
                }
                snapshotSequence = snapSeq
                if changes.count >= configuration.snapshotInterval { try writeSnapshot() }
                return (.snapshot, changes.count)
            }
        }
        // Rebuild from the templates table.
        var failure: StoreError?
        do {
            index.reserveCapacity(info.count)
            try environment.read { (txn) throws(LMDBError) in
                try txn.forEach(templates) { (key, value) throws(LMDBError) -> Bool in
                    guard let raw = StoreKey.uint64(key) else { return true }
                    do throws(StoreError) {
                        let record = try decode(Array(value), id: TemplateID(raw))
                        do throws(IndexError) { try index.insert(record.embedding, id: VectorID(raw)) } catch { throw StoreError.index(error) }
                    } catch { failure = error; return false }
                    return true
                }
            }
        } catch { throw .lmdb(error) }
        if let failure { throw failure }
        guard !info.isEmpty || sequence > 0 else { return (.empty, 0) }
        try writeSnapshot()
        return (.rebuilt, 0)
    }

    /// Takes over the graph of a loaded snapshot.
    private func adopt(_ snapshot: HNSWIndex) { index.replaceContents(with: snapshot) }

    // MARK: writes

    /// Stores `records` in one transaction (replacing templates with the same id) and indexes them.
    /// Returns after the transaction is committed to disk.
    /// - Throws: ``StoreError/invalidRecord(_:reason:)`` for a wrong dimension, NaN, or bad strings
    ///   (nothing is written then); ``StoreError/lmdb(_:)`` for storage failures.
    public func insert(_ records: [TemplateRecord]) throws(StoreError) {
        guard !records.isEmpty else { return }
        var encoded: [(TemplateRecord, [UInt8])] = []
        var seen = Set<TemplateID>()
        for r in records {
            guard r.embedding.count == configuration.dimension else {
                throw .invalidRecord(r.id, reason: "embedding has \(r.embedding.count) components, partition holds \(configuration.dimension)")
            }
            if let bad = r.embedding.firstIndex(where: { !$0.isFinite }) { throw .invalidRecord(r.id, reason: "component \(bad) is not finite") }
            guard seen.insert(r.id).inserted else { throw .duplicateTemplate(r.id) }
            encoded.append((r, try configuration.codec.encode(r)))
        }
        try writer.withLock { () throws(StoreError) in
            // Sealed under the writer lock: a concurrent erasure cannot shred the key between sealing and commit.
            for i in encoded.indices { encoded[i].1 = try sealer.seal(encoded[i].1, id: encoded[i].0.id, subject: encoded[i].0.subject) }
            var replacedSubjects: [(TemplateID, SubjectID)] = []
            let newSequence: UInt64
            do throws(LMDBError) {
                (newSequence, replacedSubjects) = try environment.write { (txn) throws(LMDBError) -> (UInt64, [(TemplateID, SubjectID)]) in
                    var seq = try currentSequence(txn)
                    var replaced: [(TemplateID, SubjectID)] = []
                    for (r, bytes) in encoded {
                        let key = StoreKey.uint64(r.id.rawValue)
                        if let old = try txn.get(templates, key), let oldRecord = try? decode(old, id: r.id) {
                            try txn.delete(subjects, sealer.subjectIndexKey(oldRecord.subject), value: key)
                            replaced.append((r.id, oldRecord.subject))
                        }
                        try txn.put(templates, key, bytes)
                        try txn.put(subjects, sealer.subjectIndexKey(r.subject), key)
                        seq += 1
                        try txn.put(log, StoreKey.uint64(seq), [LogOperation.insert.rawValue] + key)
                    }
                    try txn.put(meta, Self.sequenceKey, StoreKey.uint64(seq))
                    return (seq, replaced)
                }
            } catch { throw .lmdb(error) }
            sequence = newSequence
            for (r, _) in encoded {
                do throws(IndexError) { try index.insert(r.embedding, id: r.id.vectorID) } catch { throw .index(error) }
            }
            let emptied = infoLock.withWriteLock { () -> [SubjectID] in
                for (r, _) in encoded { forget(r.id); remember(r) }
                // A replaced template may have moved to another subject, leaving the old one without templates.
                return replacedSubjects.map { $0.1 }.filter { !hasTemplatesLocked($0) }
            }
            try erased(Set(emptied))
            try snapshotIfDue()
        }
    }

    /// Deletes the given templates in one transaction; returns those that existed.
    @discardableResult
    public func delete(_ ids: [TemplateID]) throws(StoreError) -> [TemplateID] {
        try writer.withLock { () throws(StoreError) -> [TemplateID] in try deleteLocked(ids) }
    }

    /// Deletes every template of `subject` in one transaction; returns their ids.
    @discardableResult
    public func deleteSubject(_ subject: SubjectID) throws(StoreError) -> [TemplateID] {
        try writer.withLock { () throws(StoreError) -> [TemplateID] in
            var ids: [TemplateID] = []
            do throws(LMDBError) {
                try environment.read { (txn) throws(LMDBError) in
                    try txn.forEach(subjects, onlyKey: sealer.subjectIndexKey(subject)) { (_, v) -> Bool in
                        if let id = StoreKey.uint64(v) { ids.append(TemplateID(id)) }
                        return true
                    }
                }
            } catch { throw .lmdb(error) }
            return try deleteLocked(ids)
        }
    }

    private func deleteLocked(_ ids: [TemplateID]) throws(StoreError) -> [TemplateID] {
        guard !ids.isEmpty else { return [] }
        let (newSequence, removed): (UInt64, [TemplateID])
        do throws(LMDBError) {
            (newSequence, removed) = try environment.write { (txn) throws(LMDBError) -> (UInt64, [TemplateID]) in
                var seq = try currentSequence(txn)
                var removed: [TemplateID] = []
                for id in Set(ids).sorted() {
                    let key = StoreKey.uint64(id.rawValue)
                    guard let old = try txn.get(templates, key) else { continue }
                    if let record = try? decode(old, id: id) {
                        try txn.delete(subjects, sealer.subjectIndexKey(record.subject), value: key)
                    }
                    try txn.delete(templates, key)
                    seq += 1
                    try txn.put(log, StoreKey.uint64(seq), [LogOperation.delete.rawValue] + key)
                    removed.append(id)
                }
                if !removed.isEmpty { try txn.put(meta, Self.sequenceKey, StoreKey.uint64(seq)) }
                return (seq, removed)
            }
        } catch { throw .lmdb(error) }
        sequence = newSequence
        for id in removed { index.remove(id.vectorID) }
        let emptied = infoLock.withWriteLock { () -> Set<SubjectID> in
            var subjects = Set<SubjectID>()
            for id in removed {
                if let i = info[id.rawValue] { subjects.insert(SubjectID(subjectNames[Int(i.subject)])) }
                forget(id)
            }
            return subjects.filter { !hasTemplatesLocked($0) }
        }
        try erased(emptied)
        if emptied.isEmpty { try snapshotIfDue() }
        return removed
    }

    /// Subjects left without templates: their keys are shredded and, with `snapshotOnErasure`, their vectors are
    /// zeroed in the index and a new snapshot replaces the old one. Caller holds `writer`.
    private func erased(_ subjects: Set<SubjectID>) throws(StoreError) {
        guard !subjects.isEmpty else { return }
        if configuration.snapshotOnErasure {
            index.compact()
            try writeSnapshot()
        }
        for s in subjects.sorted() { try sealer.subjectErased(s) }
    }

    /// Caller holds `infoLock`.
    private func hasTemplatesLocked(_ subject: SubjectID) -> Bool {
        guard let code = subjectCodes[subject.rawValue], let t = subjectTemplates[code] else { return false }
        return !t.isEmpty
    }

    private func currentSequence(_ txn: LMDBTransaction) throws(LMDBError) -> UInt64 {
        try txn.get(meta, Self.sequenceKey).flatMap { $0.withUnsafeBytes(StoreKey.uint64) } ?? 0
    }

    // MARK: snapshots

    private func snapshotIfDue() throws(StoreError) {
        if sequence - snapshotSequence >= UInt64(configuration.snapshotInterval) { try writeSnapshot() }
    }

    /// Writes the index snapshot now (atomically) and drops the log records it covers.
    public func checkpoint() throws(StoreError) {
        try writer.withLock { () throws(StoreError) in try writeSnapshot() }
    }

    /// Caller holds `writer` (or is the initialiser).
    private func writeSnapshot() throws(StoreError) {
        let seq = sequence
        do throws(IndexError) { try index.save(to: snapshotPath, metadata: StoreKey.uint64(seq), sealing: sealer.snapshotSealing) } catch { throw .index(error) }
        try sealer.snapshotCommitted()
        snapshotSequence = seq
        // The snapshot is durable: the log up to `seq` is no longer needed.
        do throws(LMDBError) {
            try environment.write { (txn) throws(LMDBError) in
                var stale: [[UInt8]] = []
                try txn.forEach(log) { (k, _) -> Bool in
                    guard let s = StoreKey.uint64(k), s <= seq else { return false }
                    stale.append(Array(k)); return true
                }
                for k in stale { try txn.delete(log, k) }
            }
        } catch { throw .lmdb(error) }
    }

    // MARK: reads

    /// Number of stored templates.
    public var count: Int { infoLock.withReadLock { info.count } }

    /// Number of subjects with at least one stored template.
    public var subjectCount: Int { infoLock.withReadLock { liveSubjects } }

    /// The stored template, or nil.
    public func template(_ id: TemplateID) throws(StoreError) -> TemplateRecord? {
        let bytes: [UInt8]?
        do { bytes = try environment.read { (txn) throws(LMDBError) in try txn.get(templates, StoreKey.uint64(id.rawValue)) } }
        catch { throw .lmdb(error) }
        guard let bytes else { return nil }
        return try decode(bytes, id: id)
    }

    /// The stored templates of `ids`, read in one LMDB read transaction (the matcher's periocular re-rank reads its
    /// candidates this way: one transaction per partition, not one per candidate). Per id: nil when none is stored,
    /// a failure when its record cannot be opened (its subject's key erased meanwhile, a damaged record); a failing
    /// read of the database throws.
    public func templates(_ ids: [TemplateID]) throws(StoreError) -> [Result<TemplateRecord, StoreError>?] {
        let stored: [[UInt8]?]
        do {
            stored = try environment.read { (txn) throws(LMDBError) -> [[UInt8]?] in
                var out: [[UInt8]?] = []
                out.reserveCapacity(ids.count)
                for id in ids { out.append(try txn.get(templates, StoreKey.uint64(id.rawValue))) }
                return out
            }
        } catch { throw .lmdb(error) }
        return zip(ids, stored).map { id, bytes in
            bytes.map { b in Result { () throws(StoreError) in try decode(b, id: id) } }
        }
    }

    /// The templates of `subject`, by id.
    public func templates(of subject: SubjectID) throws(StoreError) -> [TemplateRecord] {
        var ids: [TemplateID] = []
        do throws(LMDBError) {
            try environment.read { (txn) throws(LMDBError) in
                try txn.forEach(subjects, onlyKey: sealer.subjectIndexKey(subject)) { (_, v) -> Bool in
                    if let id = StoreKey.uint64(v) { ids.append(TemplateID(id)) }
                    return true
                }
            }
        } catch { throw .lmdb(error) }
        var out: [TemplateRecord] = []
        for id in ids { if let r = try template(id) { out.append(r) } }
        return out
    }

    /// Calls `body` for every stored template in id order (one read transaction), until it returns false.
    /// With `after`, starts at the first template whose id is greater (an LMDB cursor positioned there, so
    /// paging through a partition reads each record once).
    public func forEachTemplate(after: TemplateID? = nil, _ body: (TemplateRecord) -> Bool) throws(StoreError) {
        if let after, after.rawValue == UInt64.max { return }
        let start = after.map { StoreKey.uint64($0.rawValue + 1) }
        var failure: StoreError?
        do throws(LMDBError) {
            try environment.read { (txn) throws(LMDBError) in
                try txn.forEach(templates, from: start) { (k, v) -> Bool in
                    guard let raw = StoreKey.uint64(k) else { return true }
                    do throws(StoreError) { return body(try decode(Array(v), id: TemplateID(raw))) }
                    catch { failure = error; return false }
                }
            }
        } catch { throw .lmdb(error) }
        if let failure { throw failure }
    }

    /// Embedding model versions of the templates held (those ever seen since the partition was opened).
    public var modelVersions: Set<String> { infoLock.withReadLock { Set(modelNames) } }
    /// Subjects with at least one template (in `collection`, when given) whose id sorts after `after` and starts with
    /// `prefix`, ordered by id, at most `limit`, each with its template count; `more` when the limit cut the list.
    public func subjectSummaries(after: String = "", prefix: String = "", collection: String? = nil,
                                 limit: Int) -> (subjects: [(subject: SubjectID, templates: Int)], more: Bool) {
        infoLock.withReadLock {
            let code: UInt32?? = collection.map { collectionCodes[$0] }
            if case .some(.none) = code { return ([], false) }   // no template in that collection
            var out: [(subject: SubjectID, templates: Int)] = []
            for (s, ids) in subjectTemplates where !ids.isEmpty {
                let name = subjectNames[Int(s)]
                guard name > after, name.hasPrefix(prefix) else { continue }
                let n: Int
                if case .some(.some(let c)) = code { n = ids.reduce(0) { $0 + (info[$1]?.collection == c ? 1 : 0) } } else { n = ids.count }
                if n > 0 { out.append((SubjectID(name), n)) }
            }
            out.sort { $0.subject.rawValue < $1.subject.rawValue }
            let more = out.count > limit
            return (Array(out.prefix(limit)), more)
        }
    }

    /// All subjects with at least one template.
    public func subjectIDs() -> [SubjectID] {
        infoLock.withReadLock { subjectTemplates.filter { !$0.value.isEmpty }.keys.map { SubjectID(subjectNames[Int($0)]) }.sorted() }
    }

    /// The `k` nearest templates to `query` that pass `filter`, closest first.
    ///
    /// A filter naming few subjects (at most `exactFilterLimit` templates in all) is answered exactly;
    /// other filters run inside the HNSW search.
    public func search(_ query: [Float], k: Int, parameters: SearchParameters = SearchParameters(),
                       filter: TemplateFilter? = nil) throws(StoreError) -> [TemplateMatch] {
        try infoLock.withReadLock { () throws(StoreError) -> [TemplateMatch] in
            let neighbors: [Neighbor]
            do throws(IndexError) {
                if let filter {
                    let accept = predicate(filter)
                    if let subjects = filter.subjects, let candidates = smallSubjectSet(subjects) {
                        neighbors = try exactSearch(query, k: k, among: candidates, accept: accept)
                    } else {
                        neighbors = try index.search(query, k: k, parameters: parameters, filter: accept)
                    }
                } else {
                    neighbors = try index.search(query, k: k, parameters: parameters, filter: nil)
                }
            } catch { throw .index(error) }
            return neighbors.compactMap { n in
                guard let i = info[n.id.rawValue] else { return nil }
                return TemplateMatch(template: TemplateID(n.id.rawValue), subject: SubjectID(subjectNames[Int(i.subject)]),
                                     distance: n.distance, masked: i.masked)
            }
        }
    }

    /// Checks the index's structural invariants and that it holds exactly the stored templates.
    public func verifyIndex() throws -> Bool {
        try index.checkInvariants()
        return infoLock.withReadLock { Set(index.ids.map(\.rawValue)) == Set(info.keys) }
    }

    /// Bytes held by the in-memory index.
    public var indexMemoryBytes: Int { index.memoryBytes }

    // MARK: helpers (callers hold `infoLock` as noted)

    private func predicate(_ f: TemplateFilter) -> (VectorID) -> Bool {
        let subjectSet: Set<UInt32>? = f.subjects.map { Set($0.compactMap { subjectCodes[$0.rawValue] }) }
        let collectionSet: Set<UInt32>? = f.collections.map { Set($0.compactMap { collectionCodes[$0] }) }
        let masked = f.masked
        let modelSet: Set<UInt32>? = f.modelVersions.map { Set($0.compactMap { modelCodes[$0] }) }
        let info = self.info
        return { id in
            guard let i = info[id.rawValue] else { return false }
            if let subjectSet, !subjectSet.contains(i.subject) { return false }
            if let collectionSet, !collectionSet.contains(i.collection) { return false }
            if let masked, i.masked != masked { return false }
            if let modelSet, !modelSet.contains(i.model) { return false }
            return true
        }
    }

    private func smallSubjectSet(_ subjects: Set<SubjectID>) -> [UInt64]? {
        var ids: [UInt64] = []
        for s in subjects {
            guard let code = subjectCodes[s.rawValue], let t = subjectTemplates[code] else { continue }
            ids.append(contentsOf: t)
            if ids.count > configuration.exactFilterLimit { return nil }
        }
        return ids
    }

    private func exactSearch(_ query: [Float], k: Int, among ids: [UInt64], accept: (VectorID) -> Bool) throws(IndexError) -> [Neighbor] {
        guard query.count == configuration.dimension else { throw .dimensionMismatch(expected: configuration.dimension, actual: query.count) }
        if let bad = query.firstIndex(where: { !$0.isFinite }) { throw .nonFiniteComponent(index: bad) }
        var top = TopK(k: k)
        for id in ids where accept(VectorID(id)) {
            guard let v = index.vector(for: VectorID(id)) else { continue }
            top.consider(VectorID(id), Distance.distance(configuration.metric, query, v))
        }
        return top.sorted()
    }

    private func decode(_ bytes: [UInt8], id: TemplateID) throws(StoreError) -> TemplateRecord {
        try configuration.codec.decode(try sealer.open(bytes, id: id), id: id)
    }

    /// Caller holds the `infoLock` exclusively (or is the initialiser).
    private func remember(_ r: TemplateRecord) {
        let s: UInt32
        if let c = subjectCodes[r.subject.rawValue] { s = c } else {
            s = UInt32(subjectNames.count); subjectCodes[r.subject.rawValue] = s; subjectNames.append(r.subject.rawValue)
        }
        let c: UInt32
        if let x = collectionCodes[r.collection] { c = x } else {
            c = UInt32(collectionNames.count); collectionCodes[r.collection] = c; collectionNames.append(r.collection)
        }
        let m: UInt32
        if let x = modelCodes[r.modelVersion] { m = x } else {
            m = UInt32(modelNames.count); modelCodes[r.modelVersion] = m; modelNames.append(r.modelVersion)
        }
        info[r.id.rawValue] = Info(subject: s, collection: c, masked: r.masked, model: m)
        if subjectTemplates[s, default: []].insert(r.id.rawValue).inserted && subjectTemplates[s]!.count == 1 { liveSubjects += 1 }
    }

    private func forget(_ id: TemplateID) {
        guard let i = info.removeValue(forKey: id.rawValue) else { return }
        if subjectTemplates[i.subject]?.remove(id.rawValue) != nil && subjectTemplates[i.subject]!.isEmpty { liveSubjects -= 1 }
    }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }
}
