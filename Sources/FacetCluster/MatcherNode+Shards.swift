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

    /// Durable notes about replica copies (`DATA/replica-marks.json`, written before the write they describe is
    /// acknowledged): which copies of a partition missed a write this copy took, which such marks against this copy a
    /// fill made good, and which copies of this matcher are incomplete (a fill began and did not finish). They survive
    /// restarts of this matcher and of every coordinator, so no coordinator's memory is needed to know that a copy
    /// reporting itself synced lacks an acknowledged write.
    struct ReplicaMarks: Codable, Sendable, Equatable {
        /// Grows with every mark (persisted with the marks, so it never goes back).
        var counter: UInt64 = 0
        /// Partition (decimal) → copy (node id) → sequence of the latest write it missed.
        var stale: [String: [String: UInt64]] = [:]
        /// Partition → holder → the holder's mark sequence this copy was filled (or adopted) past.
        var covered: [String: [String: UInt64]] = [:]
        var incomplete: Set<UInt32> = []
    }

    struct State: Sendable {
        var map: ClusterShardMap?
        var synced: Set<UInt32> = []
        /// Grows with every change of `synced` (from 1 at process start), so that coordinators can order a holdings
        /// report against a fill's reply: a report read before the fill's `done` may reach them after it.
        var version: UInt64 = 1
        var windows: [UInt32: FillWindow] = [:]
        /// Coordinator endpoint → (its shard-map epoch, when heard).
        var coordinatorEpochs: [String: (epoch: UInt64, heard: ContinuousClock.Instant)] = [:]
        var marks = ReplicaMarks()
        /// Ordinary writes of the last ``recentWritesKept`` per partition (ids written or deleted, subject deleted):
        /// a fill window opened later starts with them, so a write that reached this copy just before the window
        /// opened, and the source only after the fill compared ids, is not deleted here by the fill.
        var recent: [UInt32: [(ids: [UInt64], deletedSubject: String?, at: ContinuousClock.Instant)]] = [:]
    }

    /// Longer than any write can take (a coordinator's replica write times out after 10 s).
    static let recentWritesKept: Duration = .seconds(60)

    let path: String
    let marksPath: String
    let state: LockedValue<State>
    /// A window whose owner has not touched it for this long may be taken over (its coordinator died mid-fill); it is
    /// no longer reported as `filling`, so coordinators start a new fill.
    static let windowExpiry: Duration = .seconds(30)

    init(directory: String, logger: Logger) {
        path = directory + "/shard-map.pb"
        marksPath = directory + "/replica-marks.json"
        var s = State()
        if let data = FileManager.default.contents(atPath: path) {
            do {
                s.map = try ClusterShardMap(wire: try WireShardMap(serializedBytes: data))
            } catch {
                logger.error("stored shard map unreadable; ignored", metadata: ["path": "\(path)", "error": "\(error)"])
            }
        }
        if let data = FileManager.default.contents(atPath: marksPath) {
            do {
                s.marks = try JSONDecoder().decode(ReplicaMarks.self, from: data)
            } catch {
                // Without its marks this matcher cannot vouch for any copy: every copy it holds counts as incomplete.
                logger.error("replica marks unreadable; every local copy counts as incomplete", metadata: ["path": "\(marksPath)", "error": "\(error)"])
                s.marks.incomplete = Set((try? FileManager.default.contentsOfDirectory(atPath: directory))?
                    .compactMap { $0.hasPrefix("p-") ? UInt32($0.dropFirst(2)) : nil } ?? [])
            }
        }
        state = LockedValue(s)
    }

    var marks: ReplicaMarks { state.withLock { $0.marks } }

    /// Makes `update`'s change to the marks durable (temp file, fsync, rename, fsync of the directory), then current.
    /// Runs on the matcher's write queue (the only writer of the marks).
    func updateMarks(_ update: (inout ReplicaMarks) -> Void) throws {
        var m = marks
        let before = m
        update(&m)
        guard m != before else { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let bytes = try encoder.encode(m)
        let tmp = marksPath + ".tmp"
        guard FileManager.default.createFile(atPath: tmp, contents: bytes) else { throw FacetError(.internalError, "cannot write \(tmp)") }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: tmp))
        try handle.synchronize()
        try handle.close()
        guard rename(tmp, marksPath) == 0 else { throw FacetError(.internalError, "cannot rename \(tmp): errno \(errno)") }
        let dir = open((marksPath as NSString).deletingLastPathComponent, O_RDONLY)
        if dir >= 0 { _ = fsync(dir); close(dir) }
        state.withLock { $0.marks = m }
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

    /// Holdings reported to coordinators: partitions on disk, synced, assigned or with marks, with their counts and
    /// the durable replica marks, and the state version they were read at (``MatcherShardState/State/version``). An
    /// expired fill window (its coordinator died) is not reported as filling.
    var shardHoldings: (holdings: [WirePartitionHolding], version: UInt64) {
        let held = partitions.withLock { $0 }
        let now = ContinuousClock.now
        let s = shards.state.withLock { s in
            (s.synced, s.map.map { $0.assigned(to: nodeID) } ?? [],
             Set(s.windows.filter { $0.value.touched.duration(to: now) < MatcherShardState.windowExpiry }.keys), s.marks, s.version)
        }
        let marks = s.3
        let marked = Set(marks.stale.keys.compactMap(UInt32.init)).union(marks.covered.keys.compactMap(UInt32.init)).union(marks.incomplete)
        func list(_ m: [String: UInt64]?) -> [WireReplicaMark] {
            (m ?? [:]).sorted { $0.key < $1.key }.map { n, seq in
                var w = WireReplicaMark()
                w.nodeID = n
                w.sequence = seq
                return w
            }
        }
        let holdings = Set(held.keys).union(s.0).union(s.1).union(marked).sorted().map { p in
            var h = WirePartitionHolding()
            h.partition = p
            h.templates = UInt64(held[p]?.count ?? 0)
            h.subjects = UInt64(held[p]?.subjectCount ?? 0)
            h.synced = s.0.contains(p)
            h.filling = s.2.contains(p)
            h.staleReplicas = list(marks.stale[String(p)])
            h.covered = list(marks.covered[String(p)])
            h.incomplete = marks.incomplete.contains(p)
            return h
        }
        return (holdings, s.4)
    }

    /// Durably marks the copies of `p` on `nodes` (other than this one) as having missed a write, before the write is
    /// applied here (so a write acknowledged without them is never without its mark). Runs on the write queue.
    func markStale(_ p: UInt32, _ nodes: [String]) throws(FacetError) {
        let others = nodes.filter { $0 != nodeID }
        guard !others.isEmpty else { return }
        do {
            try shards.updateMarks { m in
                m.counter += 1
                for n in others { m.stale[String(p), default: [:]][n] = m.counter }
            }
        } catch {
            throw storageFailure(error, "recording stale replicas of partition \(p)", node: nodeID, directory: dataDirectory)
        }
    }

    /// Records an ordinary write in the partition's fill window, if one is open. Runs on the write queue.
    func noteWrite(_ p: UInt32, ids: [UInt64], deletedSubject: String?) {
        let now = ContinuousClock.now
        shards.state.withLock { s in
            var recent = s.recent[p] ?? []
            if let first = recent.first, first.at.duration(to: now) > MatcherShardState.recentWritesKept {
                recent.removeAll { $0.at.duration(to: now) > MatcherShardState.recentWritesKept }
            }
            recent.append((ids, deletedSubject, now))
            s.recent[p] = recent
            guard s.windows[p] != nil else { return }
            s.windows[p]!.heard.formUnion(ids)
            if let d = deletedSubject { s.windows[p]!.deletedSubjects.insert(d) }
        }
    }

    /// A copy's records less those written or deleted through ordinary writes during the window. Runs on the write queue.
    func fillRecords(_ p: UInt32, fillID: String, _ records: [WireTemplateRecord]) throws(FacetError) -> [WireTemplateRecord] {
        let window = try fillWindow(p, fillID)
        return records.filter { !window.heard.contains($0.templateID) && !window.deletedSubjects.contains($0.subjectID) }
    }

    /// Ids a reconciliation may delete: those not written or deleted through ordinary writes during the window.
    func fillDeletions(_ p: UInt32, fillID: String, _ ids: [UInt64]) throws(FacetError) -> [UInt64] {
        let window = try fillWindow(p, fillID)
        return ids.filter { !window.heard.contains($0) }
    }

    /// The open window of `p` for a fill write, touched; a write of another fill (one that was aborted or taken
    /// over) is refused and does not keep the window alive.
    private func fillWindow(_ p: UInt32, _ fillID: String) throws(FacetError) -> MatcherShardState.FillWindow {
        let window = shards.state.withLock { s -> MatcherShardState.FillWindow? in
            guard let w = s.windows[p], fillID.isEmpty || w.owner == fillID else { return nil }
            s.windows[p]!.touched = .now
            return w
        }
        guard let window else {
            throw FacetError(.failedPrecondition, "fill \(fillID) of partition \(p) is not open here", nodeID: nodeID)
        }
        return window
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
            // The durable part first: a copy being filled is incomplete until DONE (never adopted after a restart);
            // DONE and ADOPT make good the marks against this copy that the coordinator saw before the fill.
            let refused = shards.state.withLock { s -> Bool in
                let now = ContinuousClock.now
                switch r.action {
                case .begin:
                    if let w = s.windows[p], w.owner != r.fillID, w.touched.duration(to: now) < MatcherShardState.windowExpiry { return true }
                case .done: return s.windows[p]?.owner != r.fillID
                case .adopt:
                    if let w = s.windows[p], w.touched.duration(to: now) < MatcherShardState.windowExpiry { return true }
                default: break
                }
                return false
            }
            if !refused {
                do {
                    switch r.action {
                    case .begin: try shards.updateMarks { $0.incomplete.insert(p) }
                    case .done, .adopt:
                        try shards.updateMarks { m in
                            m.incomplete.remove(p)
                            for c in r.covered where c.nodeID != node {
                                m.covered[String(p), default: [:]][c.nodeID] = max(m.covered[String(p)]?[c.nodeID] ?? 0, c.sequence)
                            }
                        }
                    default: break
                    }
                } catch {
                    return .failure(storageFailure(error, "recording the fill state of partition \(p)", node: node, directory: dataDirectory))
                }
            }
            let outcome = shards.state.withLock { s -> FacetError? in
                let now = ContinuousClock.now
                switch r.action {
                case .begin:
                    if let w = s.windows[p], w.owner != r.fillID, w.touched.duration(to: now) < MatcherShardState.windowExpiry {
                        return FacetError(.failedPrecondition, "partition \(p) is being filled by \(w.owner)", retryAfterMilliseconds: 500, nodeID: node)
                    }
                    var w = MatcherShardState.FillWindow(owner: r.fillID, touched: now)
                    for e in s.recent[p] ?? [] where e.at.duration(to: now) <= MatcherShardState.recentWritesKept {
                        w.heard.formUnion(e.ids)
                        if let d = e.deletedSubject { w.deletedSubjects.insert(d) }
                    }
                    s.windows[p] = w
                    s.synced.remove(p)
                    s.version += 1
                case .done:
                    guard s.windows[p]?.owner == r.fillID else {
                        return FacetError(.failedPrecondition, "fill \(r.fillID) of partition \(p) is not open here", nodeID: node)
                    }
                    s.windows[p] = nil
                    s.synced.insert(p)
                    s.version += 1
                case .abort:
                    if s.windows[p]?.owner == r.fillID { s.windows[p] = nil }
                case .adopt:
                    if let w = s.windows[p], w.touched.duration(to: now) < MatcherShardState.windowExpiry {
                        return FacetError(.failedPrecondition, "partition \(p) is being filled by \(w.owner)", nodeID: node)
                    }
                    s.synced.insert(p)
                    s.version += 1
                default:
                    return FacetError(.invalidArgument, "unknown fill action", field: "action")
                }
                return nil
            }
            if let outcome { return .failure(outcome) }
            var reply = WireFillControlReply()
            reply.partition = p
            (reply.synced, reply.holdingsVersion) = shards.state.withLock { ($0.synced.contains(p), $0.version) }
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
                s.version += 1
                s.windows[p] = nil
                s.recent[p] = nil   // the copy goes: a later fill of this partition must not count on these writes
                return nil
            }
            if let problem { return .failure(problem) }
            try? shards.updateMarks { $0.incomplete.remove(p) }
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
