import Foundation
import Logging
import FacetStore
import FacetTransport
import FacetWire

/// A matcher's share of the shard map protocol: the stored map (persisted in `DATA/shard-map.pb`), which
/// partitions are synced (complete copies that may serve reads), fill windows, and what each coordinator said its
/// epoch was. Mutated only on the matcher's write queue (so fencing and window bookkeeping are ordered with the
/// LMDB commits), read anywhere under the lock.
final class MatcherShardState: Sendable {
    struct FillWindow: Sendable {
        var owner: String
        /// Templates written or deleted through ordinary writes since the window opened.
        var heard: Set<UInt64> = []
        var deletedSubjects: Set<String> = []
        var touched: ContinuousClock.Instant
    }

    struct State: Sendable {
        var map: ClusterShardMap?
        var synced: Set<UInt32> = []
        var windows: [UInt32: FillWindow] = [:]
        /// Coordinator endpoint → (its shard-map epoch, when heard).
        var coordinatorEpochs: [String: (epoch: UInt64, heard: ContinuousClock.Instant)] = [:]
    }

    let path: String
    let state: LockedValue<State>
    /// A window whose owner has not touched it for this long may be taken over (its coordinator died mid-fill).
    static let windowExpiry: Duration = .seconds(30)

    init(directory: String, logger: Logger) {
        path = directory + "/shard-map.pb"
        var s = State()
        if let data = FileManager.default.contents(atPath: path) {
            do {
                s.map = try ClusterShardMap(wire: try WireShardMap(serializedBytes: data))
            } catch {
                logger.error("stored shard map unreadable; ignored", metadata: ["path": "\(path)", "error": "\(error)"])
            }
        }
        state = LockedValue(s)
    }

    var map: ClusterShardMap? { state.withLock { $0.map } }

    /// Stores `map` when it is newer than the stored one (durably: temp file, fsync, rename). Returns the map now stored.
    func adopt(_ map: ClusterShardMap) throws -> ClusterShardMap {
        if let current = self.map, !map.isNewer(than: current) { return current }
        let bytes: Data = try map.wire.serializedData()
        let tmp = path + ".tmp"
        guard FileManager.default.createFile(atPath: tmp, contents: bytes) else {
            throw FacetError(.internalError, "cannot write \(tmp)")
        }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: tmp))
        try handle.synchronize()
        try handle.close()
        guard rename(tmp, path) == 0 else { throw FacetError(.internalError, "cannot rename \(tmp): errno \(errno)") }
        state.withLock { $0.map = map }
        return map
    }
}

extension MatcherNode {
    // MARK: fencing

    /// Refuses writes made under an older shard map (the writer must refresh its map and retry) and writes for
    /// partitions this matcher neither holds nor is being filled with under the current map.
    func fence(epoch: UInt64, partition p: UInt32) throws(FacetError) {
        guard epoch != 0, let map = shards.map else { return }
        if epoch < map.epoch {
            throw FacetError(.staleShardMap, "request made under shard map epoch \(epoch); this matcher has \(map.epoch)",
                             retryAfterMilliseconds: 0, nodeID: nodeID)
        }
        if epoch == map.epoch, p < map.partitionCount, !map.writeSet(of: p).contains(nodeID) {
            throw FacetError(.failedPrecondition, "partition \(p) is not assigned to \(nodeID) in epoch \(epoch)", nodeID: nodeID)
        }
    }

    /// Whether this matcher answers reads of `p`: it holds data for it or the map assigns it here.
    func serves(_ p: UInt32, held: [UInt32: Partition]) -> Bool {
        if held[p] != nil { return true }
        guard let map = shards.map, p < map.partitionCount else { return true }
        return map.writeSet(of: p).contains(nodeID)
    }

    /// Holdings reported to coordinators: partitions on disk, synced or assigned, with their counts.
    var shardHoldings: [WirePartitionHolding] {
        let held = partitions.withLock { $0 }
        let s = shards.state.withLock { ($0.synced, $0.map.map { $0.assigned(to: nodeID) } ?? [], Set($0.windows.keys)) }
        return Set(held.keys).union(s.0).union(s.1).sorted().map { p in
            var h = WirePartitionHolding()
            h.partition = p
            h.templates = UInt64(held[p]?.count ?? 0)
            h.synced = s.0.contains(p)
            h.filling = s.2.contains(p)
            return h
        }
    }

    /// Records an ordinary write in the partition's fill window, if one is open. Runs on the write queue.
    func noteWrite(_ p: UInt32, ids: [UInt64], deletedSubject: String?) {
        shards.state.withLock { s in
            guard s.windows[p] != nil else { return }
            s.windows[p]!.heard.formUnion(ids)
            if let d = deletedSubject { s.windows[p]!.deletedSubjects.insert(d) }
        }
    }

    /// A copy's records less those written or deleted through ordinary writes during the window. Runs on the write queue.
    func fillRecords(_ p: UInt32, _ records: [WireTemplateRecord]) throws(FacetError) -> [WireTemplateRecord] {
        let window = shards.state.withLock { s -> MatcherShardState.FillWindow? in
            s.windows[p]?.touched = .now
            return s.windows[p]
        }
        guard let window else { throw FacetError(.failedPrecondition, "no fill window open for partition \(p)", nodeID: nodeID) }
        return records.filter { !window.heard.contains($0.templateID) && !window.deletedSubjects.contains($0.subjectID) }
    }

    /// Ids a reconciliation may delete: those not written or deleted through ordinary writes during the window.
    func fillDeletions(_ p: UInt32, _ ids: [UInt64]) throws(FacetError) -> [UInt64] {
        let window = shards.state.withLock { s -> MatcherShardState.FillWindow? in
            s.windows[p]?.touched = .now
            return s.windows[p]
        }
        guard let window else { throw FacetError(.failedPrecondition, "no fill window open for partition \(p)", nodeID: nodeID) }
        return ids.filter { !window.heard.contains($0) }
    }

    // MARK: requests

    func handleShards(_ env: WireEnvelope) async throws(FacetError) -> WireEnvelope.OneOf_Body? {
        switch env.body {
        case .fillControl(let r)?: return .fillControlReply(try await fillControl(r))
        case .shardMapUpdate(let u)?:
            let result: Result<ClusterShardMap, FacetError> = await serialWrite { [self] in
                do {
                    let map = try ClusterShardMap(wire: u.map)
                    let before = shards.map
                    let now = try shards.adopt(map)
                    if before?.epoch != now.epoch {
                        logger.info("shard map stored", metadata: ["epoch": "\(now.epoch)", "by": "\(now.changedBy)"])
                    }
                    return .success(now)
                } catch let e as ClusterShardMap.MapError {
                    return .failure(FacetError(.invalidArgument, "\(e)", field: "map"))
                } catch {
                    return .failure(FacetError(.internalError, "cannot store the shard map: \(error)", nodeID: nodeID))
                }
            }
            return .shardMap(try result.get().wire)
        case .shardMapRequest?:
            guard let map = shards.map else { throw FacetError(.notFound, "no shard map stored", nodeID: nodeID) }
            return .shardMap(map.wire)
        case .dropPartitionRequest(let r)?: return .dropPartitionReply(try await drop(r))
        case .partitionSubjectsRequest(let r)?: return .partitionSubjectsReply(subjects(r))
        default: return nil
        }
    }

    func fillControl(_ r: WireFillControl) async throws(FacetError) -> WireFillControlReply {
        let node = nodeID
        let result: Result<WireFillControlReply, FacetError> = await serialWrite { [self] in
            let p = r.partition
            let outcome = shards.state.withLock { s -> FacetError? in
                let now = ContinuousClock.now
                switch r.action {
                case .begin:
                    if let w = s.windows[p], w.owner != r.fillID, w.touched.duration(to: now) < MatcherShardState.windowExpiry {
                        return FacetError(.failedPrecondition, "partition \(p) is being filled by \(w.owner)", retryAfterMilliseconds: 500, nodeID: node)
                    }
                    s.windows[p] = MatcherShardState.FillWindow(owner: r.fillID, touched: now)
                    s.synced.remove(p)
                case .done:
                    guard s.windows[p]?.owner == r.fillID else {
                        return FacetError(.failedPrecondition, "fill \(r.fillID) of partition \(p) is not open here", nodeID: node)
                    }
                    s.windows[p] = nil
                    s.synced.insert(p)
                case .abort:
                    if s.windows[p]?.owner == r.fillID { s.windows[p] = nil }
                case .adopt:
                    if let w = s.windows[p], w.touched.duration(to: now) < MatcherShardState.windowExpiry {
                        return FacetError(.failedPrecondition, "partition \(p) is being filled by \(w.owner)", nodeID: node)
                    }
                    s.synced.insert(p)
                default:
                    return FacetError(.invalidArgument, "unknown fill action", field: "action")
                }
                return nil
            }
            if let outcome { return .failure(outcome) }
            var reply = WireFillControlReply()
            reply.partition = p
            reply.synced = shards.state.withLock { $0.synced.contains(p) }
            reply.templates = UInt64(partitions.withLock { $0[p] }?.count ?? 0)
            return .success(reply)
        }
        let reply = try result.get()
        if r.action == .done || r.action == .adopt {
            logger.info("partition synced", metadata: ["partition": "\(r.partition)", "fill": "\(r.fillID)", "templates": "\(reply.templates)"])
        }
        return reply
    }

    /// Drops a partition this matcher no longer holds in the map, once every coordinator it hears from uses that map.
    func drop(_ r: WireDropPartitionRequest) async throws(FacetError) -> WireDropPartitionReply {
        let node = nodeID
        let staleAfter = configuration.heartbeatInterval * configuration.livenessCount
        let result: Result<(WireDropPartitionReply, Partition?), FacetError> = await serialWrite { [self] in
            let p = r.partition
            let problem = shards.state.withLock { s -> FacetError? in
                guard let map = s.map else { return FacetError(.failedPrecondition, "no shard map stored", nodeID: node) }
                if r.shardMapEpoch < map.epoch { return FacetError(.staleShardMap, "drop under epoch \(r.shardMapEpoch); stored \(map.epoch)", nodeID: node) }
                if r.shardMapEpoch > map.epoch { return FacetError(.failedPrecondition, "shard map epoch \(r.shardMapEpoch) not stored here yet", retryAfterMilliseconds: 200, nodeID: node) }
                if p < map.partitionCount, map.writeSet(of: p).contains(node) {
                    return FacetError(.failedPrecondition, "partition \(p) is still assigned to \(node)", nodeID: node)
                }
                let now = ContinuousClock.now
                for (endpoint, e) in s.coordinatorEpochs where e.heard.duration(to: now) < staleAfter && e.epoch < map.epoch {
                    return FacetError(.failedPrecondition, "coordinator at \(endpoint) still uses epoch \(e.epoch)", retryAfterMilliseconds: 200, nodeID: node)
                }
                s.synced.remove(p)
                s.windows[p] = nil
                return nil
            }
            if let problem { return .failure(problem) }
            let part = partitions.withLock { $0.removeValue(forKey: p) }
            var reply = WireDropPartitionReply()
            reply.partition = p
            reply.recordsDropped = UInt64(part?.count ?? 0)
            // Searches still holding the partition keep their (unlinked) files open until they finish.
            try? FileManager.default.removeItem(atPath: dataDirectory + "/" + Self.directoryName(p))
            return .success((reply, part))
        }
        let (reply, _) = try result.get()
        logger.info("partition dropped", metadata: ["partition": "\(r.partition)", "templates": "\(reply.recordsDropped)", "epoch": "\(r.shardMapEpoch)"])
        return reply
    }

    func subjects(_ r: WirePartitionSubjectsRequest) -> WirePartitionSubjectsReply {
        let held = partitions.withLock { $0 }
        let limit = Int(r.limit == 0 ? 100 : min(r.limit, 10_000))
        var reply = WirePartitionSubjectsReply()
        var all: [WireSubjectSummary] = []
        for p in r.partitions {
            guard serves(p, held: held) else { reply.missingPartitions.append(p); continue }
            reply.searchedPartitions.append(p)
            guard let part = held[p] else { continue }
            let (list, more) = part.subjectSummaries(after: r.afterSubjectID, prefix: r.prefix,
                                                     collection: r.collection.isEmpty ? nil : r.collection, limit: limit)
            if more { reply.more = true }
            all += list.map { s in
                var w = WireSubjectSummary()
                w.subjectID = s.subject.rawValue
                w.collection = r.collection
                w.templateCount = UInt32(s.templates)
                return w
            }
        }
        all.sort { $0.subjectID < $1.subjectID }
        if all.count > limit { reply.more = true }
        reply.subjects = Array(all.prefix(limit))
        return reply
    }

    /// Remembers the epoch a coordinator announced in its heartbeat (a drop waits until every coordinator uses the new map).
    func noteCoordinator(_ endpoint: String, _ env: WireEnvelope) {
        guard case .heartbeat(let h)? = env.body else { return }
        shards.state.withLock { $0.coordinatorEpochs[endpoint] = (h.shardMapEpoch, .now) }
    }
}
