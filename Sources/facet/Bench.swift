import ArgumentParser

/// `facet bench …`: measurements that compare Facet with the reference implementations.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks: index (ANN recall/QPS/build/memory), cluster latency, soak with faults, periocular re-rank reads (the embedder against dlib: Benchmarks/).",
        subcommands: [BenchIndex.self, BenchCluster.self, BenchSoak.self, BenchRerank.self]
    )
}

/// The nearest-rank `q` quantile (0...1) of `sorted` (ascending); nil when it is empty.
func quantile(ofSorted sorted: [Double], _ q: Double) -> Double? {
    sorted.isEmpty ? nil : sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * q).rounded()))]
}
