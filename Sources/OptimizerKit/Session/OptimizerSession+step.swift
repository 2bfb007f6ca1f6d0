extension OptimizerSession {
    /// Applies one optimizer step.
    ///
    /// Order of work: resolve and validate every tensor and scalar; compute each gradient's norm (in
    /// Double, which also finds NaN/Inf); apply the non-finite policy; fold `grad_scale` and
    /// global-norm clipping into one multiplier per term; then run the optimizer. Everything that can
    /// fail happens before the first write, so a throwing call changes nothing.
    ///
    /// - Parameters:
    ///   - input: the gradients and scalars of the request.
    ///   - parallelism: threads one tensor may use.
    /// - Returns: the step's telemetry (also kept as ``lastTelemetry``).
    /// - Throws: ``OptimizerError`` (unknown/duplicate/missing tensor, wrong shape, missing loss,
    ///   invalid term weights or grad scale, non-finite gradient under `nonfinite: reject`).
    @discardableResult
    public func step(_ input: StepInput, parallelism: Parallelism = .serial) throws -> StepTelemetry {
        apply(try prepareStep(input, parallelism: parallelism))
    }

    /// Validates a step request and computes its gradient norms without changing anything.
    ///
    /// Together with ``apply(_:)`` this lets a caller record the request durably between the check
    /// and the change (a write-ahead log), so the state never runs ahead of the log. The returned value
    /// borrows the input's gradient buffers: keep them alive and unchanged until ``apply(_:)`` returns,
    /// and make no other change to the session in between.
    ///
    /// The work is the three pieces a step in parts runs separately: per-tensor statistics
    /// (``sumsOfSquares(_:parallelism:)``), their combination in parameter order
    /// (``StepScalars/combine(sumsOfSquares:names:loss:termWeights:gradScale:needsLoss:)``), and
    /// the step with those global scalars (``prepareStep(_:sumsOfSquares:scalars:parallelism:)``).
    ///
    /// - Throws: ``OptimizerError``, exactly as ``step(_:parallelism:)``.
    public func prepareStep(_ input: StepInput, parallelism: Parallelism = .serial) throws -> PreparedStep {
        try requireParameters()
        var resolved = ResolvedGradients(terms: configuration.terms, parameters: parameters.count)
        try resolve(input.gradients, into: &resolved)
        try checkComplete(resolved)
        _ = try checkScalars(loss: input.loss, termWeights: input.termWeights, gradScale: input.gradScale)
        let sums = sumsOfSquares(resolved, known: input.knownSumsOfSquares, parallelism: parallelism)
        let scalars = StepScalars.combine(
            sumsOfSquares: sums, names: resolved.names, loss: input.loss, termWeights: input.termWeights,
            gradScale: input.gradScale, needsLoss: configuration.optimizer.needsLoss
        )
        return try prepareStep(resolved, sumsOfSquares: sums, scalars: scalars, parallelism: parallelism)
    }

    /// Throws unless the session has parameters to step.
    func requireParameters() throws {
        guard !parameters.isEmpty else {
            throw OptimizerError.stepInput("parameters", "the session has no parameters yet; upload them first")
        }
    }

    /// Checks a step's scalar inputs; returns the term weights in effect and 1 / `grad_scale`.
    func checkScalars(loss: Double?, termWeights weights: [Double]?, gradScale: Double?) throws -> (termWeights: [Double], unscale: Double) {
        let config = configuration
        if let loss, config.optimizer.needsLoss, !loss.isFinite, config.nonfinite == .reject {
            throw OptimizerError.stepInput("loss", "must be a finite number, got \(loss)")
        }
        if config.optimizer.needsLoss, loss == nil {
            throw OptimizerError.stepInput("loss", "\(config.optimizer.rawValue) needs the batch loss with every step")
        }
        var termWeights = config.termWeights
        if let weights {
            guard weights.count == config.terms else {
                throw OptimizerError.stepInput("term_weights", "expected \(config.terms) weights, got \(weights.count)")
            }
            guard weights.allSatisfy({ ValueRange.fitsFloat32($0) && $0 >= 0 }) else {
                throw OptimizerError.stepInput("term_weights", "weights must be ≥ 0 and within float32's range (≤ 3.4e38), got \(weights)")
            }
            termWeights = weights
        }
        guard let scale = gradScale else { return (termWeights, 1) }
        guard scale.isFinite, scale > 0 else {
            throw OptimizerError.stepInput("grad_scale", "must be a finite number > 0, got \(scale)")
        }
        return (termWeights, 1 / scale)
    }

    /// Prepares a step from resolved, complete gradients, their per-tensor sums of squares and the
    /// step's global scalars (computed here for one request, or by the caller for a step in parts).
    ///
    /// - Throws: ``OptimizerError`` for bad scalars, a non-finite gradient under `nonfinite: reject`,
    ///   or scalars that call the step finite while one of these gradients is not.
    func prepareStep(
        _ resolved: ResolvedGradients, sumsOfSquares sums: [[Double]], scalars: StepScalars, parallelism: Parallelism
    ) throws -> PreparedStep {
        let config = configuration
        let terms = config.terms
        let (termWeights, unscale) = try checkScalars(loss: scalars.loss, termWeights: scalars.termWeights, gradScale: scalars.gradScale)
        if scalars.momoTotals != nil, !config.optimizer.isCoupled {
            throw OptimizerError.stepInput(
                "momo_totals", "only momo and momo_adam sessions take the sums of a sharded step; this session is \(config.optimizer.rawValue)")
        }
        guard scalars.termSquaredNorms.count == terms else {
            throw OptimizerError.stepInput("term_squared_norms", "expected \(terms) values (one per loss term), got \(scalars.termSquaredNorms.count)")
        }
        var squared = sums
        for term in 0..<terms {
            for index in parameters.indices where resolved.slots[term][index] != nil {
                if !sums[term][index].isFinite, scalars.nonfinite == nil {
                    throw OptimizerError(
                        code: .nonFiniteValue, subject: resolved.names[term][index],
                        message: "tensor \"\(resolved.names[term][index])\": contains NaN or infinity, but nonfinite is null"
                    )
                }
                squared[term][index] = StepScalars.contribution(sumOfSquares: sums[term][index], unscale: unscale)
            }
        }
        // A coupled optimizer's step with a non-finite loss is a non-finite step (as `combine` finds
        // for one request): applied, it would leave MoMo's loss average NaN for good.
        if config.optimizer.needsLoss, let loss = scalars.loss, !loss.isFinite, scalars.nonfinite == nil {
            throw OptimizerError(
                code: .nonFiniteValue, subject: "loss", message: "loss: is not finite (\(loss)), but nonfinite is null")
        }
        let termNorms = scalars.termSquaredNorms.map { $0.squareRoot() }
        let gradNorm = scalars.termSquaredNorms.reduce(0, +).squareRoot()
        let recordedLoss = scalars.loss.flatMap { $0.isFinite ? $0 : nil }

        // Clipping: per term (MTAdam's terms are separate gradients), after unscaling.
        var clipCoefficients = [Double](repeating: 1, count: terms)
        if let maxNorm = config.clipGradNorm {
            for term in 0..<terms { clipCoefficients[term] = min(1, maxNorm / (termNorms[term] + 1e-6)) }
        }
        let overflows = Self.unscalingOverflows(termNorms: termNorms, unscale: unscale)
        if let name = scalars.nonfinite ?? (overflows ? "grad_scale" : nil) {
            if config.nonfinite == .reject {
                let message =
                    switch name {
                    case "loss": "loss: is not finite"
                    case "grad_scale" where scalars.nonfinite == nil:
                        "grad_scale: the gradients divided by \(scalars.gradScale ?? 1) overflow float32 (norm \(gradNorm)) (nonfinite policy: reject)"
                    default: "tensor \"\(name)\": contains NaN or infinity (nonfinite policy: reject)"
                    }
                throw OptimizerError(code: .nonFiniteValue, subject: name, message: message)
            }
            let telemetry = StepTelemetry(
                step: step + 1, loss: recordedLoss, lr: nil, gradNorm: .nan, updateNorm: 0, skipped: true,
                clipCoefficient: nil, termGradNorms: nil, termWeights: nil
            )
            return PreparedStep(
                baseStep: step, telemetry: telemetry, skipped: true, slots: [], squared: [], clipCoefficients: [],
                scales: [], termWeights: [], loss: nil, momoTotals: nil, parallelism: parallelism
            )
        }

        let scales = clipCoefficients.map { Float($0 * unscale) }

        let telemetry = StepTelemetry(
            step: step + 1,
            loss: recordedLoss,
            lr: nil,
            gradNorm: gradNorm,
            updateNorm: 0,
            skipped: false,
            clipCoefficient: config.clipGradNorm == nil ? nil : clipCoefficients.min(),
            termGradNorms: config.optimizer == .mtadam ? termNorms : nil,
            termWeights: nil
        )

        return PreparedStep(
            baseStep: step, telemetry: telemetry, skipped: false, slots: resolved.slots, squared: squared,
            clipCoefficients: clipCoefficients, scales: scales, termWeights: termWeights, loss: scalars.loss,
            momoTotals: scalars.momoTotals, parallelism: parallelism
        )
    }

    /// Whether gradients divided by a `grad_scale` below 1 may leave float32, which torch's
    /// GradScaler finds as infinities after unscaling (before any clipping): always when 1/grad_scale
    /// is no float32; otherwise no element exceeds its term's unscaled norm, so a norm below Float's
    /// largest value (with a margin for the multiplier's rounding) keeps every element finite. Decided
    /// from the step's global norms, so every shard of a sharded step agrees.
    static func unscalingOverflows(termNorms: [Double], unscale: Double) -> Bool {
        guard unscale > 1 else { return false }
        let largest = Double(Float.greatestFiniteMagnitude) * (1 - 0x1p-20)
        return !Float(unscale).isFinite || termNorms.contains { !($0 < largest) }
    }

    /// Applies a step checked by ``prepareStep(_:parallelism:)``. Never fails.
    @discardableResult
    public func apply(_ prepared: PreparedStep) -> StepTelemetry {
        precondition(prepared.baseStep == step, "a prepared step must be applied to the session state it was checked against")
        var telemetry = prepared.telemetry
        if prepared.skipped {
            step += 1
            lastTelemetry = telemetry.sanitized
            return lastTelemetry!
        }
        let config = configuration
        let terms = config.terms
        let slots = prepared.slots
        let squared = prepared.squared
        let clipCoefficients = prepared.clipCoefficients
        let scales = prepared.scales
        let termWeights = prepared.termWeights
        let parallelism = prepared.parallelism
        switch config.algorithm {
        case .coupled(let optimizer):
            let result = optimizer.step(
                CoupledStepInput(
                    parameters: parameters,
                    gradients: slots[0].map { $0! },
                    gradientScale: scales[0],
                    states: states,
                    global: globalState,
                    loss: prepared.loss!,
                    totals: prepared.momoTotals,
                    parallelism: parallelism
                )
            )
            telemetry.updateNorm = result.updateSquaredNorm.squareRoot()
            telemetry.lr = result.learningRate
        case .perTensor(let rules):
            var updateSquared = 0.0
            var layerWeights: [String: [Double]] = [:]
            var defaultLR: Double?
            var anyLR: Double?
            for index in parameters.indices where slots[0][index] != nil {
                let group = groupOfParameter[index]
                let result = rules[group].step(
                    TensorStepInput(
                        parameter: parameters[index],
                        gradients: (0..<terms).map { slots[$0][index]! },
                        gradientScales: scales,
                        gradientNorms: (0..<terms).map { squared[$0][index].squareRoot() * clipCoefficients[$0] },
                        termWeights: termWeights,
                        parallelism: parallelism
                    ),
                    state: states[index]
                )
                updateSquared += result.updateSquaredNorm
                if group == 0, defaultLR == nil { defaultLR = result.learningRate }
                if anyLR == nil { anyLR = result.learningRate }
                if let weights = result.termWeights { layerWeights[parameterNames[index]] = weights }
            }
            telemetry.updateNorm = updateSquared.squareRoot()
            telemetry.lr = defaultLR ?? anyLR ?? config.effectiveHyperparameters[0]["lr"]?.number
            if config.optimizer == .mtadam { telemetry.termWeights = layerWeights }
        }
        step += 1
        lastTelemetry = telemetry.sanitized
        return lastTelemetry!
    }
}

/// A validated step request, ready for ``OptimizerSession/apply(_:)``.
///
/// Borrows the request's gradient buffers; see ``OptimizerSession/prepareStep(_:parallelism:)``.
public struct PreparedStep {
    let baseStep: Int
    /// The telemetry the step will report (update norm and learning rate are filled in by `apply`).
    public let telemetry: StepTelemetry
    /// Whether the step will be skipped (non-finite gradient under `nonfinite: skip`).
    public let skipped: Bool
    let slots: [[UnsafeBufferPointer<Float>?]]
    let squared: [[Double]]
    let clipCoefficients: [Double]
    let scales: [Float]
    let termWeights: [Double]
    let loss: Double?
    /// The caller's session-wide MoMo sums (a sharded step), else nil.
    let momoTotals: MomoTotals?
    let parallelism: Parallelism
}

extension StepTelemetry {
    /// The telemetry with non-finite numbers replaced by nil/0, so it always encodes as JSON.
    var sanitized: StepTelemetry {
        var copy = self
        if let value = copy.lr, !value.isFinite { copy.lr = nil }
        if !copy.gradNorm.isFinite { copy.gradNorm = 0 }
        if !copy.updateNorm.isFinite { copy.updateNorm = 0 }
        return copy
    }
}

extension HyperparameterValue {
    /// The number, if this is one.
    public var number: Double? {
        if case .number(let value) = self { return value }
        return nil
    }
}
