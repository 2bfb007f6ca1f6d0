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
        try rejectDenseAndSparse(header)
        return try header.withFloatTensors(
            in: body, sparseShape: denseShape(ofSparse:), denseNames: isGradientName, parallelism: parallelism
        ) { gradients in
            try stage(gradients, into: staged, parallelism: parallelism)
        }
    }

    /// Whether the part in `body` holds exactly the tensors `names` as staged in `staged` (the same
    /// names, shapes and values; ``StagedStep/holds(exactly:)``): a part sent again.
    ///
    /// - Throws: ``SafetensorsError`` when the body does not decode.
    public func isStaged(
        part header: SafetensorsHeader, in body: UnsafeRawBufferPointer, as names: Set<String>, in staged: StagedStep
    ) throws -> Bool {
        try header.withFloatTensors(in: body, sparseShape: denseShape(ofSparse:), denseNames: isGradientName) { gradients in
            gradients.count == names.count && Set(gradients.map(\.name)) == names && staged.holds(exactly: gradients)
        }
    }
}
