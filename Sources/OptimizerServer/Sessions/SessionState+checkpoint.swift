import NIOCore
import OptimizerKit
import OptimizerStore

extension SessionState {
    /// Replaces the session with a checkpoint's, after checking all of it; `admit` sees the restored
    /// session before anything changes (the memory budget), and may refuse it by throwing. The
    /// session keeps its state dtype: moments saved in another one are converted (DESIGN §10).
    mutating func restore(checkpoint body: ByteBuffer, admit: (OptimizerSession) throws -> Void) throws {
        let snapshot = try body.withUnsafeReadableBytes { try SessionSnapshot(decoding: Array($0), origin: "checkpoint") }
        // The groups replace the session's and are kept for its life, as those of a create or PATCH.
        if let (field, bytes) = RequestLimits.oversizedPattern(in: snapshot.groups) {
            throw StoreError.corrupt(
                "checkpoint", "\(field) is \(bytes) bytes, more than the limit of \(RequestLimits.maxPatternBytes) for a pattern")
        }
        let current = session.configuration
        guard snapshot.optimizer == current.optimizer.rawValue else {
            throw StoreError.corrupt(
                "checkpoint", "is for optimizer \(snapshot.optimizer.abbreviated), this session uses \(current.optimizer.rawValue)")
        }
        let restored = try snapshot.makeSession(stateDType: current.stateDType)
        guard restored.configuration.terms == current.terms else {
            throw StoreError.corrupt("checkpoint", "has \(restored.configuration.terms) loss terms, this session has \(current.terms)")
        }
        try admit(restored)
        if let journal {
            try journal.replaceAll(with: makeSnapshot(of: restored))
        }
        session = restored
        history = StepHistory(capacity: history.capacity)
        lastStep = nil
        dropStage()
    }
}
