import Crypto
import Foundation
import FacetWire

/// One photo to enrol: whose, and where it is.
public struct BatchItem: Sendable, Hashable {
    public var subject: String
    public var path: String
    /// Where it came from, for error messages ("manifest.csv:12", "DIR/alice/1.jpg").
    public var origin: String
    public init(subject: String, path: String, origin: String) { self.subject = subject; self.path = path; self.origin = origin }
}

/// Why a manifest could not be read.
public struct ManifestError: Error, Sendable, CustomStringConvertible, Equatable {
    public var origin: String
    public var reason: String
    public var description: String { "\(origin): \(reason)" }
    public init(origin: String, reason: String) { self.origin = origin; self.reason = reason }
}

/// A gallery to enrol: a folder per subject (`DIR/SUBJECT/*.jpg|jpeg|png`, subjects and files in name order),
/// or a CSV manifest of `subject,image` lines (image paths relative to the CSV's folder; an optional header
/// `subject,image`; `#` comments and blank lines ignored; fields may be double-quoted).
public enum BatchManifest {
    public static let imageExtensions: Set<String> = ["jpg", "jpeg", "png"]

    public static func load(_ path: String) throws(ManifestError) -> [BatchItem] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ManifestError(origin: path, reason: "no such file or folder")
        }
        return isDirectory.boolValue ? try folder(path) : try csv(path)
    }

    static func folder(_ root: String) throws(ManifestError) -> [BatchItem] {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: root) else { throw ManifestError(origin: root, reason: "cannot list the folder") }
        var items: [BatchItem] = []
        for subject in names.sorted() where !subject.hasPrefix(".") {
            var isDirectory: ObjCBool = false
            let dir = root + "/" + subject
            guard fm.fileExists(atPath: dir, isDirectory: &isDirectory), isDirectory.boolValue else { continue }
            guard subject.utf8.count <= 255 else { throw ManifestError(origin: dir, reason: "subject id longer than 255 bytes") }
            guard let files = try? fm.contentsOfDirectory(atPath: dir) else { throw ManifestError(origin: dir, reason: "cannot list the folder") }
            for f in files.sorted() where imageExtensions.contains((f as NSString).pathExtension.lowercased()) && !f.hasPrefix(".") {
                items.append(BatchItem(subject: subject, path: dir + "/" + f, origin: dir + "/" + f))
            }
        }
        guard !items.isEmpty else { throw ManifestError(origin: root, reason: "no SUBJECT/IMAGE files (jpg, jpeg, png) found") }
        return items
    }

    static func csv(_ file: String) throws(ManifestError) -> [BatchItem] {
        guard let data = FileManager.default.contents(atPath: file), let text = String(data: data, encoding: .utf8) else {
            throw ManifestError(origin: file, reason: "cannot read the manifest as UTF-8 text")
        }
        let base = (file as NSString).deletingLastPathComponent
        var items: [BatchItem] = []
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let origin = "\(file):\(i + 1)"
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let fields = try splitCSV(line, origin: origin)
            guard fields.count == 2 else { throw ManifestError(origin: origin, reason: "expected 2 fields (subject,image), found \(fields.count)") }
            let subject = fields[0].trimmingCharacters(in: .whitespaces), image = fields[1].trimmingCharacters(in: .whitespaces)
            if items.isEmpty && subject.lowercased() == "subject" && image.lowercased() == "image" { continue }
            guard !subject.isEmpty, subject.utf8.count <= 255 else { throw ManifestError(origin: origin, reason: "subject id must be 1-255 bytes") }
            guard !image.isEmpty else { throw ManifestError(origin: origin, reason: "empty image path") }
            let path = image.hasPrefix("/") ? image : (base.isEmpty ? image : base + "/" + image)
            items.append(BatchItem(subject: subject, path: path, origin: origin))
        }
        guard !items.isEmpty else { throw ManifestError(origin: file, reason: "the manifest lists no images") }
        return items
    }

    static func splitCSV(_ line: String, origin: String) throws(ManifestError) -> [String] {
        var fields: [String] = [], field = "", quoted = false, wasQuoted = false
        var chars = Array(line)[...]
        while let c = chars.popFirst() {
            if quoted {
                if c == "\"" {
                    if chars.first == "\"" { field.append("\""); chars.removeFirst() } else { quoted = false }
                } else { field.append(c) }
            } else if c == "\"" && field.trimmingCharacters(in: .whitespaces).isEmpty && !wasQuoted {
                quoted = true; wasQuoted = true; field = ""
            } else if c == "," {
                fields.append(field); field = ""; wasQuoted = false
            } else { field.append(c) }
        }
        guard !quoted else { throw ManifestError(origin: origin, reason: "unterminated quote") }
        fields.append(field)
        return fields
    }
}

/// The journal of a batch enrolment: one JSON line per finished photo, appended and fsynced as each completes,
/// so a run killed at any point resumes where it stopped. A photo is identified by (subject, SHA-256 of its
/// bytes): renamed or moved files are not enrolled twice, and the coordinator's template ids are content-derived
/// too, so a photo enrolled but not yet journalled when the process died is answered `already_present` when
/// sent again — no duplicate template either way. A last line cut short by a crash is ignored.
///
/// ```
/// {"format":"facet-enroll-journal","version":1,"collection":"default","model_version":"1"}
/// {"subject":"alice","sha256":"…","path":"…","status":"enrolled","template_id":"…","already_present":false}
/// {"subject":"bob","sha256":"…","path":"…","status":"no_face","error":"…"}
/// ```
/// Statuses: `enrolled`; `no_face`, `bad_image`, `invalid` (permanent: not retried). Transient failures
/// (unavailable, deadline, not durable) are not journalled, so the next run retries them.
public final class EnrolJournal: @unchecked Sendable {   // appends serialised by `lock`
    public struct Entry: Codable, Sendable, Hashable {
        public var subject: String
        public var sha256: String
        public var path: String
        public var status: String
        public var templateID: String?
        public var alreadyPresent: Bool?
        public var error: String?

        enum CodingKeys: String, CodingKey {
            case subject, sha256, path, status, error
            case templateID = "template_id"
            case alreadyPresent = "already_present"
        }

        public init(subject: String, sha256: String, path: String, status: String, templateID: String? = nil,
                    alreadyPresent: Bool? = nil, error: String? = nil) {
            self.subject = subject; self.sha256 = sha256; self.path = path; self.status = status
            self.templateID = templateID; self.alreadyPresent = alreadyPresent; self.error = error
        }
        public var key: String { Self.key(subject: subject, sha256: sha256) }
        public static func key(subject: String, sha256: String) -> String { subject + "\u{0}" + sha256 }
    }

    struct Header: Codable {
        var format: String
        var version: Int
        var collection: String
        var modelVersion: String
        enum CodingKeys: String, CodingKey { case format, version, collection; case modelVersion = "model_version" }
    }

    public let path: String
    public private(set) var entries: [String: Entry] = [:]
    /// Lines that could not be read (a crash cut the last one short).
    public private(set) var ignoredLines = 0
    private let handle: FileHandle
    private let lock = NSLock()

    /// Opens (or creates) the journal. An existing journal must be for the same collection and model version.
    public init(path: String, collection: String, modelVersion: String) throws {
        self.path = path
        let fm = FileManager.default
        let header = Header(format: "facet-enroll-journal", version: 1, collection: collection, modelVersion: modelVersion)
        if let data = fm.contents(atPath: path), !data.isEmpty {
            let lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true)
            guard let first = lines.first, let h = try? JSONDecoder().decode(Header.self, from: Data(first)),
                  h.format == header.format else {
                throw ManifestError(origin: path, reason: "not a facet enroll journal")
            }
            guard h.version == 1 else { throw ManifestError(origin: path, reason: "journal version \(h.version) is not supported") }
            guard h.collection == collection, h.modelVersion == modelVersion else {
                throw ManifestError(origin: path, reason: "journal is for collection \"\(h.collection)\", model \(h.modelVersion); "
                                    + "this run is collection \"\(collection)\", model \(modelVersion) (use another --journal)")
            }
            for line in lines.dropFirst() {
                if let e = try? JSONDecoder().decode(Entry.self, from: Data(line)) { entries[e.key] = e } else { ignoredLines += 1 }
            }
            // A line cut short has no newline: end the file with one so that appends start on a fresh line.
            if data.last != UInt8(ascii: "\n") {
                let h = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
                try h.seekToEnd()
                try h.write(contentsOf: Data("\n".utf8))
                try h.close()
            }
        } else {
            var line = try JSONEncoder().encode(header)
            line.append(UInt8(ascii: "\n"))
            guard fm.createFile(atPath: path, contents: line) else { throw ManifestError(origin: path, reason: "cannot create the journal") }
        }
        handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.seekToEnd()
    }

    deinit { try? handle.close() }

    public func contains(subject: String, sha256: String) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        return entries[Entry.key(subject: subject, sha256: sha256)] != nil
    }

    /// Appends `entry` and forces it to disk before returning.
    public func append(_ entry: Entry) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var line = try encoder.encode(entry)
        line.append(UInt8(ascii: "\n"))
        lock.lock()
        defer { lock.unlock() }
        try handle.write(contentsOf: line)
        try handle.synchronize()
        entries[entry.key] = entry
    }
}

public enum ImageDigest {
    /// Lower-case hex SHA-256 of `data`.
    public static func sha256Hex(_ data: Data) -> String {
        SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
    }
}
