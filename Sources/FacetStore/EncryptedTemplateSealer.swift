import Crypto
import FacetIndex
import Foundation

/// Encryption at rest for partitions: every template record is sealed with AES-256-GCM under its subject's own
/// data key; data keys (and snapshot keys) live in the partition's ``SubjectKeyVault``, wrapped by the master key.
/// Subjects appear on disk only as keyed hashes (the subjects table is keyed by the vault's tag), and index
/// snapshots are written as AES-GCM chunks under a per-snapshot key.
///
/// Sealed record: version (1), key id (16), nonce (12), ciphertext, tag (16); associated data: the template id and
/// the key id, so a record cannot be moved to another id or key.
public struct EncryptedTemplateSealer: TemplateSealer {
    public let master: MasterKey
    public static let vaultFileName = "subject-keys.vault"

    public init(master: MasterKey) { self.master = master }

    public func bind(toPartitionAt directory: String) throws(StoreError) -> any TemplateSealer {
        BoundEncryptedSealer(vault: try SubjectKeyVault(path: directory + "/" + Self.vaultFileName, master: master))
    }

    // Unbound use is a programming error: a partition always binds first.
    public func seal(_ plaintext: [UInt8], id: TemplateID, subject: SubjectID) throws(StoreError) -> [UInt8] {
        throw .crypto("EncryptedTemplateSealer used before bind(toPartitionAt:)")
    }
    public func open(_ sealed: [UInt8], id: TemplateID) throws(StoreError) -> [UInt8] {
        throw .crypto("EncryptedTemplateSealer used before bind(toPartitionAt:)")
    }
}

/// The sealer of one partition (bound to its vault).
final class BoundEncryptedSealer: TemplateSealer, SnapshotSealing, @unchecked Sendable {   // `snapshotState` is locked
    let vault: SubjectKeyVault
    private let lock = NSLock()
    private var pendingSnapshotKey: [UInt8]?
    private var currentSnapshotKey: [UInt8]?
    static let version: UInt8 = 1

    init(vault: SubjectKeyVault) { self.vault = vault }

    func seal(_ plaintext: [UInt8], id: TemplateID, subject: SubjectID) throws(StoreError) -> [UInt8] {
        let (keyID, key) = try vault.subjectKey(subject)
        do {
            let box = try AES.GCM.seal(plaintext, using: key, authenticating: Self.aad(id, keyID))
            return [Self.version] + keyID + Array(box.nonce) + Array(box.ciphertext) + Array(box.tag)
        } catch { throw .crypto("sealing \(id) failed: \(error)") }
    }

    func open(_ sealed: [UInt8], id: TemplateID) throws(StoreError) -> [UInt8] {
        guard sealed.count >= 1 + 16 + 12 + 16, sealed[0] == Self.version else {
            throw .corruptRecord(id, reason: "not a sealed record (plaintext or unknown version)")
        }
        let keyID = Array(sealed[1..<17])
        guard let key = vault.key(id: keyID) else { throw .keyErased(id) }
        do {
            // nonce (12) ‖ ciphertext ‖ tag (16) is the combined form, read in one piece (separate nonce, ciphertext
            // and tag objects cost more than the decryption itself: `facet bench rerank`, docs/cluster.md).
            let box = try AES.GCM.SealedBox(combined: sealed[17...])
            return Array(try AES.GCM.open(box, using: key, authenticating: Self.aad(id, keyID)))
        } catch { throw .corruptRecord(id, reason: "authentication failed (tampered or wrong key)") }
    }

    static func aad(_ id: TemplateID, _ keyID: [UInt8]) -> [UInt8] {
        var out = Array("facet-template-v1".utf8)
        withUnsafeBytes(of: id.rawValue.littleEndian) { out.append(contentsOf: $0) }
        return out + keyID
    }

    func subjectIndexKey(_ subject: SubjectID) -> [UInt8] { vault.tag(of: subject) }
    func subjectErased(_ subject: SubjectID) throws(StoreError) { try vault.erase(subject) }
    func retainKeys(of subjects: Set<SubjectID>) throws(StoreError) { try vault.retain(subjects: subjects) }

    // MARK: snapshots

    var snapshotSealing: (any SnapshotSealing)? { self }

    func snapshotCommitted() throws(StoreError) {
        let current: [UInt8]? = lock.withLock {
            if let p = pendingSnapshotKey { currentSnapshotKey = p; pendingSnapshotKey = nil }
            return currentSnapshotKey
        }
        try vault.retainSnapshotKey(current)
    }

    func makeSnapshotSealer() throws(IndexError) -> any SnapshotChunkSealer {
        let (keyID, key): ([UInt8], SymmetricKey)
        do { (keyID, key) = try vault.newSnapshotKey() } catch {
            throw .io(path: vault.path, errno: 0, operation: "new snapshot key: \(error)")
        }
        lock.withLock { pendingSnapshotKey = keyID }
        return SnapshotChunkCipher(keyID: keyID, key: key)
    }

    func makeSnapshotOpener(header: [UInt8]) throws(IndexError) -> any SnapshotChunkOpener {
        guard header.count == 17, header[0] == Self.version else {
            throw .malformedFile(path: vault.path, reason: "unknown sealed snapshot header")
        }
        let keyID = Array(header[1...])
        guard let key = vault.key(id: keyID) else {
            throw .malformedFile(path: vault.path, reason: "the snapshot's key was erased (an older snapshot)")
        }
        lock.withLock { currentSnapshotKey = keyID }
        return SnapshotChunkCipher(keyID: keyID, key: key)
    }
}

/// AES-GCM over snapshot chunks: nonce (12) + ciphertext + tag (16) per chunk; associated data binds the key id,
/// the chunk index and the final flag.
struct SnapshotChunkCipher: SnapshotChunkSealer, SnapshotChunkOpener {
    let keyID: [UInt8]
    let key: SymmetricKey

    var header: [UInt8] { [BoundEncryptedSealer.version] + keyID }

    func aad(_ chunk: UInt64, _ final: Bool) -> [UInt8] {
        var out = Array("facet-snapshot-v1".utf8) + keyID
        withUnsafeBytes(of: chunk.littleEndian) { out.append(contentsOf: $0) }
        return out + [final ? 1 : 0]
    }

    func seal(_ plaintext: [UInt8], chunk: UInt64, final: Bool) throws(IndexError) -> [UInt8] {
        do {
            let box = try AES.GCM.seal(plaintext, using: key, authenticating: aad(chunk, final))
            return Array(box.nonce) + Array(box.ciphertext) + Array(box.tag)
        } catch { throw .io(path: "snapshot", errno: 0, operation: "seal: \(error)") }
    }

    func open(_ sealed: [UInt8], chunk: UInt64, final: Bool) throws(IndexError) -> [UInt8] {
        guard sealed.count >= 28 else { throw .malformedFile(path: "snapshot", reason: "short sealed chunk") }
        do {
            let box = try AES.GCM.SealedBox(nonce: AES.GCM.Nonce(data: sealed[0..<12]), ciphertext: sealed[12..<(sealed.count - 16)],
                                            tag: sealed[(sealed.count - 16)...])
            return Array(try AES.GCM.open(box, using: key, authenticating: aad(chunk, final)))
        } catch { throw .malformedFile(path: "snapshot", reason: "sealed chunk \(chunk) does not authenticate") }
    }
}
