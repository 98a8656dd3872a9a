import Foundation

/// Gender and race labels for LFW, loaded from the layout of `shared/datasets/lfw_demographics`:
///
/// - `gender_sushii2001/{male_names,female_names}.txt` or `gender_lukeli0425/…`: one image file name per line
///   (`Aaron_Eckhart_0001.jpg`), LF or CRLF, blank lines ignored (Afifi & Abdelhamed's per-image lists).
///   Known quirks are handled, not hidden: an image listed in both files is **ambiguous** (no gender, listed in
///   `ambiguousImages`); an image in neither has no gender. The sushii2001 copy adds `Tara_Kirk_0001` and is
///   preferred when both are present.
/// - `race_usc_sail/lfw_race_dict.json`: `{"Name": "caucasian,latino", …}` per **identity**, multi-label
///   from {caucasian, african, latino, eastasian, asianindian, nativeamerican, pacificislander, other}.
public struct LFWDemographics: Sendable {
    public enum Gender: String, Sendable, Codable, CaseIterable {
        case male, female
    }

    public enum GenderSource: String, Sendable, CaseIterable {
        case sushii2001 = "gender_sushii2001"
        case lukeli0425 = "gender_lukeli0425"
    }

    /// Keyed by image stem, `Name_0001`.
    public var genderByImage: [String: Gender]
    public var ambiguousImages: Set<String>
    /// Keyed by identity; labels sorted.
    public var raceByIdentity: [String: [String]]
    public var genderSource: GenderSource?

    public init(genderByImage: [String: Gender], ambiguousImages: Set<String>, raceByIdentity: [String: [String]],
                genderSource: GenderSource?) {
        self.genderByImage = genderByImage
        self.ambiguousImages = ambiguousImages
        self.raceByIdentity = raceByIdentity
        self.genderSource = genderSource
    }

    /// Loads whatever of the two label sets the directory holds; throws if it holds neither.
    /// - Parameter genderSource: which gender list to read; nil picks sushii2001 if present, else lukeli0425.
    public static func load(directory: URL, genderSource: GenderSource? = nil) throws -> LFWDemographics {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: directory.path, isDirectory: &isDir), isDir.boolValue else {
            throw EvalError.io(path: directory.path, message: "demographics directory does not exist")
        }
        let sources = genderSource.map { [$0] } ?? GenderSource.allCases
        var chosen: GenderSource?
        for s in sources where fm.fileExists(atPath: directory.appendingPathComponent(s.rawValue).appendingPathComponent("male_names.txt").path) {
            chosen = s
            break
        }
        if let requested = genderSource, chosen == nil {
            throw EvalError.io(path: directory.appendingPathComponent(requested.rawValue).path, message: "gender lists not found")
        }
        var gender: [String: Gender] = [:]
        var ambiguous = Set<String>()
        if let s = chosen {
            let dir = directory.appendingPathComponent(s.rawValue)
            var seen: [String: Gender] = [:]
            for g in Gender.allCases {
                let url = dir.appendingPathComponent("\(g.rawValue)_names.txt")
                for stem in try readImageList(url) {
                    if let other = seen[stem], other != g { ambiguous.insert(stem) }
                    seen[stem] = g
                }
            }
            for (k, v) in seen where !ambiguous.contains(k) { gender[k] = v }
        }
        var race: [String: [String]] = [:]
        let raceURL = directory.appendingPathComponent("race_usc_sail").appendingPathComponent("lfw_race_dict.json")
        if fm.fileExists(atPath: raceURL.path) {
            race = try readRaceDict(raceURL)
        }
        if chosen == nil && race.isEmpty {
            throw EvalError.labelsFormat(file: directory.path, line: nil,
                                         message: "no gender lists (gender_sushii2001/, gender_lukeli0425/) and no race_usc_sail/lfw_race_dict.json")
        }
        return LFWDemographics(genderByImage: gender, ambiguousImages: ambiguous, raceByIdentity: race, genderSource: chosen)
    }

    static func readImageList(_ url: URL) throws -> [String] {
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw EvalError.io(path: url.path, message: error.localizedDescription)
        }
        var out: [String] = []
        for (n, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0.isNewline }).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty { continue }
            var stem = line
            if let dot = stem.lastIndex(of: "."), ["jpg", "jpeg", "png"].contains(stem[stem.index(after: dot)...].lowercased()) {
                stem = String(stem[..<dot])
            }
            // Name_0001: an underscore followed by digits at the end.
            guard let us = stem.lastIndex(of: "_"), !stem[stem.index(after: us)...].isEmpty,
                  stem[stem.index(after: us)...].allSatisfy(\.isASCII), Int(stem[stem.index(after: us)...]) != nil else {
                throw EvalError.labelsFormat(file: url.lastPathComponent, line: n + 1,
                                             message: "expected an LFW image name like Name_0001.jpg, got '\(line)'")
            }
            out.append(stem)
        }
        return out
    }

    static func readRaceDict(_ url: URL) throws -> [String: [String]] {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw EvalError.io(path: url.path, message: error.localizedDescription)
        }
        guard let dict = try? JSONDecoder().decode([String: String].self, from: data) else {
            throw EvalError.labelsFormat(file: url.lastPathComponent, line: nil, message: "expected a JSON object of identity -> \"label[,label]\"")
        }
        var out: [String: [String]] = [:]
        for (name, v) in dict {
            let labels = v.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            guard !labels.isEmpty else {
                throw EvalError.labelsFormat(file: url.lastPathComponent, line: nil, message: "identity '\(name)' has an empty label")
            }
            out[name] = labels.sorted()
        }
        return out
    }

    /// Gender of one image; nil if unlisted or listed as both.
    public func gender(of image: LFWImage) -> Gender? {
        genderByImage[image.name + "_" + String(format: "%04d", image.number)]
    }

    /// Race labels of an identity (sorted), nil if not labelled.
    public func race(of identity: String) -> [String]? { raceByIdentity[identity] }

    /// A single group name for an identity: the label itself when there is one, `"multiracial"` for several.
    public func raceGroup(of identity: String) -> String? {
        guard let r = raceByIdentity[identity] else { return nil }
        return r.count == 1 ? r[0] : "multiracial"
    }
}
