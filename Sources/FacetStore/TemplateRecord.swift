import FacetIndex

/// Identifies one stored face template (one embedding of one photo). Doubles as the index's ``VectorID``.
public struct TemplateID: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    public static func < (a: TemplateID, b: TemplateID) -> Bool { a.rawValue < b.rawValue }
    public var vectorID: VectorID { VectorID(rawValue: rawValue) }
    public var description: String { "template \(rawValue)" }
}

/// The enrolled person a template belongs to (the caller's identifier, 1–255 UTF-8 bytes).
public struct SubjectID: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public static func < (a: SubjectID, b: SubjectID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "subject \(rawValue)" }
}

/// One stored template: who, which vector, and how it was made.
public struct TemplateRecord: Hashable, Sendable {
    public var id: TemplateID
    public var subject: SubjectID
    /// A grouping the caller chooses (e.g. a gallery or watch-list name); empty for none.
    public var collection: String
    public var embedding: [Float]
    /// Whether the photo showed a masked face.
    public var masked: Bool
    /// The embedding model that produced `embedding` (re-enrolment writes a new version side by side).
    public var modelVersion: String
    /// Milliseconds since 1970-01-01 UTC.
    public var createdAtMilliseconds: Int64
    /// The upper-face (periocular) embedding of the same photo, for fused comparisons with masked faces; nil when the
    /// embedder did not compute one. Same dimension as `embedding`.
    public var periocular: [Float]?

    public init(id: TemplateID, subject: SubjectID, collection: String = "", embedding: [Float], masked: Bool = false,
                modelVersion: String = "", createdAtMilliseconds: Int64 = 0, periocular: [Float]? = nil) {
        self.id = id; self.subject = subject; self.collection = collection; self.embedding = embedding
        self.masked = masked; self.modelVersion = modelVersion; self.createdAtMilliseconds = createdAtMilliseconds
        self.periocular = periocular
    }
}

/// Turns a record into bytes and back (versioned binary layout).
public protocol TemplateCodec: Sendable {
    func encode(_ record: TemplateRecord) throws(StoreError) -> [UInt8]
    func decode(_ bytes: [UInt8], id: TemplateID) throws(StoreError) -> TemplateRecord
}

/// Seals encoded records before they reach the disk and opens them after reading — the seam for
/// encryption at rest (``EncryptedTemplateSealer``: AES-GCM with a data key per subject; the template id is
/// associated data, so a sealed record cannot be moved to another id).
///
/// A partition calls ``bind(toPartitionAt:)`` once when it opens, and then uses the returned sealer only.
public protocol TemplateSealer: Sendable {
    /// The sealer for the partition stored in `directory` (e.g. opening its key vault there).
    func bind(toPartitionAt directory: String) throws(StoreError) -> any TemplateSealer
    func seal(_ plaintext: [UInt8], id: TemplateID, subject: SubjectID) throws(StoreError) -> [UInt8]
    func open(_ sealed: [UInt8], id: TemplateID) throws(StoreError) -> [UInt8]
    /// The key of `subject` in the partition's subjects table (the name itself, or a keyed hash of it).
    func subjectIndexKey(_ subject: SubjectID) -> [UInt8]
    /// Called after the last template of `subject` was deleted (committed): forget its key (crypto-shredding).
    func subjectErased(_ subject: SubjectID) throws(StoreError)
    /// Called once the partition has loaded: the subjects that have templates; keys of any others can go.
    func retainKeys(of subjects: Set<SubjectID>) throws(StoreError)
    /// How index snapshots are encrypted; nil writes them in the clear.
    var snapshotSealing: (any SnapshotSealing)? { get }
    /// Called after a snapshot written with ``snapshotSealing`` was renamed into place (older snapshot keys can go).
    func snapshotCommitted() throws(StoreError)
}

extension TemplateSealer {
    public func bind(toPartitionAt directory: String) throws(StoreError) -> any TemplateSealer { self }
    public func subjectIndexKey(_ subject: SubjectID) -> [UInt8] { Array(subject.rawValue.utf8) }
    public func subjectErased(_ subject: SubjectID) throws(StoreError) {}
    public func retainKeys(of subjects: Set<SubjectID>) throws(StoreError) {}
    public var snapshotSealing: (any SnapshotSealing)? { nil }
    public func snapshotCommitted() throws(StoreError) {}
}

/// Stores records as they are (no encryption; development and tests of the store alone).
public struct PlaintextSealer: TemplateSealer {
    public init() {}
    public func seal(_ plaintext: [UInt8], id: TemplateID, subject: SubjectID) -> [UInt8] { plaintext }
    public func open(_ sealed: [UInt8], id: TemplateID) -> [UInt8] { sealed }
}

/// Layout v1 (little-endian): version byte, flags byte (bit 0 = masked), created-at Int64,
/// subject / collection / model version as UInt16 length + UTF-8, dimension UInt16, Float32 components.
/// Layout v2 = v1 + a second vector (dimension UInt16, Float32 components): the periocular embedding. A record
/// without one is written as v1, so stores written before v2 and records without it stay byte-for-byte the same.
public struct BinaryTemplateCodec: TemplateCodec {
    public init() {}
    static let version: UInt8 = 1
    static let versionWithPeriocular: UInt8 = 2

    public func encode(_ r: TemplateRecord) throws(StoreError) -> [UInt8] {
        let subject = Array(r.subject.rawValue.utf8), collection = Array(r.collection.utf8), model = Array(r.modelVersion.utf8)
        guard !subject.isEmpty, subject.count <= 255 else { throw .invalidRecord(r.id, reason: "subject id must be 1–255 UTF-8 bytes") }
        guard collection.count <= 255, model.count <= 255 else { throw .invalidRecord(r.id, reason: "collection and model version are at most 255 bytes") }
        guard r.embedding.count <= UInt16.max else { throw .invalidRecord(r.id, reason: "embedding too long") }
        if let p = r.periocular, p.count != r.embedding.count {
            throw .invalidRecord(r.id, reason: "periocular embedding has \(p.count) components, the embedding \(r.embedding.count)")
        }
        var out: [UInt8] = [r.periocular == nil ? Self.version : Self.versionWithPeriocular, r.masked ? 1 : 0]
        out.reserveCapacity(24 + subject.count + collection.count + model.count + 4 * r.embedding.count)
        withUnsafeBytes(of: r.createdAtMilliseconds.littleEndian) { out.append(contentsOf: $0) }
        for field in [subject, collection, model] {
            withUnsafeBytes(of: UInt16(field.count).littleEndian) { out.append(contentsOf: $0) }
            out.append(contentsOf: field)
        }
        for vector in [r.embedding] + (r.periocular.map { [$0] } ?? []) {
            withUnsafeBytes(of: UInt16(vector.count).littleEndian) { out.append(contentsOf: $0) }
            for x in vector { withUnsafeBytes(of: x.bitPattern.littleEndian) { out.append(contentsOf: $0) } }
        }
        return out
    }

    public func decode(_ b: [UInt8], id: TemplateID) throws(StoreError) -> TemplateRecord {
        var i = 0
        func need(_ n: Int) throws(StoreError) { guard i + n <= b.count else { throw .corruptRecord(id, reason: "truncated") } }
        func u16() throws(StoreError) -> Int { try need(2); defer { i += 2 }; return Int(b[i]) | Int(b[i + 1]) << 8 }
        func string() throws(StoreError) -> String {
            let n = try u16(); try need(n); defer { i += n }
            return String(decoding: b[i..<i + n], as: UTF8.self)
        }
        try need(10)
        guard b[0] == Self.version || b[0] == Self.versionWithPeriocular else { throw .corruptRecord(id, reason: "unknown record version \(b[0])") }
        let masked = b[1] & 1 != 0
        var created: UInt64 = 0
        for k in 0..<8 { created |= UInt64(b[2 + k]) << (8 * UInt64(k)) }
        i = 10
        let subject = try string(), collection = try string(), model = try string()
        func vector() throws(StoreError) -> [Float] {
            let d = try u16()
            try need(4 * d)
            var v = [Float](repeating: 0, count: d)
            #if _endian(little)
            // Little-endian float32 on disk and in memory: one copy (the loop below took most of a record's decode).
            let start = i
            v.withUnsafeMutableBytes { dst in b.withUnsafeBytes { src in dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[start..<start + 4 * d])) } }
            #else
            for k in 0..<d {
                let o = i + 4 * k
                v[k] = Float(bitPattern: UInt32(b[o]) | UInt32(b[o + 1]) << 8 | UInt32(b[o + 2]) << 16 | UInt32(b[o + 3]) << 24)
            }
            #endif
            i += 4 * d
            return v
        }
        let embedding = try vector()
        let periocular = b[0] == Self.versionWithPeriocular ? try vector() : nil
        guard i == b.count else { throw .corruptRecord(id, reason: "trailing bytes") }
        if let periocular, periocular.count != embedding.count { throw .corruptRecord(id, reason: "periocular dimension differs") }
        return TemplateRecord(id: id, subject: SubjectID(subject), collection: collection, embedding: embedding, masked: masked,
                              modelVersion: model, createdAtMilliseconds: Int64(bitPattern: created), periocular: periocular)
    }
}

/// Why a store operation failed.
public enum StoreError: Error, Sendable, Equatable, CustomStringConvertible {
    case lmdb(LMDBError)
    case index(IndexError)
    case invalidRecord(TemplateID, reason: String)
    case corruptRecord(TemplateID, reason: String)
    case duplicateTemplate(TemplateID)
    case configurationMismatch(path: String, reason: String)
    case io(path: String, reason: String)
    /// Key handling or authenticated decryption failed (wrong key, tampered bytes); never contains key bytes.
    case crypto(String)
    /// The data key of the template's subject no longer exists (the subject was erased).
    case keyErased(TemplateID)

    public var description: String {
        switch self {
        case .lmdb(let e): "storage: \(e)"
        case .index(let e): "index: \(e)"
        case .invalidRecord(let id, let reason): "\(id) rejected: \(reason)"
        case .corruptRecord(let id, let reason): "\(id) unreadable: \(reason)"
        case .duplicateTemplate(let id): "\(id) appears twice in one batch"
        case .configurationMismatch(let path, let reason): "\(path) was created with other settings: \(reason)"
        case .io(let path, let reason): "\(path): \(reason)"
        case .crypto(let reason): "encryption: \(reason)"
        case .keyErased(let id): "\(id) unreadable: its subject's key was erased"
        }
    }
}
