import NIOCore
import OptimizerKit
import OptimizerStore
import OptimizerWire

/// A safetensors request body: the (decompressed) bytes and their validated header.
///
/// Parsing validates the whole structure (OptimizerWire's ``SafetensorsHeader``), so a malformed body
/// is rejected before any session is touched. Tensor values are read later, under the session's lock,
/// by OptimizerWire's request functions (`OptimizerSession.setParameters(from:in:parallelism:beforeChange:)`
/// and `OptimizerSession.step(_:gradients:in:keepingDelta:parallelism:scratch:beforeApply:)`).
struct TensorPayload: Sendable {
    let bytes: ByteBuffer
    let header: SafetensorsHeader
    /// The body's bytes in the memory budget, given back when the last copy of the payload is gone.
    let memory: MemoryReservation?
    /// The body written to a spool file while it arrived, for the write-ahead log to adopt
    /// (``BodySpool``); its file is removed with the payload unless the log took it.
    var spooled: SpooledBody?
    /// The sums of squares of its float32 tensors, computed while it arrived (``ArrivingSums``).
    var knownSumsOfSquares: [String: Double] = [:]

    /// Validates `bytes` as safetensors.
    ///
    /// - Parameters:
    ///   - limits: Request bodies pass ``RequestLimits/safetensors``; the default (the codec's own,
    ///     wider limits) is for write-ahead log records, which were accepted once.
    ///   - memory: The reservation that admitted `bytes` (request bodies), kept as long as the payload.
    /// - Throws: ``SafetensorsError`` (mapped to 400 or 413 at the edge).
    init(parsing bytes: ByteBuffer, limits: SafetensorsHeader.Limits = .init(), memory: MemoryReservation? = nil) throws {
        self.bytes = bytes
        self.header = try bytes.withUnsafeReadableBytes { try SafetensorsHeader(parsing: $0, limits: limits) }
        self.memory = memory
    }

    /// The `__metadata__` strings.
    var metadata: [String: String] { header.metadata }
}
