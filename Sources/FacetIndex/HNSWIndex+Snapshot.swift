#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Binary snapshot of an ``HNSWIndex``: the whole graph and vectors, written atomically.
///
/// Layout (little-endian): magic `FACETHNS`, version, configuration, counters, caller metadata,
/// then the level-0 link lists, the stored vectors, levels, labels, slot states, the upper-layer blocks, and a 64-bit
/// checksum over everything before it. Loading rebuilds the id map and the free list from the states.
extension HNSWIndex {
    static let snapshotMagic: UInt64 = 0x534E_4857_5445_4341   // "ACETHWNS" little-endian bytes of "FACETHNS"-ish tag
    static let snapshotVersion: UInt32 = 3   // 2: vector storage kind (+ int8 ranges) after the configuration;
                                             // 3: level-0 links and vectors as two arrays (1–2 interleaved them)

    /// Writes the index to `path` atomically (temporary file, `fsync`, `rename`, `fsync` of the directory),
    /// with `metadata` stored alongside (a store records its log sequence number there).
    /// Runs under the shared lock: searches continue, writers wait.
    /// With `sealing`, the file holds only sealed chunks (see ``SnapshotSealing``); no plaintext byte is written.
    public func save(to path: String, metadata: [UInt8] = [], sealing: (any SnapshotSealing)? = nil) throws(IndexError) {
        try lock.withReadLock { () throws(IndexError) in
            let temporary = path + ".tmp"
            let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o640)
            guard fd >= 0 else { throw .io(path: temporary, errno: errno, operation: "open") }
            var writer = SnapshotWriter(fd: fd, path: temporary)
            do throws(IndexError) {
                if let sealing {
                    let sealer = try sealing.makeSnapshotSealer()
                    var head = SealedSnapshot.magic
                    withUnsafeBytes(of: UInt32(sealer.header.count).littleEndian) { head.append(contentsOf: $0) }
                    head.append(contentsOf: sealer.header)
                    try asIndexError { try head.withUnsafeBytes { b in try writer.fdWrite(b) } }
                    writer.sealer = sealer
                }
                try writer.put(Self.snapshotMagic)
                try writer.put(UInt64(Self.snapshotVersion))
                try writer.put(UInt64(dim)); try writer.put(UInt64(configuration.metric == .l2Squared ? 0 : 1))
                try writer.put(UInt64(maxM)); try writer.put(UInt64(configuration.efConstruction))
                try writer.put(configuration.seed); try writer.put(configuration.purgeFraction.bitPattern)
                try writer.put(UInt64(configuration.purgeMinimum))
                try writer.put(UInt64(storageKind))
                if case .int8(let q) = configuration.storage {
                    for x in q.lower + q.upper { try writer.put(UInt64(x.bitPattern)) }
                }
                try writer.put(UInt64(slotCount)); try writer.put(UInt64(entryPoint)); try writer.put(UInt64(bitPattern: Int64(maxLevel)))
                try writer.put(rng.state)
                try writer.put(UInt64(metadata.count))
                try asIndexError { try metadata.withUnsafeBytes { b in try writer.write(b) } }
                try writer.write(UnsafeRawBufferPointer(start: level0, count: slotCount * recordStride))
                try writer.write(UnsafeRawBufferPointer(start: vectorData, count: slotCount * vectorStride))
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
                try writer.finish()
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
    /// A sealed file needs `sealing`; with `sealing`, a plaintext file is refused.
    public static func load(from path: String, sealing: (any SnapshotSealing)? = nil) throws(IndexError) -> (index: HNSWIndex, metadata: [UInt8]) {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw .io(path: path, errno: errno, operation: "open") }
        defer { close(fd) }
        var reader = SnapshotReader(fd: fd, path: path)
        var magic = [UInt8](repeating: 0, count: 8)
        try asIndexError { try magic.withUnsafeMutableBytes { b in try reader.fdRead(into: b) } }
        if magic == SealedSnapshot.magic {
            guard let sealing else { throw .malformedFile(path: path, reason: "sealed (encrypted) snapshot and no key to open it") }
            var n: UInt32 = 0
            try asIndexError { try withUnsafeMutableBytes(of: &n) { b in try reader.fdRead(into: b) } }
            guard UInt32(littleEndian: n) <= 4096 else { throw .malformedFile(path: path, reason: "implausible sealed header") }
            var header = [UInt8](repeating: 0, count: Int(UInt32(littleEndian: n)))
            try asIndexError { try header.withUnsafeMutableBytes { b in try reader.fdRead(into: b) } }
            reader.opener = try sealing.makeSnapshotOpener(header: header)
        } else {
            guard sealing == nil else { throw .malformedFile(path: path, reason: "plaintext snapshot where a sealed one is required") }
            guard lseek(fd, 0, SEEK_SET) == 0 else { throw .io(path: path, errno: errno, operation: "lseek") }
        }
        guard try reader.get() == snapshotMagic else { throw .malformedFile(path: path, reason: "not an HNSW snapshot") }
        let version = try reader.get()
        guard (1...UInt64(snapshotVersion)).contains(version) else { throw .malformedFile(path: path, reason: "unsupported version") }
        let dim = Int(try reader.get()), metricCode = try reader.get(), m = Int(try reader.get()), efc = Int(try reader.get())
        let seed = try reader.get(), purgeFraction = Double(bitPattern: try reader.get()), purgeMinimum = Int(try reader.get())
        var storage = VectorStorage.float32
        if version >= 2 {
            switch try reader.get() {
            case 0: storage = .float32
            case 1: storage = .float16
            case 2:
                guard dim > 0 && dim <= 65_536 else { throw .malformedFile(path: path, reason: "implausible header") }
                var ranges = [Float]()
                for _ in 0..<(2 * dim) { ranges.append(Float(bitPattern: UInt32(truncatingIfNeeded: try reader.get()))) }
                storage = .int8(ScalarQuantizer(lower: Array(ranges[..<dim]), upper: Array(ranges[dim...])))
            default: throw .malformedFile(path: path, reason: "unknown vector storage")
            }
        }
        let slotCount = Int(try reader.get()), entry = try reader.get(), maxLevel = Int(Int64(bitPattern: try reader.get()))
        let rngState = try reader.get()
        let metadataCount = Int(try reader.get())
        guard metricCode <= 1, slotCount >= 0, slotCount < Int(UInt32.max), metadataCount < 1 << 30, maxLevel >= -1, maxLevel <= 64 else {
            throw .malformedFile(path: path, reason: "implausible header")
        }
        let configuration = HNSWConfiguration(dimension: dim, metric: metricCode == 0 ? .l2Squared : .innerProduct, m: m,
                                              efConstruction: efc, initialCapacity: Swift.max(16, slotCount), seed: seed,
                                              purgeFraction: purgeFraction, purgeMinimum: purgeMinimum, storage: storage)
        let index: HNSWIndex
        do throws(IndexError) { index = try HNSWIndex(configuration: configuration) } catch { throw .malformedFile(path: path, reason: "bad configuration: \(error)") }
        var metadata = [UInt8](repeating: 0, count: metadataCount)
        try asIndexError { try metadata.withUnsafeMutableBytes { b in try reader.read(into: b) } }
        if version >= 3 {
            try reader.read(into: UnsafeMutableRawBufferPointer(start: index.level0, count: slotCount * index.recordStride))
            try reader.read(into: UnsafeMutableRawBufferPointer(start: index.vectorData, count: slotCount * index.vectorStride))
        } else {
            // Versions 1–2 interleaved [links | vector] per slot: split them, a chunk of slots at a time.
            let oldStride = index.recordStride + index.vectorStride
            let chunk = Swift.max(1, (1 << 22) / oldStride)
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunk * oldStride, alignment: 64)
            defer { buffer.deallocate() }
            var s = 0
            while s < slotCount {
                let n = Swift.min(chunk, slotCount - s)
                try reader.read(into: UnsafeMutableRawBufferPointer(start: buffer, count: n * oldStride))
                for i in 0..<n {
                    (index.level0 + (s + i) * index.recordStride).copyMemory(from: buffer + i * oldStride, byteCount: index.recordStride)
                    (index.vectorData + (s + i) * index.vectorStride).copyMemory(from: buffer + i * oldStride + index.recordStride,
                                                                              byteCount: index.vectorStride)
                }
                s += n
            }
        }
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
        guard try reader.atEnd() else { throw .malformedFile(path: path, reason: "trailing bytes") }
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
    /// When set, bytes are collected into chunks and only sealed chunks reach the file.
    var sealer: (any SnapshotChunkSealer)?
    var plain: [UInt8] = []
    var chunkIndex: UInt64 = 0

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
    private mutating func rawWrite(_ bytes: UnsafeRawBufferPointer) throws(IndexError) {
        guard sealer != nil else { return try fdWrite(bytes) }
        var offset = 0
        while offset < bytes.count {
            let n = Swift.min(bytes.count - offset, SealedSnapshot.chunkSize - plain.count)
            plain.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + n]))
            offset += n
            if plain.count == SealedSnapshot.chunkSize { try emitChunk(final: false) }
        }
    }
    /// Seals the last (possibly empty) chunk; call once after the last write.
    mutating func finish() throws(IndexError) {
        if sealer != nil { try emitChunk(final: true) }
    }
    private mutating func emitChunk(final: Bool) throws(IndexError) {
        guard let sealer else { return }
        let sealed = try sealer.seal(plain, chunk: chunkIndex, final: final)
        chunkIndex += 1
        plain.removeAll(keepingCapacity: true)
        var head: [UInt8] = [final ? 1 : 0]
        withUnsafeBytes(of: UInt32(sealed.count).littleEndian) { head.append(contentsOf: $0) }
        try asIndexError { try (head + sealed).withUnsafeBytes { b in try fdWrite(b) } }
    }
    func fdWrite(_ bytes: UnsafeRawBufferPointer) throws(IndexError) {
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
    /// When set, the file holds sealed chunks; reads are served from the opened current chunk.
    var opener: (any SnapshotChunkOpener)?
    var plain: [UInt8] = []
    var plainOffset = 0
    var chunkIndex: UInt64 = 0
    var sawFinal = false

    /// Whether every byte of the file was consumed (and, when sealed, the final chunk was seen).
    mutating func atEnd() throws(IndexError) -> Bool {
        if opener != nil {
            // The final chunk may be empty and still unread when the data ended on a chunk boundary.
            while !sawFinal && plainOffset == plain.count { try nextChunk() }
            if plainOffset < plain.count { return false }
        }
        var probe: UInt8 = 0
        return Glibc.read(fd, &probe, 1) == 0
    }

    private mutating func nextChunk() throws(IndexError) {
        guard let opener else { return }
        guard !sawFinal else { throw .malformedFile(path: path, reason: "truncated") }
        var head = [UInt8](repeating: 0, count: 5)
        try asIndexError { try head.withUnsafeMutableBytes { b in try fdRead(into: b) } }
        let count = Int(UInt32(head[1]) | UInt32(head[2]) << 8 | UInt32(head[3]) << 16 | UInt32(head[4]) << 24)
        guard head[0] <= 1, count <= SealedSnapshot.maxSealedChunk else { throw .malformedFile(path: path, reason: "bad sealed chunk header") }
        var sealed = [UInt8](repeating: 0, count: count)
        try asIndexError { try sealed.withUnsafeMutableBytes { b in try fdRead(into: b) } }
        plain = try opener.open(sealed, chunk: chunkIndex, final: head[0] == 1)
        plainOffset = 0
        chunkIndex += 1
        sawFinal = head[0] == 1
    }

    mutating func get() throws(IndexError) -> UInt64 {
        var v: UInt64 = 0
        try asIndexError { try withUnsafeMutableBytes(of: &v) { b in try read(into: b) } }
        return UInt64(littleEndian: v)
    }
    mutating func read(into bytes: UnsafeMutableRawBufferPointer) throws(IndexError) {
        if opener != nil {
            var offset = 0
            while offset < bytes.count {
                if plainOffset == plain.count { try nextChunk(); continue }
                let n = Swift.min(bytes.count - offset, plain.count - plainOffset)
                let from = plainOffset, to = offset
                plain.withUnsafeBytes { p in
                    (bytes.baseAddress! + to).copyMemory(from: p.baseAddress! + from, byteCount: n)
                }
                offset += n
                plainOffset += n
            }
            sum.add(UnsafeRawBufferPointer(bytes))
            return
        }
        try fdRead(into: bytes)
        sum.add(UnsafeRawBufferPointer(bytes))
    }
    /// Reads exactly `bytes.count` bytes from the file, without checksum or decryption.
    func fdRead(into bytes: UnsafeMutableRawBufferPointer) throws(IndexError) {
        var offset = 0
        while offset < bytes.count {
            let n = Glibc.read(fd, bytes.baseAddress! + offset, Swift.min(bytes.count - offset, 1 << 26))
            if n < 0 { if errno == EINTR { continue }; throw .io(path: path, errno: errno, operation: "read") }
            if n == 0 { throw .malformedFile(path: path, reason: "truncated") }
            offset += n
        }
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
        precondition(other.dim == dim && other.maxM == maxM && other.configuration.storage == configuration.storage, "snapshot layout differs")
        writer.withLock { lock.withWriteLock { other.writer.withLock { other.lock.withWriteLock {
            swap(&capacity, &other.capacity); swap(&slotCount, &other.slotCount)
            swap(&level0, &other.level0); swap(&vectorData, &other.vectorData); swap(&levels, &other.levels); swap(&upper, &other.upper)
            swap(&labels, &other.labels); swap(&states, &other.states)
            swap(&idToSlot, &other.idToSlot); swap(&freeSlots, &other.freeSlots)
            swap(&tombstoneCount, &other.tombstoneCount); swap(&entryPoint, &other.entryPoint)
            swap(&maxLevel, &other.maxLevel); swap(&rng, &other.rng)
        } } } }
    }
}
