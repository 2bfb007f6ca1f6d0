import Foundation

/// MoMo-Adam (`momo.MomoAdam`, momo-opt 0.1.0): Adam's moments with MoMo's adaptive step size
/// (algorithms.md §5.2).
///
/// Like ``Momo`` it couples every tensor of the session and makes two passes per tensor: the first
/// updates m and v and sums ⟨θ,g⟩, ⟨θ,m⟩ and ⟨m, m/P⟩ with P = √(v/bc2) + eps computed on the fly; the
/// second recomputes P and applies θ ← θ − τ·m/P, with proximal (`divide`) or AdamW-style decay.
///
/// Hyperparameters: `lr` (1e-2, ≥ 0), `betas` ((0.9, 0.999), each in [0, 1)), `eps` (1e-8, ≥ 0),
/// `weight_decay` (0, ≥ 0), `lb` (0), `divide` (true), `use_fstar` (false).
///
/// State, named after momo-opt: per tensor `grad_avg` (m), `grad_avg_sq` (v) and the scalar
/// `grad_dot_w` (γ), all starting at zero; session-wide `step`, `loss_avg`, `lb`, `initial_lb` (see
/// ``MomoGlobalState``). momo-opt's per-tensor step count is not kept: it always equals the global k,
/// because every step carries every tensor's gradient. Both bias corrections use the global k.
struct MomoAdam: CoupledOptimizer {
    let lr: Double
    let beta1: Double
    let beta2: Double
    let eps: Double
    let weightDecay: Double
    let lowerBound: Double
    let divide: Bool
    let useFstar: Bool

    init(_ reader: inout HyperparameterReader) throws {
        lr = try reader.double("lr", default: 1e-2, .atLeast(0))
        let betas = try reader.doubles("betas", default: [0.9, 0.999], [.halfOpen(0, 1), .halfOpen(0, 1)])
        beta1 = betas[0]
        beta2 = betas[1]
        eps = try reader.double("eps", default: 1e-8, .atLeast(0))
        // momo-opt does not check it, but 1 + lr·λ must stay positive for the proximal step.
        weightDecay = try reader.double("weight_decay", default: 0, .atLeast(0))
        lowerBound = try reader.double("lb", default: 0)
        divide = try reader.bool("divide", default: true)
        useFstar = try reader.bool("use_fstar", default: false)
    }

    /// `grad_avg` and `grad_avg_sq`.
    func stateElements(for shape: TensorShape) -> Int { 2 * shape.elementCount }

    func step(_ input: CoupledStepInput) -> CoupledStepResult {
        var global = MomoGlobalState(input.global, configuredLowerBound: lowerBound)
        let k = global.step + 1
        global.step = k
        let biasCorrection1 = 1 - pow(beta1, k)
        let biasCorrection2 = 1 - pow(beta2, k)

        // Pass 1: m, v and γ of every tensor, and the global sums (or the caller's, over shards).
        let coefficients = passOneCoefficients(input, biasCorrection2: biasCorrection2)
        var totals = MomoTotals()
        for index in input.parameters.indices {
            let parameter = input.parameters[index]
            let state = input.states[index]
            let average = state.tensor("grad_avg", shape: parameter.shape)
            let averageSquared = state.tensor("grad_avg_sq", shape: parameter.shape)
            let tensor = accumulate(input, index, average: average.pointer, averageSquared: averageSquared.pointer, coefficients)
            state.setScalar("grad_dot_w", tensor.gamma)
            totals.add(tensor)
        }
        if let given = input.totals { totals = given }

        let lossAverage = beta1 * (global.lossAverage ?? 0) + (1 - beta1) * input.loss
        global.lossAverage = lossAverage
        let (stepSize, nextLowerBound) = MomoStepSize.compute(
            lr: lr, weightDecay: weightDecay, rho: biasCorrection1, lossAverage: lossAverage, totals: totals,
            lowerBound: global.lowerBound, initialLowerBound: global.initialLowerBound, useFstar: useFstar
        )
        global.lowerBound = nextLowerBound
        global.store(in: input.global)

        // Pass 2: θ ← θ − τ·m/P with the configured weight decay.
        let decays = weightDecay > 0
        let step = MomoKernel.Adam.Step(
            biasCorrection2: Float(biasCorrection2),
            eps: Float(eps),
            stepSize: Float(stepSize),
            decay: Float(1 - lr * weightDecay),
            multiplies: decays && !divide,
            divisor: Float(1 + lr * weightDecay),
            divides: decays && divide
        )
        var update = 0.0
        for index in input.parameters.indices {
            let parameter = input.parameters[index]
            let state = input.states[index]
            let average = state.tensor("grad_avg", shape: parameter.shape)
            let averageSquared = state.tensor("grad_avg_sq", shape: parameter.shape)
            update += MomoKernel.Adam.apply(
                MomoKernel.Adam.StepBuffers(
                    parameter: parameter.pointer,
                    gradientAverage: UnsafePointer(average.pointer),
                    gradientAverageSquared: UnsafePointer(averageSquared.pointer)
                ),
                count: parameter.count,
                step,
                parallelism: input.parallelism
            )
        }
        return CoupledStepResult(updateSquaredNorm: update, learningRate: stepSize)
    }

    /// Pass 1 of every tensor on scratch copies of its moments: what ``step(_:)`` adds to its totals.
    func tensorTotals(_ input: CoupledStepInput) -> [MomoTotals] {
        let k = MomoGlobalState(input.global, configuredLowerBound: lowerBound).step + 1
        let coefficients = passOneCoefficients(input, biasCorrection2: 1 - pow(beta2, k))
        return input.parameters.indices.map { index in
            let shape = input.parameters[index].shape
            let state = input.states[index]
            let average = state.existingTensor("grad_avg")?.copy() ?? TensorBuffer(zeros: shape)
            let averageSquared = state.existingTensor("grad_avg_sq")?.copy() ?? TensorBuffer(zeros: shape)
            return accumulate(input, index, average: average.pointer, averageSquared: averageSquared.pointer, coefficients)
        }
    }

    /// The constants of pass 1 at a step whose second bias correction is `biasCorrection2`.
    private func passOneCoefficients(_ input: CoupledStepInput, biasCorrection2: Double) -> MomoKernel.Adam.Coefficients {
        MomoKernel.Adam.Coefficients(
            beta1: Float(beta1),
            beta2: Float(beta2),
            oneMinusBeta1: Float(1 - beta1),
            oneMinusBeta2: Float(1 - beta2),
            biasCorrection2: Float(biasCorrection2),
            eps: Float(eps),
            gradientScale: input.gradientScale
        )
    }

    /// Pass 1 of tensor `index`: m and v updated in `average` and `averageSquared`, and the tensor's
    /// sums with its new γ (not stored).
    private func accumulate(
        _ input: CoupledStepInput, _ index: Int, average: UnsafeMutablePointer<Float>,
        averageSquared: UnsafeMutablePointer<Float>, _ coefficients: MomoKernel.Adam.Coefficients
    ) -> MomoTotals {
        let parameter = input.parameters[index]
        let sums = MomoKernel.Adam.accumulate(
            MomoKernel.Adam.Buffers(
                parameter: UnsafePointer(parameter.pointer),
                gradient: input.gradientPointer(index),
                gradientAverage: average,
                gradientAverageSquared: averageSquared
            ),
            count: parameter.count,
            coefficients,
            parallelism: input.parallelism
        )
        let gamma = beta1 * (input.states[index].scalar("grad_dot_w") ?? 0) + (1 - beta1) * sums.parameterDotGradient
        return MomoTotals(sums, gamma: gamma)
    }
}
