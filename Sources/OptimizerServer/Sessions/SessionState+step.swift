import NIOCore
import OptimizerKit
import OptimizerStore
import OptimizerWire

extension SessionState {
    mutating func step(_ request: StepRequest, parallelism: Parallelism) throws -> StepOutcome {
        let current = session.step
        if let requested = request.metadata.step, requested != current + 1 {
            guard requested == current, let last = lastStep, let telemetry = session.lastTelemetry else {
                throw ProblemError.conflict(
                    "step-mismatch",
                    "__metadata__.step is \(requested) but the session is at step \(current): send step \(current + 1) for the next step\(current > 0 ? ", or \(current) to retry the last one" : "")"
                )
            }
            var timing = ServerTiming()
            let body = try timing.measure("encode") { try response(for: last, telemetry: telemetry, options: request.options) }
            return StepOutcome(body: body, telemetry: telemetry, isRetry: true, timing: timing)
        }

        let session = self.session
        let journal = self.journal
        var timing = ServerTiming()
        let start = ContinuousClock.now
        var validated = start
        var logged = start
        let (telemetry, applied) = try request.payload.withFloatTensors(sparseSize: { name in
            session.resolveGradientName(name).map { session.parameters[$0.parameter].shape.dimensions }
        }) { tensors in
            let indices = Set(tensors.compactMap { session.resolveGradientName($0.name)?.parameter }).sorted()
            let input = StepInput(
                gradients: tensors.map { GradientTensor(name: $0.name, shape: TensorShape($0.shape), values: $0.values) },
                loss: request.metadata.loss,
                termWeights: request.metadata.termWeights,
                gradScale: request.metadata.gradScale
            )
            let prepared = try session.prepareStep(input, parallelism: parallelism)
            validated = ContinuousClock.now
            // The write-ahead log gets the request before the state moves: if the disk refuses it,
            // nothing has changed and the client gets 507/503.
            if let journal {
                try request.payload.bytes.withUnsafeReadableBytes { body in
                    try journal.append(kind: .step, step: current + 1, contentEncoding: nil, body: body)
                }
            }
            logged = ContinuousClock.now
            let before = request.options.content == .delta ? indices.map { session.parameters[$0].copy() } : nil
            let telemetry = session.apply(prepared)
            if let before {
                for (slot, index) in indices.enumerated() { before[slot].subtract(from: session.parameters[index]) }
            }
            return (telemetry, AppliedStep(parameterIndices: indices, delta: before))
        }
        let appliedAt = ContinuousClock.now
        timing.record("validate", validated - start)
        timing.record("log", logged - validated)
        timing.record("apply", appliedAt - logged)
        history.append(telemetry)
        lastStep = applied
        snapshotIfDue()
        timing.record("snapshot", ContinuousClock.now - appliedAt)
        let body = try timing.measure("encode") { try response(for: applied, telemetry: telemetry, options: request.options) }
        return StepOutcome(body: body, telemetry: telemetry, isRetry: false, timing: timing)
    }

    /// The response body of an applied step: its parameters or deltas and the telemetry metadata.
    private func response(for step: AppliedStep, telemetry: StepTelemetry, options: ResponseOptions) throws -> ByteBuffer {
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
                    "step \(telemetry.step) was applied with return=\(ResponseOptions.Content.params.rawValue), so its delta was not kept; retry with return=params or return=none"
                )
            }
            tensors = zip(names, delta).map { ($0, $1) }
        }
        var metadata = telemetry.wireMetadata
        metadata["durable_step"] = String(durableStep)
        return try TensorPayload.encode(tensors, as: options.dtype, metadata: metadata)
    }
}

extension TensorBuffer {
    /// Replaces every element `x` with `other − x` (turns a copy of θ_before into θ_after − θ_before).
    fileprivate func subtract(from other: TensorBuffer) {
        precondition(other.count == count)
        for index in 0..<count { pointer[index] = other.pointer[index] - pointer[index] }
    }
}
