// Identifiers, metrics and result types shared by every index in FacetIndex.

/// The caller's identifier for a stored vector (for Facet: a template id).
///
/// The index maps it to a dense ``InternalID`` slot, as hnswlib separates `labeltype` from `tableint`.
public struct VectorID: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    public static func < (a: VectorID, b: VectorID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "VectorID(\(rawValue))" }
}

/// A dense slot number inside one index: where a vector's record lives in the fixed-stride storage.
public struct InternalID: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public init(_ rawValue: UInt32) { self.rawValue = rawValue }
    public static func < (a: InternalID, b: InternalID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "InternalID(\(rawValue))" }
}

/// How two vectors are compared. Smaller distances are closer for every metric.
public enum Metric: String, Sendable, Hashable, Codable, CaseIterable {
    /// Squared Euclidean distance, `Σ (aᵢ − bᵢ)²`.
    case l2Squared
    /// `1 − a·b`: for L2-normalised embeddings this is half the squared Euclidean distance (as hnswlib's `ip` space).
    case innerProduct
}

/// One search hit: the stored vector's id and its distance to the query.
public struct Neighbor: Hashable, Sendable, CustomStringConvertible {
    public var id: VectorID
    public var distance: Float
    public init(id: VectorID, distance: Float) { self.id = id; self.distance = distance }
    public var description: String { "\(id.rawValue)@\(distance)" }
}

/// Per-call search settings (instead of hnswlib's index-wide `setEf`).
public struct SearchParameters: Sendable, Hashable {
    /// Size of the dynamic candidate list at layer 0; raised to `k` when smaller.
    public var ef: Int
    /// For quantised storage: how many candidates are re-ranked on full-precision vectors (default `max(ef, k)`).
    public var rerank: Int?
    public init(ef: Int = 64, rerank: Int? = nil) { self.ef = ef; self.rerank = rerank }
}

/// Errors from index operations. Bad input is reported, never trapped.
public enum IndexError: Error, Sendable, Equatable, CustomStringConvertible {
    case dimensionMismatch(expected: Int, actual: Int)
    case nonFiniteComponent(index: Int)
    case invalidParameter(name: String, value: Int, reason: String)
    case capacityExceeded(limit: Int)
    case malformedFile(path: String, reason: String)
    case io(path: String, errno: Int32, operation: String)

    public var description: String {
        switch self {
        case .dimensionMismatch(let expected, let actual): "vector has \(actual) components, index holds \(expected)-d vectors"
        case .nonFiniteComponent(let index): "vector component \(index) is NaN or infinite"
        case .invalidParameter(let name, let value, let reason): "invalid \(name) = \(value): \(reason)"
        case .capacityExceeded(let limit): "index is full: at most \(limit) vectors"
        case .malformedFile(let path, let reason): "\(path): \(reason)"
        case .io(let path, let errno, let operation): "\(operation) \(path) failed: errno \(errno)"
        }
    }
}

/// The common face of every vector index (as FAISS's `Index`): exact and approximate alike.
public protocol VectorIndex: AnyObject, Sendable {
    var dimension: Int { get }
    var metric: Metric { get }
    /// Number of live (not deleted) vectors.
    var count: Int { get }
    /// Adds `vector` under `id`; an existing vector with the same id is replaced.
    func insert(_ vector: [Float], id: VectorID) throws(IndexError)
    /// Removes `id`; returns whether it was present. A removed vector is never returned by a search.
    @discardableResult func remove(_ id: VectorID) -> Bool
    /// The `k` closest live vectors to `query`, closest first, keeping only ids that pass `filter`.
    func search(_ query: [Float], k: Int, parameters: SearchParameters, filter: ((VectorID) -> Bool)?) throws(IndexError) -> [Neighbor]
    func contains(_ id: VectorID) -> Bool
}

extension VectorIndex {
    public func search(_ query: [Float], k: Int, parameters: SearchParameters = SearchParameters()) throws(IndexError) -> [Neighbor] {
        try search(query, k: k, parameters: parameters, filter: nil)
    }
}

@inline(__always)
func validate(_ vector: UnsafeBufferPointer<Float>, dimension: Int) throws(IndexError) {
    guard vector.count == dimension else { throw .dimensionMismatch(expected: dimension, actual: vector.count) }
    for i in 0..<vector.count where !vector[i].isFinite { throw .nonFiniteComponent(index: i) }
}
