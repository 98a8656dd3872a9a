import Foundation

/// The identities of an LFW directory and their image counts (what LFW's `lfw-names.txt` lists; it is not in
/// the shared data, so it is derived by scanning `ROOT/Name/Name_NNNN.EXT`).
public struct LFWPeople: Sendable, Equatable {
    /// Identity → number of images, images numbered 1...count.
    public var counts: [String: Int]

    public init(counts: [String: Int]) { self.counts = counts }

    public var names: [String] { counts.keys.sorted() }
    public var imageCount: Int { counts.values.reduce(0, +) }

    public func images(of name: String) -> [LFWImage] {
        (0..<(counts[name] ?? 0)).map { LFWImage(name: name, number: $0 + 1) }
    }

    /// Scans `root`: each subdirectory is an identity; its files named `Dir_NNNN.ext` are counted. The numbers must
    /// run 1...n without gaps (LFW's layout); a gap is an error naming the directory.
    public static func scan(root: URL, ext: String = "jpg") throws -> LFWPeople {
        let fm = FileManager.default
        let dirs: [String]
        do { dirs = try fm.contentsOfDirectory(atPath: root.path) } catch {
            throw EvalError.io(path: root.path, message: error.localizedDescription)
        }
        var counts: [String: Int] = [:]
        for d in dirs {
            var isDir: ObjCBool = false
            let dirURL = root.appendingPathComponent(d)
            guard fm.fileExists(atPath: dirURL.path, isDirectory: &isDir), isDir.boolValue else { continue }
            let files = (try? fm.contentsOfDirectory(atPath: dirURL.path)) ?? []
            var numbers: [Int] = []
            let prefix = d + "_", suffix = "." + ext
            for f in files where f.hasPrefix(prefix) && f.hasSuffix(suffix) {
                let mid = f.dropFirst(prefix.count).dropLast(suffix.count)
                if mid.count == 4, let n = Int(mid) { numbers.append(n) }
            }
            guard !numbers.isEmpty else { continue }
            numbers.sort()
            guard numbers == Array(1...numbers.count) else {
                throw EvalError.io(path: dirURL.path, message: "image numbers are not 1...\(numbers.count) (found \(numbers.prefix(5))...)")
            }
            counts[d] = numbers.count
        }
        guard !counts.isEmpty else { throw EvalError.empty("LFW directory \(root.path)") }
        return LFWPeople(counts: counts)
    }
}

/// Closed- and open-set identification split.
public struct IdentificationSplit: Sendable, Equatable {
    /// Gallery/training images (enrolled identities).
    public var train: [LFWImage]
    /// Probe images of enrolled identities (mated searches), never in `train`.
    public var test: [LFWImage]
    /// Probe images of identities that are not enrolled (non-mated searches, for FPIR).
    public var nonMated: [LFWImage]
    public var enrolled: [String]
}

/// Protocol helpers for `facet eval lfw`: extended impostor sets and identification splits. Deterministic from a seed.
public enum LFWProtocol {
    /// All pairs of images of **different** identities that occur in the same fold of `pairs` (View 2's folds hold
    /// disjoint people, so the set stays fold-respecting), or a uniform sample of `maxPerFold` of them per fold.
    /// LFW's 3,000 mismatched pairs cannot resolve FMR 1e-3/1e-4; View 2's ~1,100 images per fold give ~600k
    /// impostor pairs per fold. The returned pairs have `isSame == false` and `line == 0`, ordered by fold.
    public static func crossIdentityImpostors(_ pairs: LFWPairs, maxPerFold: Int?, seed: UInt64 = 1) throws -> [LFWPair] {
        let set = try crossIdentityImpostorSet(pairs, maxPerFold: maxPerFold, seed: seed)
        return set.first.indices.map {
            LFWPair(first: set.images[Int(set.first[$0])], second: set.images[Int(set.second[$0])], isSame: false,
                    fold: Int(set.fold[$0]), line: 0)
        }
    }

    /// The same impostor pairs in a compact form (three parallel arrays of indices into `images`), for the
    /// millions of pairs of the full set: pair `k` is `(images[first[k]], images[second[k]])` in fold `fold[k]`,
    /// with `first[k] < second[k]` in (name, number) order within each fold.
    public struct ImpostorSet: Sendable, Equatable {
        /// The images of the pairs file, sorted by (name, number).
        public var images: [LFWImage]
        public var first: [Int32]
        public var second: [Int32]
        public var fold: [Int32]
        public var count: Int { first.count }
    }

    public static func crossIdentityImpostorSet(_ pairs: LFWPairs, maxPerFold: Int?, seed: UInt64 = 1) throws -> ImpostorSet {
        if let m = maxPerFold, m < 1 { throw EvalError.invalidParameter("maxPerFold must be >= 1, got \(m)") }
        var imagesByFold: [Int: [LFWImage]] = [:]
        var seen = Set<LFWImage>()
        for p in pairs.pairs {
            for im in [p.first, p.second] where seen.insert(im).inserted { imagesByFold[p.fold, default: []].append(im) }
        }
        let all = seen.sorted { ($0.name, $0.number) < ($1.name, $1.number) }
        var slot: [LFWImage: Int32] = [:]
        for (i, im) in all.enumerated() { slot[im] = Int32(i) }
        var out = ImpostorSet(images: all, first: [], second: [], fold: [])
        var rng = SplitMix(seed: seed)
        for fold in imagesByFold.keys.sorted() {
            let ims = imagesByFold[fold]!.sorted { ($0.name, $0.number) < ($1.name, $1.number) }
            let idx = ims.map { slot[$0]! }
            let n = ims.count
            // Count cross-identity pairs: all pairs minus same-identity pairs.
            var perName: [String: Int] = [:]
            for im in ims { perName[im.name, default: 0] += 1 }
            let total = n * (n - 1) / 2 - perName.values.reduce(0) { $0 + $1 * ($1 - 1) / 2 }
            func add(_ i: Int, _ j: Int) {
                out.first.append(idx[i])
                out.second.append(idx[j])
                out.fold.append(Int32(fold))
            }
            if let cap = maxPerFold, cap < total {
                var chosen = Set<Int>()   // i * n + j with i < j
                while chosen.count < cap {
                    let i = Int(rng.next() % UInt64(n)), j = Int(rng.next() % UInt64(n))
                    guard i != j, ims[i].name != ims[j].name else { continue }
                    chosen.insert(min(i, j) * n + max(i, j))
                }
                for key in chosen.sorted() { add(key / n, key % n) }
            } else {
                out.first.reserveCapacity(out.first.count + total)
                out.second.reserveCapacity(out.second.count + total)
                out.fold.reserveCapacity(out.fold.count + total)
                for i in 0..<n {
                    for j in (i + 1)..<max(n, i + 1) where ims[i].name != ims[j].name { add(i, j) }
                }
            }
        }
        return out
    }

    /// Identities with at least `minImages` images are enrolled with `trainPerIdentity` images each (a seeded
    /// shuffle per identity picks them); their other images are mated probes. A seeded `nonMatedFraction` of those
    /// identities is held out entirely (all images become non-mated probes), for open-set FPIR.
    public static func identificationSplit(_ people: LFWPeople, minImages: Int, trainPerIdentity: Int,
                                           nonMatedFraction: Double = 0, seed: UInt64 = 1) throws -> IdentificationSplit {
        guard trainPerIdentity >= 1, minImages > trainPerIdentity else {
            throw EvalError.invalidParameter("need 1 <= trainPerIdentity < minImages (got \(trainPerIdentity), \(minImages))")
        }
        guard nonMatedFraction >= 0, nonMatedFraction < 1 else {
            throw EvalError.invalidParameter("nonMatedFraction must be in [0, 1), got \(nonMatedFraction)")
        }
        var rng = SplitMix(seed: seed)
        var eligible = people.names.filter { people.counts[$0]! >= minImages }
        guard eligible.count >= 2 else {
            throw EvalError.invalidParameter("only \(eligible.count) identities have >= \(minImages) images")
        }
        eligible = shuffled(eligible, &rng)
        let held = Int((Double(eligible.count) * nonMatedFraction).rounded(.down))
        let heldOut = Array(eligible.prefix(held)).sorted()
        let enrolled = Array(eligible.dropFirst(held)).sorted()
        var train: [LFWImage] = [], test: [LFWImage] = [], non: [LFWImage] = []
        for name in enrolled {
            let ims = shuffled(people.images(of: name), &rng)
            train += ims.prefix(trainPerIdentity).sorted { $0.number < $1.number }
            test += ims.dropFirst(trainPerIdentity).sorted { $0.number < $1.number }
        }
        for name in heldOut { non += people.images(of: name) }
        return IdentificationSplit(train: train, test: test, nonMated: non, enrolled: enrolled)
    }

    static func shuffled<T>(_ a: [T], _ rng: inout SplitMix) -> [T] {
        var a = a
        if a.count > 1 {
            for i in stride(from: a.count - 1, to: 0, by: -1) {
                a.swapAt(i, Int(rng.next() % UInt64(i + 1)))
            }
        }
        return a
    }
}

/// SplitMix64, the seeded generator of the protocol helpers (stable across platforms and Swift versions,
/// unlike `SystemRandomNumberGenerator`).
struct SplitMix {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
