// Test helper for the kill -9 test: performs CrashWorkload operations on a partition and writes
// "ack N" to standard output after operation N has returned (i.e. after its transaction committed).
// Usage: FacetStoreCrashHelper DIRECTORY FIRST_OPERATION COUNT
import FacetStore
import FacetTestSupport
#if canImport(Glibc)
import Glibc
#endif

let arguments = CommandLine.arguments
guard arguments.count == 4, let first = Int(arguments[2]), let count = Int(arguments[3]) else {
    fputs("usage: FacetStoreCrashHelper DIRECTORY FIRST_OPERATION COUNT\n", stderr)
    exit(2)
}
do {
    let partition = try Partition.open(at: arguments[1], configuration: CrashWorkload.configuration)
    for n in first..<(first + count) {
        switch CrashWorkload.operation(n) {
        case .insert(let records): try partition.insert(records)
        case .delete(let ids): try partition.delete(ids)
        }
        let line = "ack \(n)\n"
        _ = line.withCString { write(1, $0, strlen($0)) }
    }
} catch {
    fputs("helper failed: \(error)\n", stderr)
    exit(1)
}
