import FacetWire

extension FacetClient {
    /// Makes `version` the embedding model version the cluster queries (after a side-by-side re-enrolment).
    /// FAILED_PRECONDITION when no live embedder serves it, unless `force`.
    public func setActiveModel(version: String, force: Bool = false, timeout: Duration? = nil) async throws(FacetError) -> WireActiveModel {
        var r = WireSetActiveModelRequest()
        r.modelVersion = version
        r.force = force
        let reply = try await call(.setActiveModelRequest(r), timeout: timeout)
        guard case .activeModel(let v) = reply else { throw FacetError(.internalError, "expected activeModel") }
        return v
    }

    /// Starts a job that deletes every template of the retired model `version` on every replica (a subject left with
    /// none is erased); with `dryRun` it only counts. FAILED_PRECONDITION for the active version or while another
    /// purge runs. The job's `result` says what it deleted or counted.
    public func startPurgeModel(version: String, dryRun: Bool = false, reason: String = "",
                                timeout: Duration? = nil) async throws(FacetError) -> WireJob {
        var r = WireStartPurgeModelRequest()
        r.modelVersion = version
        r.dryRun = dryRun
        r.reason = reason
        let reply = try await call(.startPurgeModelRequest(r), timeout: timeout)
        guard case .job(let v) = reply else { throw FacetError(.internalError, "expected job") }
        return v
    }

    /// Polls a job every `interval` until it is finished (succeeded, failed or cancelled), calling `progress` with
    /// each state seen. Bounded by `timeout` (DEADLINE_EXCEEDED).
    public func waitForJob(id: String, interval: Duration = .milliseconds(200), timeout: Duration = .seconds(600),
                           progress: (WireJob) -> Void = { _ in }) async throws(FacetError) -> WireJob {
        let deadline = ContinuousClock.now + timeout
        while true {
            let job = try await job(id: id)
            progress(job)
            if job.state == .succeeded || job.state == .failed || job.state == .cancelled { return job }
            guard ContinuousClock.now < deadline else { throw FacetError(.deadlineExceeded, "job \(id) still \(job.state) after \(timeout)") }
            do { try await Task.sleep(for: interval) } catch { throw FacetError(.cancelled, "wait cancelled") }
        }
    }
}
