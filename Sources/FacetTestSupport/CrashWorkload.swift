import FacetIndex
import FacetStore

/// The deterministic write sequence used by the kill -9 test: the helper process performs the
/// operations in order and acknowledges each after it returns; the test recomputes the expected
/// store contents after any number of completed operations.
public enum CrashWorkload {
    public static let dimension = 128
    public static let batchSize = 8

    public enum Operation: Sendable, Equatable {
        case insert([TemplateRecord])
        case delete([TemplateID])
    }

    /// Operation number `n` (0-based): inserts of 8-template batches, and after every fourth batch a
    /// delete of three templates from two batches earlier.
    public static func operation(_ n: Int) -> Operation {
        let batch = (n / 5) * 4 + Swift.min(n % 5, 3)
        if n % 5 == 4 {
            let victim = batch - 2
            return .delete((0..<3).map { TemplateID(UInt64(victim * batchSize + $0 * 2)) })
        }
        return .insert((0..<batchSize).map { record(UInt64(batch * batchSize + $0)) })
    }

    public static func record(_ id: UInt64) -> TemplateRecord {
        var rng = SplitMix64(seed: id &* 0x9E37 &+ 1)
        let v = (0..<dimension).map { _ in Float(Int(rng.next() % 20001) - 10000) / 10000 }
        return TemplateRecord(id: TemplateID(id), subject: SubjectID("subject-\(id / 8 % 13)"),
                              collection: id % 2 == 0 ? "even" : "odd", embedding: Distance.normalized(v),
                              masked: id % 3 == 0, modelVersion: "crash-v1", createdAtMilliseconds: Int64(id) * 1000)
    }

    /// Store contents after the first `count` operations.
    public static func expectedState(after count: Int) -> [TemplateID: TemplateRecord] {
        var state: [TemplateID: TemplateRecord] = [:]
        for n in 0..<count {
            switch operation(n) {
            case .insert(let records): for r in records { state[r.id] = r }
            case .delete(let ids): for id in ids { state[id] = nil }
            }
        }
        return state
    }

    /// Partition settings shared by the helper and the test: a tiny map (so it grows) and frequent
    /// snapshots (so kills land inside them too).
    public static var configuration: PartitionConfiguration {
        PartitionConfiguration(dimension: dimension, m: 8, efConstruction: 64, initialMapSize: 128 << 10, snapshotInterval: 40)
    }
}
