/// ACClip, adaptive coordinate-wise clipping (Zhang et al., NeurIPS 2020), as the paper defines it.
///
/// The momentum m is clipped per coordinate to a running α-moment τ of the gradient magnitude:
///
/// ```
/// g ← g + wd·θ                       (L2, coupled; only if wd ≠ 0)
/// m ← β1·m + (1−β1)·g
/// T ← β2·T + (1−β2)·|g|^α,  τ = T^(1/α)
/// θ ← θ − lr · min(τ/(|m| + eps), 1) · m
/// ```
///
/// No bias correction and no step counter. Hyperparameters: `lr` (1e-4), `betas` ((0.9, 0.99)),
/// `eps` (1e-5, must be > 0: a coordinate with m = 0 would otherwise compute 0/0), `weight_decay` (0),
/// `alpha` (1, in [1, 2]).
///
/// State per tensor: `exp_avg` (m) and `tau_alpha` (T = τ^α, the EMA of |g|^α), both θ's shape, zeros
/// before the first step.
struct ACClip: TensorOptimizer {
    let lr: Double
    let beta1: Double
    let beta2: Double
    let eps: Double
    let weightDecay: Double
    let alpha: Double

    init(_ reader: inout HyperparameterReader, terms: Int) throws {
        lr = try reader.double("lr", default: 1e-4, .atLeast(0))
        let betas = try reader.doubles("betas", default: [0.9, 0.99], [.halfOpen(0, 1), .halfOpen(0, 1)])
        beta1 = betas[0]
        beta2 = betas[1]
        eps = try reader.double("eps", default: 1e-5, .greaterThan(0))
        weightDecay = try reader.double("weight_decay", default: 0, .atLeast(0))
        alpha = try reader.double("alpha", default: 1, .closed(1, 2))
    }

    /// How the kernel raises to α and takes the α-th root: no power for α = 1, a square root for α = 2.
    var power: ACClipKernel.Power {
        switch alpha {
        case 1: return .one
        case 2: return .two
        default: return .general(alpha: Float(alpha), inverse: Float(1 / alpha))
        }
    }

    /// `exp_avg` and `tau_alpha`.
    func stateElements(for shape: TensorShape, terms: Int) -> Int { 2 * shape.elementCount }

    func step(_ input: TensorStepInput, state: StateSlots) -> TensorStepResult {
        let parameter = input.parameter
        let expAvg = state.tensor("exp_avg", shape: parameter.shape)
        let tauAlpha = state.tensor("tau_alpha", shape: parameter.shape)
        let coefficients = ACClipKernel.Coefficients(
            lr: Float(lr),
            beta1: Float(beta1),
            beta2: Float(beta2),
            oneMinusBeta1: Float(1 - beta1),
            oneMinusBeta2: Float(1 - beta2),
            eps: Float(eps),
            l2: Float(weightDecay),
            gradientScale: input.gradientScales[0],
            power: power
        )
        let update = ACClipKernel.run(
            ACClipKernel.Buffers(
                parameter: parameter.pointer,
                gradient: input.gradientPointer(),
                expAvg: expAvg.pointer,
                tauAlpha: tauAlpha.pointer
            ),
            count: parameter.count,
            coefficients,
            parallelism: input.parallelism
        )
        return TensorStepResult(updateSquaredNorm: update, learningRate: lr)
    }
}
