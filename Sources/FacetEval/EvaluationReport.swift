import Foundation

/// Collects evaluation results and renders them as one self-contained HTML file (inline SVG, inline CSS, no
/// scripts or external links) and as a JSON summary. The `facet eval` commands fill it; nothing here computes
/// embeddings.
public struct EvaluationReport: Sendable {
    /// One verification condition, e.g. "masked–unmasked, mask-aware".
    public struct Condition: Sendable {
        public var name: String
        public var result: VerificationResult
        public var failedToTemplate: Int?
        /// Draw this condition's curves dashed (e.g. baseline dashed, mask-aware solid).
        public var dashed: Bool
        /// Show the 10-fold accuracy column (false for extended impostor sets, where the pairs are not balanced
        /// and accuracy is meaningless; the table then shows "—").
        public var showAccuracy: Bool
        public init(name: String, result: VerificationResult, failedToTemplate: Int? = nil, dashed: Bool = false,
                    showAccuracy: Bool = true) {
            self.name = name
            self.result = result
            self.failedToTemplate = failedToTemplate
            self.dashed = dashed
            self.showAccuracy = showAccuracy
        }
    }

    public struct FairnessSection: Sendable {
        public var name: String
        public var fairness: VerificationFairness
        public init(name: String, fairness: VerificationFairness) {
            self.name = name
            self.fairness = fairness
        }
    }

    public struct DecisionFairnessSection: Sendable {
        public var name: String
        public var fairness: DecisionFairness
        public init(name: String, fairness: DecisionFairness) {
            self.name = name
            self.fairness = fairness
        }
    }

    public struct IdentificationSection: Sendable {
        public var name: String
        public var closedSet: ClosedSetResult?
        public var openSet: [OpenSetPoint]
        public init(name: String, closedSet: ClosedSetResult?, openSet: [OpenSetPoint] = []) {
            self.name = name
            self.closedSet = closedSet
            self.openSet = openSet
        }
    }

    /// A plain table (e.g. the side-by-side summary of `facet eval lfw`), rendered before the verification section.
    public struct Table: Sendable {
        public var title: String
        public var columns: [String]
        public var rows: [[String]]
        public var note: String?
        public init(title: String, columns: [String], rows: [[String]], note: String? = nil) {
            self.title = title
            self.columns = columns
            self.rows = rows
            self.note = note
        }
    }

    public var title: String
    public var commands: [String]
    public var notes: [String]
    public var tables: [Table] = []
    public var conditions: [Condition] = []
    public var fairness: [FairnessSection] = []
    public var decisionFairness: [DecisionFairnessSection] = []
    public var identification: [IdentificationSection] = []
    public var createdAt: Date

    public init(title: String, commands: [String] = [], notes: [String] = [], createdAt: Date = Date()) {
        self.title = title
        self.commands = commands
        self.notes = notes
        self.createdAt = createdAt
    }

    public mutating func add(_ c: Condition) { conditions.append(c) }
    public mutating func add(_ t: Table) { tables.append(t) }
    public mutating func add(_ f: FairnessSection) { fairness.append(f) }
    public mutating func add(_ f: DecisionFairnessSection) { decisionFairness.append(f) }
    public mutating func add(_ i: IdentificationSection) { identification.append(i) }

    // MARK: JSON

    /// The JSON summary: per condition the `facet eval pairs --json` object plus fold accuracies and FAR points;
    /// fairness and identification sections in full; no curves (they are in the HTML).
    public struct Summary: Encodable {
        struct ConditionSummary: Encodable {
            var name: String
            var summary: VerificationSummary
            var genuinePairs: Int
            var impostorPairs: Int
            var foldAccuracies: [Double]
            var foldThresholds: [Double]
            var eerThreshold: Double
            var farPoints: [VerificationResult.FARPoint]
        }
        struct Named<T: Encodable>: Encodable {
            var name: String
            var result: T
        }
        struct Identification: Encodable {
            var name: String
            var closedSet: ClosedSetResult?
            var openSet: [OpenSetPoint]
        }
        var title: String
        var createdAt: String
        var commands: [String]
        var notes: [String]
        var conditions: [ConditionSummary]
        var fairness: [Named<VerificationFairness>]
        var decisionFairness: [Named<DecisionFairness>]
        var identification: [Identification]
    }

    public func summary() -> Summary {
        Summary(title: title, createdAt: ISO8601DateFormatter().string(from: createdAt), commands: commands, notes: notes,
                conditions: conditions.map {
                    .init(name: $0.name, summary: $0.result.summary(failedToTemplate: $0.failedToTemplate),
                          genuinePairs: $0.result.genuinePairs, impostorPairs: $0.result.impostorPairs,
                          foldAccuracies: $0.result.foldAccuracies, foldThresholds: $0.result.foldThresholds,
                          eerThreshold: $0.result.eerThreshold, farPoints: $0.result.tarAtFar)
                },
                fairness: fairness.map { .init(name: $0.name, result: $0.fairness) },
                decisionFairness: decisionFairness.map { .init(name: $0.name, result: $0.fairness) },
                identification: identification.map { .init(name: $0.name, closedSet: $0.closedSet, openSet: $0.openSet) })
    }

    public func json() throws -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try enc.encode(summary())
    }

    public func write(html url: URL?, json jsonURL: URL?) throws {
        do {
            if let url { try Data(html().utf8).write(to: url, options: .atomic) }
            if let jsonURL { try json().write(to: jsonURL, options: .atomic) }
        } catch let e as EvalError {
            throw e
        } catch {
            throw EvalError.io(path: (url ?? jsonURL)?.path ?? "report", message: error.localizedDescription)
        }
    }

    // MARK: charts

    /// At most ~`maxPoints` points of a curve, evenly spaced in log10(FMR) plus the ends, so a 100k-pair curve
    /// stays a small SVG. The curve keeps its staircase shape at the chosen points.
    static func thin(_ curve: [OperatingPoint], maxPoints: Int = 400) -> [OperatingPoint] {
        guard curve.count > maxPoints else { return curve }
        var out: [OperatingPoint] = [curve[0]]
        var lastKey = -Double.infinity
        let step = 6.0 / Double(maxPoints)   // FMR from 1e-6 to 1
        for p in curve.dropFirst() {
            let key = log10(max(p.fmr, 1e-6))
            if key - lastKey >= step || abs(p.fnmr - (out.last?.fnmr ?? 0)) >= 0.01 {
                out.append(p)
                lastKey = key
            }
        }
        if out.last != curve.last { out.append(curve[curve.count - 1]) }
        return out
    }

    /// The smallest FMR the charts show: one impostor pair of the largest impostor set, rounded down to a decade.
    var fmrFloor: Double {
        let most = conditions.map(\.result.impostorPairs).max() ?? 10
        return pow(10, floor(log10(1 / Double(max(most, 10)))))
    }

    func colour(_ i: Int) -> String { SVGPlot.palette[i % SVGPlot.palette.count] }

    /// Points of a curve for a log axis: points whose coordinate is below the axis floor collapse onto the floor;
    /// of a run of them only the one nearest the visible part is kept, so no false vertical/horizontal edge is drawn.
    static func clipped(_ pts: [(x: Double, y: Double)], xFloor: Double, yFloor: Double?) -> [(x: Double, y: Double)] {
        var out: [(x: Double, y: Double)] = []
        for p in pts {
            if p.x < xFloor {
                // keep only the last sub-floor x point (largest TAR, smallest FNMR at that FMR)
                if let last = out.last, last.x <= xFloor { out.removeLast() }
                out.append((xFloor, yFloor.map { max(p.y, $0) } ?? p.y))
                continue
            }
            if let yf = yFloor, p.y < yf {
                if let last = out.last, last.y <= yf { continue }   // already on the floor
                out.append((p.x, yf))
                continue
            }
            out.append(p)
        }
        return out
    }

    func rocSVG() -> String {
        let floorFMR = fmrFloor
        let series = conditions.enumerated().map { i, c in
            SVGPlot.Series(name: c.name,
                           points: Self.clipped(Self.thin(c.result.curve).map { ($0.fmr, $0.tar) }, xFloor: floorFMR, yFloor: nil),
                           color: colour(i), dashed: c.dashed)
        }
        return SVGPlot(title: "ROC", xLabel: "FAR (false match rate, log)", yLabel: "TAR (true accept rate)",
                       xScale: .log10(min: floorFMR, max: 1), yScale: .linear(min: 0, max: 1), series: series).render()
    }

    func detSVG() -> String {
        let floorFMR = fmrFloor
        let minFNMR = conditions.map { c in
            c.result.curve.map(\.fnmr).filter { $0 > 0 }.min() ?? 1
        }.min() ?? 1e-3
        let floorFNMR = min(pow(10, floor(log10(max(minFNMR, 1e-6)))), 1e-2)
        let series = conditions.enumerated().map { i, c in
            SVGPlot.Series(name: c.name,
                           points: Self.clipped(Self.thin(c.result.curve).map { ($0.fmr, $0.fnmr) },
                                                xFloor: floorFMR, yFloor: floorFNMR),
                           color: colour(i), dashed: c.dashed)
        }
        return SVGPlot(title: "DET", xLabel: "FMR (log)", yLabel: "FNMR (log)",
                       xScale: .log10(min: floorFMR, max: 1), yScale: .log10(min: floorFNMR, max: 1), series: series).render()
    }

    // MARK: HTML

    static func pct(_ v: Double?) -> String { v.map { String(format: "%.2f%%", $0 * 100) } ?? "n/a" }
    static func num(_ v: Double?, _ digits: Int = 4) -> String { v.map { String(format: "%.\(digits)f", $0) } ?? "n/a" }
    static let e = SVGPlot.escape

    public func html() -> String {
        var h = """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8"/>
        <title>\(Self.e(title))</title>
        <style>
        body { font-family: sans-serif; margin: 2em; color: #222; }
        table { border-collapse: collapse; margin: 0.6em 0 1.4em 0; }
        th, td { border: 1px solid #bbb; padding: 3px 8px; text-align: right; }
        th:first-child, td:first-child { text-align: left; }
        th { background: #f0f0f0; }
        .charts { display: flex; flex-wrap: wrap; gap: 1em; }
        code, pre { background: #f6f6f6; }
        </style>
        </head>
        <body>
        <h1>\(Self.e(title))</h1>
        <p>Generated \(Self.e(ISO8601DateFormatter().string(from: createdAt))). Scores are similarities (higher = more alike);
        a pair is accepted when its score is at least the threshold. Accuracy: 10-fold, threshold chosen on the other nine folds.
        TAR@FAR values marked * are below one impostor pair and not resolvable.</p>

        """
        if !commands.isEmpty {
            h += "<h2>Commands</h2>\n<pre>" + commands.map(Self.e).joined(separator: "\n") + "</pre>\n"
        }
        if !notes.isEmpty {
            h += "<ul>\n" + notes.map { "<li>\(Self.e($0))</li>" }.joined(separator: "\n") + "\n</ul>\n"
        }
        for t in tables {
            h += "<h2>\(Self.e(t.title))</h2>\n"
            if let n = t.note { h += "<p>\(Self.e(n))</p>\n" }
            h += "<table>\n<tr>" + t.columns.map { "<th>\(Self.e($0))</th>" }.joined() + "</tr>\n"
            for r in t.rows { h += "<tr>" + r.map { "<td>\(Self.e($0))</td>" }.joined() + "</tr>\n" }
            h += "</table>\n"
        }
        if !conditions.isEmpty {
            let fars = Array(Set(conditions.flatMap { $0.result.tarAtFar.map(\.far) })).sorted(by: >)
            h += "<h2>Verification</h2>\n<table>\n<tr><th>condition</th><th>pairs</th><th>genuine</th><th>impostor</th><th>accuracy</th><th>std</th>"
            for f in fars { h += "<th>TAR@FAR=\(Self.e(VerificationSummary.key(f)))</th>" }
            for f in fars { h += "<th>FNMR@FMR=\(Self.e(VerificationSummary.key(f)))</th>" }
            h += "<th>EER</th><th>AUC</th><th>failed to template</th></tr>\n"
            for c in conditions {
                let r = c.result
                h += "<tr><td>\(Self.e(c.name))</td><td>\(r.pairs)</td><td>\(r.genuinePairs)</td><td>\(r.impostorPairs)</td>"
                h += c.showAccuracy ? "<td>\(Self.pct(r.accuracy))</td><td>\(Self.pct(r.accuracyStd))</td>" : "<td>—</td><td>—</td>"
                for f in fars {
                    let p = r.tar(atFAR: f)
                    h += "<td>\(Self.pct(p?.tar))\(p?.resolved == false ? "*" : "")</td>"
                }
                for f in fars {
                    let p = r.tar(atFAR: f)
                    h += "<td>\(Self.pct(p?.fnmr))\(p?.resolved == false ? "*" : "")</td>"
                }
                h += "<td>\(Self.pct(r.eer))</td><td>\(Self.num(r.auc))</td><td>\(c.failedToTemplate.map(String.init) ?? "n/a")</td></tr>\n"
            }
            h += "</table>\n<div class=\"charts\">\n" + rocSVG() + detSVG() + "</div>\n"
        }
        for f in fairness {
            let fr = f.fairness
            h += "<h2>Fairness: \(Self.e(f.name))</h2>\n"
            h += "<p>Global threshold \(Self.num(fr.threshold)); pairs without a single group: \(fr.excludedPairs).</p>\n"
            h += "<table>\n<tr><th>group</th><th>genuine</th><th>impostor</th><th>FMR</th><th>FNMR</th></tr>\n"
            for g in fr.groups {
                h += "<tr><td>\(Self.e(g.group))</td><td>\(g.genuinePairs)</td><td>\(g.impostorPairs)</td><td>\(Self.num(g.fmr, 5))</td><td>\(Self.num(g.fnmr, 5))</td></tr>\n"
            }
            h += "</table>\n<table>\n<tr><th>measure</th><th>value</th></tr>\n"
            h += "<tr><td>FMR max/min ratio</td><td>\(Self.num(fr.fmrMaxMinRatio, 3))</td></tr>\n"
            h += "<tr><td>FNMR max/min ratio</td><td>\(Self.num(fr.fnmrMaxMinRatio, 3))</td></tr>\n"
            h += "<tr><td>equal-opportunity difference (TPR)</td><td>\(Self.num(fr.equalOpportunityDifference))</td></tr>\n"
            h += "<tr><td>equalized-odds difference</td><td>\(Self.num(fr.equalizedOddsDifference))</td></tr>\n</table>\n"
            let cats = fr.groups.map(\.group)
            h += "<div class=\"charts\">\n"
            h += SVGPlot.barChart(title: "FMR by group: \(f.name)", yLabel: "FMR", categories: cats,
                                  series: [(name: "FMR", values: fr.groups.map(\.fmr))])
            h += SVGPlot.barChart(title: "FNMR by group: \(f.name)", yLabel: "FNMR", categories: cats,
                                  series: [(name: "FNMR", values: fr.groups.map(\.fnmr))])
            h += "</div>\n"
        }
        for d in decisionFairness {
            let fr = d.fairness
            h += "<h2>Decisions by group: \(Self.e(d.name))</h2>\n"
            h += "<table>\n<tr><th>group</th><th>n</th><th>selection rate</th><th>TPR</th><th>FPR</th><th>accuracy</th></tr>\n"
            for g in fr.groups {
                h += "<tr><td>\(Self.e(g.group))</td><td>\(g.count)</td><td>\(Self.num(g.selectionRate))</td><td>\(Self.num(g.truePositiveRate))</td><td>\(Self.num(g.falsePositiveRate))</td><td>\(Self.num(g.accuracy))</td></tr>\n"
            }
            h += "</table>\n<p>Demographic-parity difference \(Self.num(fr.demographicParityDifference)); equal-opportunity difference \(Self.num(fr.equalOpportunityDifference)); equalized-odds difference \(Self.num(fr.equalizedOddsDifference)); excluded \(fr.excluded).</p>\n"
            h += SVGPlot.barChart(title: "Selection rate by group: \(d.name)", yLabel: "rate", categories: fr.groups.map(\.group),
                                  series: [(name: "selection", values: fr.groups.map { Optional($0.selectionRate) }),
                                           (name: "accuracy", values: fr.groups.map(\.accuracy))], yMax: 1)
        }
        if !identification.isEmpty {
            h += "<h2>Identification</h2>\n<table>\n<tr><th>condition</th><th>probes</th><th>accuracy</th><th>macro precision</th><th>macro recall</th><th>macro F1</th></tr>\n"
            for i in identification {
                if let c = i.closedSet {
                    h += "<tr><td>\(Self.e(i.name))</td><td>\(c.probes)</td><td>\(Self.pct(c.accuracy))</td><td>\(Self.pct(c.macroPrecision))</td><td>\(Self.pct(c.macroRecall))</td><td>\(Self.pct(c.macroF1))</td></tr>\n"
                }
            }
            h += "</table>\n"
            for i in identification where !i.openSet.isEmpty {
                h += "<h3>Open set: \(Self.e(i.name))</h3>\n<table>\n<tr><th>threshold</th><th>FPIR</th><th>FNIR</th></tr>\n"
                for p in i.openSet {
                    h += "<tr><td>\(Self.num(p.threshold))</td><td>\(Self.num(p.fpir))</td><td>\(Self.num(p.fnir))</td></tr>\n"
                }
                h += "</table>\n"
            }
        }
        h += "</body>\n</html>\n"
        return h
    }
}
