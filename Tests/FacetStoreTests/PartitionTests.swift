import Testing
import Foundation
import FacetIndex
import FacetStore
import FacetTestSupport

func faceRecords(_ count: Int, seed: UInt64 = 1, firstID: UInt64 = 0, photosPerSubject: Int = 3) -> [TemplateRecord] {
    var generator = FaceLikeGenerator(statistics: try! FaceEmbeddingStatistics.bundled(), seed: seed)
    let g = generator.makeGallery(count: count, photosPerIdentity: photosPerSubject, queryCount: 0)
    return (0..<count).map { i in
        TemplateRecord(id: TemplateID(firstID + UInt64(i)), subject: SubjectID("person-\(g.baseIdentities[i])"),
                       collection: i % 2 == 0 ? "watch" : "staff", embedding: g.baseVector(i), masked: i % 4 == 0,
                       modelVersion: "dlib-resnet-v1", createdAtMilliseconds: 1_700_000_000_000 + Int64(i))
    }
}

func allTemplates(_ p: Partition) throws -> [TemplateID: TemplateRecord] {
    var out: [TemplateID: TemplateRecord] = [:]
    try p.forEachTemplate { out[$0.id] = $0; return true }
    return out
}

@Suite("LMDB environment")
struct LMDBEnvironmentTests {
    @Test("opening a missing directory names the failing call")
    func openMissingDirectory() {
        #expect { _ = try LMDBEnvironment(directory: "/nonexistent/\(UUID())", mapSize: 1 << 20) }
            throws: { ($0 as? LMDBError)?.function == "mdb_env_open" }
    }

    @Test("a full map grows instead of failing")
    func mapGrows() throws {
        try withTemporaryDirectory { dir in
            let env = try LMDBEnvironment(directory: dir.path, mapSize: 64 << 10)
            let db = try env.openDatabase("blobs")
            let before = env.mapSize
            for i in 0..<200 {
                try env.write { (txn) throws(LMDBError) in try txn.put(db, StoreKey.uint64(UInt64(i)), [UInt8](repeating: UInt8(i & 255), count: 4000)) }
            }
            #expect(env.mapSize > before)
            let n = try env.read { (txn) throws(LMDBError) in try txn.count(db) }
            #expect(n == 200)
            let v = try env.read { (txn) throws(LMDBError) in try txn.get(db, StoreKey.uint64(199)) }
            #expect(v == [UInt8](repeating: 199, count: 4000))
        }
    }
}

@Suite("Template codec")
struct TemplateCodecTests {
    @Test("records round-trip; damaged bytes are a typed error")
    func roundTrip() throws {
        let codec = BinaryTemplateCodec()
        let r = faceRecords(1)[0]
        let bytes = try codec.encode(r)
        #expect(try codec.decode(bytes, id: r.id) == r)
        #expect(throws: StoreError.self) { try codec.decode(Array(bytes.dropLast(3)), id: r.id) }
        var wrongVersion = bytes; wrongVersion[0] = 9
        #expect(throws: StoreError.self) { try codec.decode(wrongVersion, id: r.id) }
        var bad = r; bad.subject = SubjectID("")
        #expect(throws: StoreError.self) { try codec.encode(bad) }
    }

    @Test("a record with a periocular embedding is layout v2 and round-trips; without one it stays v1, byte for byte")
    func periocularLayout() throws {
        let codec = BinaryTemplateCodec()
        let r = faceRecords(2)[0]
        let v1 = try codec.encode(r)
        #expect(v1[0] == 1 && v1.count == 10 + 6 + r.subject.rawValue.utf8.count + r.collection.utf8.count + r.modelVersion.utf8.count + 2 + 4 * r.embedding.count)
        var p = r; p.periocular = faceRecords(2)[1].embedding
        let v2 = try codec.encode(p)
        #expect(v2[0] == 2 && Array(v2[1..<v1.count]) == Array(v1[1...]) && v2.count == v1.count + 2 + 4 * r.embedding.count)
        #expect(try codec.decode(v2, id: p.id) == p)
        #expect(try codec.decode(v2, id: p.id).periocular == p.periocular)
        #expect(throws: StoreError.self) { try codec.decode(Array(v2.dropLast(4)), id: p.id) }
        var short = p; short.periocular = Array(p.periocular!.prefix(5))
        #expect(throws: StoreError.self) { try codec.encode(short) }
    }
}

@Suite("Partition")
struct PartitionTests {
    @Test("templates and the index survive close and reopen")
    func persistenceRoundTrip() throws {
        try withTemporaryDirectory { dir in
            let records = faceRecords(600)
            do {
                let p = try Partition.open(at: dir.path)
                #expect(p.openReport.indexSource == .empty)
                try p.insert(Array(records[0..<400]))
                try p.insert(Array(records[400...]))
                #expect(p.count == 600)
            }
            let p = try Partition.open(at: dir.path)
            #expect(p.count == 600)
            #expect(try allTemplates(p) == Dictionary(uniqueKeysWithValues: records.map { ($0.id, $0) }))
            #expect(try p.verifyIndex())
            for r in records.prefix(50) {
                let hit = try p.search(r.embedding, k: 1, parameters: SearchParameters(ef: 64))
                #expect(hit.first?.template == r.id && hit.first?.subject == r.subject && hit.first?.masked == r.masked)
            }
            #expect(try p.template(TemplateID(5)) == records[5])
            #expect(try p.templates(of: records[5].subject).map(\.id).sorted() == records.filter { $0.subject == records[5].subject }.map(\.id))
        }
    }

    @Test("the index is recovered from a snapshot plus the newer log, and rebuilt when the snapshot is damaged")
    func snapshotAndReplay() throws {
        try withTemporaryDirectory { dir in
            var config = PartitionConfiguration()
            config.snapshotInterval = 100
            let records = faceRecords(330)
            do {
                let p = try Partition.open(at: dir.path, configuration: config)
                for chunk in stride(from: 0, to: 330, by: 30) { try p.insert(Array(records[chunk..<min(chunk + 30, 330)])) }
                try p.delete([TemplateID(3), TemplateID(301)])
            }
            let expected = Dictionary(uniqueKeysWithValues: records.filter { $0.id != TemplateID(3) && $0.id != TemplateID(301) }.map { ($0.id, $0) })
            do {
                let p = try Partition.open(at: dir.path, configuration: config)
                #expect(p.openReport.indexSource == .snapshot)
                #expect(p.openReport.replayedChanges > 0)
                #expect(try allTemplates(p) == expected)
                #expect(try p.verifyIndex())
                #expect(try p.search(records[301].embedding, k: 5).allSatisfy { $0.template != TemplateID(301) })
            }
            // Damage the snapshot: reopening rebuilds from the templates table.
            let snapshot = dir.appendingPathComponent("index.snapshot")
            var bytes = try Data(contentsOf: snapshot)
            bytes[bytes.count / 2] ^= 0xFF
            try bytes.write(to: snapshot)
            let p = try Partition.open(at: dir.path, configuration: config)
            #expect(p.openReport.indexSource == .rebuilt)
            #expect(try allTemplates(p) == expected)
            #expect(try p.verifyIndex())
        }
    }

    @Test("deleted templates and subjects are gone from storage and never returned, also after reopen")
    func deleteSemantics() throws {
        try withTemporaryDirectory { dir in
            let records = faceRecords(300)
            let victim = records[10].subject
            let victimIDs = Set(records.filter { $0.subject == victim }.map(\.id))
            do {
                let p = try Partition.open(at: dir.path)
                try p.insert(records)
                #expect(Set(try p.deleteSubject(victim)) == victimIDs)
                #expect(try p.delete([TemplateID(100), TemplateID(100), TemplateID(9999)]) == [TemplateID(100)])
                #expect(try p.templates(of: victim).isEmpty)
                for id in victimIDs.union([TemplateID(100)]) {
                    #expect(try p.template(id) == nil)
                    let hits = try p.search(records[Int(id.rawValue)].embedding, k: 10)
                    #expect(hits.allSatisfy { $0.template != id })
                }
            }
            let p = try Partition.open(at: dir.path)
            #expect(p.count == 300 - victimIDs.count - 1)
            #expect(!p.subjectIDs().contains(victim))
            // Reading several records in one transaction gives what reading each gives; nil for ids not stored.
            let probeIDs = [records[0].id, TemplateID(100), records[1].id] + Array(victimIDs.prefix(1)) + [TemplateID(9999)]
            let batch = try p.templates(probeIDs)
            #expect(batch.count == probeIDs.count)
            for (id, result) in zip(probeIDs, batch) {
                let single = try p.template(id)
                switch result {
                case nil: #expect(single == nil, "\(id)")
                case .success(let r)?: #expect(r == single, "\(id)")
                case .failure(let e)?: Issue.record("\(id): \(e)")
                }
            }
            #expect(batch.compactMap { $0 }.count == probeIDs.filter { (try? p.template($0)) != nil }.count)
            // The subject count (reported in the matchers' heartbeats) follows, also when rebuilt on open.
            #expect(p.subjectCount == p.subjectIDs().count)
            #expect(p.subjectCount == Set(records.filter { $0.subject != victim && $0.id != TemplateID(100) }.map(\.subject)).count)
            let several = try #require(Set(records.map(\.subject)).sorted().first { s in (try? p.templates(of: s).count) ?? 0 >= 2 })
            let ids = try p.templates(of: several).map(\.id)
            let before = p.subjectCount
            try p.delete([ids[0]])
            #expect(p.subjectCount == before)      // the subject still has templates
            try p.delete(Array(ids.dropFirst()))
            #expect(p.subjectCount == before - 1)  // its last one went
            for id in victimIDs { #expect(try p.search(records[Int(id.rawValue)].embedding, k: 10).allSatisfy { $0.template != id }) }
            #expect(try p.verifyIndex())
        }
    }

    @Test("replacing a template moves it to its new subject and vector")
    func replace() throws {
        try withTemporaryDirectory { dir in
            let records = faceRecords(100)
            let p = try Partition.open(at: dir.path)
            try p.insert(records)
            var moved = records[99]; moved.id = records[0].id
            try p.insert([moved])
            #expect(p.count == 100)
            #expect(try p.template(records[0].id) == moved)
            #expect(!(try p.templates(of: records[0].subject).contains { $0.id == records[0].id }) || records[0].subject == moved.subject)
            #expect(try p.search(moved.embedding, k: 2).contains { $0.template == records[0].id && $0.distance < 1e-6 })
        }
    }

    @Test("filters by subject (exact path) and by collection and mask flag (index path)")
    func filters() throws {
        try withTemporaryDirectory { dir in
            let records = faceRecords(900)
            let p = try Partition.open(at: dir.path)
            try p.insert(records)
            let query = records[42].embedding
            let subjects: Set<SubjectID> = [records[42].subject, records[500].subject]
            let bySubject = try p.search(query, k: 10, filter: TemplateFilter(subjects: subjects))
            #expect(bySubject.count == records.filter { subjects.contains($0.subject) }.count)
            #expect(bySubject.allSatisfy { subjects.contains($0.subject) })
            #expect(bySubject.first?.template == records[42].id)
            let staff = try p.search(query, k: 10, parameters: SearchParameters(ef: 100), filter: TemplateFilter(collections: ["staff"], masked: false))
            #expect(staff.count == 10)
            #expect(staff.allSatisfy { r in let rec = records[Int(r.template.rawValue)]; return rec.collection == "staff" && !rec.masked })
            // Exact reference for the collection filter.
            let pool = records.filter { $0.collection == "staff" && !$0.masked }
            let truth = pool.map { ($0.id, Distance.distance(.l2Squared, query, $0.embedding)) }.sorted { $0.1 < $1.1 }.prefix(10).map(\.0)
            #expect(Set(staff.map(\.template)).intersection(truth).count >= 9)
        }
    }

    @Test("bad input is rejected with a typed error and nothing is written")
    func badInput() throws {
        try withTemporaryDirectory { dir in
            let p = try Partition.open(at: dir.path)
            var short = faceRecords(2)
            short[1].embedding = [1, 2, 3]
            #expect(throws: StoreError.self) { try p.insert(short) }
            var nan = faceRecords(1); nan[0].embedding[5] = .nan
            #expect(throws: StoreError.self) { try p.insert(nan) }
            let dup = faceRecords(1)
            #expect(throws: StoreError.duplicateTemplate(dup[0].id)) { try p.insert(dup + dup) }
            #expect(p.count == 0)
            #expect(throws: StoreError.self) { try p.search([1, 2], k: 3) }
        }
        try withTemporaryDirectory { dir in
            do { let p = try Partition.open(at: dir.path); try p.insert(faceRecords(3)) }
            #expect { _ = try Partition.open(at: dir.path, configuration: PartitionConfiguration(dimension: 64)) }
                throws: { if case .configurationMismatch = $0 as? StoreError { true } else { false } }
        }
    }
}
