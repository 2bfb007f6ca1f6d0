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
    /// - Throws: ``SafetensorsError`` (400), ``StoreError`` (422 for a checkpoint that does not fit:
    ///   another optimizer, another number of terms, bad checksum; 507/503 when it cannot be made
    ///   durable), ``OptimizerError`` (400, invalid hyperparameters). Nothing changes on error.
    func restore(checkpoint body: ByteBuffer) async throws -> SessionSummary {
        try await withState { [self] state in
            try state.restore(checkpoint: body)
            return state.summary(of: self)
        }
    }
}
