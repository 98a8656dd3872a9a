import Foundation
import FacetTransport
import FacetWire

/// One scatter-gather over partitions, driven by call completions instead of a task: the ``ScatterPlan`` (which
/// replica to ask, fail-over, partial results) plus the calls in flight and the answers so far, behind a lock.
///
/// Each step asks the next round of replicas; each completion records the answer (or the failure) and takes the
/// next step, on whichever thread resolved the call — usually the coordinator's back-end socket thread, so an
/// identify costs no hop through the task pool between the matchers' answers and the reply to the client. The run
/// ends when every partition has answered, or when no call is left in flight and no replica is left to ask (or the
/// deadline has passed: calls never outlive it, their timeouts are capped by it); `finish` then runs exactly once,
/// and answers that come later are ignored.
final class ScatterRun: Sendable {
    typealias Body = WireEnvelope.OneOf_Body

    private struct State {
        var plan: ScatterPlan
        var inFlight = Set<UInt32>()
        var running = 0
        var answers: [Body] = []
        var finished = false
    }

    private let coordinator: Coordinator
    private let ctx: RequestContext
    private let request: @Sendable ([UInt32]) -> Body
    private let covered: @Sendable (Body) -> [UInt32]?
    private let finish: @Sendable ([Body], [UInt32]) -> Void
    private let state: LockedValue<State>

    private init(_ coordinator: Coordinator, plan: ScatterPlan, _ ctx: RequestContext, request: @escaping @Sendable ([UInt32]) -> Body,
                 covered: @escaping @Sendable (Body) -> [UInt32]?, finish: @escaping @Sendable ([Body], [UInt32]) -> Void) {
        self.coordinator = coordinator
        self.ctx = ctx
        self.request = request
        self.covered = covered
        self.finish = finish
        state = LockedValue(State(plan: plan))
    }

    /// Starts a scatter over `partitions`: `request` builds the call for one matcher's share, `covered` says which
    /// partitions an answer covers (nil: not an answer), `finish` gets the answers and the partitions missing.
    static func start(_ coordinator: Coordinator, partitions: [UInt32], _ ctx: RequestContext,
                      request: @escaping @Sendable ([UInt32]) -> Body, covered: @escaping @Sendable (Body) -> [UInt32]?,
                      finish: @escaping @Sendable (_ answers: [Body], _ missing: [UInt32]) -> Void) {
        let rotation = coordinator.state.withLock { $0.rotation += 1; return $0.rotation }
        let run = ScatterRun(coordinator, plan: ScatterPlan(partitions: partitions, rotation: rotation), ctx,
                             request: request, covered: covered, finish: finish)
        run.step()
    }

    /// Asks the next round (unless the deadline has passed), or finishes when nothing is left in flight. The calls
    /// are sent outside the lock: a call that fails at once completes inline and steps again.
    private func step() {
        enum Next { case ask([(String, [UInt32])]), done([Body], [UInt32]), wait }
        let expired = ctx.expired
        let next: Next = state.withLock { s in
            guard !s.finished else { return .wait }
            var asks: [(String, [UInt32])] = []
            if !expired && !s.plan.isComplete {
                // The ready replicas of every pending partition under one lock, not one lock per partition.
                let pending = s.plan.pending.subtracting(s.inFlight)
                let ready = coordinator.state.withLock { c in Dictionary(uniqueKeysWithValues: pending.map { ($0, c.readyReplicas(of: $0)) }) }
                let groups = s.plan.nextRound(ready: { ready[$0] ?? [] }, inFlight: s.inFlight)
                asks = groups.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
                for (_, ps) in asks { s.inFlight.formUnion(ps) }
                s.running += asks.count
            }
            if s.running == 0 || s.plan.isComplete {
                s.finished = true
                return .done(s.answers, s.plan.missing)
            }
            return asks.isEmpty ? .wait : .ask(asks)
        }
        switch next {
        case .wait: return
        case .done(let answers, let missing): finish(answers, missing)
        case .ask(let asks):
            let timeout = ctx.within(coordinator.replicaTimeout)
            for (node, ps) in asks {
                let body = request(ps)
                coordinator.startCall(node, body, timeout: timeout, parent: ctx.id) { [self] result in completed(node, ps, result) }
            }
        }
    }

    private func completed(_ node: String, _ asked: [UInt32], _ result: Coordinator.CallResult) {
        let answer: [UInt32]?
        if case .success(let body) = result { answer = covered(body) } else { answer = nil }
        state.withLock { s in
            s.running -= 1
            s.inFlight.subtract(asked)
            if let answer, case .success(let body) = result {
                s.plan.succeeded(answer.filter { asked.contains($0) })
                s.answers.append(body)
            }
        }
        if answer == nil {
            ctx.logger.debug("replica failed; failing over", metadata: ["node.id": "\(node)"])
        }
        step()
    }
}
