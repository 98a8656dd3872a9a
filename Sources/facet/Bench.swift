import ArgumentParser

/// `facet bench …`: measurements that compare Facet with the reference implementations.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks: index (ANN recall/QPS/build/memory); more suites join here.",
        subcommands: [BenchIndex.self, BenchCluster.self, BenchSoak.self, BenchRerank.self]
    )
}
