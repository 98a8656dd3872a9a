import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The data keys of one partition, wrapped by the master key, in a file of fixed-size slots
/// (`subject-keys.vault` in the partition directory) that is overwritten in place.
///
/// LMDB never overwrites a freed page on demand, so a deleted record's ciphertext may linger in the data file.
/// Erasure is made provable by crypto-shredding: every subject's templates are sealed with that subject's own
/// random data key, and erasing the subject zeroes its slot here (`pwrite` of zeros + `fdatasync`), after which no
/// copy of its templates can be decrypted, whoever holds the master key. Snapshot keys live in slots too, so an
/// older snapshot's leftover blocks become unreadable once a newer snapshot is in place.
///
/// File layout: a 128-byte header — magic `FACETKV1`, the master key id (8), the partition's index key wrapped
/// by the master key (60: nonce, ciphertext, tag) — then 128-byte slots: state (1 = live), kind (1 = subject,
/// 2 = snapshot), 6 reserved, key id (16, random), subject tag (32: HMAC-SHA256 of the subject id under the index
/// key; zero for snapshots), wrapped data key (60). A wrapped key's associated data is its key id and tag, so a
/// slot cannot be moved to another subject.
///
/// Thread safety: all methods take an internal lock.
public final class SubjectKeyVault: @unchecked Sendable {   // mutable state guarded by `lock`
    public let path: String
    public private(set) var masterKeyID: [UInt8]
    private var master: MasterKey
    private var fd: Int32
    private let lock = NSLock()
    /// Keys subject tags with the partition's index key (stable across master-key rotations).
    let indexKey: SymmetricKey
    private var slots: [Slot?] = []
    private var bySubjectTag: [[UInt8]: Int] = [:]
    private var byKeyID: [[UInt8]: Int] = [:]
    private var freeSlots: [Int] = []

    struct Slot { var kind: UInt8; var keyID: [UInt8]; var tag: [UInt8]; var key: SymmetricKey }

    static let magic = Array("FACETKV1".utf8)
    static let headerSize = 128, slotSize = 128, wrappedSize = 60
    static let kindSubject: UInt8 = 1, kindSnapshot: UInt8 = 2

    /// Opens (or creates) the vault at `path`. With `exclusive` (the default) it takes an exclusive `flock` for its
    /// lifetime, so a rotation cannot run while a matcher has the vault open; `exclusive: false` is for inspection.
    /// - Throws: ``StoreError/crypto(_:)`` when it was written under another master key or a slot fails to unwrap;
    ///   ``StoreError/io(path:reason:)`` when another process holds it.
    public init(path: String, master: MasterKey, exclusive: Bool = true) throws(StoreError) {
        self.path = path
        self.master = master
        let created = !FileManager.default.fileExists(atPath: path)
        fd = Glibc.open(path, O_RDWR | O_CREAT, 0o600)
        guard fd >= 0 else { throw .io(path: path, reason: "open failed: errno \(errno)") }
        if exclusive && flock(fd, LOCK_EX | LOCK_NB) != 0 {
            close(fd)
            throw .io(path: path, reason: "in use by another process (stop the matcher first)")
        }
        do throws(StoreError) {
            if created {
                indexKey = SymmetricKey(size: .bits256)
                masterKeyID = master.id
                try Self.writeAll(fd: fd, path: path, header: Self.header(master: master, indexKey: indexKey), slots: [])
                Self.syncDirectory(of: path)
            } else {
                let data = try Self.readAll(fd: fd, path: path)
                guard data.count >= Self.headerSize, Array(data[0..<8]) == Self.magic,
                      (data.count - Self.headerSize) % Self.slotSize == 0 else {
                    throw StoreError.crypto("\(path) is not a key vault")
                }
                masterKeyID = Array(data[8..<16])
                guard masterKeyID == master.id else {
                    throw StoreError.crypto("\(path) is wrapped by master key \(hex(masterKeyID)), not by the given key \(master.idHex)")
                }
                indexKey = try Self.unwrap(Array(data[16..<76]), with: master.key, aad: Array("facet-index-key-v1".utf8), path: path)
                var i = Self.headerSize
                while i < data.count {
                    let s = Array(data[i..<i + Self.slotSize])
                    if s[0] == 1 {
                        let keyID = Array(s[8..<24]), tag = Array(s[24..<56])
                        let key = try Self.unwrap(Array(s[56..<116]), with: master.key, aad: Self.slotAAD(kind: s[1], keyID: keyID, tag: tag), path: path)
                        slots.append(Slot(kind: s[1], keyID: keyID, tag: tag, key: key))
                    } else {
                        slots.append(nil)
                    }
                    i += Self.slotSize
                }
                for (n, s) in slots.enumerated() {
                    guard let s else { freeSlots.append(n); continue }
                    byKeyID[s.keyID] = n
                    if s.kind == Self.kindSubject { bySubjectTag[s.tag] = n }
                }
                freeSlots.reverse()
            }
        } catch {
            close(fd)
            throw error
        }
    }

    deinit { close(fd) }

    // MARK: subjects

    /// HMAC-SHA256 of the subject id under the index key: how the subject is named on disk outside ciphertexts.
    public func tag(of subject: SubjectID) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: Array(subject.rawValue.utf8), using: indexKey))
    }

    /// The subject's data key and its id, created (and made durable) on first use.
    public func subjectKey(_ subject: SubjectID) throws(StoreError) -> (id: [UInt8], key: SymmetricKey) {
        let t = tag(of: subject)
        return try withLock { () throws(StoreError) in
            if let n = bySubjectTag[t], let s = slots[n] { return (s.keyID, s.key) }
            let s = try addSlotLocked(kind: Self.kindSubject, tag: t)
            return (s.keyID, s.key)
        }
    }

    /// The data key with `keyID`, or nil when it was erased.
    public func key(id keyID: [UInt8]) -> SymmetricKey? {
        lock.lock(); defer { lock.unlock() }
        return byKeyID[keyID].flatMap { slots[$0]?.key }
    }

    /// Zeroes the subject's slot on disk (crypto-shredding). Returns whether a key existed.
    @discardableResult
    public func erase(_ subject: SubjectID) throws(StoreError) -> Bool {
        let t = tag(of: subject)
        return try withLock { () throws(StoreError) -> Bool in
            guard let n = bySubjectTag[t] else { return false }
            try eraseSlotLocked(n)
            return true
        }
    }

    /// Erases the keys of every subject not in `subjects` (keys left by a crash between key creation and the
    /// first commit, or between a deletion's commit and its shredding). Returns how many were erased.
    @discardableResult
    public func retain(subjects: Set<SubjectID>) throws(StoreError) -> Int {
        let keep = Set(subjects.map { tag(of: $0) })
        return try withLock { () throws(StoreError) -> Int in
            let drop = bySubjectTag.filter { !keep.contains($0.key) }.map(\.value).sorted()
            for n in drop { try eraseSlotLocked(n, sync: false) }
            if !drop.isEmpty { try sync() }
            return drop.count
        }
    }

    public var subjectKeyCount: Int { withLockQuiet { bySubjectTag.count } }

    // MARK: snapshots

    /// A new snapshot key (durable before it returns).
    func newSnapshotKey() throws(StoreError) -> (id: [UInt8], key: SymmetricKey) {
        try withLock { () throws(StoreError) in
            let s = try addSlotLocked(kind: Self.kindSnapshot, tag: [UInt8](repeating: 0, count: 32))
            return (s.keyID, s.key)
        }
    }

    /// Erases every snapshot key except `current`.
    func retainSnapshotKey(_ current: [UInt8]?) throws(StoreError) {
        try withLock { () throws(StoreError) in
            let drop = slots.indices.filter { slots[$0]?.kind == Self.kindSnapshot && slots[$0]?.keyID != current }
            for n in drop { try eraseSlotLocked(n, sync: false) }
            if !drop.isEmpty { try sync() }
        }
    }

    // MARK: rotation

    /// Re-wraps every key (and the index key) under `newMaster`, writing a new file and renaming it into place.
    /// Data keys are unchanged, so sealed records and snapshots stay valid.
    public func rewrap(with newMaster: MasterKey) throws(StoreError) {
        try withLock { () throws(StoreError) in
            let temporary = path + ".rotate"
            let tfd = Glibc.open(temporary, O_RDWR | O_CREAT | O_TRUNC, 0o600)
            guard tfd >= 0 else { throw .io(path: temporary, reason: "open failed: errno \(errno)") }
            do throws(StoreError) {
                try Self.writeAll(fd: tfd, path: temporary, header: try Self.header(master: newMaster, indexKey: indexKey),
                                  slots: try slots.map { s throws(StoreError) in try s.map { s throws(StoreError) in try Self.encodeSlot(s, master: newMaster) } })
            } catch { close(tfd); unlink(temporary); throw error }
            guard rename(temporary, path) == 0 else { close(tfd); throw .io(path: path, reason: "rename failed: errno \(errno)") }
            Self.syncDirectory(of: path)
            close(fd)
            fd = tfd
            master = newMaster
            masterKeyID = newMaster.id
        }
    }

    // MARK: internals (callers hold `lock`)

    private func withLock<R>(_ body: () throws(StoreError) -> R) throws(StoreError) -> R {
        lock.lock(); defer { lock.unlock() }
        return try body()
    }
    private func withLockQuiet<R>(_ body: () -> R) -> R { lock.lock(); defer { lock.unlock() }; return body() }

    private func addSlotLocked(kind: UInt8, tag: [UInt8]) throws(StoreError) -> Slot {
        var keyID = [UInt8](repeating: 0, count: 16)
        repeat { keyID = SymmetricKey(size: .bits128).withUnsafeBytes { Array($0) } } while byKeyID[keyID] != nil
        let slot = Slot(kind: kind, keyID: keyID, tag: tag, key: SymmetricKey(size: .bits256))
        let n = freeSlots.popLast() ?? slots.count
        if n == slots.count { slots.append(nil) }
        try writeSlot(n, try Self.encodeSlot(slot, master: master))
        try sync()
        slots[n] = slot
        byKeyID[keyID] = n
        if kind == Self.kindSubject { bySubjectTag[tag] = n }
        return slot
    }

    private func eraseSlotLocked(_ n: Int, sync doSync: Bool = true) throws(StoreError) {
        guard let s = slots[n] else { return }
        try writeSlot(n, [UInt8](repeating: 0, count: Self.slotSize))
        if doSync { try sync() }
        slots[n] = nil
        byKeyID[s.keyID] = nil
        if s.kind == Self.kindSubject { bySubjectTag[s.tag] = nil }
        freeSlots.append(n)
    }

    private func writeSlot(_ n: Int, _ bytes: [UInt8]) throws(StoreError) {
        let offset = off_t(Self.headerSize + n * Self.slotSize)
        let written = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, offset) }
        guard written == bytes.count else { throw .io(path: path, reason: "pwrite failed: errno \(errno)") }
    }

    private func sync() throws(StoreError) {
        guard fdatasync(fd) == 0 else { throw .io(path: path, reason: "fdatasync failed: errno \(errno)") }
    }

    static func slotAAD(kind: UInt8, keyID: [UInt8], tag: [UInt8]) -> [UInt8] { Array("facet-data-key-v1".utf8) + [kind] + keyID + tag }

    static func encodeSlot(_ s: Slot, master: MasterKey) throws(StoreError) -> [UInt8] {
        var out: [UInt8] = [1, s.kind, 0, 0, 0, 0, 0, 0] + s.keyID + s.tag
        out += try wrap(s.key, with: master.key, aad: slotAAD(kind: s.kind, keyID: s.keyID, tag: s.tag))
        out += [UInt8](repeating: 0, count: slotSize - out.count)
        return out
    }

    static func header(master: MasterKey, indexKey: SymmetricKey) throws(StoreError) -> [UInt8] {
        var out = magic + master.id
        out += try wrap(indexKey, with: master.key, aad: Array("facet-index-key-v1".utf8))
        out += [UInt8](repeating: 0, count: headerSize - out.count)
        return out
    }

    static func wrap(_ key: SymmetricKey, with master: SymmetricKey, aad: [UInt8]) throws(StoreError) -> [UInt8] {
        do {
            let box = try AES.GCM.seal(key.withUnsafeBytes { Array($0) }, using: master, authenticating: aad)
            return Array(box.nonce) + Array(box.ciphertext) + Array(box.tag)
        } catch { throw .crypto("key wrap failed: \(error)") }
    }

    static func unwrap(_ bytes: [UInt8], with master: SymmetricKey, aad: [UInt8], path: String) throws(StoreError) -> SymmetricKey {
        do {
            let box = try AES.GCM.SealedBox(nonce: AES.GCM.Nonce(data: bytes[0..<12]), ciphertext: bytes[12..<44], tag: bytes[44..<60])
            return SymmetricKey(data: try AES.GCM.open(box, using: master, authenticating: aad))
        } catch { throw .crypto("\(path): a wrapped key does not open with this master key (wrong key or tampered file)") }
    }

    static func readAll(fd: Int32, path: String) throws(StoreError) -> [UInt8] {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var offset: off_t = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, offset) }
            if n < 0 { if errno == EINTR { continue }; throw .io(path: path, reason: "pread failed: errno \(errno)") }
            if n == 0 { return out }
            out += buffer[0..<n]
            offset += off_t(n)
        }
    }

    static func writeAll(fd: Int32, path: String, header: [UInt8], slots: [[UInt8]?]) throws(StoreError) {
        var bytes = header
        for s in slots { bytes += s ?? [UInt8](repeating: 0, count: slotSize) }
        guard ftruncate(fd, 0) == 0 else { throw .io(path: path, reason: "ftruncate failed: errno \(errno)") }
        let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        guard n == bytes.count, fsync(fd) == 0 else { throw .io(path: path, reason: "write failed: errno \(errno)") }
    }

    static func syncDirectory(of path: String) {
        let dir = (path as NSString).deletingLastPathComponent
        let dfd = Glibc.open(dir.isEmpty ? "." : dir, O_RDONLY)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }
}

func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }
