import NIOCore
import OptimizerKit
import OptimizerWire
import Synchronization

/// One step request, decoded and validated as far as possible without the session.
///
/// The body is held once, here, and let go of as soon as the step that applies it is done with it
/// (``consumingPayload(_:)``): the step's answer is encoded after that, and finds the body's block
/// back in the ``BufferPool`` — a bfloat16 answer to a bfloat16 step is about as large as its
/// request, so the answer is written into memory already resident instead of a second block of
/// the body's size (400 MB for a 200M-parameter model).
final class StepRequest: Sendable {
    /// The gradients' validated header.
    let header: SafetensorsHeader
    /// `step`, `loss`, `term_weights`, `grad_scale` from `__metadata__`.
    let metadata: StepMetadata
    /// `return=` and `dtype=`.
    let options: ResponseOptions
    /// The body, until a step takes it.
    private let payload: Mutex<TensorPayload?>

    /// The body's bytes in the memory budget while the request holds it (0 after a step took it).
    var bodyBytes: Int { payload.withLock { $0?.memory?.bytes ?? 0 } }

    /// A step request of `payload`, whose `__metadata__` is parsed here.
    ///
    /// - Throws: ``StepRequestError`` for metadata of the wrong form.
    init(payload: consuming TensorPayload, options: ResponseOptions) throws {
        header = payload.header
        metadata = try StepMetadata(payload.metadata)
        self.options = options
        self.payload = Mutex(payload)
    }

    /// Runs `work` with the body and lets go of it: once `work` returns, the request no longer
    /// refers to the body's bytes (nor to their memory reservation), so they are freed then unless
    /// `work` kept a copy. Whatever reads the request's bytes (the checks, the write-ahead log, the
    /// kernels reading float32 gradients in place) must do so inside `work`.
    func consumingPayload<Result>(_ work: (TensorPayload) throws -> Result) throws -> Result {
        guard let payload = self.payload.withLock({ $0.take() }) else {
            preconditionFailure("a step request's body is applied at most once")
        }
        return try work(payload)
    }
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
