import Foundation
import Logging
import FacetWire

/// Shard-map work in progress in one coordinator.
struct ShardWork: Sendable {
    var changing = false
    var fetching: Set<String> = []
    var pushing: Set<String> = []
    var fills = 0
    var fillCounter: UInt64 = 0
    /// Copies being dropped by `dropLeftovers` (one task per copy).
    var dropping: Set<ReplicaKey> = []
    /// The last shard change and its outcome (`StatusReply.last_shard_change`, printed by `facet shards show`).
    var lastChange = ""
}

/// The dynamic shard map in the coordinator: adopting newer maps reported by matchers, pushing the current one,
/// filling replica copies (catch-up after a restart, and partitions moving to a new matcher), and shard changes
/// (`facet shards add|remove|rebalance`).
///
/// A partition moves from matcher A to matcher B in four steps, while reads and writes go on:
/// 1. B's fill window is opened (it records every ordinary write from then on), then a map with B as an *incoming*
///    replica of the partition (epoch e+1) is stored on every live matcher. Matchers refuse writes made under an older
///    epoch (STALE_SHARD_MAP: the writer refreshes its map and retries), so from then on every coordinator's writes
///    reach B as well.
/// 2. B is filled from a complete replica: a pass over the source's records (pages by template id, each page an LMDB
///    cursor), then a comparison of ids (B's copies skip what ordinary writes wrote or deleted meanwhile), and B is
///    marked synced.
/// 3. A map with B in A's place (epoch e+2) is stored on every live matcher; reads of the partition now go to B.
/// 4. A drops its copy once every coordinator it hears from announces epoch e+2 (A checks; until then A keeps
///    answering reads of the partition for coordinators still on e+1).
extension Coordinator {
    var currentMap: ClusterShardMap { state.withLock { $0.map } }

    static func loadShardMap(_ path: String) throws -> ClusterShardMap? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try ClusterShardMap(wire: try WireShardMap(serializedBytes: data))
    }

    /// Adopts `map` if it is newer than the current one; returns whether it did.
    @discardableResult
    func adopt(_ map: ClusterShardMap, source: String) -> Bool {
        guard map.partitionCount == layout.partitionCount else {
            logger.error("shard map with another partition count ignored", metadata: ["from": "\(source)", "partitions": "\(map.partitionCount)"])
            return false
        }
        let adopted = state.withLock { s -> Bool in
            guard map.isNewer(than: s.map) else { return false }
            s.map = map
            // Replicas that left the map stop counting as ready; new ones must report synced first.
            s.ready = s.ready.filter { map.writeSet(of: $0.partition).contains($0.node) }
            return true
        }
        guard adopted else { return false }
        metrics.shardMapEpoch.set(Double(map.epoch))
        if let file = configuration.shardMapFile {
            do {
                let tmp = file + ".tmp"
                try map.wire.serializedData().write(to: URL(fileURLWithPath: tmp))
                guard rename(tmp, file) == 0 else { throw FacetError(.internalError, "rename failed: errno \(errno)") }
            } catch {
                logger.error("cannot write the shard map file", metadata: ["path": "\(file)", "error": "\(error)"])
            }
        }
        logger.info("shard map adopted", metadata: ["epoch": "\(map.epoch)", "by": "\(map.changedBy)", "from": "\(source)"])
        return true
    }

    func adoptReported(_ wire: WireShardMap, from node: String) {
        guard wire.epoch > 0 else { return }
        do { adopt(try ClusterShardMap(wire: wire), source: node) } catch {
            logger.warning("matcher reported an unusable shard map", metadata: ["node.id": "\(node)", "error": "\(error)"])
        }
    }

    /// A matcher reported `epoch`: fetch its map when newer, push ours when older (one at a time per matcher).
    func compareEpoch(_ node: String, _ epoch: UInt64) {
        let current = currentMap
        if epoch > current.epoch {
            guard shardWork.withLock({ $0.fetching.insert(node).inserted }) else { return }
            Task {
                defer { self.shardWork.withLock { _ = $0.fetching.remove(node) } }
                if case .success(.shardMap(let m)) = await self.call(node, .shardMapRequest(WireShardMapRequest()), timeout: .seconds(5)) {
                    self.adoptReported(m, from: node)
                }
            }
        } else if epoch < current.epoch {
            guard shardWork.withLock({ $0.pushing.insert(node).inserted }) else { return }
            Task {
                defer { self.shardWork.withLock { _ = $0.pushing.remove(node) } }
                _ = await self.push(current, to: node)
            }
        }
    }

    /// Stores `map` on `node`; adopts what the node answers if that is newer (another coordinator changed the map).
    func push(_ map: ClusterShardMap, to node: String) async -> Result<ClusterShardMap, FacetError> {
        var u = WireShardMapUpdate()
        u.map = map.wire
        switch await call(node, .shardMapUpdate(u), timeout: .seconds(5)) {
        case .success(.shardMap(let m)):
            guard let stored = try? ClusterShardMap(wire: m) else { return .failure(FacetError(.internalError, "bad map from \(node)")) }
            if stored.isNewer(than: map) { adopt(stored, source: node) }
            return .success(stored)
        case .success: return .failure(FacetError(.internalError, "unexpected reply from \(node)", nodeID: node))
        case .failure(let e): return .failure(e)
        }
    }

    /// Refreshes the map from `node` (after it refused a write as STALE_SHARD_MAP).
    func refreshMap(from node: String) async {
        if case .success(.shardMap(let m)) = await call(node, .shardMapRequest(WireShardMapRequest()), timeout: .seconds(5)) {
            adoptReported(m, from: node)
        }
    }

    /// Makes `map` current (it must be newer) and stores it on every live matcher; fails unless all of `required`
    /// stored it. Another coordinator's newer map wins (adopted, and this fails with STALE_SHARD_MAP).
    func commit(_ map: ClusterShardMap, required: Set<String>) async throws(FacetError) {
        guard adopt(map, source: nodeID) else {
            throw FacetError(.staleShardMap, "the shard map changed meanwhile (now epoch \(currentMap.epoch))")
        }
        let targets = state.withLock { $0.liveWorkers(role: .matcher).map(\.nodeID) }
        let missing = required.subtracting(targets)
        guard missing.isEmpty else { throw FacetError(.unavailable, "matchers \(missing.sorted()) are not live") }
        let results = await withTaskGroup(of: (String, Result<ClusterShardMap, FacetError>).self) { group in
            for node in targets { group.addTask { (node, await self.push(map, to: node)) } }
            var out: [(String, Result<ClusterShardMap, FacetError>)] = []
            for await r in group { out.append(r) }
            return out
        }
        for (node, result) in results {
            switch result {
            case .success(let stored) where stored == map: continue
            case .success(let stored):
                throw FacetError(.staleShardMap, "\(node) holds epoch \(stored.epoch) by \(stored.changedBy)")
            case .failure(let e) where required.contains(node):
                throw FacetError(.unavailable, "\(node) did not store epoch \(map.epoch): \(e)")
            case .failure(let e):
                logger.warning("shard map not stored on a matcher", metadata: ["node.id": "\(node)", "error": "\(e)"])
            }
        }
    }

    // MARK: filling replica copies

    var fillConcurrency: Int { 4 }

    /// Starts fills for copies that are assigned but not complete (called every heartbeat interval); after the start-up
    /// grace also rolls back a shard change this coordinator's previous incarnation left half-done and drops copies
    /// that matchers keep of partitions no longer theirs.
    func reconcile() {
        let grace = interval * configuration.livenessCount * 2
        let uptime = Duration.milliseconds(nowMilliseconds() - started)
        let adoptAllowed = uptime >= grace
        if adoptAllowed {
            rollBackAbandonedChange()
            dropLeftovers()
        }
        let free = fillConcurrency - shardWork.withLock { $0.fills }
        guard free > 0 else { return }
        let settle = interval * 2
        let now = ContinuousClock.now
        let todo = state.withLock { s -> [ReplicaKey] in
            var out: [ReplicaKey] = []
            for w in s.workers.values.sorted(by: { $0.nodeID < $1.nodeID }) where w.alive && w.role == .matcher {
                for p in s.map.assigned(to: w.nodeID) {
                    let key = ReplicaKey(w.nodeID, p)
                    guard !s.filling.contains(key) else { continue }
                    // This coordinator skipped writes to it, or the matcher has said for a while that the copy is
                    // incomplete and nobody fills it.
                    let idle = w.idleUnsynced[p].map { $0.duration(to: now) >= settle } ?? false
                    // A copy some matcher marked stale (it missed a write) is filled too, unless a fill is running.
                    let marked = s.isMarkedStale(key) && !w.fillingReported.contains(p)
                    guard s.mustFill.contains(key) || marked || (idle && !s.ready.contains(key)) else { continue }
                    // Just after start, copies not registered yet may hold marks against the others: wait for them.
                    guard adoptAllowed || s.allCopiesKnown(p) else { continue }
                    // A copy with nothing to copy from (and not the one to adopt) waits without taking a slot;
                    // otherwise the first matcher's unfillable copies would starve every other copy's fill.
                    guard s.canFill(key, adoptAllowed: adoptAllowed) else { continue }
                    out.append(key)
                }
            }
            let chosen = Array(out.prefix(free))
            for key in chosen { s.filling.insert(key) }
            return chosen
        }
        guard !todo.isEmpty else { return }
        shardWork.withLock { $0.fills += todo.count }
        for key in todo {
            Task {
                defer {
                    self.state.withLock { _ = $0.filling.remove(key) }
                    self.shardWork.withLock { $0.fills -= 1 }
                }
                _ = await self.fill(key, windowOpen: nil, adoptAllowed: adoptAllowed)
            }
        }
    }

    /// A shard change made by this coordinator's previous incarnation (same node id, map written before this one
    /// started) that stopped between making replicas incoming (step 1) and switching them in (step 3) — the process
    /// died — can never finish: what each incoming replica was to replace was only in that process. The map would stay
    /// unsettled for good, and every later change be refused. So it is rolled back (`rollBack`). A change another
    /// coordinator made is left alone (it may still be running there).
    func rollBackAbandonedChange() {
        let map = currentMap
        guard !map.isSettled, map.changedBy == nodeID, map.updatedUnixMs < started else { return }
        guard shardWork.withLock({ s -> Bool in
            guard !s.changing else { return false }
            s.changing = true
            return true
        }) else { return }
        // A job too, so the history shows the roll-back next to the change it undid (FAILED after the restart).
        let id = jobs.registry.start(kind: .rebalance, parameters: ["operation": "roll-back", "from_epoch": "\(map.epoch)"],
                                     phase: "rolling back the unfinished change of epoch \(map.epoch)").jobID
        Task {
            let (outcome, rolledBack) = await self.rollBack(map, why: "an earlier run of this coordinator stopped during it")
            self.shardWork.withLock { $0.changing = false; $0.lastChange = outcome }
            self.jobs.registry.finish(id, state: rolledBack ? .succeeded : .failed, result: outcome)
        }
    }

    /// Rolls back the unsettled map `map` (made by this coordinator): a map at epoch + 1 without the incoming
    /// replicas (a matcher the change was adding, now holding nothing, leaves the map), then the incoming copies are
    /// dropped. Nothing acknowledged is lost: every write went to the replicas too, and an acknowledged one to a
    /// complete replica. The operator runs the change again. Returns the outcome for `lastChange`, and whether the
    /// map was rolled back.
    func rollBack(_ map: ClusterShardMap, why: String) async -> (outcome: String, rolledBack: Bool) {
        var rolled = map
        rolled.epoch += 1
        rolled.changedBy = nodeID
        rolled.updatedUnixMs = nowMilliseconds()
        var dropped: [ReplicaKey] = []
        for p in 0..<Int(map.partitionCount) {
            for node in rolled.incoming[p] { dropped.append(ReplicaKey(node, UInt32(p))) }
            rolled.incoming[p] = []
        }
        rolled.matchers = rolled.matchers.filter { m in rolled.replicas.contains { $0.contains(m) } }
        do throws(FacetError) {
            try await commit(rolled, required: [])
        } catch {
            logger.error("cannot roll back an unfinished shard change", metadata: ["error": "\(error)"])
            return ("roll-back of an unfinished change failed: \(error)", false)
        }
        logger.warning("rolled back a shard change that could not finish (\(why)); run it again",
                       metadata: ["epoch": "\(rolled.epoch)", "incoming": "\(dropped.map { "\($0.node)/p\($0.partition)" })"])
        for key in dropped { await dropCopy(key.partition, on: key.node) }
        return ("rolled back (\(why)): epoch \(rolled.epoch)", true)
    }

    /// Copies a live matcher reports holding of partitions the (settled) map does not give it — left by a change that
    /// stopped before its last step, or by a drop that timed out — are dropped (the matcher checks again that the
    /// partition is not its own and that every coordinator it hears from uses its map). They would otherwise keep
    /// templates of subjects deleted since, on disk.
    func dropLeftovers() {
        let map = currentMap
        guard map.isSettled, !shardWork.withLock({ $0.changing }) else { return }
        let leftovers = state.withLock { s -> [ReplicaKey] in
            s.workers.values.filter { $0.alive && $0.role == .matcher }.flatMap { w in
                w.holdings.filter { $0.value > 0 && !map.writeSet(of: $0.key).contains(w.nodeID) }.map { ReplicaKey(w.nodeID, $0.key) }
            }
        }
        for key in leftovers where shardWork.withLock({ $0.dropping.insert(key).inserted }) {
            Task {
                defer { self.shardWork.withLock { _ = $0.dropping.remove(key) } }
                self.logger.info("dropping a copy of a partition the matcher no longer holds", metadata: ["node.id": "\(key.node)", "partition": "\(key.partition)"])
                await self.dropCopy(key.partition, on: key.node)
            }
        }
    }

    /// Unique across restarts of this coordinator (its start time is part of it), so a window left open by a previous
    /// incarnation is never taken for one of this incarnation's fills.
    func newFillID() -> String { "\(nodeID)-\(started)-fill-\(shardWork.withLock { $0.fillCounter += 1; return $0.fillCounter })" }

    func fillControl(_ node: String, _ p: UInt32, _ id: String, _ action: WireFillControl.Action,
                     covering marks: [String: UInt64] = [:]) async -> Result<WireFillControlReply, FacetError> {
        var c = WireFillControl()
        c.partition = p
        c.fillID = id
        c.action = action
        c.shardMapEpoch = currentMap.epoch
        c.covered = marks.sorted { $0.key < $1.key }.map { n, seq in
            var m = WireReplicaMark()
            m.nodeID = n
            m.sequence = seq
            return m
        }
        switch await call(node, .fillControl(c), timeout: .seconds(10)) {
        case .success(.fillControlReply(let r)): return .success(r)
        case .success: return .failure(FacetError(.internalError, "unexpected reply", nodeID: node))
        case .failure(let e): return .failure(e)
        }
    }

    /// Brings copy `key` up to date from a complete replica and marks it synced. The caller has put `key` in
    /// `state.filling`. `windowOpen` is the fill id when the caller already opened the window (partition moves).
    /// With no complete replica anywhere, a read replica's copy is adopted as the partition (cluster start) when
    /// `adoptAllowed` and it is the fullest live copy. Returns whether the copy is now complete.
    func fill(_ key: ReplicaKey, windowOpen: String?, adoptAllowed: Bool) async -> Bool {
        let node = key.node, p = key.partition
        let (sources, isReplica, generation, fullest) = state.withLock { s in
            (s.readyReplicas(of: p).filter { $0 != node }, s.map.replicas(of: p).contains(node), s.workers[node]?.generation,
             s.fullestLiveReplica(of: p))
        }
        guard let generation else { return false }
        if sources.isEmpty {
            // Nobody has a complete copy to offer: after the start-up grace the fullest live copy is the partition
            // (never one marked stale or left incomplete by a fill: see fullestLiveReplica).
            guard windowOpen == nil, isReplica, adoptAllowed, fullest == node else { return false }
            let marks = state.withLock { $0.marksAgainst(key) }
            guard case .success(let r) = await fillControl(node, p, newFillID(), .adopt, covering: marks), r.synced else { return false }
            state.withLock { s in s.markFilled(key, version: r.holdingsVersion); s.mustFill.remove(key); s.cover(key, marks) }
            logger.info("partition adopted as it is", metadata: ["node.id": "\(node)", "partition": "\(p)", "templates": "\(r.templates)"])
            return true
        }
        let fillID: String
        if let windowOpen { fillID = windowOpen } else {
            fillID = newFillID()
            guard case .success = await fillControl(node, p, fillID, .begin) else { return false }
        }
        // The marks against this copy known now: the fill makes them good (marks made later are not covered and
        // cause another fill).
        let marksAtStart = state.withLock { s in
            s.mustFill.remove(key)
            s.openWindow(key)
            return s.marksAgainst(key)
        }
        defer { state.withLock { _ = $0.windows.removeValue(forKey: key) } }
        let source = sources[Int(p) % sources.count]
        let started = ContinuousClock.now
        let outcome = await copy(p, from: source, to: node, fillID: fillID)
        // The source's marks against this copy as of a report it sent after the copy read it (a mark is written before
        // its write, so every write the source took before that is in the copy): taking them from before the fill
        // could miss marks not reported yet, leaving the filled copy marked (and not ready) without cause.
        var marks = marksAtStart
        if case .success = outcome {
            let seen = state.withLock { $0.workers[source]?.reports ?? 0 }
            for _ in 0..<250 where state.withLock({ ($0.workers[source]?.reports ?? 0) <= seen }) {
                try? await Task.sleep(for: .milliseconds(20))
            }
            marks = state.withLock { s in s.marksAgainst(key) }.merging(marksAtStart, uniquingKeysWith: max)
        }
        // The copy is complete only if the source still is (no mark against it appeared meanwhile).
        let (stillAssigned, sourceComplete) = state.withLock { s in
            (s.workers[node]?.generation == generation && s.isAlive(node) && s.map.writeSet(of: p).contains(node),
             !s.isMarkedStale(ReplicaKey(source, p)) && s.isAlive(source))
        }
        guard case .success(let copied) = outcome, stillAssigned, sourceComplete,
              case .success(let r) = await fillControl(node, p, fillID, .done, covering: marks), r.synced else {
            _ = await fillControl(node, p, fillID, .abort)
            if case .failure(let e) = outcome {
                logger.warning("replica fill failed; will retry", metadata: ["node.id": "\(node)", "partition": "\(p)", "from": "\(source)", "error": "\(e)"])
            }
            return false
        }
        state.withLock { s in
            s.markFilled(key, version: r.holdingsVersion)
            s.cover(key, marks)
        }
        metrics.fillsCompleted.increment()
        metrics.fillSeconds.record(started.duration(to: .now))
        logger.info("replica filled", metadata: ["node.id": "\(node)", "partition": "\(p)", "from": "\(source)", "copied": "\(copied)",
                                                 "templates": "\(r.templates)"])
        return true
    }

    /// Pages over a partition's records on `node` (one LMDB cursor per page), calling `page` for each.
    func streamRecords(_ p: UInt32, from node: String, idsOnly: Bool, after: UInt64 = 0, pageSize: UInt32 = 512,
                       _ page: ([WireTemplateRecord]) async -> FacetError?) async -> FacetError? {
        var after = after
        while true {
            var req = WireStreamRecordsRequest()
            req.partition = p
            req.afterSequence = after
            req.maxRecords = idsOnly ? 4096 : pageSize
            req.idsOnly = idsOnly
            switch await call(node, .streamRecordsRequest(req), timeout: .seconds(10)) {
            case .success(.recordBatch(let batch)):
                if let e = await page(batch.records) { return e }
                if batch.end || batch.records.isEmpty { return nil }
                after = batch.nextAfterSequence
            case .success: return FacetError(.internalError, "unexpected reply from \(node)", nodeID: node)
            case .failure(let e): return e
            }
        }
    }

    private func fillInsert(_ p: UInt32, _ records: [WireTemplateRecord], into target: String, fillID: String) async -> FacetError? {
        guard !records.isEmpty else { return nil }
        var ins = WirePartitionInsertRequest()
        ins.partition = p
        ins.records = records
        ins.fill = true
        ins.fillID = fillID
        ins.shardMapEpoch = currentMap.epoch
        if case .failure(let e) = await call(target, .partitionInsertRequest(ins), timeout: .seconds(10)) { return e }
        return nil
    }

    /// Copies partition `p` from `source` to `target` (whose fill window is open): pass 1 inserts every source record;
    /// after this coordinator's writes that were in flight when the window opened have finished, pass 2 compares ids
    /// and inserts what the target still lacks and deletes what it has but the source has not. The target's window
    /// keeps copies from undoing ordinary writes made meanwhile. Returns the number of records inserted.
    func copy(_ p: UInt32, from source: String, to target: String, fillID: String) async -> Result<Int, FacetError> {
        let key = ReplicaKey(target, p)
        var copied = 0
        // Pass 1: everything the source holds now.
        if let e = await streamRecords(p, from: source, idsOnly: false, { records in
            copied += records.count
            return await self.fillInsert(p, records, into: target, fillID: fillID)
        }) { return .failure(e) }
        // Writes that started before the window opened may have skipped the target; wait for them (bounded).
        for _ in 0..<500 where !state.withLock({ $0.earlierWritesDone(key) }) { try? await Task.sleep(for: .milliseconds(20)) }
        // Pass 2: compare ids.
        var sourceIDs = Set<UInt64>(), targetIDs = Set<UInt64>()
        if let e = await streamRecords(p, from: source, idsOnly: true, { sourceIDs.formUnion($0.map(\.templateID)); return nil }) { return .failure(e) }
        if let e = await streamRecords(p, from: target, idsOnly: true, { targetIDs.formUnion($0.map(\.templateID)); return nil }) { return .failure(e) }
        for id in sourceIDs.subtracting(targetIDs).sorted() {
            // Rare (written to the source only, after pass 1 passed its id): fetch that one record.
            var found: [WireTemplateRecord] = []
            if let e = await streamRecords(p, from: source, idsOnly: false, after: id - 1, pageSize: 1, { records in
                found = records.filter { $0.templateID == id }
                return nil
            }) { return .failure(e) }
            if let e = await fillInsert(p, found, into: target, fillID: fillID) { return .failure(e) }
            copied += found.count
        }
        let extra = targetIDs.subtracting(sourceIDs)
        if !extra.isEmpty {
            var del = WirePartitionDeleteRequest()
            del.partition = p
            del.templateIds = extra.sorted()
            del.fill = true
            del.fillID = fillID
            del.shardMapEpoch = currentMap.epoch
            if case .failure(let e) = await call(target, .partitionDeleteRequest(del), timeout: .seconds(10)) { return .failure(e) }
        }
        return .success(copied)
    }

    // MARK: shard changes

    func changeShards(_ r: WireShardChangeRequest, _ ctx: RequestContext) async throws(FacetError) -> WireShardChangeReply {
        let map = currentMap
        let plan: (target: ClusterShardMap, moves: [ClusterShardMap.Move])
        do throws(ClusterShardMap.MapError) {
            switch r.operation {
            case .addMatcher:
                guard !r.nodeID.isEmpty else { throw .malformed("node_id is required") }
                plan = try map.planned(adding: r.nodeID)
            case .removeMatcher:
                guard !r.nodeID.isEmpty else { throw .malformed("node_id is required") }
                plan = try map.planned(removing: r.nodeID)
            case .rebalance: plan = try map.planned(rebalancing: ())
            default: throw .malformed("operation is required (add, remove or rebalance)")
            }
        } catch {
            if case .changeInProgress = error { throw FacetError(.failedPrecondition, "\(error)", retryAfterMilliseconds: 1000) }
            throw FacetError(.invalidArgument, "\(error)", field: "node_id")
        }
        if r.operation == .addMatcher, !state.withLock({ $0.isAlive(r.nodeID) && $0.workers[r.nodeID]?.role == .matcher }) {
            throw FacetError(.failedPrecondition, "matcher \(r.nodeID) is not registered; start it first", field: "node_id")
        }
        var reply = WireShardChangeReply()
        reply.moves = plan.moves.map { m in
            var w = WirePartitionMove()
            w.partition = m.partition
            w.fromNodeID = m.from
            w.toNodeID = m.to
            return w
        }
        reply.target = plan.target.wire
        guard !r.dryRun else { return reply }
        guard shardWork.withLock({ s -> Bool in
            guard !s.changing else { return false }
            s.changing = true
            return true
        }) else { throw FacetError(.failedPrecondition, "a shard change is already running on this coordinator", retryAfterMilliseconds: 1000) }
        // The change is a job (kind REBALANCE): `facet jobs show ID` and `facet shards … --wait` follow its progress
        // (moves switched in) and see how it ended; it cannot be cancelled (it finishes or is rolled back).
        let operation: String
        switch r.operation {
        case .addMatcher: operation = "add"
        case .removeMatcher: operation = "remove"
        default: operation = "rebalance"
        }
        var parameters = ["operation": operation, "moves": "\(plan.moves.count)", "from_epoch": "\(map.epoch)"]
        if !r.nodeID.isEmpty { parameters["node_id"] = r.nodeID }
        let id = jobs.registry.start(kind: .rebalance, parameters: parameters, phase: "moving", total: UInt64(plan.moves.count)).jobID
        reply.jobID = id
        shardWork.withLock { $0.lastChange = "\(id): running, \(plan.moves.count) moves" }
        ctx.logger.info("shard change started", metadata: ["change": "\(id)", "moves": "\(plan.moves)"])
        Task {
            let outcome: String
            var failure: FacetError?
            do throws(FacetError) {
                try await self.execute(plan.target, moves: plan.moves, log: ctx.logger, job: id)
                outcome = "done"
            } catch {
                failure = error
                // A change that failed after making replicas incoming (a matcher died while the map was stored, a fill
                // timed out) would leave the map unsettled for good: roll it back, unless another coordinator's newer
                // map replaced ours meanwhile.
                let map = self.currentMap
                if !map.isSettled, map.changedBy == self.nodeID {
                    outcome = "failed: \(error); " + (await self.rollBack(map, why: "it failed: \(error)")).outcome
                } else {
                    outcome = "failed: \(error)"
                }
            }
            ctx.logger.info("shard change finished", metadata: ["change": "\(id)", "outcome": "\(outcome)"])
            self.shardWork.withLock { $0.changing = false; $0.lastChange = "\(id): \(outcome)" }
            if let failure {
                self.jobs.registry.finish(id, state: .failed, result: outcome, error: "\(failure)")
            } else {
                self.jobs.registry.finish(id, state: .succeeded, result: "done: shard map epoch \(self.currentMap.epoch)")
            }
        }
        return reply
    }

    /// Runs the moves in groups of up to eight partitions (steps 1–4 above), then stores the final map.
    func execute(_ target: ClusterShardMap, moves: [ClusterShardMap.Move], log: Logger, job: String? = nil) async throws(FacetError) {
        let timeout = Duration.seconds(600)
        var index = 0
        while index < moves.count {
            let group = Array(moves[index..<min(index + 8, moves.count)])
            if let job { jobs.registry.progress(job, phase: "filling \(group.map { "p\($0.partition)→\($0.to)" }.joined(separator: ", "))") }
            index += group.count
            // 1. Open the windows, then make the new replicas incoming.
            var windows: [ReplicaKey: String] = [:]
            for m in group {
                let id = newFillID()
                guard case .success = await fillControl(m.to, m.partition, id, .begin) else {
                    for (k, w) in windows { _ = await fillControl(k.node, k.partition, w, .abort) }
                    throw FacetError(.unavailable, "cannot open a fill window on \(m.to)")
                }
                windows[ReplicaKey(m.to, m.partition)] = id
            }
            state.withLock { s in for k in windows.keys { s.filling.insert(k) } }
            defer { state.withLock { s in for k in windows.keys { s.filling.remove(k) } } }
            var incoming = currentMap
            incoming.epoch += 1
            incoming.changedBy = nodeID
            incoming.updatedUnixMs = nowMilliseconds()
            for m in group where !incoming.matchers.contains(m.to) { incoming.matchers.append(m.to) }
            for m in group { incoming.incoming[Int(m.partition)].append(m.to) }
            let required = Set(group.flatMap { incoming.writeSet(of: $0.partition) }).filter { n in state.withLock { $0.isAlive(n) } }
            try await commit(incoming, required: required)
            // 2. Fill the new replicas (all of the group at once; retried until the timeout).
            let began = ContinuousClock.now
            var pending = group
            while !pending.isEmpty {
                guard began.duration(to: .now) < timeout else { throw FacetError(.deadlineExceeded, "partitions not filled within \(timeout)") }
                let results = await withTaskGroup(of: (ClusterShardMap.Move, Bool).self) { tasks in
                    for m in pending {
                        let key = ReplicaKey(m.to, m.partition)
                        tasks.addTask { (m, await self.fill(key, windowOpen: windows[key], adoptAllowed: false)) }
                    }
                    var out: [(ClusterShardMap.Move, Bool)] = []
                    for await r in tasks { out.append(r) }
                    return out
                }
                pending = results.filter { !$0.1 }.map(\.0).sorted { ($0.partition, $0.to) < ($1.partition, $1.to) }
                if !pending.isEmpty {
                    // A failed fill closed its window: open a new one for the retry.
                    for m in pending {
                        let id = newFillID()
                        if case .success = await fillControl(m.to, m.partition, id, .begin) { windows[ReplicaKey(m.to, m.partition)] = id }
                    }
                    try? await Task.sleep(for: .milliseconds(200))
                }
            }
            // 3. Switch: the new replicas replace the old ones.
            var switched = currentMap
            switched.epoch += 1
            switched.changedBy = nodeID
            switched.updatedUnixMs = nowMilliseconds()
            for m in group {
                let p = Int(m.partition)
                switched.incoming[p].removeAll { $0 == m.to }
                if let i = switched.replicas[p].firstIndex(of: m.from) { switched.replicas[p][i] = m.to } else { switched.replicas[p].append(m.to) }
            }
            if index >= moves.count { switched.matchers = switched.matchers.filter { target.matchers.contains($0) } }
            try await commit(switched, required: Set(group.map(\.to)))
            metrics.partitionMoves.increment(by: Int64(group.count))
            log.info("partitions moved", metadata: ["epoch": "\(switched.epoch)", "moves": "\(group)"])
            if let job { jobs.registry.progress(job, phase: "dropping the old copies", done: UInt64(index)) }
            // 4. Drop the old copies once every coordinator uses the new map (bounded; a dead matcher keeps its copy).
            for m in group { await dropCopy(m.partition, on: m.from) }
        }
        if moves.isEmpty, currentMap.matchers != target.matchers {
            var final = currentMap
            final.epoch += 1
            final.changedBy = nodeID
            final.updatedUnixMs = nowMilliseconds()
            final.matchers = target.matchers
            try await commit(final, required: [])
        }
    }

    func dropCopy(_ p: UInt32, on node: String) async {
        for _ in 0..<150 {
            guard state.withLock({ $0.isAlive(node) }) else { return }
            var d = WireDropPartitionRequest()
            d.partition = p
            d.shardMapEpoch = currentMap.epoch
            switch await call(node, .dropPartitionRequest(d), timeout: .seconds(10)) {
            case .success: return
            case .failure(let e) where e.code == .failedPrecondition || e.code == .staleShardMap || e.code == .unavailable:
                try? await Task.sleep(for: .milliseconds(200))
            case .failure(let e):
                logger.warning("partition not dropped", metadata: ["node.id": "\(node)", "partition": "\(p)", "error": "\(e)"])
                return
            }
        }
        logger.warning("partition not dropped in time; the copy stays on disk", metadata: ["node.id": "\(node)", "partition": "\(p)"])
    }

    // MARK: list subjects

    func listSubjects(_ r: WireListSubjectsRequest, _ ctx: RequestContext) async throws(FacetError) -> WireListSubjectsReply {
        let pageSize = Int(r.pageSize == 0 ? 100 : min(r.pageSize, 1000))
        var base = WirePartitionSubjectsRequest()
        base.collection = r.collection
        base.prefix = r.prefix
        base.afterSubjectID = r.pageToken
        base.limit = UInt32(pageSize)
        let (answers, missing) = await scatter(partitions: currentMap.allPartitions, ctx, request: { [base] ps in
            var req = base
            req.partitions = ps
            return .partitionSubjectsRequest(req)
        }, covered: { body in
            guard case .partitionSubjectsReply(let reply) = body else { return nil }
            return reply.searchedPartitions
        })
        var subjects: [WireSubjectSummary] = []
        var more = false
        for case .partitionSubjectsReply(let reply) in answers {
            subjects += reply.subjects
            if reply.more { more = true }
        }
        guard missing.isEmpty else {
            throw FacetError(.unavailable, "partitions \(missing) did not answer", retryAfterMilliseconds: 200)
        }
        subjects.sort { $0.subjectID < $1.subjectID }
        var reply = WireListSubjectsReply()
        reply.subjects = Array(subjects.prefix(pageSize))
        if more || subjects.count > pageSize, let last = reply.subjects.last { reply.nextPageToken = last.subjectID }
        return reply
    }
}
