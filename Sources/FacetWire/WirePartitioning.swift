/// The partition of a subject: `fnv1a64(utf8(subject_id)) mod partitionCount`. Part of the wire
/// contract, because every coordinator (and any tool that checks a shard map) must agree on it.
public enum WirePartitioning {
    /// 64-bit FNV-1a of the UTF-8 bytes.
    public static func fnv1a64(_ s: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in s.utf8 {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01b3
        }
        return h
    }

    /// The partition (0..<partitionCount) that holds `subjectID`. `partitionCount` must be > 0.
    public static func partition(of subjectID: String, partitionCount: UInt32) -> UInt32 {
        precondition(partitionCount > 0, "partitionCount must be positive")
        return UInt32(fnv1a64(subjectID) % UInt64(partitionCount))
    }
}
