import Foundation
import Testing
@testable import FacetEval

@Suite("LFW protocol helpers: people scan, extended impostors, identification split")
struct LFWProtocolHelperTests {
    @Test("scan derives identity counts and rejects numbering gaps")
    func scan() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("facet-lfw-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let layout = ["Ann_Lee": 3, "Bo": 1]
        for (name, n) in layout {
            let d = root.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
            for i in 1...n { try Data().write(to: LFWImage(name: name, number: i).path(root: root)) }
        }
        try Data().write(to: root.appendingPathComponent("Bo/notes.txt"))   // ignored
        let p = try LFWPeople.scan(root: root)
        #expect(p.counts == layout && p.names == ["Ann_Lee", "Bo"] && p.imageCount == 4)
        #expect(p.images(of: "Ann_Lee").map(\.number) == [1, 2, 3])
        try Data().write(to: LFWImage(name: "Bo", number: 3).path(root: root))   // Bo_0001, Bo_0003: gap
        #expect(throws: EvalError.self) { try LFWPeople.scan(root: root) }
    }

    @Test("cross-identity impostors stay within folds, skip same-identity pairs, sample deterministically")
    func impostors() throws {
        // fold 0 images: A1 A2 B1 C1 -> 6 pairs, minus A1-A2 = 5 impostors. fold 1: D1 D3 E1 -> 3 - 1 = 2.
        let p = try LFWPairs.parse("2\t1\nA 1 2\nB 1 C 1\nD 1 3\nD 1 E 1\n")
        let all = try LFWProtocol.crossIdentityImpostors(p, maxPerFold: nil)
        #expect(all.count == 7)
        #expect(all.filter { $0.fold == 0 }.count == 5 && all.filter { $0.fold == 1 }.count == 2)
        #expect(all.allSatisfy { !$0.isSame && $0.first.name != $0.second.name })
        #expect(Set(all.map { [$0.first, $0.second] }).count == 7)
        let capped = try LFWProtocol.crossIdentityImpostors(p, maxPerFold: 3, seed: 7)
        #expect(capped.filter { $0.fold == 0 }.count == 3 && capped.filter { $0.fold == 1 }.count == 2)
        #expect(Set(capped.map { [$0.first, $0.second] }).isSubset(of: Set(all.map { [$0.first, $0.second] })))
        #expect(try LFWProtocol.crossIdentityImpostors(p, maxPerFold: 3, seed: 7) == capped)
        #expect(throws: EvalError.self) { try LFWProtocol.crossIdentityImpostors(p, maxPerFold: 0) }
    }

    @Test("identification split: enough images, disjoint train/test, held-out identities")
    func split() throws {
        let people = LFWPeople(counts: ["A": 5, "B": 4, "C": 2, "D": 6, "E": 4, "F": 4])
        let s = try LFWProtocol.identificationSplit(people, minImages: 4, trainPerIdentity: 2, nonMatedFraction: 0.2, seed: 3)
        // Eligible: A B D E F (C has 2). 20% of 5 = 1 identity held out.
        #expect(s.enrolled.count == 4 && !s.enrolled.contains("C"))
        let held = Set(["A", "B", "D", "E", "F"]).subtracting(s.enrolled)
        #expect(held.count == 1)
        #expect(Set(s.nonMated.map(\.name)) == held && s.nonMated.count == people.counts[held.first!])
        #expect(s.train.count == 8)
        #expect(Set(s.train).isDisjoint(with: Set(s.test)))
        for name in s.enrolled {
            #expect(s.train.filter { $0.name == name }.count == 2)
            #expect(s.test.filter { $0.name == name }.count == people.counts[name]! - 2)
        }
        #expect(try LFWProtocol.identificationSplit(people, minImages: 4, trainPerIdentity: 2, nonMatedFraction: 0.2, seed: 3) == s)
        #expect(throws: EvalError.self) { try LFWProtocol.identificationSplit(people, minImages: 2, trainPerIdentity: 2) }
        #expect(throws: EvalError.self) { try LFWProtocol.identificationSplit(people, minImages: 6, trainPerIdentity: 2) }
    }
}
