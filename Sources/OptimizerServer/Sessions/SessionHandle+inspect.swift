import NIOCore
import OptimizerKit

extension SessionHandle {
    /// The JSON summary (norms are computed on the compute pool).
    func summary() async throws -> SessionSummary {
        try await withState { [self] state in state.summary(of: self) }
    }

    /// Uploads parameter values (initial values or a re-sync) and returns the new summary.
    ///
    /// - Throws: ``OptimizerError`` (422: duplicate name, shape change, non-finite value),
    ///   ``SafetensorsError`` (400: a dtype that is not F32/F16/BF16) or ``StoreError`` (507/503).
    ///   Nothing changes on error.
    func setParameters(_ payload: TensorPayload) async throws -> SessionSummary {
        try await withState { [self] state in
            try state.setParameters(payload)
            return state.summary(of: self)
        }
    }

    /// Every parameter as safetensors in `dtype`, with `step` in `__metadata__`.
    func parameters(as dtype: WireFloat) async throws -> ByteBuffer {
        try await withState { state in
            let session = state.session
            return try TensorPayload.encode(
                Array(zip(session.parameterNames, session.parameters).map { ($0, $1) }),
                as: dtype,
                metadata: ["step": String(session.step)]
            )
        }
    }

    /// Changes hyperparameters (and optionally groups) mid-run; state is kept.
    ///
    /// - Throws: ``OptimizerError`` (400) naming the field. Nothing changes on error.
    func reconfigure(hyperparameters: Hyperparameters, groups: [ParameterGroup]?) async throws -> SessionSummary {
        try await withState { [self] state in
            try state.reconfigure(ConfigurationChange(hyperparameters: hyperparameters, groups: groups))
            return state.summary(of: self)
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
