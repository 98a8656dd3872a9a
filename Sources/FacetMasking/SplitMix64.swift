/// A small, fast, seedable pseudo-random generator (Steele, Lea & Flood, "Fast splittable pseudorandom
/// number generators", OOPSLA 2014; the constants are those of Java's `SplittableRandom`).
///
/// Every random choice in FacetMasking goes through this generator so that a mask is a pure function of
/// its `MaskSpec`: the same seed gives the same pixels on every machine and every run.
/// `SystemRandomNumberGenerator` is never used.
public struct SplitMix64: RandomNumberGenerator, Sendable, Hashable {
    public private(set) var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return SplitMix64.mix(state)
    }

    /// The SplitMix64 output function: a bijective 64-bit mixer, also handy for hashing ids into seeds.
    @inlinable public static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform `Double` in `[0, 1)` from the top 53 bits.
    public mutating func unit() -> Double { Double(next() >> 11) * 0x1p-53 }

    /// A uniform `Double` in `range`.
    public mutating func uniform(_ range: ClosedRange<Double>) -> Double {
        range.lowerBound + (range.upperBound - range.lowerBound) * unit()
    }

    /// `+1` or `-1` with equal probability.
    public mutating func sign() -> Double { next() & 1 == 0 ? 1 : -1 }

    /// A uniform index in `0..<count` (`count > 0`), without modulo bias worth caring about at these sizes.
    public mutating func index(_ count: Int) -> Int {
        precondition(count > 0, "SplitMix64.index: empty range")
        return Int((next() >> 11) % UInt64(count))
    }
}

/// A stable 64-bit hash of a string (FNV-1a folded through SplitMix64), used to derive per-file seeds
/// that do not depend on the process (Swift's `Hasher` is randomly seeded per process).
public func stableHash(_ text: String, seed: UInt64 = 0) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325 ^ seed
    for byte in text.utf8 {
        h ^= UInt64(byte)
        h = h &* 0x0000_0100_0000_01B3
    }
    return SplitMix64.mix(h)
}
