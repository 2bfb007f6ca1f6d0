import Foundation

/// Adam (torch.optim.Adam), with L2 weight decay, or AdamW's decoupled decay when
/// `decoupled_weight_decay` is set; `amsgrad` and `maximize` as in torch 2.15.
///
/// Hyperparameters: `lr` (1e-3), `betas` ((0.9, 0.999)), `eps` (1e-8), `weight_decay` (0),
/// `amsgrad` (false), `maximize` (false), `decoupled_weight_decay` (false).
/// State: `step`, `exp_avg`, `exp_avg_sq`, and `max_exp_avg_sq` with amsgrad.
struct Adam: TensorOptimizer {
    let lr: Double
    let beta1: Double
    let beta2: Double
    let eps: Double
    let weightDecay: Double
    let amsgrad: Bool
    let maximize: Bool
    let decoupled: Bool
    /// How the moments are stored (Adam+lowbit.swift).
    let stateDType: StateDType

    init(_ reader: inout HyperparameterReader, terms: Int) throws {
        try self.init(&reader, adamW: false)
    }

    /// Reads Adam's hyperparameters; AdamW differs only in its defaults (decay 1e-2, always decoupled).
    ///
    /// - Throws: ``OptimizerError`` for a bad hyperparameter, or naming `state_dtype` for an option
    ///   the compact state cannot follow (``checkStateDType(_:amsgrad:l2Decay:)``).
    init(_ reader: inout HyperparameterReader, adamW: Bool, stateDType: StateDType = .f32) throws {
        lr = try reader.double("lr", default: 1e-3, .atLeast(0))
        let betas = try reader.doubles("betas", default: [0.9, 0.999], [.halfOpen(0, 1), .halfOpen(0, 1)])
        beta1 = betas[0]
        beta2 = betas[1]
        eps = try reader.double("eps", default: 1e-8, .atLeast(0))
        weightDecay = try reader.double("weight_decay", default: adamW ? 1e-2 : 0, .atLeast(0))
        amsgrad = try reader.bool("amsgrad", default: false)
        maximize = try reader.bool("maximize", default: false)
        decoupled = adamW ? true : try reader.bool("decoupled_weight_decay", default: false)
        self.stateDType = stateDType
        try Self.checkStateDType(stateDType, amsgrad: amsgrad, l2Decay: !decoupled && weightDecay > 0)
    }

    /// `exp_avg` and `exp_avg_sq`, and `max_exp_avg_sq` with amsgrad.
    func stateElements(for shape: TensorShape, terms: Int) -> Int { (amsgrad ? 3 : 2) * shape.elementCount }

    func step(_ input: TensorStepInput, state: StateSlots) -> TensorStepResult {
        let parameter = input.parameter
        let t = (state.scalar("step") ?? 0) + 1
        state.setScalar("step", t)
        if stateDType == .int8 { return stepInt8(input, state: state, t: t) }
        let biasCorrection1 = 1 - pow(beta1, t)
        let biasCorrection2 = 1 - pow(beta2, t)
        let coefficients = AdamKernel.Coefficients(
            beta1: Float(beta1),
            beta2: Float(beta2),
            oneMinusBeta1: Float(1 - beta1),
            oneMinusBeta2: Float(1 - beta2),
            stepSize: Float(lr / biasCorrection1),
            sqrtBiasCorrection2: Float(biasCorrection2.squareRoot()),
            eps: Float(eps),
            decay: decoupled && weightDecay != 0 ? Float(1 - lr * weightDecay) : 1,
            l2: decoupled ? 0 : Float(weightDecay),
            gradientScale: maximize ? -input.gradientScales[0] : input.gradientScales[0]
        )
        if stateDType == .bf16 { return stepBF16(input, state: state, coefficients: coefficients) }
        let expAvg = state.tensor("exp_avg", shape: parameter.shape)
        let expAvgSq = state.tensor("exp_avg_sq", shape: parameter.shape)
        let maxExpAvgSq = amsgrad ? state.tensor("max_exp_avg_sq", shape: parameter.shape) : nil
        let update = AdamKernel.run(
            AdamKernel.Buffers(
                parameter: parameter.pointer,
                gradient: input.gradientPointer(),
                expAvg: expAvg.pointer,
                expAvgSq: expAvgSq.pointer,
                maxExpAvgSq: maxExpAvgSq?.pointer
            ),
            count: parameter.count,
            coefficients,
            parallelism: input.parallelism
        )
        return TensorStepResult(updateSquaredNorm: update, learningRate: lr)
    }
}

/// AdamW (torch.optim.AdamW): Adam with decoupled weight decay, `weight_decay` defaulting to 1e-2.
struct AdamW: TensorOptimizer {
    let adam: Adam

    init(_ reader: inout HyperparameterReader, terms: Int) throws {
        adam = try Adam(&reader, adamW: true)
    }

    /// AdamW with its moments stored as `stateDType`.
    init(_ reader: inout HyperparameterReader, stateDType: StateDType) throws {
        adam = try Adam(&reader, adamW: true, stateDType: stateDType)
    }

    func stateElements(for shape: TensorShape, terms: Int) -> Int { adam.stateElements(for: shape, terms: terms) }

    func stateBytes(for shape: TensorShape, terms: Int) -> Int { adam.stateBytes(for: shape, terms: terms) }

    func step(_ input: TensorStepInput, state: StateSlots) -> TensorStepResult {
        adam.step(input, state: state)
    }
}
