import NIOCore
import OptimizerKit
import OptimizerStore

extension SessionHandle {
    /// `GET …/checkpoint`: parameters, every state slot and the configuration as one safetensors file.
    func checkpoint() async throws -> ByteBuffer {
        try await withState { state in
            ByteBuffer(bytes: try SessionSnapshot(session: state.session, id: nil, name: nil, tokenHash: nil).encoded())
        }
    }

    /// `PUT …/checkpoint`: replaces the session's configuration, step, parameters and state with a
    /// checkpoint's, after checking all of it. The session keeps its id and token.
    ///
    /// Decoding holds up to three more copies of the checkpoint (its bytes, the decoded tensors, the
    /// restored session's) besides the body: they are admitted first, and the restored session's
    /// footprint before it replaces the current one.
    ///
    /// - Throws: ``SafetensorsError`` (400), ``StoreError`` (422 for a checkpoint that does not fit:
    ///   another optimizer, another number of terms, bad checksum; 507/503 when it cannot be made
    ///   durable), ``OptimizerError`` (400, invalid hyperparameters), ``MemoryBudgetExceeded`` (507).
    ///   Nothing changes on error.
    func restore(checkpoint body: ByteBuffer) async throws -> SessionSummary {
        let purpose = "this checkpoint restore"
        let staging = try memory.budget.reserve(3 * body.readableBytes, for: .staging, purpose: purpose)
        defer { staging.release() }
        return try await withState { [self] state in
            let previous = (bytes: memory.bytes, stepBytes: memory.stepBytes)
            do {
                try state.restore(checkpoint: body) { restored in
                    try memory.resize(to: restored.memoryFootprint(), stepBytes: SessionState.stepRoom(of: restored), purpose: purpose)
                }
            } catch {
                memory.force(to: previous.bytes, stepBytes: previous.stepBytes)
                throw error
            }
            return state.summary(of: self)
        }
    }
}
