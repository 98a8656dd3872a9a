import Foundation

/// One image of LFW: the identity's directory name and its 1-based image number.
public struct LFWImage: Hashable, Sendable, Codable, CustomStringConvertible {
    public var name: String
    public var number: Int

    public init(name: String, number: Int) {
        self.name = name
        self.number = number
    }

    /// `name_000i.ext`, LFW's file naming (four digits).
    public func fileName(ext: String = "jpg") -> String {
        name + "_" + String(format: "%04d", number) + "." + ext
    }

    /// `root/name/name_000i.ext`.
    public func path(root: URL, ext: String = "jpg") -> URL {
        root.appendingPathComponent(name, isDirectory: true).appendingPathComponent(fileName(ext: ext))
    }

    public var description: String { fileName() }
}

/// One line of a pairs file.
public struct LFWPair: Hashable, Sendable, Codable {
    public var first: LFWImage
    public var second: LFWImage
    /// True for a matched (same identity, 3-field) line.
    public var isSame: Bool
    /// 0-based fold index.
    public var fold: Int
    /// 1-based line number in the file.
    public var line: Int
}

/// An LFW-format pairs file (View 1 `pairsDevTrain.txt`/`pairsDevTest.txt`, View 2 `pairs.txt`).
///
/// Accepted layouts:
/// - header `F\tN` (View 2, `10\t300`): F folds, each N matched lines then N mismatched lines;
/// - header `N` (View 1, `1100`): one fold of N matched then N mismatched lines;
/// - no header (the first line already a pair): one fold holding every line.
/// Fields are separated by tabs or spaces; blank lines and trailing `\r` are ignored. A matched line is
/// `name i j`, a mismatched one `name1 i name2 j`; image numbers are positive integers.
public struct LFWPairs: Sendable, Equatable {
    public var pairs: [LFWPair]
    public var foldCount: Int
    /// `(folds, pairsPerSide)` when the file had a header.
    public var header: (folds: Int, perSide: Int)?

    public static func == (a: LFWPairs, b: LFWPairs) -> Bool {
        a.pairs == b.pairs && a.foldCount == b.foldCount && a.header?.folds == b.header?.folds && a.header?.perSide == b.header?.perSide
    }

    public var isSame: [Bool] { pairs.map(\.isSame) }
    public var folds: [Int] { pairs.map(\.fold) }
    /// Every distinct image, in first-appearance order.
    public var images: [LFWImage] {
        var seen = Set<LFWImage>()
        var out: [LFWImage] = []
        for p in pairs {
            for im in [p.first, p.second] where seen.insert(im).inserted { out.append(im) }
        }
        return out
    }

    public static func load(contentsOf url: URL) throws -> LFWPairs {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw EvalError.io(path: url.path, message: error.localizedDescription)
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw EvalError.pairsSyntax(file: url.lastPathComponent, line: 1, message: "file is not UTF-8 text")
        }
        return try parse(text, fileName: url.lastPathComponent)
    }

    public static func parse(_ text: String, fileName: String = "pairs") throws -> LFWPairs {
        var lines: [(number: Int, fields: [Substring])] = []
        var n = 0
        // "\r\n" is one Character in Swift, so split on any newline character rather than on "\n".
        for raw in text.split(omittingEmptySubsequences: false, whereSeparator: { $0.isNewline }) {
            n += 1
            let fields = raw.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            if fields.isEmpty { continue }
            lines.append((n, fields))
        }
        guard let first = lines.first else { throw EvalError.empty("pairs file \(fileName)") }

        func positiveInt(_ s: Substring, _ line: Int, _ what: String) throws -> Int {
            guard let v = Int(s), v > 0 else {
                throw EvalError.pairsSyntax(file: fileName, line: line, message: "\(what) must be a positive integer, got '\(s)'")
            }
            return v
        }

        var header: (folds: Int, perSide: Int)?
        var body = lines[...]
        let allNumeric = first.fields.allSatisfy { Int($0) != nil }
        if allNumeric {
            switch first.fields.count {
            case 1: header = (1, try positiveInt(first.fields[0], first.number, "pairs per side"))
            case 2: header = (try positiveInt(first.fields[0], first.number, "fold count"),
                              try positiveInt(first.fields[1], first.number, "pairs per side"))
            default:
                throw EvalError.pairsSyntax(file: fileName, line: first.number,
                                            message: "header must be 'N' or 'FOLDS N', got \(first.fields.count) numbers")
            }
            body = lines.dropFirst()
        }

        var pairs: [LFWPair] = []
        pairs.reserveCapacity(body.count)
        for (k, entry) in body.enumerated() {
            let f = entry.fields
            let fold = header.map { k / (2 * $0.perSide) } ?? 0
            switch f.count {
            case 3:
                let name = String(f[0])
                pairs.append(LFWPair(first: LFWImage(name: name, number: try positiveInt(f[1], entry.number, "image number")),
                                     second: LFWImage(name: name, number: try positiveInt(f[2], entry.number, "image number")),
                                     isSame: true, fold: fold, line: entry.number))
            case 4:
                pairs.append(LFWPair(first: LFWImage(name: String(f[0]), number: try positiveInt(f[1], entry.number, "image number")),
                                     second: LFWImage(name: String(f[2]), number: try positiveInt(f[3], entry.number, "image number")),
                                     isSame: false, fold: fold, line: entry.number))
            default:
                throw EvalError.pairsSyntax(file: fileName, line: entry.number,
                                            message: "expected 3 fields (name i j) or 4 (name1 i name2 j), got \(f.count)")
            }
            if let h = header {
                // Within each fold the first perSide lines are matched and the next perSide mismatched.
                let expectSame = (k % (2 * h.perSide)) < h.perSide
                if pairs[pairs.count - 1].isSame != expectSame {
                    throw EvalError.pairsSyntax(file: fileName, line: entry.number,
                                                message: "header says this line of fold \(fold + 1) should be \(expectSame ? "a matched (3-field)" : "a mismatched (4-field)") pair")
                }
            }
        }
        if let h = header, pairs.count != 2 * h.folds * h.perSide {
            throw EvalError.pairsSyntax(file: fileName, line: first.number,
                                        message: "header promises \(h.folds) fold(s) of \(h.perSide)+\(h.perSide) pairs = \(2 * h.folds * h.perSide) lines, file has \(pairs.count)")
        }
        if pairs.isEmpty { throw EvalError.empty("pairs file \(fileName)") }
        return LFWPairs(pairs: pairs, foldCount: header?.folds ?? 1, header: header)
    }

    /// Assigns `k` folds to a header-less file (or re-folds any file), stratified as View 2 is: the matched pairs,
    /// in file order, are cut into k consecutive equal blocks, and so are the mismatched pairs; block i of each is fold i.
    public func refolded(into k: Int) throws -> LFWPairs {
        let same = pairs.indices.filter { pairs[$0].isSame }
        let diff = pairs.indices.filter { !pairs[$0].isSame }
        guard k >= 1, k <= min(same.count, diff.count) else {
            throw EvalError.invalidParameter("fold count must be in 1...\(min(same.count, diff.count)) (matched \(same.count), mismatched \(diff.count)), got \(k)")
        }
        var copy = self
        for (m, i) in same.enumerated() { copy.pairs[i].fold = m * k / same.count }
        for (m, i) in diff.enumerated() { copy.pairs[i].fold = m * k / diff.count }
        copy.foldCount = k
        return copy
    }

    /// Paths of images that do not exist under `root`, for a clear error before any work starts.
    public func missingImages(root: URL, ext: String = "jpg") -> [URL] {
        images.map { $0.path(root: root, ext: ext) }.filter { !FileManager.default.fileExists(atPath: $0.path) }
    }
}
