import ArgumentParser
import Foundation
import FacetClient
import FacetWire

/// `facet status [--json]`
struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show the cluster's nodes and partitions.")

    @OptionGroup var client: ClientOptions
    @Flag(help: "Print the reply as JSON.") var json = false

    func run() async throws {
        let c = try client.connect()
        defer { Task { await c.close() } }
        do {
            let r = try await c.status(includePartitions: true)
            // Jobs under way (retraining, shard changes, purges): an operator looking at the cluster wants to see them.
            let running = ((try? await c.listJobs(state: .pending).jobs) ?? []) + ((try? await c.listJobs(state: .running).jobs) ?? [])
            if json {
                printJSON(["healthy": r.healthy, "templates": Int(r.templates), "partition_count": Int(r.partitionCount),
                           "jobs_under_way": running.map(jobJSON),
                           "replication_factor": Int(r.replicationFactor),
                           "nodes": r.nodes.map { ["id": $0.nodeID, "role": "\($0.role)", "state": "\($0.state)",
                                                   "partitions": $0.partitions.count, "templates": Int($0.templates)] as [String: Any] },
                           "partitions": r.partitions.map { ["partition": Int($0.partition), "replicas": $0.replicas,
                                                             "live_replicas": Int($0.liveReplicas), "templates": Int($0.templates)] as [String: Any] }])
            } else {
                print("cluster \(r.healthy ? "healthy" : "DEGRADED"): \(r.subjects) subjects, \(r.templates) templates, \(r.partitionCount) partitions x \(r.replicationFactor) replicas")
                for n in r.nodes {
                    print("  \(n.nodeID.padding(toLength: 14, withPad: " ", startingAt: 0)) \("\(n.role)".padding(toLength: 12, withPad: " ", startingAt: 0)) \("\(n.state)".padding(toLength: 8, withPad: " ", startingAt: 0)) partitions \(n.partitions.count)  templates \(n.templates)")
                }
                if !running.isEmpty { print("jobs under way:") }
                for j in running { print("  " + jobLine(j)) }
            }
        } catch { fail(error) }
    }
}
