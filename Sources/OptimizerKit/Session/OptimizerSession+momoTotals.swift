extension OptimizerSession {
    /// Each parameter's contribution to MoMo's (or MoMo-Adam's) step size sums for the step staged in
    /// `staged` with the step's global scalars: the first round of a MoMo step whose tensors are spread
    /// over several daemons (DESIGN §9).
    ///
    /// It runs pass 1 of the optimizer on a scratch copy of each tensor's state, one tensor at a time
    /// (the same kernel and constants as the step, hence the same bits), so nothing changes. The
    /// caller folds every daemon's values with ``MomoTotals/add(_:)`` from zero in the global
    /// parameter order and commits with them in ``StepScalars/momoTotals``.
    ///
    /// - Returns: Each parameter's name and values, in the session's order.
    /// - Throws: ``OptimizerError`` (422): the session is not MoMo or MoMo-Adam, `scalars` already
    ///   carry totals, the step is skipped (`nonfinite` given), or anything ``prepareStep(_:scalars:parallelism:)``
    ///   refuses for this stage.
    public func momoTotals(
        _ staged: StagedStep, scalars: StepScalars, parallelism: Parallelism = .serial
    ) throws -> [(name: String, totals: MomoTotals)] {
        guard case .coupled(let optimizer) = configuration.algorithm else {
            throw OptimizerError.stepInput(
                "optimizer", "only momo and momo_adam sessions have step size sums; this session is \(configuration.optimizer.rawValue)")
        }
        guard scalars.momoTotals == nil else {
            throw OptimizerError.stepInput("momo_totals", "the sums are what this request answers; send them with the commit")
        }
        let prepared = try prepareStep(staged, scalars: scalars, parallelism: parallelism)
        if prepared.skipped {
            throw OptimizerError.stepInput(
                "nonfinite", "the step is skipped (\(scalars.nonfinite ?? "")), so it has no step size; commit it without momo_totals")
        }
        let totals = optimizer.tensorTotals(
            CoupledStepInput(
                parameters: parameters,
                gradients: prepared.slots[0].map { $0! },
                gradientScale: prepared.scales[0],
                states: states,
                global: globalState,
                loss: prepared.loss!,
                totals: nil,
                parallelism: parallelism
            )
        )
        return Array(zip(parameterNames, totals)).map { (name: $0, totals: $1) }
    }
}
