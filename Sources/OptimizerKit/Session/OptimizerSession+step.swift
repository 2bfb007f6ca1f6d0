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
    /// - Throws: ``OptimizerError``, exactly as ``step(_:parallelism:)``.
    public func prepareStep(_ input: StepInput, parallelism: Parallelism = .serial) throws -> PreparedStep {
        let config = configuration
        let terms = config.terms
        guard !parameters.isEmpty else {
            throw OptimizerError.stepInput("parameters", "the session has no parameters yet; upload them first")
        }

        // Resolve names and shapes.
        var slots = [[UnsafeBufferPointer<Float>?]](
            repeating: [UnsafeBufferPointer<Float>?](repeating: nil, count: parameters.count),
            count: terms
        )
        var names = slots.map { $0.map { _ in "" } }
        for gradient in input.gradients {
            guard let (term, index) = resolveGradientName(gradient.name) else {
                let expected =
                    config.optimizer == .mtadam
                    ? "expected k/NAME with k in 0..<\(terms) and NAME a parameter of this session"
                    : "not a parameter of this session"
                throw OptimizerError.tensor(.unknownTensor, gradient.name, expected)
            }
            guard gradient.shape == parameters[index].shape, gradient.values.count == parameters[index].count else {
                throw OptimizerError.tensor(
                    .shapeMismatch, gradient.name,
                    "shape \(gradient.shape) does not match parameter \(parameterNames[index]) \(parameters[index].shape)"
                )
            }
            guard slots[term][index] == nil else {
                throw OptimizerError.tensor(
                    .duplicateTensor, gradient.name,
                    "the gradient of term \(term) for \(parameterNames[index]) was given twice (also as \"\(names[term][index])\")"
                )
            }
            slots[term][index] = gradient.values
            names[term][index] = gradient.name
        }
        if config.optimizer.needsEveryParameter {
            for term in 0..<terms {
                for index in parameters.indices where slots[term][index] == nil {
                    let name = config.optimizer == .mtadam ? "\(term)/\(parameterNames[index])" : parameterNames[index]
                    throw OptimizerError.tensor(
                        .missingTensor, name,
                        "\(config.optimizer.rawValue) needs the gradient of every parameter\(terms > 1 || config.optimizer == .mtadam ? " and every term" : "") in each step"
                    )
                }
            }
        } else {
            for index in parameters.indices where (0..<terms).contains(where: { slots[$0][index] != nil }) {
                if let term = (0..<terms).first(where: { slots[$0][index] == nil }) {
                    throw OptimizerError.tensor(.missingTensor, "\(term)/\(parameterNames[index])", "every term's gradient is needed")
                }
            }
        }

        // Scalars.
        if let loss = input.loss, config.optimizer.needsLoss, !loss.isFinite, config.nonfinite == .reject {
            throw OptimizerError.stepInput("loss", "must be a finite number, got \(loss)")
        }
        if config.optimizer.needsLoss, input.loss == nil {
            throw OptimizerError.stepInput("loss", "\(config.optimizer.rawValue) needs the batch loss with every step")
        }
        var termWeights = config.termWeights
        if let weights = input.termWeights {
            guard weights.count == terms else {
                throw OptimizerError.stepInput("term_weights", "expected \(terms) weights, got \(weights.count)")
            }
            guard weights.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
                throw OptimizerError.stepInput("term_weights", "weights must be finite and ≥ 0, got \(weights)")
            }
            termWeights = weights
        }
        let unscale: Double
        if let scale = input.gradScale {
            guard scale.isFinite, scale > 0 else {
                throw OptimizerError.stepInput("grad_scale", "must be a finite number > 0, got \(scale)")
            }
            unscale = 1 / scale
        } else {
            unscale = 1
        }

        // Norms (also the non-finite check).
        var squared = [[Double]](repeating: [Double](repeating: 0, count: parameters.count), count: terms)
        var nonfinite: String?
        for term in 0..<terms {
            for index in parameters.indices {
                guard let values = slots[term][index] else { continue }
                let sum = Reduction.sumOfSquares(values, parallelism: parallelism)
                if !sum.isFinite, nonfinite == nil { nonfinite = names[term][index] }
                squared[term][index] = sum * unscale * unscale
            }
        }
        if nonfinite == nil, let loss = input.loss, config.optimizer.needsLoss, !loss.isFinite { nonfinite = "loss" }
        let termNorms = squared.map { $0.reduce(0, +).squareRoot() }
        let gradNorm = squared.reduce(0) { $0 + $1.reduce(0, +) }.squareRoot()
        let recordedLoss = input.loss.flatMap { $0.isFinite ? $0 : nil }

        if let name = nonfinite {
            if config.nonfinite == .reject {
                let detail = name == "loss" ? "is not finite" : "contains NaN or infinity (nonfinite policy: reject)"
                throw OptimizerError(
                    code: .nonFiniteValue,
                    subject: name,
                    message: name == "loss" ? "loss: \(detail)" : "tensor \"\(name)\": \(detail)"
                )
            }
            let telemetry = StepTelemetry(
                step: step + 1, loss: recordedLoss, lr: nil, gradNorm: .nan, updateNorm: 0, skipped: true,
                clipCoefficient: nil, termGradNorms: nil, termWeights: nil
            )
            return PreparedStep(
                baseStep: step, telemetry: telemetry, skipped: true, slots: [], squared: [], clipCoefficients: [],
                scales: [], termWeights: [], loss: nil, parallelism: parallelism
            )
        }

        // Clipping: per term (MTAdam's terms are separate gradients), after unscaling.
        var clipCoefficients = [Double](repeating: 1, count: terms)
        if let maxNorm = config.clipGradNorm {
            for term in 0..<terms { clipCoefficients[term] = min(1, maxNorm / (termNorms[term] + 1e-6)) }
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
            baseStep: step, telemetry: telemetry, skipped: false, slots: slots, squared: squared,
            clipCoefficients: clipCoefficients, scales: scales, termWeights: termWeights, loss: input.loss,
            parallelism: parallelism
        )
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
