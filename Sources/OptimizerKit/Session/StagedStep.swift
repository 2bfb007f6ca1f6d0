import Foundation

/// The gradients of one step that arrive in parts: checked and kept (copied, float32) until the
/// commit applies them all at once, or until they are dropped.
///
/// ```swift
/// let staged = StagedStep(step: session.step + 1, for: session)
/// let statistics = try session.stage(partOne, into: staged)   // per-tensor sums of squares
/// try session.stage(partTwo, into: staged)
/// let prepared = try session.prepareStep(staged, scalars: scalars)   // then session.apply(prepared)
/// ```
///
/// Thread-safety: none; the owner of the session serialises its use with the session's.
public final class StagedStep {
    /// The step the parts make (the session's step + 1 when staged).
    public let step: Int
    /// The tensors staged so far, in the order they arrived, with the names they were sent under.
    public private(set) var tensors: [(name: String, tensor: TensorBuffer)] = []
    /// The bytes the staged float32 copies take.
    public private(set) var byteCount = 0
    /// The number of parameters the session had when this stage was made.
    public var parameterCount: Int { resolved.slots.first?.count ?? 0 }
    /// The number of loss terms the session had when this stage was made.
    public var termCount: Int { resolved.slots.count }
    /// The staged gradients by term and parameter (views of `tensors`' buffers).
    private(set) var resolved: ResolvedGradients
    /// The float64 sum of squares of each staged gradient, by term and parameter.
    private(set) var sums: [[Double]]

    /// An empty stage for step `step` of `session`.
    public init(step: Int, for session: OptimizerSession) {
        self.step = step
        resolved = ResolvedGradients(terms: session.configuration.terms, parameters: session.parameters.count)
        sums = [[Double]](repeating: [Double](repeating: 0, count: session.parameters.count), count: session.configuration.terms)
    }

    /// The statistics of one staged gradient: what a part's answer carries per tensor.
    public struct TensorStatistics: Sendable, Equatable {
        /// The tensor name as sent.
        public var name: String
        /// The float64 sum of squares of its values as sent (before `grad_scale` or clipping).
        public var sumOfSquares: Double
        /// Whether every value is finite (the sum of squares is then finite too).
        public var finite: Bool { sumOfSquares.isFinite }
    }
}

extension OptimizerSession {
    /// Checks one part of a step against the session and the parts staged before it, then copies it
    /// into `staged`. Nothing is staged when this throws.
    ///
    /// - Returns: Each tensor's statistics, in the part's order.
    /// - Throws: ``OptimizerError`` for an unknown name, a wrong shape, a tensor given twice (in this
    ///   part or an earlier one), no parameters yet, or a stage that no longer fits the session.
    @discardableResult
    public func stage(
        _ gradients: [TensorView], into staged: StagedStep, parallelism: Parallelism = .serial
    ) throws
        -> [StagedStep.TensorStatistics]
    {
        try requireParameters()
        try checkFits(staged)
        var resolved = staged.resolved
        try resolve(gradients, into: &resolved)
        var statistics = [StagedStep.TensorStatistics]()
        for gradient in gradients {
            let (term, index) = resolveGradientName(gradient.name)!
            let copy = TensorBuffer(shape: gradient.shape, copying: gradient.values)
            resolved.slots[term][index] = copy.readOnly
            let sum = Reduction.sumOfSquares(copy.readOnly, parallelism: parallelism)
            staged.record(copy, named: gradient.name, term: term, index: index, sumOfSquares: sum)
            statistics.append(.init(name: gradient.name, sumOfSquares: sum))
        }
        staged.replaceResolved(resolved)
        return statistics
    }

    /// Prepares the step of `staged` with the step's global scalars, as
    /// ``prepareStep(_:parallelism:)`` prepares a one-request step; apply it with ``apply(_:)``
    /// while `staged` is alive.
    ///
    /// - Throws: ``OptimizerError``: a stage for another step or another set of parameters, a
    ///   gradient the optimizer needs that was not staged, bad scalars, or a non-finite step under
    ///   `nonfinite: reject`. Nothing changes.
    public func prepareStep(_ staged: StagedStep, scalars: StepScalars, parallelism: Parallelism = .serial) throws -> PreparedStep {
        try requireParameters()
        try checkFits(staged)
        guard staged.step == step + 1 else {
            throw OptimizerError.stepInput("step", "the parts were staged for step \(staged.step) but the session is at step \(step)")
        }
        try checkComplete(staged.resolved)
        return try prepareStep(staged.resolved, sumsOfSquares: staged.sums, scalars: scalars, parallelism: parallelism)
    }

    /// Throws unless `staged` was made for this session's current parameters.
    private func checkFits(_ staged: StagedStep) throws {
        guard staged.resolved.slots.count == configuration.terms, staged.resolved.slots[0].count == parameters.count else {
            throw OptimizerError.stepInput(
                "parts", "the session's parameters changed since these parts were staged; stage the step again")
        }
    }
}

extension StagedStep {
    /// Whether `gradients` are exactly tensors staged here: the same names, shapes and value bits.
    /// A part sent again is recognised so, without keeping a hash of its body.
    public func holds(exactly gradients: [TensorView]) -> Bool {
        let byName = Dictionary(tensors.map { ($0.name, $0.tensor) }, uniquingKeysWith: { first, _ in first })
        return gradients.allSatisfy { gradient in
            guard let staged = byName[gradient.name], staged.shape == gradient.shape, staged.count == gradient.values.count
            else { return false }
            guard let base = gradient.values.baseAddress, staged.count > 0 else { return true }
            return memcmp(staged.pointer, base, staged.count * MemoryLayout<Float>.size) == 0
        }
    }

    fileprivate func record(_ tensor: TensorBuffer, named name: String, term: Int, index: Int, sumOfSquares: Double) {
        tensors.append((name, tensor))
        byteCount += tensor.count * MemoryLayout<Float>.size
        sums[term][index] = sumOfSquares
    }

    fileprivate func replaceResolved(_ resolved: ResolvedGradients) {
        self.resolved = resolved
    }
}
