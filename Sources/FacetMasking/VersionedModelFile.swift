import Foundation

/// FacetMasking's model and settings files (mask detector, unmasking head, comparison thresholds, periocular fusion):
/// versioned JSON with a format name, read and written the same way. Each type adds its own content checks.
protocol VersionedModelFile: Codable {
    static var formatName: String { get }
    static var currentVersion: Int { get }
    /// The versions this build reads (default: only the current one).
    static var readableVersions: ClosedRange<Int> { get }
    var format: String { get }
    var version: Int { get }
}

extension VersionedModelFile {
    static var readableVersions: ClosedRange<Int> { currentVersion...currentVersion }

    /// Reads `url` and checks the format name and version; every failure is `MaskingError.resourceUnreadable`
    /// naming the file (`kind` says what it should have been, e.g. "thresholds").
    static func read(from url: URL, kind: String) throws -> Self {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw MaskingError.resourceUnreadable(url.path, reason: error.localizedDescription)
        }
        let model: Self
        do { model = try JSONDecoder().decode(Self.self, from: data) } catch {
            throw MaskingError.resourceUnreadable(url.path, reason: "not a \(kind) file: \(error)")
        }
        guard model.format == formatName else {
            throw MaskingError.resourceUnreadable(url.path, reason: "format is \(model.format), not \(formatName)")
        }
        guard readableVersions.contains(model.version) else {
            throw MaskingError.resourceUnreadable(url.path, reason: "version \(model.version) (this build reads \(readableVersions.lowerBound == currentVersion ? "\(currentVersion)" : "\(readableVersions.lowerBound)–\(currentVersion)"))")
        }
        return model
    }

    /// Pretty-printed JSON with sorted keys, written atomically.
    func writeJSON(to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: url, options: .atomic)
    }
}
