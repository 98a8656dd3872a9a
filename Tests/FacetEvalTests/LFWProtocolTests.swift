import Foundation
import Testing
@testable import FacetEval

func fixtureURL(_ name: String) throws -> URL {
    let base = try #require(Bundle.module.resourceURL).appendingPathComponent("Fixtures")
    return base.appendingPathComponent(name)
}

@Suite("LFW pairs files and demographic labels")
struct LFWProtocolTests {
    @Test("View 2 header 'FOLDS\\tN': folds as in the file")
    func view2Header() throws {
        // Excerpt of pairs.txt: header "2\t3", fold 1 = lines 2-7, fold 2 = lines 8-13.
        let p = try LFWPairs.load(contentsOf: fixtureURL("pairs_view2_excerpt.txt"))
        #expect(p.header?.folds == 2 && p.header?.perSide == 3)
        #expect(p.foldCount == 2 && p.pairs.count == 12)
        #expect(p.folds == [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
        #expect(p.isSame == [true, true, true, false, false, false, true, true, true, false, false, false])
        #expect(p.pairs[0] == LFWPair(first: LFWImage(name: "Abel_Pacheco", number: 1), second: LFWImage(name: "Abel_Pacheco", number: 4),
                                      isSame: true, fold: 0, line: 2))
        #expect(p.pairs[3].first == LFWImage(name: "Abdel_Madi_Shabneh", number: 1))
        #expect(p.pairs[3].second == LFWImage(name: "Dean_Barker", number: 1))
        #expect(p.pairs[6].first.name == "Abdullah_Gul" && p.pairs[6].line == 8)
    }

    @Test("no header (pairsDevTest.txt): one fold, stratified re-folding")
    func noHeader() throws {
        let p = try LFWPairs.load(contentsOf: fixtureURL("pairs_noheader_excerpt.txt"))
        #expect(p.header == nil && p.foldCount == 1 && p.pairs.count == 8)
        #expect(p.isSame == [true, true, true, true, false, false, false, false])
        #expect(p.pairs[0].line == 1 && p.pairs[4].first.name == "AJ_Lamas" && p.pairs[4].second.name == "Zach_Safrin")
        // Two folds: matched 0,0,1,1 and mismatched 0,0,1,1.
        let r = try p.refolded(into: 2)
        #expect(r.folds == [0, 0, 1, 1, 0, 0, 1, 1])
        #expect(throws: EvalError.self) { try p.refolded(into: 5) }
        // Evaluating straight from the file: one fold is refused with a hint; re-folded it works.
        let scores: [Double] = [0.9, 0.8, 0.7, 0.3, 0.4, 0.2, 0.1, 0.75]
        #expect(throws: EvalError.self) { try VerificationEvaluator.evaluate(pairs: p, scores: scores) }
        #expect(throws: EvalError.countMismatch(what: "scores for the pairs file", expected: 8, got: 1)) {
            try VerificationEvaluator.evaluate(pairs: r, scores: [0.5])
        }
        let res = try VerificationEvaluator.evaluate(pairs: r, scores: scores)
        #expect(res.pairs == 8 && res.foldIDs == [0, 1])
    }

    @Test("View 1 header 'N', CRLF endings and blank lines")
    func view1Header() throws {
        let text = "2\r\nA 1 2\r\nB\t1\t3\r\n\r\nA 1 C 2\r\nB 2 D 1\r\n"
        let p = try LFWPairs.parse(text)
        #expect(p.header?.folds == 1 && p.header?.perSide == 2 && p.foldCount == 1)
        #expect(p.isSame == [true, true, false, false])
        #expect(p.pairs[3].line == 6)
        #expect(p.images.count == 7)   // A1 A2 B1 B3 C2 B2 D1
    }

    @Test("errors name the line")
    func errors() {
        #expect(throws: EvalError.pairsSyntax(file: "pairs", line: 3, message: "expected 3 fields (name i j) or 4 (name1 i name2 j), got 2")) {
            try LFWPairs.parse("A 1 2\nB 1 3\nC 1\n")
        }
        #expect(throws: EvalError.pairsSyntax(file: "pairs", line: 2, message: "image number must be a positive integer, got 'x'")) {
            try LFWPairs.parse("A 1 2\nB x 3\n")
        }
        #expect(throws: EvalError.pairsSyntax(file: "pairs", line: 1, message: "header promises 1 fold(s) of 1+1 pairs = 2 lines, file has 3")) {
            try LFWPairs.parse("1\nA 1 2\nA 1 B 1\nC 1 2\n")
        }
        #expect(throws: EvalError.pairsSyntax(file: "pairs", line: 3, message: "header says this line of fold 1 should be a matched (3-field) pair")) {
            try LFWPairs.parse("1\t2\nA 1 2\nA 1 B 1\nC 1 D 2\nE 1 F 1\n")
        }
        #expect(throws: EvalError.empty("pairs file pairs")) { try LFWPairs.parse("\n\n") }
        #expect(throws: EvalError.self) { try LFWPairs.load(contentsOf: URL(fileURLWithPath: "/nonexistent/pairs.txt")) }
    }

    @Test("image paths: ROOT/name/name_000i.EXT")
    func paths() throws {
        let im = LFWImage(name: "Aaron_Eckhart", number: 1)
        #expect(im.path(root: URL(fileURLWithPath: "/data/lfw")).path == "/data/lfw/Aaron_Eckhart/Aaron_Eckhart_0001.jpg")
        #expect(LFWImage(name: "Zico", number: 12).fileName(ext: "png") == "Zico_0012.png")
        let p = try LFWPairs.parse("A 1 2\nA 1 B 3\n")
        let missing = p.missingImages(root: URL(fileURLWithPath: "/nonexistent"))
        #expect(missing.map(\.lastPathComponent) == ["A_0001.jpg", "A_0002.jpg", "B_0003.jpg"])
    }

    @Test("demographics: gender per image with quirks, race per identity")
    func demographics() throws {
        let dir = try fixtureURL("lfw_demographics")
        let d = try LFWDemographics.load(directory: dir)
        #expect(d.genderSource == .sushii2001)
        #expect(d.gender(of: LFWImage(name: "Woody_Allen", number: 2)) == .male)
        #expect(d.gender(of: LFWImage(name: "Serena_Williams", number: 52)) == .female)
        // In both lists: ambiguous, no gender.
        #expect(d.ambiguousImages == ["Allison_Searing_0001"])
        #expect(d.gender(of: LFWImage(name: "Allison_Searing", number: 1)) == nil)
        // sushii2001 adds Tara_Kirk_0001 to the female list; lukeli0425 has it in neither.
        #expect(d.gender(of: LFWImage(name: "Tara_Kirk", number: 1)) == .female)
        let l = try LFWDemographics.load(directory: dir, genderSource: .lukeli0425)
        #expect(l.gender(of: LFWImage(name: "Tara_Kirk", number: 1)) == nil)
        #expect(l.gender(of: LFWImage(name: "Alfred_Ford", number: 1)) == .male)   // CRLF, out-of-order first line
        #expect(l.genderByImage.count == d.genderByImage.count - 1)
        // Race per identity, multi-labels sorted; a single group name for grouping.
        #expect(d.race(of: "Tracee_Ellis_Ross") == ["african", "caucasian"])
        #expect(d.raceGroup(of: "Tracee_Ellis_Ross") == "multiracial")
        #expect(d.raceGroup(of: "Sidney_Poitier") == "african")
        #expect(d.raceGroup(of: "Zico") == nil)
        #expect(throws: EvalError.self) { try LFWDemographics.load(directory: dir.appendingPathComponent("race_usc_sail")) }
        #expect(throws: EvalError.self) { try LFWDemographics.load(directory: URL(fileURLWithPath: "/nonexistent")) }
    }
}
