import OptimizerKit

/// The part of a step sent in parts, from its safetensors body: decoded as a step's gradients are
/// (dtypes, sparse pairs, a tensor sent dense and sparse), then staged. The daemon and its
/// write-ahead log replay both stage parts through this.
extension OptimizerSession {
    /// Decodes one part of a step and stages it into `staged` (see ``stage(_:into:parallelism:)``).
    ///
    /// - Returns: Each tensor's statistics, in the body's order (a sparse pair under its parameter's name).
    /// - Throws: ``SafetensorsError`` for wrong dtypes or bad sparse pairs, ``OptimizerError`` for
    ///   tensor problems, including a tensor staged by an earlier part. Nothing is staged on error.
    @discardableResult
    public func stage(
        part header: SafetensorsHeader, in body: UnsafeRawBufferPointer, into staged: StagedStep, parallelism: Parallelism
    ) throws -> [StagedStep.TensorStatistics] {
        try Self.rejectDenseAndSparse(header)
        return try header.withFloatTensors(in: body, sparseShape: denseShape(ofSparse:)) { gradients in
            try stage(gradients, into: staged, parallelism: parallelism)
        }
    }
}
