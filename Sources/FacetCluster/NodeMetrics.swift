import Foundation
import Metrics
import Prometheus
import FacetTransport
import FacetWire

/// A node's Prometheus metrics (swift-prometheus's registry; `facet serve` also bootstraps swift-metrics with a
/// factory over the same registry, so `Metrics` counters and timers from any library land in the same output).
///
/// Names (all prefixed `facet_`):
/// - `facet_requests_total{role,kind,outcome}`: requests served (client requests on the coordinator, worker calls on
///   matchers and embedders); outcome `ok` or the error code.
/// - `facet_request_duration_seconds{role,kind}`: latency histogram of the same requests.
/// - `facet_partition_templates{partition}` (matchers): templates per held partition.
/// - `facet_partitions_synced` (matchers), `facet_shard_map_epoch`, `facet_live_workers{role}` (coordinator).
/// - `facet_replica_fills_total`, `facet_replica_fill_duration_seconds`, `facet_partition_moves_total` (coordinator).
/// - `facet_jobs{kind,state}` (coordinator): jobs held (the history included), by kind and state.
public final class NodeMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    public let role: String
    let shardMapEpoch: Prometheus.Gauge
    let fillsCompleted: Prometheus.Counter
    let fillSeconds: DurationHistogram
    let partitionMoves: Prometheus.Counter
    let synced: Prometheus.Gauge
    private let counters = LockedValue<[String: Prometheus.Counter]>([:])
    private let histograms = LockedValue<[String: DurationHistogram]>([:])
    private let gauges = LockedValue<[String: Prometheus.Gauge]>([:])

    /// Latency buckets: 100 µs … 10 s.
    public static let latencyBuckets: [Duration] = [
        .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
        .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
        .seconds(1), .seconds(2.5), .seconds(5), .seconds(10),
    ]

    public init(role: String, registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        self.role = role
        func d(_ name: String, _ help: String) -> MetricNameDescriptor { MetricNameDescriptor(metricName: name, unitName: "", helpText: help) }
        shardMapEpoch = registry.makeGauge(descriptor: d("facet_shard_map_epoch", "Epoch of the shard map in force"))
        fillsCompleted = registry.makeCounter(descriptor: d("facet_replica_fills_total", "Replica copies filled"))
        fillSeconds = registry.makeDurationHistogram(descriptor: d("facet_replica_fill_duration_seconds", "Time to fill one replica copy"),
                                                     buckets: [.milliseconds(10), .milliseconds(100), .seconds(1), .seconds(10), .seconds(60), .seconds(600)])
        partitionMoves = registry.makeCounter(descriptor: d("facet_partition_moves_total", "Partition replicas moved between matchers"))
        synced = registry.makeGauge(descriptor: d("facet_partitions_synced", "Partitions whose copy on this matcher is complete"))
    }

    static func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    /// Counts one request of `kind` with `outcome` ("ok" or an error code) and records its latency.
    public func request(_ kind: String, outcome: String, duration: Duration) {
        let key = kind + "\u{0}" + outcome
        let counter = counters.withLock { c in
            if let x = c[key] { return x }
            let x = registry.makeCounter(descriptor: Self.descriptor("facet_requests_total", "Requests served"),
                                         labels: [("role", role), ("kind", kind), ("outcome", outcome)])
            c[key] = x
            return x
        }
        counter.increment()
        let histogram = histograms.withLock { h in
            if let x = h[kind] { return x }
            let x = registry.makeDurationHistogram(descriptor: Self.descriptor("facet_request_duration_seconds", "Request latency"),
                                                   labels: [("role", role), ("kind", kind)], buckets: Self.latencyBuckets)
            h[kind] = x
            return x
        }
        histogram.record(duration)
    }

    /// Sets a gauge `name` with `labels` (created on first use).
    public func gauge(_ name: String, labels: [(String, String)] = [], help: String = "", _ value: Double) {
        let key = name + labels.map { "\u{0}\($0.0)=\($0.1)" }.joined()
        let g = gauges.withLock { g in
            if let x = g[key] { return x }
            let x = registry.makeGauge(descriptor: Self.descriptor(name, help), labels: labels)
            g[key] = x
            return x
        }
        g.set(value)
    }

    /// The coordinator's jobs by kind and state (`facet_jobs{kind,state}`; kinds and states are few, so the label set
    /// is bounded — per-job progress is the jobs API's, not a metric's). Every kind × state pair is set, 0 included.
    public func jobCounts(_ jobs: [WireJob]) {
        let kinds: [WireJobKind] = [.retrain, .rebalance, .retention, .purgeModel]
        let states: [WireJobState] = [.pending, .running, .succeeded, .failed, .cancelled]
        var count: [String: Int] = [:]
        for j in jobs { count["\(JobRegistry.kindName(j.kind))/\(JobRegistry.stateName(j.state))", default: 0] += 1 }
        for k in kinds {
            for st in states {
                let kind = JobRegistry.kindName(k), state = JobRegistry.stateName(st)
                gauge("facet_jobs", labels: [("kind", kind), ("state", state)], help: "Jobs the coordinator holds, by kind and state",
                      Double(count["\(kind)/\(state)"] ?? 0))
            }
        }
    }

    /// Makes swift-metrics (`Counter`, `Timer`, `Gauge` of the Metrics API, used by any library in the process) report into
    /// this node's registry. Call once per process (`facet serve` does).
    public func bootstrapMetricsSystem() {
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
    }

    /// The Prometheus text exposition of every metric.
    public func exposition() -> String { registry.emitToString() }
}
