import NIOCore
import OptimizerKit
import OptimizerStore
import OptimizerWire

extension SessionHandle {
    /// `GET …/checkpoint`: parameters, every state slot and the configuration as one safetensors file.
    ///
    /// The file is encoded straight into the response body's buffer (one copy of the session).
    ///
    /// - Throws: ``MemoryBudgetExceeded`` (507) when the budget has no room for that copy.
    func checkpoint() async throws -> ByteBuffer {
        try await withState { [memory] state in
            let copy = try memory.budget.reserve(state.session.memoryFootprint(), for: .staging, purpose: "this download")
            defer { copy.release() }
            let encoder = try SessionSnapshot(session: state.session, id: nil, name: nil, tokenHash: nil).encoder()
            var body = ByteBufferAllocator().buffer(capacity: encoder.byteCount)
            body.writeWithUnsafeMutableBytes(minimumWritableBytes: encoder.byteCount) { encoder.write(into: $0) }
            return body
        }
    }

    /// `PUT …/checkpoint`: replaces the session's configuration, step, parameters and state with a
    /// checkpoint's, after checking all of it. The session keeps its id and token.
    ///
    /// Decoding holds up to four more copies of the checkpoint (its bytes, the decoded tensors, the
    /// restored session's, and the snapshot written of it) besides the body: they are admitted
    /// first, and the restored session's footprint before it replaces the current one.
    ///
    /// - Throws: ``SafetensorsError`` (400), ``StoreError`` (422 for a checkpoint that does not fit:
    ///   another optimizer, another number of terms, bad checksum; 507/503 when it cannot be made
    ///   durable), ``OptimizerError`` (400, invalid hyperparameters), ``MemoryBudgetExceeded`` (507).
    ///   Nothing changes on error.
    func restore(checkpoint body: ByteBuffer) async throws -> SessionSummary {
        let purpose = "this checkpoint restore"
        let staging = try memory.budget.reserve(4 * body.readableBytes, for: .staging, purpose: purpose)
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
