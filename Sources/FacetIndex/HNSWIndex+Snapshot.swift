#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Binary snapshot of an ``HNSWIndex``: the whole graph and vectors, written atomically.
///
/// Layout (little-endian): magic `FACETHNS`, version, configuration, counters, caller metadata,
/// then the raw level-0 records, levels, labels, slot states, the upper-layer blocks, and a 64-bit
/// checksum over everything before it. Loading rebuilds the id map and the free list from the states.
extension HNSWIndex {
    static let snapshotMagic: UInt64 = 0x534E_4857_5445_4341   // "ACETHWNS" little-endian bytes of "FACETHNS"-ish tag
    static let snapshotVersion: UInt32 = 1

    /// Writes the index to `path` atomically (temporary file, `fsync`, `rename`, `fsync` of the directory),
    /// with `metadata` stored alongside (a store records its log sequence number there).
    /// Runs under the shared lock: searches continue, writers wait.
    public func save(to path: String, metadata: [UInt8] = []) throws(IndexError) {
        try lock.withReadLock { () throws(IndexError) in
            let temporary = path + ".tmp"
            let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o640)
            guard fd >= 0 else { throw .io(path: temporary, errno: errno, operation: "open") }
            var writer = SnapshotWriter(fd: fd, path: temporary)
            do throws(IndexError) {
                try writer.put(Self.snapshotMagic)
                try writer.put(UInt64(Self.snapshotVersion))
                try writer.put(UInt64(dim)); try writer.put(UInt64(configuration.metric == .l2Squared ? 0 : 1))
                try writer.put(UInt64(maxM)); try writer.put(UInt64(configuration.efConstruction))
                try writer.put(configuration.seed); try writer.put(configuration.purgeFraction.bitPattern)
                try writer.put(UInt64(configuration.purgeMinimum))
                try writer.put(UInt64(slotCount)); try writer.put(UInt64(entryPoint)); try writer.put(UInt64(bitPattern: Int64(maxLevel)))
                try writer.put(rng.state)
                try writer.put(UInt64(metadata.count))
                try asIndexError { try metadata.withUnsafeBytes { b in try writer.write(b) } }
                try writer.write(UnsafeRawBufferPointer(start: level0, count: slotCount * recordStride))
                try writer.write(UnsafeRawBufferPointer(start: levels, count: slotCount))
                try writer.write(UnsafeRawBufferPointer(start: labels, count: slotCount * 8))
                try writer.write(UnsafeRawBufferPointer(start: states, count: slotCount))
                for s in 0..<slotCount where levels[s] > 0 {
                    try writer.write(UnsafeRawBufferPointer(start: upper[s]!, count: Int(levels[s]) * upperStride * 4))
                }
                try writer.flush()
                let sum = writer.checksum
                try writer.put(sum)
                try writer.flush()
                guard fsync(fd) == 0 else { throw IndexError.io(path: temporary, errno: errno, operation: "fsync") }
            } catch {
                close(fd); unlink(temporary); throw error
            }
            close(fd)
            guard rename(temporary, path) == 0 else { throw .io(path: path, errno: errno, operation: "rename") }
            let directory = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
            let dfd = open(directory.isEmpty ? "." : directory, O_RDONLY)
            if dfd >= 0 { fsync(dfd); close(dfd) }
        }
    }

    /// Reads a snapshot written by ``save(to:metadata:)``.
    /// - Throws: ``IndexError/malformedFile(path:reason:)`` for a truncated, corrupt or foreign file.
    public static func load(from path: String) throws(IndexError) -> (index: HNSWIndex, metadata: [UInt8]) {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw .io(path: path, errno: errno, operation: "open") }
        defer { close(fd) }
        var reader = SnapshotReader(fd: fd, path: path)
        guard try reader.get() == snapshotMagic else { throw .malformedFile(path: path, reason: "not an HNSW snapshot") }
        guard try reader.get() == UInt64(snapshotVersion) else { throw .malformedFile(path: path, reason: "unsupported version") }
        let dim = Int(try reader.get()), metricCode = try reader.get(), m = Int(try reader.get()), efc = Int(try reader.get())
        let seed = try reader.get(), purgeFraction = Double(bitPattern: try reader.get()), purgeMinimum = Int(try reader.get())
        let slotCount = Int(try reader.get()), entry = try reader.get(), maxLevel = Int(Int64(bitPattern: try reader.get()))
        let rngState = try reader.get()
        let metadataCount = Int(try reader.get())
        guard metricCode <= 1, slotCount >= 0, slotCount < Int(UInt32.max), metadataCount < 1 << 30, maxLevel >= -1, maxLevel <= 64 else {
            throw .malformedFile(path: path, reason: "implausible header")
        }
        let configuration = HNSWConfiguration(dimension: dim, metric: metricCode == 0 ? .l2Squared : .innerProduct, m: m,
                                              efConstruction: efc, initialCapacity: Swift.max(16, slotCount), seed: seed,
                                              purgeFraction: purgeFraction, purgeMinimum: purgeMinimum)
        let index: HNSWIndex
        do throws(IndexError) { index = try HNSWIndex(configuration: configuration) } catch { throw .malformedFile(path: path, reason: "bad configuration: \(error)") }
        var metadata = [UInt8](repeating: 0, count: metadataCount)
        try asIndexError { try metadata.withUnsafeMutableBytes { b in try reader.read(into: b) } }
        try reader.read(into: UnsafeMutableRawBufferPointer(start: index.level0, count: slotCount * index.recordStride))
        try reader.read(into: UnsafeMutableRawBufferPointer(start: index.levels, count: slotCount))
        try reader.read(into: UnsafeMutableRawBufferPointer(start: index.labels, count: slotCount * 8))
        try reader.read(into: UnsafeMutableRawBufferPointer(start: index.states, count: slotCount))
        index.slotCount = slotCount
        for s in 0..<slotCount {
            guard index.states[s].rawValue <= 2 else { index.slotCount = s; throw .malformedFile(path: path, reason: "bad slot state") }
            guard index.levels[s] > 0 else { continue }
            let n = Int(index.levels[s]) * index.upperStride
            let block = UnsafeMutablePointer<UInt32>.allocate(capacity: n)
            index.upper[s] = block
            try reader.read(into: UnsafeMutableRawBufferPointer(start: block, count: n * 4))
        }
        let expected = reader.checksum
        guard try reader.get() == expected else { throw .malformedFile(path: path, reason: "checksum mismatch") }
        var probe: UInt8 = 0
        guard Glibc.read(fd, &probe, 1) == 0 else { throw .malformedFile(path: path, reason: "trailing bytes") }
        index.entryPoint = UInt32(truncatingIfNeeded: entry)
        index.maxLevel = maxLevel
        index.rng.state = rngState
        for s in 0..<UInt32(slotCount) {
            switch index.states[Int(s)] {
            case .live: index.idToSlot[index.labels[Int(s)]] = s
            case .deleted: index.tombstoneCount += 1
            case .free: index.freeSlots.append(s)
            }
        }
        index.freeSlots.sort(by: >)
        let problems = index.invariantProblems()
        guard problems.isEmpty else { throw .malformedFile(path: path, reason: "inconsistent graph: \(problems[0])") }
        return (index, metadata)
    }
}

/// A 64-bit checksum over 8-byte words (fast enough for gigabyte snapshots; detects torn and corrupt files).
struct SnapshotChecksum {
    private(set) var value: UInt64 = 0xCBF2_9CE4_8422_2325
    private var pending: [UInt8] = []
    mutating func add(_ bytes: UnsafeRawBufferPointer) {
        var start = 0
        if !pending.isEmpty {
            while pending.count < 8 && start < bytes.count { pending.append(bytes[start]); start += 1 }
            if pending.count == 8 { mix(pending.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }); pending.removeAll() }
        }
        let words = (bytes.count - start) / 8
        var i = 0
        while i < words { mix(bytes.loadUnaligned(fromByteOffset: start + i * 8, as: UInt64.self)); i += 1 }
        for j in (start + words * 8)..<bytes.count { pending.append(bytes[j]) }
    }
    @inline(__always) private mutating func mix(_ w: UInt64) {
        value = (value ^ w) &* 0x100_0000_01B3
        value ^= value >> 29
    }
    var final: UInt64 {
        var copy = self
        if !copy.pending.isEmpty { var w: UInt64 = 0; for (i, b) in copy.pending.enumerated() { w |= UInt64(b) << (8 * UInt64(i)) }; copy.mix(w ^ 0xFF) }
        return copy.value
    }
}

struct SnapshotWriter {
    let fd: Int32
    let path: String
    var sum = SnapshotChecksum()
    var buffer: [UInt8] = []
    var checksum: UInt64 { sum.final }

    mutating func put(_ v: UInt64) throws(IndexError) {
        withUnsafeBytes(of: v.littleEndian) { buffer.append(contentsOf: $0) }
        if buffer.count >= 1 << 16 { try flush() }
    }
    mutating func write(_ bytes: UnsafeRawBufferPointer) throws(IndexError) {
        try flush()
        sum.add(bytes)
        try rawWrite(bytes)
    }
    mutating func flush() throws(IndexError) {
        guard !buffer.isEmpty else { return }
        let b = buffer
        buffer.removeAll(keepingCapacity: true)
        try asIndexError { try b.withUnsafeBytes { raw in sum.add(raw); try rawWrite(raw) } }
    }
    private func rawWrite(_ bytes: UnsafeRawBufferPointer) throws(IndexError) {
        var offset = 0
        while offset < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + offset, Swift.min(bytes.count - offset, 1 << 26))
            if n < 0 { if errno == EINTR { continue }; throw .io(path: path, errno: errno, operation: "write") }
            offset += n
        }
    }
}

struct SnapshotReader {
    let fd: Int32
    let path: String
    var sum = SnapshotChecksum()
    var checksum: UInt64 { sum.final }

    mutating func get() throws(IndexError) -> UInt64 {
        var v: UInt64 = 0
        try asIndexError { try withUnsafeMutableBytes(of: &v) { b in try read(into: b) } }
        return UInt64(littleEndian: v)
    }
    mutating func read(into bytes: UnsafeMutableRawBufferPointer) throws(IndexError) {
        var offset = 0
        while offset < bytes.count {
            let n = Glibc.read(fd, bytes.baseAddress! + offset, Swift.min(bytes.count - offset, 1 << 26))
            if n < 0 { if errno == EINTR { continue }; throw .io(path: path, errno: errno, operation: "read") }
            if n == 0 { throw .malformedFile(path: path, reason: "truncated") }
            offset += n
        }
        sum.add(UnsafeRawBufferPointer(bytes))
    }
}

/// Bridges `rethrows` standard-library closures back to the typed ``IndexError``.
@inline(__always)
func asIndexError<R>(_ body: () throws -> R) throws(IndexError) -> R {
    do { return try body() } catch let error as IndexError { throw error } catch {
        preconditionFailure("only IndexError is thrown here: \(error)")
    }
}

extension HNSWIndex {
    /// Takes over the storage of `other` (which must have the same layout), leaving `other` empty.
    /// Used to adopt a loaded snapshot in place.
    public func replaceContents(with other: HNSWIndex) {
        precondition(other.dim == dim && other.maxM == maxM, "snapshot layout differs")
        writer.withLock { lock.withWriteLock { other.writer.withLock { other.lock.withWriteLock {
            swap(&capacity, &other.capacity); swap(&slotCount, &other.slotCount)
            swap(&level0, &other.level0); swap(&levels, &other.levels); swap(&upper, &other.upper)
            swap(&labels, &other.labels); swap(&states, &other.states)
            swap(&idToSlot, &other.idToSlot); swap(&freeSlots, &other.freeSlots)
            swap(&tombstoneCount, &other.tombstoneCount); swap(&entryPoint, &other.entryPoint)
            swap(&maxLevel, &other.maxLevel); swap(&rng, &other.rng)
        } } } }
    }
}
