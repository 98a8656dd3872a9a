import Foundation
#if canImport(Glibc)
import Glibc
#endif
import FacetStore
import FacetWire

/// Maps a storage failure on a matcher to the error sent back: a full disk, a file-size limit (RLIMIT_FSIZE, EFBIG),
/// an exhausted quota or an LMDB map that cannot grow become RESOURCE_EXHAUSTED with a message saying so — an
/// operator problem, not a bug — everything else INTERNAL.
func storageFailure(_ error: any Error, _ action: String, node: String, directory: String) -> FacetError {
    var code: Int32?
    if let e = error as? StoreError, case .lmdb(let l) = e { code = l.code }
    if let l = error as? LMDBError { code = l.code }
    if let code, let cause = storageFullCauses[code] ?? (code == EIO ? storageFullCause(directory: directory) : nil) {
        return FacetError(.resourceExhausted, "\(action) failed on \(node): storage full (\(cause)): \(error)", nodeID: node)
    }
    return FacetError(.internalError, "\(action) failed: \(error)", nodeID: node)
}

let storageFullCauses: [Int32: String] = [
    Int32(ENOSPC): "no space left on device",
    Int32(EFBIG): "file size limit reached",
    Int32(EDQUOT): "disk quota exceeded",
    -30792: "LMDB map full",  // MDB_MAP_FULL
]

/// LMDB reports a short write (the device filled up, or the file reached RLIMIT_FSIZE in the middle of a batch of
/// pages) as EIO. Tell that case apart from a failing device: little space left on the data directory's file system,
/// or a data file within a batch (256 KiB) of the file-size limit.
func storageFullCause(directory: String) -> String? {
    var fs = statvfs()
    if statvfs(directory, &fs) == 0, UInt64(fs.f_bavail) * UInt64(fs.f_frsize) < 4 << 20 {
        return "less than 4 MiB free on the file system"
    }
    var limit = rlimit()
    if getrlimit(Int32(RLIMIT_FSIZE.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max {
        let margin: UInt64 = 256 << 10
        let files = (try? FileManager.default.subpathsOfDirectory(atPath: directory)) ?? []
        for f in files {
            let size = ((try? FileManager.default.attributesOfItem(atPath: directory + "/" + f))?[.size] as? NSNumber)?.uint64Value ?? 0
            if size + margin >= UInt64(limit.rlim_cur) { return "file size limit of \(limit.rlim_cur) bytes reached" }
        }
    }
    return nil
}

/// A process over RLIMIT_FSIZE gets SIGXFSZ, which kills it by default; a matcher ignores it so that the write fails
/// with EFBIG and the client gets RESOURCE_EXHAUSTED instead of a dead replica.
func ignoreFileSizeSignal() {
    signal(SIGXFSZ, SIG_IGN)
}
