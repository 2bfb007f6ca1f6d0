import NIOCore
import OptimizerKit
import OptimizerStore
import OptimizerWire

extension SessionState {
    /// Answers a retry of the last step, or applies the next one.
    ///
    /// The decoding, checks and the step itself are OptimizerWire's
    /// (``OptimizerSession/step(_:gradients:in:keepingDelta:parallelism:scratch:beforeApply:)``); this adds
    /// what the server does around them: the retry answer, the write-ahead log between the check
    /// and the change, the history, timing and the response body. Snapshots are not written here
    /// (``SessionHandle/withState(_:)`` schedules them in the background).
    mutating func step(_ request: StepRequest, parallelism: Parallelism) throws -> StepOutcome {
        let current = session.step
        if request.metadata.step == current, current > 0 {
            let last = try retriedStep()
            var timing = ServerTiming()
            let body = try timing.measure("encode") { try response(for: last, options: request.options) }
            return StepOutcome(body: body, telemetry: last.telemetry, isRetry: true, timing: timing)
        }

        let journal = self.journal
        var timing = ServerTiming()
        let start = ContinuousClock.now
        var validated = start
        var logged = start
        // The body is let go of once applied, so that the answer below can reuse its memory.
        let applied = try request.consumingPayload { payload in
            try payload.bytes.withUnsafeReadableBytes { body in
                try session.step(
                    request.metadata, gradients: payload.header, in: body,
                    keepingDelta: request.options.content == .delta, parallelism: parallelism,
                    scratch: BufferPool.scratchAllocator, knownSumsOfSquares: payload.knownSumsOfSquares
                ) { _ in
                    validated = ContinuousClock.now
                    // The write-ahead log gets the request before the state moves: if the disk refuses
                    // it, nothing has changed and the client gets 507/503. (With durability snapshot,
                    // steps are not logged: background snapshots carry them.)
                    if let journal, journal.logsSteps {
                        try journal.append(kind: .step, step: current + 1, contentEncoding: nil, body: body, spooled: payload.spooled)
                    }
                    logged = ContinuousClock.now
                }
            }
        }
        let appliedAt = ContinuousClock.now
        timing.record("validate", validated - start)
        timing.record("log", logged - validated)
        timing.record("apply", appliedAt - logged)
        history.append(applied.telemetry)
        lastStep = applied
        // Parts staged for the step just applied can no longer be committed: their memory goes back now.
        if let stagedStep, stagedStep.staged.step <= session.step { dropStage() }
        let body = try timing.measure("encode") { try response(for: applied, options: request.options) }
        return StepOutcome(body: body, telemetry: applied.telemetry, isRetry: false, timing: timing)
    }

    /// The last step, for a retry of it: 409 when its answer is not kept (a checkpoint was restored since).
    func retriedStep() throws -> AppliedStep {
        guard let lastStep, lastStep.telemetry.step == session.step else {
            throw ProblemError.conflict(
                "step-mismatch",
                "step \(session.step) is the session's current step, but its answer is no longer kept (a checkpoint was restored since): send step \(session.step + 1) for the next step"
            )
        }
        return lastStep
    }

    /// The response body of an applied step: its parameters or deltas and the telemetry metadata.
    func response(for step: AppliedStep, options: ResponseOptions) throws -> ByteBuffer {
        let names = step.parameterIndices.map { session.parameterNames[$0] }
        let tensors: [(name: String, tensor: TensorBuffer)]
        switch options.content {
        case .none:
            tensors = []
        case .params:
            tensors = zip(names, step.parameterIndices.map { session.parameters[$0] }).map { ($0, $1) }
        case .delta:
            guard let delta = step.delta else {
                throw ProblemError.conflict(
                    "delta-not-kept",
                    "the delta of step \(step.telemetry.step) was not kept (the step was applied with return=\(ResponseOptions.Content.params.rawValue), or the daemon restarted since); retry with return=params or return=none"
                )
            }
            tensors = zip(names, delta).map { ($0, $1) }
        }
        var metadata = step.telemetry.wireMetadata
        metadata["durable_step"] = String(durableStep)
        return try TensorPayload.encode(tensors, as: options.dtype, metadata: metadata)
    }
}
