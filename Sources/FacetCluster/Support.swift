import Crypto
import Dispatch
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import FacetWire

/// Runs blocking work (LMDB commits, CNN inference, image decoding) on a Dispatch queue, never on the
/// cooperative pool.
func offload<T: Sendable>(_ queue: DispatchQueue, _ work: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { c in queue.async { c.resume(returning: work()) } }
}

/// Gives the heap's free pages back to the system. A retraining allocates and frees tens of megabytes on its own
/// thread; glibc keeps such memory in that thread's arena, so without this a coordinator's RSS climbs with every
/// retraining although nothing is retained (measured in the soak: docs/ops.md).
func returnFreeMemoryToTheSystem() {
    #if canImport(Glibc)
    // malloc.h is not part of the Glibc module: look the function up (absent on other C libraries: nothing to do).
    typealias Trim = @convention(c) (Int) -> Int32
    if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") {
        _ = unsafeBitCast(symbol, to: Trim.self)(0)
    }
    #endif
}

/// Template ids: the first 63 bits of SHA-256(subject, 0, collection, 0, source bytes), where the source is the
/// image file or the packed embedding. Re-enrolling the same image for the same subject yields the same id, so
/// writes are idempotent across retries and replicas, and no coordinator needs a counter (several can run).
public enum TemplateIdentity {
    public static func sourceDigest(_ bytes: [UInt8]) -> [UInt8] { Array(SHA256.hash(data: bytes)) }

    public static func templateID(subject: String, collection: String, sourceDigest: [UInt8]) -> UInt64 {
        var h = SHA256()
        h.update(data: Array(subject.utf8) + [0] + Array(collection.utf8) + [0])
        h.update(data: sourceDigest)
        let d = Array(h.finalize())
        var id: UInt64 = 0
        for i in 0..<8 { id = id << 8 | UInt64(d[i]) }
        id &= 0x7fff_ffff_ffff_ffff
        return id == 0 ? 1 : id
    }
}

/// Milliseconds since the epoch.
func nowMilliseconds() -> Int64 { wireNowUnixMilliseconds() }

extension FacetError {
    static func unavailable(_ message: String, node: String = "") -> FacetError {
        FacetError(.unavailable, message, retryAfterMilliseconds: 200, nodeID: node)
    }
}

/// Euclidean distance between two embeddings (the wire's distance unit).
public func euclideanDistance(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count)
    var s: Float = 0
    for i in a.indices { let d = a[i] - b[i]; s += d * d }
    return s.squareRoot()
}
