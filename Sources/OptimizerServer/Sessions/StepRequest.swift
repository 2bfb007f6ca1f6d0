import NIOCore
import OptimizerKit
import OptimizerWire

/// One step request, decoded and validated as far as possible without the session.
struct StepRequest: Sendable {
    /// The gradients (structure already validated).
    var payload: TensorPayload
    /// `step`, `loss`, `term_weights`, `grad_scale` from `__metadata__`.
    var metadata: StepMetadata
    /// `return=` and `dtype=`.
    var options: ResponseOptions
}

/// What a step answers.
struct StepOutcome: Sendable {
    /// The safetensors response body.
    var body: ByteBuffer
    /// The step's telemetry.
    var telemetry: StepTelemetry
    /// Whether this was a retry of the step already applied (nothing was applied again).
    var isRetry: Bool
    /// `wait` (behind the session's earlier requests and for a compute thread), then `validate`
    /// (dtype conversion, checks and gradient norms), `log` (the write-ahead log), `apply` (the
    /// optimizer kernels) and `encode` (the response body).
    var timing = ServerTiming()
}
