import NIOCore
import OptimizerKit
import OptimizerWire

extension SessionHandle {
    /// The JSON summary (norms are computed on the compute pool).
    func summary() async throws -> SessionSummary {
        try await withState { [self] state in state.summary(of: self) }
    }

    /// Uploads parameter values (initial values or a re-sync) and returns the new summary.
    ///
    /// - Throws: ``OptimizerError`` (422: duplicate name, shape change, non-finite value),
    ///   ``SafetensorsError`` (400: a dtype that is not F32/F16/BF16), ``StoreError`` (507/503) or
    ///   ``MemoryBudgetExceeded`` (507: the new parameters and their optimizer state do not fit).
    ///   Nothing changes on error.
    func setParameters(_ payload: TensorPayload) async throws -> SessionSummary {
        let staging = try memory.budget.reserve(SessionState.conversionBytes(payload.header), for: .staging, purpose: "this upload")
        defer {
            staging.release()
            // The body is done with: its bytes leave the budget now, before the answer goes out,
            // not whenever the compute thread lets go of the closure that held it.
            payload.memory?.release()
        }
        return try await withState { [self] state in
            let planned = payload.header.tensors.map { (name: $0.name, shape: TensorShape($0.shape)) }
            try admitting(state.memoryFootprint(adding: planned), stepBytes: state.stepRoom(adding: planned), for: "this upload") {
                try state.setParameters(payload, parallelism: parallelism)
            }
            return state.summary(of: self)
        }
    }

    /// Every parameter as safetensors in `dtype`, with `step` in `__metadata__`.
    ///
    /// The response body is admitted like a step's response: it may use the room the budget keeps
    /// for steps (it is never larger than a step's).
    ///
    /// - Throws: ``MemoryBudgetExceeded`` (507) when the budget has no room for the response body.
    func parameters(as dtype: WireFloat) async throws -> ByteBuffer {
        try await withState { [memory] state in
            let session = state.session
            let copy = try memory.budget.reserve(session.parameterCount * MemoryLayout<Float>.stride, for: .staging, purpose: "this download", isStep: true)
            defer { copy.release() }
            return try TensorPayload.encode(
                Array(zip(session.parameterNames, session.parameters).map { ($0, $1) }),
                as: dtype,
                metadata: ["step": String(session.step)]
            )
        }
    }

    /// Changes hyperparameters (and optionally groups) mid-run; state is kept.
    ///
    /// - Throws: ``OptimizerError`` (400) naming the field, ``MemoryBudgetExceeded`` (507: the
    ///   optimizer state the new hyperparameters create does not fit, e.g. Adam's `amsgrad`).
    ///   Nothing changes on error.
    func reconfigure(hyperparameters: Hyperparameters, groups: [ParameterGroup]?, stateDType: StateDType? = nil) async throws -> SessionSummary {
        try await withState { [self] state in
            try state.session.configuration.checkStateDType(unchangedBy: stateDType)
            let configuration = try state.session.configuration.patched(hyperparameters: hyperparameters, groups: groups)
            try admitting(state.memoryFootprint(configuration: configuration), stepBytes: nil, for: "this change") {
                try state.reconfigure(ConfigurationChange(hyperparameters: hyperparameters, groups: groups))
            }
            return state.summary(of: self)
        }
    }

    /// Grows (or shrinks) the session's reservation to `bytes` before `change`, and puts it back if
    /// `change` throws.
    ///
    /// - Throws: ``MemoryBudgetExceeded`` (before `change` runs), or what `change` throws.
    func admitting(_ bytes: Int, stepBytes: Int?, for purpose: String, _ change: () throws -> Void) throws {
        let previous = (bytes: memory.bytes, stepBytes: memory.stepBytes)
        try memory.resize(to: bytes, stepBytes: stepBytes, purpose: purpose)
        do {
            try change()
        } catch {
            memory.force(to: previous.bytes, stepBytes: previous.stepBytes)
            throw error
        }
    }

    /// Telemetry records with a step greater than `since`, oldest first, at most `limit`.
    func history(since: Int, limit: Int) async throws -> HistoryPage {
        try await withState { [self] state in
            HistoryPage(
                id: id,
                step: state.session.step,
                oldestStep: state.history.oldestStep,
                capacity: state.history.capacity,
                records: state.history.records(after: since, limit: limit)
            )
        }
    }
}

/// `GET /v1/sessions/{id}/history`.
struct HistoryPage: Encodable, Sendable {
    var id: String
    /// The session's current step.
    var step: Int
    /// The oldest step still kept (older records were dropped from the ring buffer).
    var oldestStep: Int?
    /// How many records are kept at most.
    var capacity: Int
    var records: [StepTelemetry]

    enum CodingKeys: String, CodingKey {
        case id, step, capacity, records
        case oldestStep = "oldest_step"
    }
}
