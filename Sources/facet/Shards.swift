import ArgumentParser
import Foundation
import FacetClient
import FacetWire

/// `facet shards show|add|remove|rebalance`: the shard map and moving partitions between matchers.
struct Shards: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shards", abstract: "Show the shard map, add or remove matchers, rebalance partitions.",
        discussion: """
            Partitions move while the cluster serves: the new replica takes writes and is filled, then replaces the old one,
            which drops its copy (docs/cluster.md). `add` needs the new matcher running and registered (facet serve matcher
            --node-id NAME ...); `remove` moves every partition off a matcher, after which it can be stopped.
            """,
        subcommands: [Show.self, Add.self, Remove.self, Rebalance.self])

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "Print the shard map.")
        @OptionGroup var client: ClientOptions
        @Flag(help: "Print the map as JSON.") var json = false

        func run() async throws {
            try await client.withClient { c in
                printMap(try await c.shardMap(), json: json)
                // The last change this coordinator ran (or rolled back) and how it ended.
                if !json, let last = try? await c.status().lastShardChange, !last.isEmpty { print("last change: \(last)") }
            }
        }
    }

    /// The arguments every change takes, and the change itself.
    struct ChangeOptions: ParsableArguments {
        @Flag(name: .customLong("dry-run"), help: "Only print the planned moves.") var dryRun = false
        @Flag(help: "Wait until the partitions have moved, with a progress bar on stderr (bounded by --timeout-ms); exit 1 if the change failed.") var wait = false
        @Flag(help: "Print the reply as JSON.") var json = false
        @OptionGroup var client: ClientOptions

        /// Asks for the change, prints the moves, and with --wait polls the map until it matches the target.
        func change(_ op: WireShardChangeRequest.Operation, _ node: String = "") async throws {
            try await client.withClient { c in
                var r = WireShardChangeRequest()
                r.operation = op
                r.nodeID = node
                r.dryRun = dryRun
                guard case .shardChangeReply(let reply) = try await c.call(.shardChangeRequest(r)) else {
                    throw FacetError(.internalError, "unexpected reply")
                }
                if json {
                    printJSON(["job_id": reply.jobID, "moves": reply.moves.map { ["partition": Int($0.partition), "from": $0.fromNodeID, "to": $0.toNodeID] }])
                } else {
                    print("\(reply.moves.count) moves\(dryRun ? " planned (dry run)" : " started (\(reply.jobID))")")
                    for m in reply.moves { print("  p\(m.partition): \(m.fromNodeID) -> \(m.toNodeID)") }
                }
                guard wait, !dryRun else { return }
                if !reply.jobID.isEmpty, let job = try? await c.job(id: reply.jobID), job.kind == .rebalance {
                    // The change is a coordinator job: follow its progress, and see at once when it failed (rolled back).
                    let done = try await followJob(c, job, label: "shards", timeout: .milliseconds(client.timeoutMilliseconds),
                                                   interval: .milliseconds(250))
                    guard done.state == .succeeded else {
                        throw FacetError(.failedPrecondition, "shard change \(done.jobID) \(jobStateName(done.state)): \(done.result.isEmpty ? done.error : done.result)")
                    }
                    if !json { print(done.result) }
                    return
                }
                // A coordinator that does not run changes as jobs: poll the map until it has the target.
                let target = reply.target
                let deadline = ContinuousClock.now + .milliseconds(client.timeoutMilliseconds)
                while ContinuousClock.now < deadline {
                    let map = try await c.shardMap()
                    if shardMapReached(map, target) {
                        if !json { print("done: shard map epoch \(map.epoch)") }
                        return
                    }
                    try await Task.sleep(for: .milliseconds(250))
                }
                throw FacetError(.deadlineExceeded, "partitions still moving after \(client.timeoutMilliseconds) ms (see facet shards show)")
            }
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "add", abstract: "Add a running matcher and give it its share of partitions.")
        @Argument(help: "Node id of the matcher to add.") var node: String
        @OptionGroup var options: ChangeOptions
        func run() async throws { try await options.change(.addMatcher, node) }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "remove", abstract: "Move every partition off a matcher and forget it.")
        @Argument(help: "Node id of the matcher to remove.") var node: String
        @OptionGroup var options: ChangeOptions
        func run() async throws { try await options.change(.removeMatcher, node) }
    }

    struct Rebalance: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rebalance", abstract: "Even out partitions over the matchers in the map.")
        @OptionGroup var options: ChangeOptions
        func run() async throws { try await options.change(.rebalance) }
    }
}

/// Whether `map` has the target's read replicas (order ignored), nothing incoming, and the target's matchers.
func shardMapReached(_ map: WireShardMap, _ target: WireShardMap) -> Bool {
    guard map.assignments.count == target.assignments.count,
          Set(map.matchers.map(\.nodeID)) == Set(target.matchers.map(\.nodeID)) else { return false }
    for (a, b) in zip(map.assignments.sorted { $0.partition < $1.partition }, target.assignments.sorted { $0.partition < $1.partition }) {
        guard a.partition == b.partition, Set(a.replicas) == Set(b.replicas), a.incoming.isEmpty else { return false }
    }
    return true
}

private func printMap(_ m: WireShardMap, json: Bool) {
    if json {
        printJSON(["epoch": Int(m.epoch), "changed_by": m.changedBy, "partition_count": Int(m.partitionCount),
                   "replication_factor": Int(m.replicationFactor), "matchers": m.matchers.map(\.nodeID),
                   "assignments": m.assignments.map { ["partition": Int($0.partition), "replicas": $0.replicas, "incoming": $0.incoming] as [String: Any] }])
        return
    }
    print("shard map epoch \(m.epoch) (by \(m.changedBy.isEmpty ? "-" : m.changedBy)): \(m.partitionCount) partitions x \(m.replicationFactor) replicas")
    var load: [String: Int] = [:]
    for a in m.assignments { for r in a.replicas { load[r, default: 0] += 1 } }
    for n in m.matchers.map(\.nodeID) { print("  \(n.padding(toLength: 14, withPad: " ", startingAt: 0)) \(load[n] ?? 0) partitions") }
    for a in m.assignments.sorted(by: { $0.partition < $1.partition }) {
        print("  p\(a.partition): \(a.replicas.joined(separator: ", "))\(a.incoming.isEmpty ? "" : "  (incoming: \(a.incoming.joined(separator: ", ")))")")
    }
}
