/// Exact index over contiguous storage: the oracle for tests and the choice for small partitions.
public final class BruteForceIndex: VectorIndex, @unchecked Sendable {   // state guarded by `lock`
    public let dimension: Int
    public let metric: Metric
    private var storage: [Float] = []
    private var rowIDs: [VectorID] = []
    private var rowOf: [VectorID: Int] = [:]
    private let lock = ReadWriteLock()

    public init(dimension: Int, metric: Metric = .l2Squared) throws(IndexError) {
        guard dimension > 0 else { throw .invalidParameter(name: "dimension", value: dimension, reason: "must be positive") }
        self.dimension = dimension; self.metric = metric
    }

    public var count: Int { lock.withReadLock { rowIDs.count } }
    public func contains(_ id: VectorID) -> Bool { lock.withReadLock { rowOf[id] != nil } }

    public func insert(_ vector: [Float], id: VectorID) throws(IndexError) {
        try vector.withUnsafeBufferPointer { (v) throws(IndexError) in try validate(v, dimension: dimension) }
        lock.withWriteLock {
            if let row = rowOf[id] {
                storage.replaceSubrange(row * dimension..<(row + 1) * dimension, with: vector)
            } else {
                rowOf[id] = rowIDs.count
                rowIDs.append(id)
                storage.append(contentsOf: vector)
            }
        }
    }

    @discardableResult
    public func remove(_ id: VectorID) -> Bool {
        lock.withWriteLock {
            guard let row = rowOf.removeValue(forKey: id) else { return false }
            let last = rowIDs.count - 1
            if row != last {   // move the last row into the hole
                let lastID = rowIDs[last]
                for i in 0..<dimension { storage[row * dimension + i] = storage[last * dimension + i] }
                rowIDs[row] = lastID
                rowOf[lastID] = row
            }
            rowIDs.removeLast()
            storage.removeLast(dimension)
            return true
        }
    }

    public func search(_ query: [Float], k: Int, parameters: SearchParameters, filter: ((VectorID) -> Bool)?) throws(IndexError) -> [Neighbor] {
        try query.withUnsafeBufferPointer { (q) throws(IndexError) in try validate(q, dimension: dimension) }
        return lock.withReadLock {
            query.withUnsafeBufferPointer { q in storage.withUnsafeBufferPointer { b in rowIDs.withUnsafeBufferPointer { ids in
                ExactSearch.search(queries: q, base: b, dimension: dimension, k: k, metric: metric, ids: ids, filter: filter)[0]
            } } }
        }
    }
}
