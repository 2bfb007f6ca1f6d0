import Foundation

/// MoMo (`momo.Momo`, momo-opt 0.1.0): SGD with momentum and a Polyak-type adaptive step size
/// (algorithms.md §5.1).
///
/// One step couples every tensor of the session: the step size τ depends on sums over all of them
/// and on the batch loss. Each step makes two passes over memory per tensor: the first updates the
/// gradient average d and sums ⟨θ,g⟩, ⟨θ,d⟩ and ‖d‖² (θ before the step); then τ is computed in
/// Double; the second applies θ ← θ − τ·d (then θ ← θ/(1 + lr·λ) with weight decay).
///
/// Hyperparameters: `lr` (1.0, ≥ 0), `weight_decay` (0, ≥ 0), `beta` (0.9, in [0, 1]), `lb` (0, the
/// known lower bound of the loss), `bias_correction` (false), `use_fstar` (false: keep `lb`; true:
/// estimate the optimal loss, never below the configured `lb`).
///
/// State, named after momo-opt's attributes: per tensor `grad_avg` (d) and the scalar `grad_dot_w`
/// (γ, the average of ⟨θ, g⟩); session-wide (see ``MomoGlobalState``) `step` (k), `loss_avg` (f̄), `lb`
/// and `initial_lb`.
///
/// When the session's tensors are spread over several daemons, each answers its tensors' sums
/// (``tensorTotals(_:)``, pass 1 on a scratch copy) and the step takes the caller's fold of them
/// (``CoupledStepInput/totals``) instead of its own; see ``MomoTotals``.
///
/// A tensor uploaded after the first step starts its average the way momo-opt starts every tensor at
/// k = 1 (d ← g and γ ← ⟨θ, g⟩, or zeros with `bias_correction`); momo-opt itself cannot take one.
struct Momo: CoupledOptimizer {
    let lr: Double
    let weightDecay: Double
    let beta: Double
    let lowerBound: Double
    let biasCorrection: Bool
    let useFstar: Bool

    init(_ reader: inout HyperparameterReader) throws {
        lr = try reader.double("lr", default: 1.0, .atLeast(0))
        weightDecay = try reader.double("weight_decay", default: 0, .atLeast(0))
        beta = try reader.double("beta", default: 0.9, .closed(0, 1))
        lowerBound = try reader.double("lb", default: 0)
        biasCorrection = try reader.bool("bias_correction", default: false)
        useFstar = try reader.bool("use_fstar", default: false)
        if biasCorrection, beta == 1 {
            // ρ = 1 − β^k would be 0: τ = lr/ρ is infinite and the zero average gives θ − ∞·0 = NaN.
            throw OptimizerError.invalidHyperparameter(
                field: reader.fieldPrefix + "beta",
                "must be < 1 when bias_correction is on (the correction 1 − beta^k would be 0), got 1"
            )
        }
    }

    /// `grad_avg`.
    func stateElements(for shape: TensorShape) -> Int { shape.elementCount }

    func step(_ input: CoupledStepInput) -> CoupledStepResult {
        var global = MomoGlobalState(input.global, configuredLowerBound: lowerBound)
        let k = global.step + 1
        global.step = k
        let f = input.loss
        let previousAverage = global.lossAverage ?? (biasCorrection ? 0 : f)
        let lossAverage = beta * previousAverage + (1 - beta) * f
        global.lossAverage = lossAverage
        let rho = biasCorrection ? 1 - pow(beta, k) : 1

        // Pass 1: d and γ of every tensor, and the global sums (or the caller's, over shards).
        var totals = MomoTotals()
        for index in input.parameters.indices {
            let state = input.states[index]
            let startFromGradient = !biasCorrection && state.existingTensor("grad_avg") == nil
            let average = state.tensor("grad_avg", shape: input.parameters[index].shape)
            let tensor = accumulate(input, index, average: average.pointer, startFromGradient: startFromGradient)
            state.setScalar("grad_dot_w", tensor.gamma)
            totals.add(tensor)
        }
        if let given = input.totals { totals = given }

        let (stepSize, nextLowerBound) = MomoStepSize.compute(
            lr: lr, weightDecay: weightDecay, rho: rho, lossAverage: lossAverage, totals: totals,
            lowerBound: global.lowerBound, initialLowerBound: global.initialLowerBound, useFstar: useFstar
        )
        global.lowerBound = nextLowerBound
        global.store(in: input.global)

        // Pass 2: θ ← θ − τ·d, then the proximal weight decay.
        let step = MomoKernel.Momentum.Step(
            stepSize: Float(stepSize),
            divisor: Float(1 + lr * weightDecay),
            decays: weightDecay > 0
        )
        var update = 0.0
        for index in input.parameters.indices {
            let parameter = input.parameters[index]
            let average = input.states[index].tensor("grad_avg", shape: parameter.shape)
            update += MomoKernel.Momentum.apply(
                MomoKernel.Momentum.StepBuffers(parameter: parameter.pointer, gradientAverage: UnsafePointer(average.pointer)),
                count: parameter.count,
                step,
                parallelism: input.parallelism
            )
        }
        return CoupledStepResult(updateSquaredNorm: update, learningRate: stepSize)
    }

    /// Pass 1 of every tensor on a scratch copy of its average: what ``step(_:)`` adds to its totals.
    func tensorTotals(_ input: CoupledStepInput) -> [MomoTotals] {
        input.parameters.indices.map { index in
            let existing = input.states[index].existingTensor("grad_avg")
            let scratch = existing?.copy() ?? TensorBuffer(zeros: input.parameters[index].shape)
            return accumulate(input, index, average: scratch.pointer, startFromGradient: !biasCorrection && existing == nil)
        }
    }

    /// Pass 1 of tensor `index`: d ← β·d + (1−β)·g into `average`, and the tensor's sums with its new
    /// γ (not stored).
    private func accumulate(
        _ input: CoupledStepInput, _ index: Int, average: UnsafeMutablePointer<Float>, startFromGradient: Bool
    ) -> MomoTotals {
        let parameter = input.parameters[index]
        let sums = MomoKernel.Momentum.accumulate(
            MomoKernel.Momentum.Buffers(
                parameter: UnsafePointer(parameter.pointer),
                gradient: input.gradientPointer(index),
                gradientAverage: average
            ),
            count: parameter.count,
            MomoKernel.Momentum.Coefficients(
                beta: Float(beta),
                oneMinusBeta: Float(1 - beta),
                gradientScale: input.gradientScale,
                startFromGradient: startFromGradient
            ),
            parallelism: input.parallelism
        )
        let previousGamma = startFromGradient ? sums.parameterDotGradient : input.states[index].scalar("grad_dot_w") ?? 0
        return MomoTotals(sums, gamma: beta * previousGamma + (1 - beta) * sums.parameterDotGradient)
    }
}

// MARK: - Shared by MoMo and MoMo-Adam

/// The session-wide state of MoMo and MoMo-Adam, kept in the session's global ``StateSlots``.
///
/// Slots (created in this order on the first step): `step` (k, momo-opt's `_number_steps`),
/// `loss_avg` (f̄, momo-opt's `loss_avg`), `lb` (the lower bound in use, momo-opt's `lb`) and
/// `initial_lb` (the configured bound, a floor for the `use_fstar` estimate; momo-opt's `_initial_lb`).
///
/// When the configured `lb` no longer equals `initial_lb` (the session was reconfigured), both restart
/// from the new value: without `use_fstar` the new bound applies at once, with it the estimate restarts.
struct MomoGlobalState {
    var step: Double
    /// nil before the first step.
    var lossAverage: Double?
    var lowerBound: Double
    var initialLowerBound: Double

    init(_ slots: StateSlots, configuredLowerBound configured: Double) {
        step = slots.scalar("step") ?? 0
        lossAverage = slots.scalar("loss_avg")
        if let initial = slots.scalar("initial_lb"), initial == configured, let current = slots.scalar("lb") {
            lowerBound = current
        } else {
            lowerBound = configured
        }
        initialLowerBound = configured
    }

    func store(in slots: StateSlots) {
        slots.setScalar("step", step)
        if let lossAverage { slots.setScalar("loss_avg", lossAverage) }
        slots.setScalar("lb", lowerBound)
        slots.setScalar("initial_lb", initialLowerBound)
    }
}

/// MoMo's adaptive step size τ and its lower-bound update (algorithms.md §5.1; §5.2 with ρ = bc1).
enum MomoStepSize {
    /// Returns τ and the lower bound for the next step.
    ///
    /// Python's `min`/`max` semantics are kept: τ = lr/ρ unless the Polyak term is smaller, so N = 0
    /// (no average, hence no move) gives τ = lr/ρ rather than NaN.
    static func compute(
        lr: Double,
        weightDecay: Double,
        rho: Double,
        lossAverage: Double,
        totals: MomoTotals,
        lowerBound: Double,
        initialLowerBound: Double,
        useFstar: Bool
    ) -> (stepSize: Double, lowerBound: Double) {
        let c = 1 + lr * weightDecay
        let dot = totals.parameterDotAverage
        let gamma = totals.gamma
        let norm = totals.averageSquaredNorm
        var lb = lowerBound
        if useFstar {
            let cap = c * lossAverage + dot - c * gamma
            if cap < c * rho * lb { lb = max(cap / (2 * c * rho), initialLowerBound) }
        }
        let nominator = c * (lossAverage - rho * lb) + dot - c * gamma
        let maximum = lr / rho
        var stepSize = maximum
        if norm > 0 {
            let polyak = (nominator < 0 ? 0 : nominator) / norm
            if polyak < maximum { stepSize = polyak }
        }
        if useFstar {
            let h = lossAverage + dot - gamma
            lb = max((h - 0.5 * stepSize * norm) / rho, initialLowerBound)
        }
        return (stepSize, lb)
    }
}

extension CoupledStepInput {
    /// The start of parameter `index`'s gradient (never nil, also for empty tensors).
    func gradientPointer(_ index: Int) -> UnsafePointer<Float> {
        gradients[index].baseAddress ?? UnsafePointer(parameters[index].pointer)
    }
}
