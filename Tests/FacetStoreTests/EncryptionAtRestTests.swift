import Testing
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import FacetIndex
import FacetStore
import FacetTestSupport

/// The little-endian bytes of an embedding, as the plaintext codec would store them.
func floatBytes(_ v: [Float]) -> [UInt8] {
    var out: [UInt8] = []
    for x in v { withUnsafeBytes(of: x.bitPattern.littleEndian) { out.append(contentsOf: $0) } }
    return out
}

/// Every file under `directory` (recursively), with its bytes.
func filesUnder(_ directory: String) throws -> [(String, [UInt8])] {
    var out: [(String, [UInt8])] = []
    let e = FileManager.default.enumerator(atPath: directory)
    while let name = e?.nextObject() as? String {
        let path = directory + "/" + name
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue else { continue }
        out.append((name, Array(try Data(contentsOf: URL(fileURLWithPath: path)))))
    }
    return out.sorted { $0.0 < $1.0 }
}

/// Whether `needle` occurs anywhere in `haystack` (memmem).
func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    guard !needle.isEmpty, haystack.count >= needle.count else { return false }
    return haystack.withUnsafeBytes { h in
        needle.withUnsafeBytes { n in
            let hp = h.bindMemory(to: UInt8.self), first = n[0]
            for i in 0...(h.count - n.count) where hp[i] == first {
                if memcmp(h.baseAddress! + i, n.baseAddress!, n.count) == 0 { return true }
            }
            return false
        }
    }
}

/// Windows of 16 bytes (4 floats) at every float boundary of the embedding: a leak of any part of a vector is found.
func vectorWindows(_ v: [Float]) -> [[UInt8]] {
    let b = floatBytes(v)
    return stride(from: 0, to: b.count - 15, by: 4).map { Array(b[$0..<$0 + 16]) }
}

/// The names of the files under `directory` that hold any of `needles`.
func leaks(in directory: String, of needles: [[UInt8]]) throws -> [String] {
    var found: [String] = []
    for (name, bytes) in try filesUnder(directory) where needles.contains(where: { contains(bytes, $0) }) { found.append(name) }
    return found
}

func encryptedConfiguration(_ master: MasterKey, snapshotInterval: Int = 50_000) -> PartitionConfiguration {
    var c = PartitionConfiguration(dimension: 128, snapshotInterval: snapshotInterval, sealer: EncryptedTemplateSealer(master: master))
    c.snapshotOnErasure = true
    return c
}

@Suite("Encryption at rest")
struct EncryptionAtRestTests {
    @Test("no plaintext vector or subject bytes in the LMDB files, the snapshot or the vault; reopening reads everything back")
    func noPlaintextOnDisk() throws {
        try withTemporaryDirectory { dir in
            let master = MasterKey.generate()
            let records = faceRecords(60, seed: 5)
            do {
                let p = try Partition.open(at: dir.path, configuration: encryptedConfiguration(master))
                try p.insert(records)
                try p.checkpoint()   // writes the (sealed) index snapshot
            }
            let files = try filesUnder(dir.path).map(\.0)
            #expect(files.contains("data.mdb") && files.contains("index.snapshot") && files.contains(EncryptedTemplateSealer.vaultFileName))
            let needles = records.flatMap { vectorWindows($0.embedding) } + Set(records.map(\.subject.rawValue)).map { Array($0.utf8) }
            #expect(try leaks(in: dir.path, of: needles) == [])

            // Control: the same scan finds the bytes in a plaintext partition (the scan can fail).
            try withTemporaryDirectory { plain in
                let p = try Partition.open(at: plain.path, configuration: PartitionConfiguration(dimension: 128))
                try p.insert(records)
                try p.checkpoint()
                let found = try leaks(in: plain.path, of: [floatBytes(records[7].embedding), Array(records[7].subject.rawValue.utf8)])
                #expect(found.contains("data.mdb") && found.contains("index.snapshot"))
            }

            let reopened = try Partition.open(at: dir.path, configuration: encryptedConfiguration(master))
            #expect(reopened.openReport.indexSource == .snapshot)
            #expect(try allTemplates(reopened) == Dictionary(uniqueKeysWithValues: records.map { ($0.id, $0) }))
            let hits = try reopened.search(records[3].embedding, k: 1)
            #expect(hits.first?.template == records[3].id)
            #expect(try reopened.templates(of: records[3].subject).map(\.id).contains(records[3].id))
        }
    }

    @Test("the wrong master key is refused; a damaged snapshot is rebuilt from LMDB; a damaged record is a typed error")
    func wrongKeyAndTampering() throws {
        try withTemporaryDirectory { dir in
            let master = MasterKey.generate()
            let records = faceRecords(20, seed: 6)
            do {
                let p = try Partition.open(at: dir.path, configuration: encryptedConfiguration(master))
                try p.insert(records)
                try p.checkpoint()
            }
            #expect { _ = try Partition.open(at: dir.path, configuration: encryptedConfiguration(MasterKey.generate())) }
                throws: { if case .crypto = $0 as? StoreError { true } else { false } }
            // Flip a byte in the middle of the sealed snapshot: it no longer authenticates, the index is rebuilt.
            let snap = dir.path + "/index.snapshot"
            var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: snap)))
            bytes[bytes.count / 2] ^= 0x40
            try Data(bytes).write(to: URL(fileURLWithPath: snap))
            let p = try Partition.open(at: dir.path, configuration: encryptedConfiguration(master))
            #expect(p.openReport.indexSource == .rebuilt)
            #expect(try p.verifyIndex())
            #expect(try allTemplates(p).count == 20)
        }
    }

    @Test("erasing a subject: gone from LMDB, the index and the snapshot; its key is shredded, so an old copy of the data file stays unreadable")
    func erasureIsProvable() throws {
        try withTemporaryDirectory { dir in
            let master = MasterKey.generate()
            let records = faceRecords(90, seed: 7)
            let victim = records[10].subject
            let victimRecords = records.filter { $0.subject == victim }
            #expect(victimRecords.count >= 2)
            var p: Partition? = try Partition.open(at: dir.path, configuration: encryptedConfiguration(master))
            try p!.insert(records)
            try p!.checkpoint()
            // A copy of the data file taken before the erasure (a backup, or pages LMDB has not reused yet).
            let backup = dir.path + "/backup"
            try FileManager.default.createDirectory(atPath: backup, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: dir.path + "/data.mdb", toPath: backup + "/data.mdb")
            let keysBefore = try SubjectKeyVault(path: dir.path + "/" + EncryptedTemplateSealer.vaultFileName, master: master, exclusive: false).subjectKeyCount

            let removed = try p!.deleteSubject(victim)
            #expect(Set(removed) == Set(victimRecords.map(\.id)))
            #expect(try p!.templates(of: victim).isEmpty)
            #expect(!p!.subjectIDs().contains(victim))
            for r in victimRecords {
                #expect(try p!.template(r.id) == nil)
                #expect(try p!.search(r.embedding, k: 10).allSatisfy { $0.subject != victim })
                #expect(try p!.search(r.embedding, k: 10, filter: TemplateFilter(subjects: [victim])).isEmpty)
            }
            #expect(try p!.verifyIndex())

            // The snapshot was rewritten at once and no longer opens with the old snapshot key; the reopened index
            // holds exactly the remaining templates.
            let vault = try SubjectKeyVault(path: dir.path + "/" + EncryptedTemplateSealer.vaultFileName, master: master, exclusive: false)
            #expect(vault.subjectKeyCount == keysBefore - 1)
            // While the partition holds the vault, nobody else (a rotation) can take it.
            #expect(throws: StoreError.self) { _ = try SubjectKeyVault(path: dir.path + "/" + EncryptedTemplateSealer.vaultFileName, master: master) }
            p = nil
            let reopened = try Partition.open(at: dir.path + "", configuration: encryptedConfiguration(master))
            #expect(reopened.openReport.indexSource == .snapshot)
            #expect(reopened.count == records.count - victimRecords.count)
            #expect(try reopened.verifyIndex())

            // The backup's records of the victim cannot be opened any more: their key is gone.
            try FileManager.default.copyItem(atPath: dir.path + "/" + EncryptedTemplateSealer.vaultFileName,
                                             toPath: backup + "/" + EncryptedTemplateSealer.vaultFileName)
            #expect { _ = try Partition.open(at: backup, configuration: encryptedConfiguration(master)) }
                throws: { if case .keyErased(let id) = $0 as? StoreError { victimRecords.map(\.id).contains(id) } else { false } }
        }
    }

    @Test("erasure zeroes the subject's vectors in the index: a plaintext snapshot written after it holds none of them")
    func erasureZeroesIndexMemory() throws {
        // The snapshot dumps the index's raw memory, freed slots included, so it shows what the process still holds.
        try withTemporaryDirectory { dir in
            let records = faceRecords(60, seed: 9)
            let victim = records[4].subject
            let p = try Partition.open(at: dir.path, configuration: PartitionConfiguration(dimension: 128))
            try p.insert(records)
            try p.checkpoint()
            let victimVectors = records.filter { $0.subject == victim }.map { floatBytes($0.embedding) }
            #expect(try leaks(in: dir.path, of: victimVectors).contains("index.snapshot"))
            try p.deleteSubject(victim)
            // No checkpoint call: the erasure itself rewrote the snapshot.
            let snapshot = Array(try Data(contentsOf: URL(fileURLWithPath: dir.path + "/index.snapshot")))
            #expect(!victimVectors.contains(where: { contains(snapshot, $0) }))
            #expect(contains(snapshot, floatBytes(records.first { $0.subject != victim }!.embedding)))
        }
    }

    @Test("key rotation re-wraps every vault; the old key no longer opens them; records and snapshots stay readable")
    func rotation() throws {
        try withTemporaryDirectory { dir in
            let old = MasterKey.generate(), new = MasterKey.generate()
            let records = faceRecords(30, seed: 8)
            for (i, part) in ["p-00000", "p-00001"].enumerated() {
                let p = try Partition.open(at: dir.path + "/" + part, configuration: encryptedConfiguration(old))
                try p.insert(Array(records[(i * 15)..<(i * 15 + 15)]))
                try p.checkpoint()
            }
            let result = try KeyRotation.rotate(dataDirectory: dir.path, from: old, to: new)
            #expect(result.rotated == 2 && result.alreadyRotated == 0)
            // Running it again skips both (an interrupted rotation can be re-run).
            #expect(try KeyRotation.rotate(dataDirectory: dir.path, from: old, to: new).alreadyRotated == 2)
            for (i, part) in ["p-00000", "p-00001"].enumerated() {
                #expect(throws: StoreError.self) { _ = try Partition.open(at: dir.path + "/" + part, configuration: encryptedConfiguration(old)) }
                let p = try Partition.open(at: dir.path + "/" + part, configuration: encryptedConfiguration(new))
                #expect(p.openReport.indexSource == .snapshot)
                #expect(try allTemplates(p) == Dictionary(uniqueKeysWithValues: records[(i * 15)..<(i * 15 + 15)].map { ($0.id, $0) }))
            }
        }
    }

    @Test("master keys: text round trip, wrong text is a typed error, key files are mode 0600 and never overwritten silently")
    func masterKeyFiles() throws {
        try withTemporaryDirectory { dir in
            let k = MasterKey.generate()
            #expect(try MasterKey(text: k.text).id == k.id)
            #expect(!k.description.contains(k.text))
            #expect(throws: StoreError.self) { _ = try MasterKey(text: "facet-master-v1:AAAA") }
            #expect(throws: StoreError.self) { _ = try MasterKey(text: "hello") }
            let path = dir.path + "/m.master"
            try k.write(to: path)
            let mode = (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue
            #expect(mode == 0o600)
            #expect(throws: StoreError.self) { try MasterKey.generate().write(to: path) }
            #expect(try MasterKey.read(from: path).id == k.id)
        }
    }
}
