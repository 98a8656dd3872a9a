#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A non-blocking self-pipe that wakes a `zmq_poll` loop from other threads. The owner makes
/// sure `wake()` is never called after `close()` (both happen under the owner's lock).
struct WakePipe {
    let readFD: Int32
    let writeFD: Int32

    init() throws(TransportError) {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw .zmq(ZMQError(function: "pipe", errno: errno)) }
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        readFD = fds[0]
        writeFD = fds[1]
    }

    /// Makes the read end readable. A full pipe already wakes the loop, so EAGAIN is ignored.
    func wake() {
        var b: UInt8 = 1
        _ = write(writeFD, &b, 1)
    }

    /// Empties the read end.
    func drain() {
        var buf = [UInt8](repeating: 0, count: 64)
        while read(readFD, &buf, buf.count) > 0 {}
    }

    func close() {
        _ = Glibc_or_Darwin_close(readFD)
        _ = Glibc_or_Darwin_close(writeFD)
    }
}

@inline(__always)
private func Glibc_or_Darwin_close(_ fd: Int32) -> Int32 {
    #if canImport(Glibc)
    return Glibc.close(fd)
    #else
    return Darwin.close(fd)
    #endif
}
