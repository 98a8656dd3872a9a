import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
@testable import FacetEval

/// Collects element names and reports whether Foundation's XML parser accepted the document.
final class XMLCollector: NSObject, XMLParserDelegate {
    var elements: [String] = []
    var attributes: [[String: String]] = []
    var error: Error?
    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                attributes: [String: String] = [:]) {
        elements.append(name)
        self.attributes.append(attributes)
    }
    func parser(_ parser: XMLParser, parseErrorOccurred parseError: Error) { error = parseError }

    static func parse(_ text: String) -> (ok: Bool, collector: XMLCollector) {
        let c = XMLCollector()
        let p = XMLParser(data: Data(text.utf8))
        p.delegate = c
        let ok = p.parse()
        return (ok && c.error == nil, c)
    }
}

@Suite("HTML/SVG report, SVG plot helper, progress reporter")
struct ReportTests {
    static func sampleReport() throws -> EvaluationReport {
        // Deterministic synthetic scores: genuine i/100 + 0.3, impostor i/100 - 0.3 (overlapping).
        var s: [Double] = [], y: [Bool] = [], f: [Int] = []
        for i in 0..<100 {
            s.append(Double(i) / 100 + 0.3); y.append(true); f.append(i % 10)
            s.append(Double(i) / 100 - 0.3); y.append(false); f.append(i % 10)
        }
        let r1 = try VerificationEvaluator.evaluate(scores: s, isSame: y, folds: f)
        let r2 = try VerificationEvaluator.evaluate(scores: s.enumerated().map { $0.element + ($0.offset % 2 == 0 ? -0.1 : 0) },
                                                    isSame: y, folds: f)
        var rep = EvaluationReport(title: "LFW <masked> & unmasked", commands: ["facet eval pairs --root lfw --pairs pairs.txt"],
                                   notes: ["scores are cosine similarities"])
        rep.add(.init(name: "unmasked–unmasked", result: r1, failedToTemplate: 0))
        rep.add(.init(name: "masked–unmasked", result: r2, failedToTemplate: 2, dashed: true))
        let fair = try FairnessMetrics.verification(scores: s, isSame: y, groups: s.indices.map { $0 % 3 == 0 ? "female" : "male" },
                                                    threshold: 0.2)
        rep.add(.init(name: "gender", fairness: fair))
        rep.add(EvaluationReport.DecisionFairnessSection(name: "identification by gender", fairness:
            try FairnessMetrics.decisions([true, false, true], truth: [true, true, true], groups: ["male", "female", "male"])))
        rep.add(.init(name: "closed set, masked probes",
                      closedSet: try IdentificationMetrics.closedSet(truth: ["a", "b"], predicted: ["a", "a"]),
                      openSet: [OpenSetPoint(threshold: 0.5, fpir: 0.1, fnir: 0.2)]))
        return rep
    }

    @Test("the report is well-formed XML with inline SVG charts and escaped text")
    func htmlParses() throws {
        let html = try Self.sampleReport().html()
        let (ok, c) = XMLCollector.parse(html)
        #expect(ok, "XMLParser: \(String(describing: c.error))")
        #expect(c.elements.first == "html")
        // ROC, DET, 2 fairness bars, 1 decision bar chart.
        #expect(c.elements.filter { $0 == "svg" }.count == 5)
        #expect(c.elements.filter { $0 == "polyline" }.count == 4)
        #expect(html.contains("LFW &lt;masked&gt; &amp; unmasked"))
        #expect(!html.contains("<script"))
        #expect(!html.contains("http://") || !html.replacingOccurrences(of: "http://www.w3.org/2000/svg", with: "").contains("http://"))
        // Every polyline point is a finite pair inside its 560x400 view box.
        for attrs in c.attributes {
            guard let pts = attrs["points"] else { continue }
            for pair in pts.split(separator: " ") {
                let xy = pair.split(separator: ",").compactMap { Double($0) }
                #expect(xy.count == 2)
                #expect(xy[0] >= 0 && xy[0] <= 560 && xy[1] >= 0 && xy[1] <= 400)
            }
        }
    }

    @Test("the JSON summary carries the facet eval pairs keys per condition")
    func jsonSummary() throws {
        let data = try Self.sampleReport().json()
        let obj = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let conds = try #require(obj["conditions"] as? [[String: Any]])
        #expect(conds.count == 2)
        let s = try #require(conds[0]["summary"] as? [String: Any])
        for key in ["pairs", "accuracy", "accuracy_std", "tar_at_far", "eer", "failed_to_template"] {
            #expect(s[key] != nil, "missing \(key)")
        }
        #expect(s["pairs"] as? Int == 200)
        let tar = try #require(s["tar_at_far"] as? [String: Any])
        #expect(Set(tar.keys) == ["0.01", "0.001", "0.0001"])
        #expect(obj["fairness"] != nil && obj["identification"] != nil)
    }

    @Test("SVG plot: log and linear mapping, ticks, escaping, standalone parse")
    func svgPlot() {
        #expect(abs(SVGPlot.unit(1e-2, .log10(min: 1e-3, max: 1)) - 1.0 / 3) < 1e-12)
        #expect(SVGPlot.unit(0, .log10(min: 1e-3, max: 1)) == 0)   // zero clamps to the axis minimum
        #expect(SVGPlot.unit(0.25, .linear(min: 0, max: 0.5)) == 0.5)
        #expect(SVGPlot.ticks(.log10(min: 1e-3, max: 1)).map(\.1) == ["1e-3", "1e-2", "1e-1", "1"])
        #expect(SVGPlot.escape("a<b & \"c\"") == "a&lt;b &amp; &quot;c&quot;")
        #expect(SVGPlot.niceCeil(0.37) == 0.5 && SVGPlot.niceCeil(3) == 5)
        let svg = SVGPlot(title: "t", xLabel: "x", yLabel: "y", xScale: .log10(min: 1e-4, max: 1), yScale: .linear(min: 0, max: 1),
                          series: [.init(name: "s", points: [(1e-4, 0.1), (1, 1)], color: "#000")]).render()
        #expect(XMLCollector.parse(svg).ok)
        let bars = SVGPlot.barChart(title: "b", yLabel: "v", categories: ["m", "f"], series: [(name: "FMR", values: [0.1, nil])])
        let parsed = XMLCollector.parse(bars)
        #expect(parsed.ok && parsed.collector.elements.filter { $0 == "rect" }.count == 4)   // background + frame + 1 bar + legend
    }

    @Test("log-axis clipping keeps one point per run below the floor")
    func clipping() {
        // DET points (FMR, FNMR): three at FMR 0, then visible ones, then two at FNMR 0.
        let pts: [(x: Double, y: Double)] = [(0, 1), (0, 0.5), (0, 0.3), (0.01, 0.2), (0.1, 0.05), (0.5, 0), (1, 0)]
        let c = EvaluationReport.clipped(pts, xFloor: 1e-3, yFloor: 1e-2)
        #expect(c.map(\.x) == [1e-3, 0.01, 0.1, 0.5])
        #expect(c.map(\.y) == [0.3, 0.2, 0.05, 1e-2])
    }

    @Test("progress line: bar, counts, rate, ETA")
    func progressLine() {
        #expect(ProgressReporter.line(label: "embed", done: 50, total: 200, elapsed: 10)
            == "embed [######..................] 50/200 5.0/s ETA 30s")
        #expect(ProgressReporter.line(label: "", done: 200, total: 200, elapsed: 125)
            == "[########################] 200/200 1.6/s done in 2m05s")
        #expect(ProgressReporter.line(label: "scan", done: 7, total: nil, elapsed: 2) == "scan 7 3.5/s 2s")
        #expect(ProgressReporter.duration(3725) == "1h02m")
    }

    final class Sink: @unchecked Sendable {
        let lock = NSLock()
        var lines: [String] = []
        var now = 0.0
        func write(_ s: String) { lock.lock(); lines.append(s); lock.unlock() }
        func tick() -> Double { lock.lock(); defer { lock.unlock() }; now += 0.05; return now }
    }

    @Test("progress reporter: a line per 10% when not a terminal, throttled redraws on one")
    func progressReporter() async {
        let sink = Sink()
        let p = ProgressReporter(total: 20, label: "x", interactive: false, sink: { sink.write($0) }, clock: { sink.tick() })
        await withTaskGroup(of: Void.self) { g in
            for _ in 0..<4 { g.addTask { for _ in 0..<5 { p.advance() } } }
        }
        p.finish()
        p.advance()   // ignored after finish
        #expect(p.completed == 20)
        // done = 1 (0%), then each new decile 10%..100%: 11 lines; finish() does not repeat the 100% line.
        #expect(sink.lines.count == 11)
        #expect(sink.lines.allSatisfy { $0.hasSuffix("\n") })
        #expect(sink.lines.last!.contains("20/20"))
        #expect(sink.lines.filter { $0.contains("20/20") }.count == 1)

        // Stopped early (an error): finish() prints the count reached.
        let early = Sink()
        let e = ProgressReporter(total: 20, label: "e", interactive: false, sink: { early.write($0) }, clock: { early.tick() })
        for _ in 0..<3 { e.advance() }
        e.finish()
        #expect(early.lines.count == 3)   // 1/20 (0%), 2/20 (10%), final 3/20
        #expect(early.lines.last!.contains("3/20"))

        let tty = Sink()
        let q = ProgressReporter(total: 10, label: "y", interactive: true, sink: { tty.write($0) }, clock: { tty.tick() })
        for _ in 0..<10 { q.advance() }
        q.finish()
        // clock steps 0.05 s per call: redraws at most every 0.1 s, plus the last item and finish.
        #expect(tty.lines.count < 10 && tty.lines.count >= 3)
        #expect(tty.lines.allSatisfy { $0.hasPrefix("\r") })
        #expect(tty.lines.last!.hasSuffix("\n"))
    }
}
