import Foundation
import Testing
import FacetStore

/// The partition reads a matcher uses for streaming (cursor pages) and listing subjects.
@Suite("Partition paging and subject listing")
struct PartitionPagingTests {
    func makePartition() throws -> (Partition, String) {
        let dir = NSTemporaryDirectory() + "facet-paging-\(UInt32.random(in: 0...UInt32.max))"
        let part = try Partition.open(at: dir)
        var records: [TemplateRecord] = []
        for i in 0..<300 {
            let subject = String(format: "%@-%03d", i % 3 == 0 ? "alpha" : "beta", i / 4)
            var v = [Float](repeating: 0, count: 128)
            v[i % 128] = 1
            v[(i * 7) % 128] += 0.5
            records.append(TemplateRecord(id: TemplateID(UInt64(1000 + i * 13)), subject: SubjectID(subject),
                                          collection: i % 2 == 0 ? "even" : "odd", embedding: v, masked: false,
                                          modelVersion: "1", createdAtMilliseconds: 0))
        }
        try part.insert(records)
        return (part, dir)
    }

    @Test func pagesFromACursorReadEachRecordOnceInOrder() throws {
        let (part, dir) = try makePartition()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var all: [UInt64] = []
        try part.forEachTemplate { all.append($0.id.rawValue); return true }
        #expect(all.count == 300 && all == all.sorted())
        var paged: [UInt64] = []
        var after: TemplateID?
        var pages = 0
        while true {
            var page: [UInt64] = []
            try part.forEachTemplate(after: after) { page.append($0.id.rawValue); return page.count < 37 }
            if page.isEmpty { break }
            paged += page
            after = TemplateID(page.last!)
            pages += 1
        }
        #expect(paged == all)
        #expect(pages == 9)
        // A cursor between ids starts at the next one; past the end gives nothing.
        var first: UInt64?
        try part.forEachTemplate(after: TemplateID(1000 + 13 * 5 + 1)) { first = $0.id.rawValue; return false }
        #expect(first == 1000 + 13 * 6)
        var none = 0
        try part.forEachTemplate(after: TemplateID(UInt64.max)) { _ in none += 1; return true }
        #expect(none == 0)
    }

    @Test func subjectSummariesFilterAndPage() throws {
        let (part, dir) = try makePartition()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let everything = part.subjectSummaries(limit: 10_000)
        #expect(!everything.more)
        #expect(everything.subjects.map(\.templates).reduce(0, +) == 300)
        #expect(everything.subjects.map(\.subject.rawValue) == everything.subjects.map(\.subject.rawValue).sorted())
        // Pages of 10 after a cursor cover the same list.
        var listed: [String] = []
        var cursor = ""
        while true {
            let page = part.subjectSummaries(after: cursor, limit: 10)
            listed += page.subjects.map(\.subject.rawValue)
            guard page.more, let last = page.subjects.last else { break }
            cursor = last.subject.rawValue
        }
        #expect(listed == everything.subjects.map(\.subject.rawValue))
        let alpha = part.subjectSummaries(prefix: "alpha-", limit: 10_000)
        #expect(alpha.subjects.allSatisfy { $0.subject.rawValue.hasPrefix("alpha-") })
        #expect(alpha.subjects.map(\.templates).reduce(0, +) == 100)
        let even = part.subjectSummaries(collection: "even", limit: 10_000)
        #expect(even.subjects.map(\.templates).reduce(0, +) == 150)
        #expect(part.subjectSummaries(collection: "nowhere", limit: 10).subjects.isEmpty)
    }
}
