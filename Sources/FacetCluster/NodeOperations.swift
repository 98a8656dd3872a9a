import Foundation
import FacetWire

// Per-node metrics scraping and readiness, for the HTTP listener (`/metrics`, `/readyz`; see HTTPStatusServer).

extension Coordinator {
    /// Refreshes the gauges and returns the Prometheus text exposition.
    public func scrape() -> String {
        let (map, workers) = state.withLock { ($0.map, $0.workers.values.filter(\.alive)) }
        metrics.shardMapEpoch.set(Double(map.epoch))
        for role in [WireNodeRole.matcher, .embedder] {
            metrics.gauge("facet_live_workers", labels: [("role", role == .matcher ? "matcher" : "embedder")],
                          help: "Workers registered and heartbeating", Double(workers.filter { $0.role == role }.count))
        }
        metrics.gauge("facet_requests_in_flight", help: "Client requests being worked on", Double(inFlightRequests.withLock { $0 }))
        let s = state.withLock { $0 }
        let servable = map.allPartitions.filter { !s.readyReplicas(of: $0).isEmpty }.count
        metrics.gauge("facet_partitions_servable", help: "Partitions with at least one complete live replica", Double(servable))
        metrics.gauge("facet_partitions", help: "Partitions in the shard map", Double(map.partitionCount))
        return metrics.exposition()
    }

    /// Ready when every partition has a complete live replica (the coordinator can answer complete results).
    public func readiness() -> HTTPStatusServer.Readiness {
        let s = state.withLock { $0 }
        let missing = s.map.allPartitions.filter { s.readyReplicas(of: $0).isEmpty }
        return .init(ready: missing.isEmpty, detail: missing.isEmpty ? "every partition has a live replica (epoch \(s.map.epoch))"
                                                                     : "\(missing.count) partitions without a live replica")
    }
}

extension MatcherNode {
    public func scrape() -> String {
        let held = partitions.withLock { $0 }
        for (p, part) in held {
            metrics.gauge("facet_partition_templates", labels: [("partition", "\(p)")], help: "Templates held per partition", Double(part.count))
        }
        metrics.synced.set(Double(shards.state.withLock { $0.synced.count }))
        metrics.shardMapEpoch.set(Double(shards.map?.epoch ?? 0))
        return metrics.exposition()
    }

    /// Ready when a coordinator was heard from within the liveness period.
    public func readiness() -> HTTPStatusServer.Readiness {
        let limit = configuration.heartbeatInterval * configuration.livenessCount
        let now = ContinuousClock.now
        let linked = shards.state.withLock { s in s.coordinatorEpochs.filter { $0.value.heard.duration(to: now) < limit }.keys.sorted() }
        return .init(ready: !linked.isEmpty, detail: linked.isEmpty ? "no coordinator heard from" : "linked to \(linked.joined(separator: ", "))")
    }
}

extension EmbedderNode {
    public func scrape() -> String {
        metrics.gauge("facet_embeds_in_flight", help: "Images being embedded", Double(inFlight.withLock { $0 }))
        return metrics.exposition()
    }

    public func readiness() -> HTTPStatusServer.Readiness { .init(ready: true, detail: "model \(embedder.modelName) loaded") }
}
