import Foundation

/// A small SVG line/bar chart writer for the evaluation report: axes (linear or log10), gridlines, ticks,
/// polylines per series, grouped bars, a legend. Output is standalone SVG 1.1 that can be inlined in HTML.
public struct SVGPlot: Sendable {
    public enum Scale: Sendable, Equatable {
        case linear(min: Double, max: Double)
        /// Base-10 log axis; values <= min (including 0) are drawn at min.
        case log10(min: Double, max: Double)
    }

    public struct Series: Sendable {
        public var name: String
        public var points: [(x: Double, y: Double)]
        public var color: String
        public var dashed: Bool
        public init(name: String, points: [(x: Double, y: Double)], color: String, dashed: Bool = false) {
            self.name = name
            self.points = points
            self.color = color
            self.dashed = dashed
        }
    }

    public static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var xScale: Scale
    public var yScale: Scale
    public var series: [Series]
    public var width: Double = 560
    public var height: Double = 400

    public init(title: String, xLabel: String, yLabel: String, xScale: Scale, yScale: Scale, series: [Series]) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.xScale = xScale
        self.yScale = yScale
        self.series = series
    }

    // Plot area margins.
    static let left = 64.0, right = 16.0, top = 30.0, bottom = 48.0

    static func unit(_ v: Double, _ s: Scale) -> Double {
        switch s {
        case let .linear(lo, hi): return (min(max(v, lo), hi) - lo) / (hi - lo)
        case let .log10(lo, hi):
            let c = min(max(v, lo), hi)
            return (Foundation.log10(c) - Foundation.log10(lo)) / (Foundation.log10(hi) - Foundation.log10(lo))
        }
    }

    static func ticks(_ s: Scale) -> [(Double, String)] {
        switch s {
        case let .linear(lo, hi):
            return (0...5).map { i in
                let v = lo + (hi - lo) * Double(i) / 5
                return (v, fmt(v))
            }
        case let .log10(lo, hi):
            var out: [(Double, String)] = []
            var e = Foundation.floor(Foundation.log10(lo))
            while Foundation.pow(10, e) <= hi * (1 + 1e-9) {
                let v = Foundation.pow(10, e)
                if v >= lo * (1 - 1e-9) { out.append((v, e >= 0 ? fmt(v) : "1e\(Int(e))")) }
                e += 1
            }
            return out
        }
    }

    static func fmt(_ v: Double) -> String {
        if v == v.rounded() && abs(v) < 1e6 { return String(Int(v)) }
        return String(format: "%g", v)
    }

    public static func escape(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default: out.append(c)
            }
        }
        return out
    }

    static func n(_ v: Double) -> String { String(format: "%.2f", v) }

    /// An opaque white background, so the chart reads the same in viewers that show transparency as black.
    static let background = "<rect x=\"0\" y=\"0\" width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n"

    func frame(_ body: inout String) {
        let pw = width - Self.left - Self.right, ph = height - Self.top - Self.bottom
        body += "<rect x=\"\(Self.n(Self.left))\" y=\"\(Self.n(Self.top))\" width=\"\(Self.n(pw))\" height=\"\(Self.n(ph))\" fill=\"none\" stroke=\"#444\"/>\n"
        body += "<text x=\"\(Self.n(width / 2))\" y=\"18\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">\(Self.escape(title))</text>\n"
        body += "<text x=\"\(Self.n(Self.left + pw / 2))\" y=\"\(Self.n(height - 8))\" text-anchor=\"middle\" font-size=\"12\">\(Self.escape(xLabel))</text>\n"
        body += "<text transform=\"translate(14,\(Self.n(Self.top + ph / 2))) rotate(-90)\" text-anchor=\"middle\" font-size=\"12\">\(Self.escape(yLabel))</text>\n"
    }

    /// Renders the line chart.
    public func render() -> String {
        let pw = width - Self.left - Self.right, ph = height - Self.top - Self.bottom
        let background = Self.background
        func px(_ x: Double) -> Double { Self.left + Self.unit(x, xScale) * pw }
        func py(_ y: Double) -> Double { Self.top + (1 - Self.unit(y, yScale)) * ph }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"\(Self.n(width))\" height=\"\(Self.n(height))\" viewBox=\"0 0 \(Self.n(width)) \(Self.n(height))\" font-family=\"sans-serif\">\n" + background
        for (v, label) in Self.ticks(xScale) {
            let x = px(v)
            s += "<line x1=\"\(Self.n(x))\" y1=\"\(Self.n(Self.top))\" x2=\"\(Self.n(x))\" y2=\"\(Self.n(Self.top + ph))\" stroke=\"#ddd\"/>\n"
            s += "<text x=\"\(Self.n(x))\" y=\"\(Self.n(Self.top + ph + 14))\" text-anchor=\"middle\" font-size=\"10\">\(Self.escape(label))</text>\n"
        }
        for (v, label) in Self.ticks(yScale) {
            let y = py(v)
            s += "<line x1=\"\(Self.n(Self.left))\" y1=\"\(Self.n(y))\" x2=\"\(Self.n(Self.left + pw))\" y2=\"\(Self.n(y))\" stroke=\"#ddd\"/>\n"
            s += "<text x=\"\(Self.n(Self.left - 4))\" y=\"\(Self.n(y + 3))\" text-anchor=\"end\" font-size=\"10\">\(Self.escape(label))</text>\n"
        }
        frame(&s)
        for (i, ser) in series.enumerated() where !ser.points.isEmpty {
            let pts = ser.points.map { "\(Self.n(px($0.x))),\(Self.n(py($0.y)))" }.joined(separator: " ")
            let dash = ser.dashed ? " stroke-dasharray=\"5,3\"" : ""
            s += "<polyline fill=\"none\" stroke=\"\(ser.color)\" stroke-width=\"1.6\"\(dash) points=\"\(pts)\"><title>\(Self.escape(ser.name))</title></polyline>\n"
            let ly = Self.top + 14 + Double(i) * 15
            s += "<line x1=\"\(Self.n(Self.left + pw - 150))\" y1=\"\(Self.n(ly - 4))\" x2=\"\(Self.n(Self.left + pw - 130))\" y2=\"\(Self.n(ly - 4))\" stroke=\"\(ser.color)\" stroke-width=\"2\"\(dash)/>\n"
            s += "<text x=\"\(Self.n(Self.left + pw - 126))\" y=\"\(Self.n(ly))\" font-size=\"11\">\(Self.escape(ser.name))</text>\n"
        }
        s += "</svg>\n"
        return s
    }

    /// A grouped bar chart: one cluster per category, one bar per series; nil values are drawn as "n/a".
    public static func barChart(title: String, yLabel: String, categories: [String],
                                series: [(name: String, values: [Double?])], yMax: Double? = nil,
                                width: Double = 560, height: Double = 360) -> String {
        let all = series.flatMap { $0.values.compactMap { $0 } }
        let top = yMax ?? max(niceCeil(all.max() ?? 1), 1e-9)
        var plot = SVGPlot(title: title, xLabel: "", yLabel: yLabel, xScale: .linear(min: 0, max: 1),
                           yScale: .linear(min: 0, max: top), series: [])
        plot.width = width
        plot.height = height
        let pw = width - left - right, ph = height - SVGPlot.top - bottom
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"\(n(width))\" height=\"\(n(height))\" viewBox=\"0 0 \(n(width)) \(n(height))\" font-family=\"sans-serif\">\n" + background
        for (v, label) in ticks(.linear(min: 0, max: top)) {
            let y = SVGPlot.top + (1 - v / top) * ph
            s += "<line x1=\"\(n(left))\" y1=\"\(n(y))\" x2=\"\(n(left + pw))\" y2=\"\(n(y))\" stroke=\"#ddd\"/>\n"
            s += "<text x=\"\(n(left - 4))\" y=\"\(n(y + 3))\" text-anchor=\"end\" font-size=\"10\">\(escape(label))</text>\n"
        }
        plot.frame(&s)
        let clusters = max(categories.count, 1)
        let cw = pw / Double(clusters)
        let bw = cw * 0.8 / Double(max(series.count, 1))
        for (ci, cat) in categories.enumerated() {
            let cx = left + cw * Double(ci)
            s += "<text x=\"\(n(cx + cw / 2))\" y=\"\(n(SVGPlot.top + ph + 14))\" text-anchor=\"middle\" font-size=\"10\">\(escape(cat))</text>\n"
            for (si, ser) in series.enumerated() {
                let x = cx + cw * 0.1 + bw * Double(si)
                guard ci < ser.values.count, let v = ser.values[ci] else {
                    s += "<text x=\"\(n(x + bw / 2))\" y=\"\(n(SVGPlot.top + ph - 4))\" text-anchor=\"middle\" font-size=\"9\">n/a</text>\n"
                    continue
                }
                let h = min(max(v / top, 0), 1) * ph
                s += "<rect x=\"\(n(x))\" y=\"\(n(SVGPlot.top + ph - h))\" width=\"\(n(bw * 0.92))\" height=\"\(n(h))\" fill=\"\(palette[si % palette.count])\"><title>\(escape(ser.name)) \(escape(cat)): \(String(format: "%.4g", v))</title></rect>\n"
            }
        }
        for (si, ser) in series.enumerated() {
            let ly = SVGPlot.top + 14 + Double(si) * 15
            s += "<rect x=\"\(n(left + pw - 150))\" y=\"\(n(ly - 9))\" width=\"10\" height=\"10\" fill=\"\(palette[si % palette.count])\"/>\n"
            s += "<text x=\"\(n(left + pw - 136))\" y=\"\(n(ly))\" font-size=\"11\">\(escape(ser.name))</text>\n"
        }
        s += "</svg>\n"
        return s
    }

    /// 1, 2, 5 × 10^k at or above v.
    static func niceCeil(_ v: Double) -> Double {
        guard v > 0 else { return 1 }
        let e = Foundation.pow(10, Foundation.floor(Foundation.log10(v)))
        for m in [1.0, 2, 5, 10] where m * e >= v * (1 - 1e-12) { return m * e }
        return 10 * e
    }
}
