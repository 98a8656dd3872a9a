/// Maps string class labels (subject ids) to dense integer indices and back.
/// Classes are ordered by byte-wise string comparison, as scikit-learn's `LabelEncoder` orders them,
/// so class `k` here is `classes_[k]` there.
public struct LabelEncoder: Sendable, Equatable, Codable {
    public let classes: [String]
    private let index: [String: Int]

    public init<S: Sequence>(labels: S) where S.Element == String {
        let unique = Set(labels)
        classes = unique.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        var map = [String: Int](minimumCapacity: classes.count)
        for (i, c) in classes.enumerated() { map[c] = i }
        index = map
    }

    public init(classes: [String]) throws {
        var map = [String: Int](minimumCapacity: classes.count)
        for (i, c) in classes.enumerated() {
            if map[c] != nil { throw ClassifyError.modelFormat("duplicate class label '\(c)'") }
            map[c] = i
        }
        self.classes = classes
        index = map
    }

    public var count: Int { classes.count }

    public func encode(_ label: String) throws -> Int {
        guard let i = index[label] else { throw ClassifyError.unknownLabel(label) }
        return i
    }

    public func encodeIfPresent(_ label: String) -> Int? { index[label] }

    public func decode(_ i: Int) -> String { classes[i] }

    public static func == (a: LabelEncoder, b: LabelEncoder) -> Bool { a.classes == b.classes }

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        try self.init(classes: c.decode([String].self))
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(classes)
    }
}
