import OptimizerKit

/// The two requests that change a session's tensors, from their safetensors bodies: a parameter
/// upload and a step. The daemon runs them through these functions, and so do its write-ahead log
/// replay and the fuzz harness, so all three decode, validate and apply the same way. HTTP, the
/// log and telemetry stay with the caller, which gets a hook between the check and the change.
extension OptimizerSession {
    /// A parameter upload: every tensor of `body` taken as dense float32 (`F32`, `F16`, `BF16`),
    /// checked, then set.
    ///
    /// - Parameters:
    ///   - header: The body's validated header.
    ///   - body: The buffer `header` was parsed from.
    ///   - parallelism: Threads one tensor's conversion, check and copy may use.
    ///   - beforeChange: Runs once the upload is known to be valid, before anything changes (the
    ///     server appends the body to its write-ahead log here); if it throws, nothing changes.
    /// - Throws: ``SafetensorsError`` for a dtype that is not a float, ``OptimizerError`` as
    ///   ``OptimizerSession/setParameters(_:parallelism:beforeChange:)``, or what `beforeChange`
    ///   throws. Nothing changes on error.
    public func setParameters(
        from header: SafetensorsHeader,
        in body: UnsafeRawBufferPointer,
        parallelism: Parallelism = .serial,
        beforeChange: () throws -> Void = {}
    ) throws {
        try header.withFloatTensors(in: body, sparseShape: nil, parallelism: parallelism) { tensors in
            try setParameters(tensors, parallelism: parallelism, beforeChange: beforeChange)
        }
    }

    /// A step request: the `step` number checked, the gradients decoded (sparse pairs scattered into
    /// their parameter's shape), validated with ``prepareStep(_:parallelism:)``, then applied.
    ///
    /// A `step` equal to the current one (a retry) is a mismatch here: the caller answers retries
    /// from what it kept of the last step before calling this.
    ///
    /// - Parameters:
    ///   - metadata: The body's parsed `__metadata__`.
    ///   - header: The body's validated header.
    ///   - body: The buffer `header` was parsed from.
    ///   - keepingDelta: Whether to keep θ_after − θ_before for the answer (costs a copy of the
    ///     stepped parameters).
    ///   - parallelism: Threads one tensor may use (for converting 16-bit gradients too).
    ///   - scratch: Where float32 copies of 16-bit or sparse gradients are taken from.
    ///   - knownSumsOfSquares: The sums of squares of dense `F32` gradients of `body`, by tensor name,
    ///     computed while the body arrived (``StepInput/knownSumsOfSquares``); others are ignored.
    ///   - beforeApply: Runs once the step is known to be valid, before anything changes (the server
    ///     appends the body to its write-ahead log here); if it throws, nothing changes.
    /// - Throws: ``StepRequestError`` for a `step` out of sequence, ``SafetensorsError`` for wrong
    ///   dtypes or bad sparse pairs, ``OptimizerError`` for tensor problems (a sparse gradient of an
    ///   unknown parameter, a tensor sent dense and sparse, and everything ``prepareStep(_:parallelism:)``
    ///   refuses), or what `beforeApply` throws. Nothing changes on error.
    public func step(
        _ metadata: StepMetadata,
        gradients header: SafetensorsHeader,
        in body: UnsafeRawBufferPointer,
        keepingDelta: Bool,
        parallelism: Parallelism,
        scratch: FloatScratchAllocator = .system,
        knownSumsOfSquares: [String: Double] = [:],
        beforeApply: (PreparedStep) throws -> Void = { _ in }
    ) throws -> AppliedStep {
        if let requested = metadata.step, requested != step + 1 {
            throw StepRequestError.stepMismatch(requested: requested, current: step)
        }
        try rejectDenseAndSparse(header)
        return try header.withFloatTensors(
            in: body, sparseShape: denseShape(ofSparse:), denseNames: isGradientName, scratch: scratch, parallelism: parallelism
        ) { gradients in
            let indices = Set(gradients.compactMap { resolveGradientName($0.name)?.parameter }).sorted()
            // A sparse gradient is named after its parameter, not after a tensor of the body: only a
            // dense F32 entry's sum is its gradient's.
            let known = knownSumsOfSquares.filter { name, _ in header.entry(named: name)?.dtype == .F32 }
            let input = StepInput(
                gradients: gradients, loss: metadata.loss, termWeights: metadata.termWeights, gradScale: metadata.gradScale,
                knownSumsOfSquares: known)
            let prepared = try prepareStep(input, parallelism: parallelism)
            try beforeApply(prepared)
            return apply(prepared, parameterIndices: indices, keepingDelta: keepingDelta)
        }
    }

    /// Applies a prepared step (``apply(_:)``) and answers it: the stepped parameters' indices and,
    /// when asked, θ_after − θ_before of each.
    public func apply(_ prepared: PreparedStep, parameterIndices indices: [Int], keepingDelta: Bool) -> AppliedStep {
        let delta = keepingDelta ? indices.map { parameters[$0].copy() } : nil
        let telemetry = apply(prepared)
        if let delta {
            for (slot, index) in indices.enumerated() { delta[slot].subtract(from: parameters[index]) }
        }
        return AppliedStep(telemetry: telemetry, parameterIndices: indices, delta: delta)
    }

    /// The dense shape of a sparse pair `P.indices` + `P.values`: parameter `P`'s.
    func denseShape(ofSparse pair: SparseTensor) throws -> [Int] {
        guard let (_, index) = resolveGradientName(pair.name) else {
            throw OptimizerError.tensor(
                .unknownTensor, pair.indices.name, "sparse gradient of \"\(pair.name)\", which is not a parameter of this session")
        }
        return parameters[index].shape.dimensions
    }

    /// Whether `name` is a gradient of one of this session's parameters as it stands (`P` or `k/P`):
    /// then it is a dense tensor although it ends in `.indices` or `.values`.
    public func isGradientName(_ name: String) -> Bool { resolveGradientName(name) != nil }

    /// A dense `P` sent together with `P.indices` + `P.values` is a duplicate (where the codec alone
    /// would call it a malformed pair), unless those are gradients of parameters named so.
    func rejectDenseAndSparse(_ header: SafetensorsHeader) throws {
        for entry in header.tensors where entry.name.hasSuffix(SparseTensor.valuesSuffix) && !isGradientName(entry.name) {
            let name = String(entry.name.dropLast(SparseTensor.valuesSuffix.count))
            let indices = name + SparseTensor.indicesSuffix
            if header.entry(named: name) != nil, header.entry(named: indices) != nil, !isGradientName(indices) {
                throw OptimizerError.tensor(
                    .duplicateTensor, name, "given twice, dense and as \"\(entry.name)\" + \"\(name + SparseTensor.indicesSuffix)\"")
            }
        }
    }
}

extension TensorBuffer {
    /// Replaces every element `x` with `other − x` (turns a copy of θ_before into θ_after − θ_before).
    fileprivate func subtract(from other: TensorBuffer) {
        precondition(other.count == count)
        for index in 0..<count { pointer[index] = other.pointer[index] - pointer[index] }
    }
}
