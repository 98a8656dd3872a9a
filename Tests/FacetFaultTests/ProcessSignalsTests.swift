import Foundation
import Testing
import FacetTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// `ProcessSignals.send(SIGSTOP, to:)` returns only once every thread of a busy multi-threaded process is stopped.
@Suite("Process signals")
struct ProcessSignalsTests {
    @Test("SIGSTOP waits for every thread of a busy process to stop; SIGCONT lets them run again", .timeLimit(.minutes(1)))
    func stopWaitsForAllThreads() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        // Four threads spinning (their sleeps of 0 keep them runnable) besides the main thread.
        p.arguments = ["-c", """
            import threading, time
            def spin():
                while True: time.sleep(0)
            for _ in range(4): threading.Thread(target=spin, daemon=True).start()
            time.sleep(60)
            """]
        try p.run()
        defer { kill(p.processIdentifier, SIGCONT); kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
        let pid = p.processIdentifier
        // Wait (bounded) until the threads exist.
        for _ in 0..<500 {
            if ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task"))?.count ?? 0) >= 5 { break }
            usleep(10_000)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task").count >= 5)
        #expect(ProcessSignals.allThreadsStopped(pid) == false)
        for _ in 0..<5 {
            #expect(ProcessSignals.send(SIGSTOP, to: pid))
            // Checked right after the call returned: nothing is still running.
            #expect(ProcessSignals.allThreadsStopped(pid) == true)
            #expect(ProcessSignals.send(SIGCONT, to: pid))
            var running = false
            for _ in 0..<500 where !running {
                running = ProcessSignals.allThreadsStopped(pid) == false
                if !running { usleep(1_000) }
            }
            #expect(running)
        }
        kill(pid, SIGKILL)
        p.waitUntilExit()
        #expect(ProcessSignals.allThreadsStopped(pid) == nil)
        #expect(!ProcessSignals.send(SIGSTOP, to: pid))
    }
}
