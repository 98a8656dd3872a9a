import CFacetKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Settings fixed when an ``HNSWIndex`` is created.
public struct HNSWConfiguration: Sendable, Hashable, Codable {
    public var dimension: Int
    public var metric: Metric
    /// Links per node on the upper layers (`M`); layer 0 keeps up to `2·M`.
    public var m: Int
    /// Candidate-list size while inserting.
    public var efConstruction: Int
    /// Slots allocated up front (the storage doubles when full).
    public var initialCapacity: Int
    /// Seed of the level generator (fixed seed → reproducible graphs).
    public var seed: UInt64
    /// Tombstones are physically removed (graph repaired, slots freed for reuse) when they exceed this
    /// fraction of the live vectors (and at least `purgeMinimum`). `compact()` does it on demand.
    public var purgeFraction: Double
    public var purgeMinimum: Int
    /// How vectors are held in the graph: full `float32`, or scalar-quantised (`float16`, `int8`) to cut memory,
    /// with re-ranking on full vectors at search time (see ``HNSWIndex/search(_:k:parameters:filter:fullVector:)``).
    public var storage: VectorStorage

    public init(dimension: Int, metric: Metric = .l2Squared, m: Int = 16, efConstruction: Int = 200,
                initialCapacity: Int = 1024, seed: UInt64 = 100, purgeFraction: Double = 0.1, purgeMinimum: Int = 256,
                storage: VectorStorage = .float32) {
        self.dimension = dimension; self.metric = metric; self.m = m; self.efConstruction = efConstruction
        self.initialCapacity = initialCapacity; self.seed = seed
        self.purgeFraction = purgeFraction; self.purgeMinimum = purgeMinimum
        self.storage = storage
    }

    func validated() throws(IndexError) -> HNSWConfiguration {
        guard dimension > 0 && dimension <= 65_536 else { throw .invalidParameter(name: "dimension", value: dimension, reason: "must be 1...65536") }
        guard m >= 2 && m <= 256 else { throw .invalidParameter(name: "m", value: m, reason: "must be 2...256") }
        guard efConstruction >= 1 else { throw .invalidParameter(name: "efConstruction", value: efConstruction, reason: "must be positive") }
        if case .int8(let q) = storage {
            guard q.lower.count == dimension && q.upper.count == dimension else {
                throw .invalidParameter(name: "storage.int8", value: q.lower.count, reason: "needs one range per dimension (\(dimension))")
            }
            for i in 0..<dimension where !(q.lower[i].isFinite && q.upper[i].isFinite && q.lower[i] <= q.upper[i]) {
                throw .invalidParameter(name: "storage.int8", value: i, reason: "range of dimension \(i) is not a finite lower ≤ upper")
            }
        }
        return self
    }
}

/// How an ``HNSWIndex`` holds its vectors.
public enum VectorStorage: Sendable, Hashable, Codable {
    /// Full precision (4 bytes per component).
    case float32
    /// IEEE half precision (2 bytes per component; ~3 significant digits).
    case float16
    /// One byte per component: `value ≈ lower + (upper − lower) / 255 · code`, per dimension (see ``ScalarQuantizer``).
    case int8(ScalarQuantizer)

    var kind: Int32 { switch self { case .float32: 0; case .float16: 1; case .int8: 2 } }
    func bytes(dimension: Int) -> Int { switch self { case .float32: 4 * dimension; case .float16: 2 * dimension; case .int8: dimension } }
}

/// Per-dimension ranges for 8-bit scalar quantisation; components outside a range are clamped.
public struct ScalarQuantizer: Sendable, Hashable, Codable {
    public let lower: [Float]
    public let upper: [Float]
    public init(lower: [Float], upper: [Float]) { self.lower = lower; self.upper = upper }

    /// Ranges from a sample (`count × dimension` row-major): each dimension's min…max, widened by `margin`
    /// of its span on both sides so later vectors slightly outside still fit.
    public static func fit(sample: UnsafeBufferPointer<Float>, dimension: Int, margin: Float = 0.02) -> ScalarQuantizer {
        precondition(dimension > 0 && sample.count >= dimension && sample.count % dimension == 0, "sample must hold whole rows")
        var lo = [Float](repeating: .infinity, count: dimension), hi = [Float](repeating: -.infinity, count: dimension)
        for r in 0..<(sample.count / dimension) {
            for j in 0..<dimension {
                let x = sample[r * dimension + j]
                if x.isFinite { lo[j] = Swift.min(lo[j], x); hi[j] = Swift.max(hi[j], x) }
            }
        }
        for j in 0..<dimension {
            if !(lo[j] <= hi[j]) { lo[j] = 0; hi[j] = 0 }
            let pad = (hi[j] - lo[j]) * margin
            lo[j] -= pad; hi[j] += pad
        }
        return ScalarQuantizer(lower: lo, upper: hi)
    }
    public static func fit(sample: [Float], dimension: Int, margin: Float = 0.02) -> ScalarQuantizer {
        sample.withUnsafeBufferPointer { fit(sample: $0, dimension: dimension, margin: margin) }
    }
}

/// Hierarchical Navigable Small World graph for approximate nearest-neighbour search.
///
/// Malkov, Y. A. & Yashunin, D. A. (2018), "Efficient and robust approximate nearest neighbor search
/// using Hierarchical Navigable Small World graphs", IEEE TPAMI 42(4). Layout: per slot a fixed-stride
/// level-0 link list `[count | 2M links]` and, in a separate array, the stored vector (unlike hnswlib's
/// `hnswalg.h`, which interleaves them: separate rows keep a 512-byte vector on exactly 8 cache lines
/// instead of 9, and the search reads far more vectors than link lists); sparse upper layers in per-node
/// blocks; dense ``InternalID`` slots inside, ``VectorID`` labels only at the edge.
///
/// Concurrency: any number of concurrent searches, one writer at a time. Inserts compute their
/// neighbourhoods under the shared lock and take the exclusive lock only to link.
///
/// Deletion: a deleted vector becomes a tombstone at once (never returned, its id free for reuse);
/// tombstones are then physically removed in batches — neighbours re-linked with the selection
/// heuristic, the slot zeroed and reused by later inserts.
public final class HNSWIndex: VectorIndex, @unchecked Sendable {   // state guarded by `lock` (+ `writer` for mutations)
    public let configuration: HNSWConfiguration
    public var dimension: Int { configuration.dimension }
    public var metric: Metric { configuration.metric }

    // MARK: layout
    let dim: Int
    let maxM: Int          // upper layers
    let maxM0: Int         // layer 0
    let recordStride: Int  // bytes per level-0 link list: [UInt32 count | 2M UInt32 links]
    let vectorStride: Int  // bytes per stored vector (rows of the separate vector array)
    let upperStride: Int   // UInt32s per upper level block: 1 + maxM
    let levelMultiplier: Double
    let storageKind: Int32         // 0 float32, 1 float16, 2 int8 (`VectorStorage.kind`)
    let sqScale: UnsafeMutablePointer<Float>?    // int8: per-dimension step
    let sqOffset: UnsafeMutablePointer<Float>?   // int8: per-dimension lower bound

    // MARK: storage (guarded by `lock`)
    var capacity: Int
    var slotCount: Int = 0                     // high-water mark of used slots
    var level0: UnsafeMutableRawPointer        // level-0 link lists
    var vectorData: UnsafeMutableRawPointer    // stored vectors
    var levels: UnsafeMutablePointer<UInt8>
    var upper: UnsafeMutablePointer<UnsafeMutablePointer<UInt32>?>
    var labels: UnsafeMutablePointer<UInt64>
    var states: UnsafeMutablePointer<SlotState>
    var idToSlot: [UInt64: UInt32] = [:]
    var freeSlots: [UInt32] = []
    var tombstoneCount = 0
    /// Bumped by every purge (slots freed): an insert planned before a purge plans again.
    var purgeEpoch: UInt64 = 0
    var entryPoint: UInt32 = HNSWIndex.none
    var maxLevel: Int = -1
    var rng: SplitMix64

    static let none = UInt32.max

    let lock = ReadWriteLock()
    let writer = PlainMutex()
    let contexts = SearchContextPool()

    /// What a slot holds.
    enum SlotState: UInt8 {
        case free = 0, live = 1, deleted = 2
    }

    public init(configuration: HNSWConfiguration) throws(IndexError) {
        let c = try configuration.validated()
        self.configuration = c
        dim = c.dimension
        maxM = c.m
        maxM0 = 2 * c.m
        recordStride = (1 + maxM0) * 4
        vectorStride = (c.storage.bytes(dimension: dim) + 3) / 4 * 4
        storageKind = c.storage.kind
        if case .int8(let q) = c.storage {
            let scale = UnsafeMutablePointer<Float>.allocate(capacity: dim), offset = UnsafeMutablePointer<Float>.allocate(capacity: dim)
            for i in 0..<dim { offset[i] = q.lower[i]; scale[i] = (q.upper[i] - q.lower[i]) / 255 }
            sqScale = scale; sqOffset = offset
        } else {
            sqScale = nil; sqOffset = nil
        }
        upperStride = 1 + maxM
        levelMultiplier = 1 / log(Double(c.m))
        capacity = Swift.max(16, c.initialCapacity)
        level0 = facet_alloc_large(capacity * recordStride)!   // zeroed, huge pages requested
        vectorData = facet_alloc_large(capacity * vectorStride)!
        levels = .allocate(capacity: capacity)
        upper = .allocate(capacity: capacity)
        labels = .allocate(capacity: capacity)
        states = .allocate(capacity: capacity)
        states.initialize(repeating: .free, count: capacity)
        upper.initialize(repeating: nil, count: capacity)
        rng = SplitMix64(seed: c.seed)
    }

    deinit {
        for s in 0..<slotCount { upper[s]?.deallocate() }
        sqScale?.deallocate(); sqOffset?.deallocate()
        facet_free_large(level0, capacity * recordStride); facet_free_large(vectorData, capacity * vectorStride); levels.deallocate(); upper.deallocate(); labels.deallocate(); states.deallocate()
    }

    // MARK: counts

    /// Live vectors.
    public var count: Int { lock.withReadLock { idToSlot.count } }
    /// Deleted vectors not yet physically removed.
    public var pendingTombstones: Int { lock.withReadLock { tombstoneCount } }
    /// Bytes held by the index: level-0 records, upper-layer links, labels, states, the id map.
    public var memoryBytes: Int {
        lock.withReadLock {
            var bytes = capacity * (recordStride + vectorStride + 1 + 8 + 1 + MemoryLayout<UnsafeMutablePointer<UInt32>?>.size)
            for s in 0..<slotCount where levels[s] > 0 { bytes += Int(levels[s]) * upperStride * 4 }
            bytes += idToSlot.capacity * (8 + 4) * 4 / 3 + freeSlots.capacity * 4
            return bytes
        }
    }

    public func contains(_ id: VectorID) -> Bool { lock.withReadLock { idToSlot[id.rawValue] != nil } }

    /// The stored vector for `id`, if live.
    public func vector(for id: VectorID) -> [Float]? {
        lock.withReadLock {
            guard let s = idToSlot[id.rawValue] else { return nil }
            return decodedVector(s)
        }
    }

    /// All live ids (unordered).
    public var ids: [VectorID] { lock.withReadLock { idToSlot.keys.map(VectorID.init(rawValue:)) } }

    // MARK: record access

    @inline(__always) func record(_ slot: UInt32) -> UnsafeMutableRawPointer { level0 + Int(slot) &* recordStride }
    /// Zeroes the links and the vector of `slot`.
    func clearSlot(_ slot: UInt32) {
        record(slot).initializeMemory(as: UInt8.self, repeating: 0, count: recordStride)
        storedVector(slot).initializeMemory(as: UInt8.self, repeating: 0, count: vectorStride)
    }
    /// The stored vector of `slot`; floats only with `float32` storage (use ``withVector(_:_:)`` otherwise).
    @inline(__always) func vectorPointer(_ slot: UInt32) -> UnsafeMutablePointer<Float> {
        (vectorData + Int(slot) &* vectorStride).assumingMemoryBound(to: Float.self)
    }
    /// Raw bytes of the stored vector of `slot`.
    @inline(__always) func storedVector(_ slot: UInt32) -> UnsafeMutableRawPointer { vectorData + Int(slot) &* vectorStride }
    /// Bytes of one stored vector.
    var storedVectorBytes: Int { configuration.storage.bytes(dimension: dim) }
    /// The vector of `slot` as floats (decoded from quantised storage).
    func decodedVector(_ slot: UInt32) -> [Float] {
        var g = graph
        return [Float](unsafeUninitializedCapacity: dim) { b, n in facet_hnsw_decode(&g, slot, b.baseAddress); n = dim }
    }
    /// Calls `body` with the vector of `slot` as floats: in place for `float32`, decoded otherwise.
    @inline(__always) func withVector<R>(_ slot: UInt32, _ body: (UnsafePointer<Float>) -> R) -> R {
        if storageKind == 0 { return body(vectorPointer(slot)) }
        return decodedVector(slot).withUnsafeBufferPointer { body($0.baseAddress!) }
    }
    /// Stores `vector` (already validated) into `slot`, encoding it for the storage kind.
    @inline(__always) func storeVector(_ vector: UnsafePointer<Float>, in slot: UInt32) {
        var g = graph
        facet_hnsw_encode(&g, vector, storedVector(slot))
    }
    /// Link list at `level`: element 0 is the count, then the neighbour slots.
    @inline(__always) func links(_ slot: UInt32, _ level: Int) -> UnsafeMutablePointer<UInt32> {
        if level == 0 { return (level0 + Int(slot) &* recordStride).assumingMemoryBound(to: UInt32.self) }
        return upper[Int(slot)].unsafelyUnwrapped + (level - 1) * upperStride
    }
    /// The C view of the storage for the search loops (`hnsw.c`). Caller holds a lock.
    @inline(__always) var graph: facet_hnsw_graph {
        facet_hnsw_graph(level0: UnsafePointer(level0.assumingMemoryBound(to: UInt8.self)), stride: recordStride,
                         vectors: UnsafePointer(vectorData.assumingMemoryBound(to: UInt8.self)), vector_stride: vectorStride, upper: UnsafePointer(upper), upper_stride: upperStride, dim: dim,
                         metric: configuration.metric == .l2Squared ? 0 : 1, vector_kind: storageKind,
                         states: UnsafeRawPointer(states).assumingMemoryBound(to: UInt8.self),
                         sq_scale: UnsafePointer(sqScale), sq_offset: UnsafePointer(sqOffset))
    }
    @inline(__always) func distance(_ q: UnsafePointer<Float>, _ slot: UInt32) -> Float {
        var g = graph
        return facet_hnsw_distance(&g, q, slot)
    }
    @inline(__always) func distance(_ a: UInt32, _ b: UInt32) -> Float { withVector(a) { distance($0, b) } }
    @inline(__always) func maxLinks(_ level: Int) -> Int { level == 0 ? maxM0 : maxM }

    // MARK: capacity

    /// Grows storage to hold at least `needed` slots. Caller holds the write lock.
    func grow(to needed: Int) {
        guard needed > capacity else { return }
        var newCapacity = capacity
        while newCapacity < needed { newCapacity *= 2 }
        let newLevel0 = facet_alloc_large(newCapacity * recordStride)!
        newLevel0.copyMemory(from: level0, byteCount: slotCount * recordStride)
        facet_free_large(level0, capacity * recordStride); level0 = newLevel0
        let newVectors = facet_alloc_large(newCapacity * vectorStride)!
        newVectors.copyMemory(from: vectorData, byteCount: slotCount * vectorStride)
        facet_free_large(vectorData, capacity * vectorStride); vectorData = newVectors
        func regrow<T>(_ p: inout UnsafeMutablePointer<T>, fill: T) {
            let n = UnsafeMutablePointer<T>.allocate(capacity: newCapacity)
            n.moveInitialize(from: p, count: capacity)
            (n + capacity).initialize(repeating: fill, count: newCapacity - capacity)
            p.deallocate(); p = n
        }
        regrow(&levels, fill: 0)
        regrow(&upper, fill: nil)
        regrow(&labels, fill: 0)
        regrow(&states, fill: .free)
        capacity = newCapacity
    }

    /// Reserves room for `count` vectors in total (avoids regrowth during a bulk load).
    public func reserveCapacity(_ count: Int) {
        writer.withLock { lock.withWriteLock { grow(to: count) } }
    }

    func randomLevel() -> Int {
        let u = Double(rng.next() >> 11) * 0x1p-53
        let l = Int(-log(Swift.max(u, 1e-300)) * levelMultiplier)
        return Swift.min(l, 40)
    }
}
