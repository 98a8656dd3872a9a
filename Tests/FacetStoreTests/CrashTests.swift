import Testing
import Foundation
import FacetIndex
import FacetStore
import FacetTestSupport

/// The crash helper executable built next to the test bundle.
func crashHelperPath() throws -> String { try builtExecutablePath("FacetStoreCrashHelper") }

@Suite("Crash safety")
struct CrashTests {
    @Test("kill -9 in the middle of a batch loses no acknowledged write and exposes no half-written one")
    func killDuringWrites() throws {
        let helper = try crashHelperPath()
        try withTemporaryDirectory(prefix: "facet-crash") { dir in
            var completed = 0          // operations known to be in the store
            var rng = SplitMix64(seed: 2024)
            for round in 0..<5 {
                let killAfter = 3 + Int(rng.next() % 25)
                let process = Process()
                process.executableURL = URL(fileURLWithPath: helper)
                process.arguments = [dir.path, String(completed), "100000"]
                let pipe = Pipe()
                process.standardOutput = pipe
                try process.run()
                var buffer = Data()
                var acked = -1
                func absorb(_ data: Data) {
                    buffer.append(data)
                    while let nl = buffer.firstIndex(of: 0x0A) {
                        let line = String(decoding: buffer[buffer.startIndex..<nl], as: UTF8.self)
                        buffer.removeSubrange(buffer.startIndex...nl)
                        if line.hasPrefix("ack "), let n = Int(line.dropFirst(4)) { acked = max(acked, n) }
                    }
                }
                while acked < completed + killAfter {
                    let data = pipe.fileHandleForReading.availableData
                    if data.isEmpty { break }   // helper exited early: the checks below will fail
                    absorb(data)
                }
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                absorb(pipe.fileHandleForReading.readDataToEndOfFile())
                #expect(process.terminationReason == .uncaughtSignal, "round \(round): helper was not killed")
                let acknowledged = acked + 1   // operations 0...acked returned
                #expect(acknowledged >= completed + killAfter)

                let p = try Partition.open(at: dir.path, configuration: CrashWorkload.configuration)
                let actual = try allTemplates(p)
                // The operation after the last ack may have committed before the kill; nothing else may.
                let candidates = [acknowledged, acknowledged + 1]
                let match = candidates.first { CrashWorkload.expectedState(after: $0) == actual }
                #expect(match != nil, "round \(round): store holds \(actual.count) templates, matching neither \(candidates) completed operations")
                completed = match ?? acknowledged
                #expect(try p.verifyIndex(), "round \(round): index differs from the stored templates")
                for r in actual.values.sorted(by: { $0.id < $1.id }).suffix(40) {
                    let hit = try p.search(r.embedding, k: 1, parameters: SearchParameters(ef: 64))
                    #expect(hit.first?.template == r.id)
                }
            }
            #expect(completed > 20)
        }
    }
}
