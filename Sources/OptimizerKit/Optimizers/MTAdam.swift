import Foundation

/// MTAdam, multi-term Adam (Malkiel & Wolf 2021), following the official `mtadam.py`.
///
/// Each of the session's K loss terms sends its own raw gradient gᵢ for every tensor. Per layer, term
/// i's gradient is rescaled to the running magnitude of the anchor term and weighted by λᵢ, keeps its
/// own Adam moments, and all terms divide by the element-wise largest of their denominators:
///
/// ```
/// nᵢ ← (t == 1) ? ‖gᵢ‖ : β3·nᵢ + (1−β3)·‖gᵢ‖         (per layer, no bias correction)
/// wᵢ = λᵢ·n_a/nᵢ if nᵢ > 1e-10 (a = first term with n_a > 1e-10), else 1 (no λ either)
/// g̃ᵢ = wᵢ·gᵢ + wd·θ;  mᵢ, vᵢ (, v_maxᵢ) as in Adam;  denᵢ = √sᵢ/√bc2 + eps
/// θ ← θ − Σᵢ (lr/bc1)·mᵢ/D,  D = maxᵢ denᵢ
/// ```
///
/// Hyperparameters: `lr` (1e-3), `betas` ((0.9, 0.999, 0.9); β3 is the decay of the per-layer gradient
/// norm EMA), `eps` (1e-8), `weight_decay` (0, L2, added to every term after rescaling), `amsgrad`
/// (false). The session-level `terms` and `term_weights` (λ) are read by ``SessionConfiguration``; λ
/// arrives with every step in ``TensorStepInput/termWeights``.
///
/// State per tensor:
/// - `step`: the number of steps taken. Step k uses t = k in the bias corrections, as the official code
///   does: its own counter starts at 1 and is incremented after each step, so it always equals `step + 1`.
/// - `exp_avg.i`, `exp_avg_sq.i`: term i's first and second moments (θ's shape).
/// - `max_exp_avg_sq.i`: term i's running maximum of `exp_avg_sq.i`, with amsgrad only.
/// - `grad_norm_ema.i`: the scalar nᵢ, term i's EMA of its gradient norm on this layer.
struct MTAdam: TensorOptimizer {
    let lr: Double
    let beta1: Double
    let beta2: Double
    let beta3: Double
    let eps: Double
    let weightDecay: Double
    let amsgrad: Bool

    /// A term whose norm EMA is at most this is neither rescaled nor a candidate anchor.
    static let activeThreshold = 1e-10

    init(_ reader: inout HyperparameterReader, terms: Int) throws {
        lr = try reader.double("lr", default: 1e-3, .atLeast(0))
        let betas = try reader.doubles(
            "betas",
            default: [0.9, 0.999, 0.9],
            [.halfOpen(0, 1), .halfOpen(0, 1), .halfOpen(0, 1)]
        )
        beta1 = betas[0]
        beta2 = betas[1]
        beta3 = betas[2]
        eps = try reader.double("eps", default: 1e-8, .atLeast(0))
        weightDecay = try reader.double("weight_decay", default: 0, .atLeast(0))
        amsgrad = try reader.bool("amsgrad", default: false)
    }

    /// Per term: `exp_avg.k` and `exp_avg_sq.k`, and `max_exp_avg_sq.k` with amsgrad.
    func stateElements(for shape: TensorShape, terms: Int) -> Int { terms * (amsgrad ? 3 : 2) * shape.elementCount }

    func step(_ input: TensorStepInput, state: StateSlots) -> TensorStepResult {
        let parameter = input.parameter
        let terms = input.gradients.count
        precondition(
            terms >= 1 && input.gradientScales.count == terms && input.gradientNorms.count == terms
                && input.termWeights.count == terms,
            "MTAdam needs one gradient, scale, norm and weight per term"
        )
        let t = (state.scalar("step") ?? 0) + 1
        state.setScalar("step", t)

        var kernelTerms: [MTAdamKernel.Term] = []
        kernelTerms.reserveCapacity(terms)
        var norms = [Double](repeating: 0, count: terms)
        for i in 0..<terms {
            let expAvg = state.tensor("exp_avg.\(i)", shape: parameter.shape)
            let expAvgSq = state.tensor("exp_avg_sq.\(i)", shape: parameter.shape)
            let maxExpAvgSq = amsgrad ? state.tensor("max_exp_avg_sq.\(i)", shape: parameter.shape) : nil
            let r = input.gradientNorms[i]
            let emaName = "grad_norm_ema.\(i)"
            if t > 1, let previous = state.scalar(emaName) {
                norms[i] = beta3 * previous + (1 - beta3) * r
            } else {
                norms[i] = r
            }
            state.setScalar(emaName, norms[i])
            kernelTerms.append(
                MTAdamKernel.Term(
                    gradient: input.gradientPointer(i),
                    gradientScale: 1,
                    expAvg: expAvg.pointer,
                    expAvgSq: expAvgSq.pointer,
                    maxExpAvgSq: maxExpAvgSq?.pointer
                )
            )
        }

        // Every rescaled term has nᵢ > threshold, so its anchor (the first such term) is at or before it
        // and already updated: one anchor serves all terms.
        let weights = Self.effectiveWeights(norms: norms, termWeights: input.termWeights)
        for i in 0..<terms {
            kernelTerms[i].gradientScale = Float(Double(input.gradientScales[i]) * weights[i])
        }

        let biasCorrection1 = 1 - pow(beta1, t)
        let biasCorrection2 = 1 - pow(beta2, t)
        let coefficients = MTAdamKernel.Coefficients(
            beta1: Float(beta1),
            beta2: Float(beta2),
            oneMinusBeta1: Float(1 - beta1),
            oneMinusBeta2: Float(1 - beta2),
            stepSize: Float(lr / biasCorrection1),
            sqrtBiasCorrection2: Float(biasCorrection2.squareRoot()),
            eps: Float(eps),
            l2: Float(weightDecay)
        )
        let update = MTAdamKernel.run(
            MTAdamKernel.Buffers(parameter: parameter.pointer, terms: kernelTerms),
            count: parameter.count,
            coefficients,
            parallelism: input.parallelism
        )
        return TensorStepResult(updateSquaredNorm: update, learningRate: lr, termWeights: weights)
    }

    /// The factor applied to each term's gradient on one layer: λᵢ·n_a/nᵢ, or 1 (without λ) when
    /// nᵢ ≤ 1e-10. The anchor a is the first term whose EMA exceeds 1e-10.
    ///
    /// - Parameters:
    ///   - norms: the updated norm EMAs nᵢ of this layer.
    ///   - termWeights: λ, one per term.
    /// - Returns: one weight per term.
    static func effectiveWeights(norms: [Double], termWeights: [Double]) -> [Double] {
        guard let anchor = norms.firstIndex(where: { $0 > activeThreshold }) else {
            return [Double](repeating: 1, count: norms.count)
        }
        return norms.indices.map { i in
            norms[i] > activeThreshold ? termWeights[i] * norms[anchor] / norms[i] : 1
        }
    }
}
