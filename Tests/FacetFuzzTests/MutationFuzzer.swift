import Foundation

/// A deterministic mutation fuzzer: seeded SplitMix64 random numbers, AFL/libFuzzer-style byte mutations (bit flips,
/// interesting values, inserted/erased/duplicated ranges, truncation, splices with other corpus entries). The same
/// seed gives the same inputs on every machine, so a failure reproduces from the iteration number it prints.
///
/// Iterations scale with `FACET_FUZZ_SCALE` (default 1): the test suite runs a short bounded pass;
/// `scripts/fuzz.sh` runs the same harnesses longer.
struct MutationFuzzer {
    private var state: UInt64
    let corpus: [[UInt8]]
    let maxLength: Int

    init(seed: UInt64, corpus: [[UInt8]], maxLength: Int = 1 << 20) {
        precondition(!corpus.isEmpty, "empty corpus")
        state = seed
        self.corpus = corpus
        self.maxLength = maxLength
    }

    static var scale: Int { max(1, Int(ProcessInfo.processInfo.environment["FACET_FUZZ_SCALE"] ?? "") ?? 1) }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func below(_ n: Int) -> Int { n <= 1 ? 0 : Int(next() % UInt64(n)) }

    static let interesting8: [UInt8] = [0, 1, 0x7F, 0x80, 0xFF, 0x10, 0x20, 0x40, 0x64]
    static let interesting32: [UInt32] = [0, 1, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 0xFFFF, 0x10000, 1 << 24, 255, 256, 1024, 4096]

    /// One mutated input: a corpus entry with 1-6 mutations stacked.
    mutating func input() -> [UInt8] {
        var data = corpus[below(corpus.count)]
        for _ in 0...below(6) { mutate(&data) }
        if data.count > maxLength { data.removeLast(data.count - maxLength) }
        return data
    }

    mutating func mutate(_ data: inout [UInt8]) {
        switch below(11) {
        case 0 where !data.isEmpty:   // flip one bit
            let i = below(data.count); data[i] ^= 1 << UInt8(below(8))
        case 1 where !data.isEmpty:   // random byte
            data[below(data.count)] = UInt8(truncatingIfNeeded: next())
        case 2 where !data.isEmpty:   // interesting byte
            data[below(data.count)] = Self.interesting8[below(Self.interesting8.count)]
        case 3 where data.count >= 4:   // interesting 32-bit value, either byte order (sizes, counts, dimensions)
            let i = below(data.count - 3)
            var v = Self.interesting32[below(Self.interesting32.count)]
            if below(2) == 0 { v = v.byteSwapped }
            for k in 0..<4 { data[i + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(k))) }
        case 4:   // insert random bytes
            let n = 1 + below(16)
            let at = below(data.count + 1)
            data.insert(contentsOf: (0..<n).map { _ in UInt8(truncatingIfNeeded: next()) }, at: at)
        case 5 where data.count > 1:   // erase a range
            let at = below(data.count), n = 1 + below(min(64, data.count - at))
            data.removeSubrange(at..<(at + n))
        case 6 where data.count > 1:   // duplicate a range
            let at = below(data.count), n = 1 + below(min(64, data.count - at))
            data.insert(contentsOf: data[at..<(at + n)], at: below(data.count + 1))
        case 7 where !data.isEmpty:   // truncate
            data.removeLast(below(data.count))
        case 8:   // splice: our head, another entry's tail
            let other = corpus[below(corpus.count)]
            let head = below(data.count + 1), tail = below(other.count + 1)
            data = Array(data[..<head]) + Array(other[tail...])
        case 9 where data.count >= 2:   // copy a range over another place
            let from = below(data.count), to = below(data.count)
            let n = 1 + below(min(32, data.count - max(from, to)))
            let chunk = Array(data[from..<(from + n)])
            data.replaceSubrange(to..<(to + n), with: chunk)
        case 10 where !data.isEmpty:   // increment/decrement a byte (off-by-one lengths)
            let i = below(data.count); data[i] = below(2) == 0 ? data[i] &+ 1 : data[i] &- 1
        default:
            if !data.isEmpty { data[below(data.count)] ^= 0xFF }
        }
    }
}

let fuzzCorpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Corpus")

/// The committed corpus of one harness (every file of `Corpus/NAME/`, sorted by name).
func corpus(_ name: String) throws -> [[UInt8]] {
    let dir = fuzzCorpus.appendingPathComponent(name)
    let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { !$0.hasPrefix(".") }.sorted()
    return try files.map { [UInt8](try Data(contentsOf: dir.appendingPathComponent($0))) }
}
