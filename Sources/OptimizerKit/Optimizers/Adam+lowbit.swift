import Foundation

/// Adam and AdamW on compact state (DESIGN §10, docs/lowbit-state.md).
///
/// - `int8`: bitsandbytes 0.50.2's CPU `Adam8bit`/`AdamW8bit`: tensors of at least
///   ``Int8AdamKernel/minimumSize`` elements keep `exp_avg` and `exp_avg_sq` as 8-bit codes
///   (signed and unsigned map) with `exp_avg_absmax` and `exp_avg_sq_absmax` (one float per block of
///   256); smaller ones keep float32 moments and take bitsandbytes' 32-bit step. Weight decay is
///   decoupled (the configuration refuses Adam's L2 decay).
/// - `bf16`: `exp_avg` and `exp_avg_sq` as bfloat16, updated by torch's Adam formula in float32.
extension Adam {
    /// The state slots' bytes for a parameter of `shape` with this configuration's state dtype.
    func stateBytes(for shape: TensorShape, terms: Int) -> Int {
        stateDType == .f32 ? 4 * stateElements(for: shape, terms: terms) : stateDType.momentBytes(count: shape.elementCount)
    }

    /// One step on 8-bit state (the float32 path below the 8-bit size).
    func stepInt8(_ input: TensorStepInput, state: StateSlots, t: Double) -> TensorStepResult {
        let parameter = input.parameter
        let scale = maximize ? -input.gradientScales[0] : input.gradientScales[0]
        let c = Int8AdamKernel.Coefficients(
            lr: lr, beta1: beta1, beta2: beta2, eps: eps, weightDecay: weightDecay, step: t, gradientScale: scale
        )
        let update: Double
        if parameter.count < Int8AdamKernel.minimumSize {
            let expAvg = state.tensor("exp_avg", shape: parameter.shape)
            let expAvgSq = state.tensor("exp_avg_sq", shape: parameter.shape)
            let sqrtBC2 = (1 - pow(beta2, t)).squareRoot()
            update = Int8AdamKernel.float32(
                parameter: parameter.pointer, gradient: input.gradientPointer(), expAvg: expAvg.pointer,
                expAvgSq: expAvgSq.pointer, count: parameter.count, c,
                epsTimesSqrtBiasCorrection2: Float(eps * sqrtBC2), stepSize: Float(-lr * sqrtBC2 / (1 - pow(beta1, t)))
            )
        } else {
            let blocks = TensorShape([Int8AdamKernel.blockCount(parameter.count)])
            let codes1 = state.packed("exp_avg", shape: parameter.shape, element: .code8)
            let absmax1 = state.tensor("exp_avg_absmax", shape: blocks)
            let codes2 = state.packed("exp_avg_sq", shape: parameter.shape, element: .code8)
            let absmax2 = state.tensor("exp_avg_sq_absmax", shape: blocks)
            update = Int8AdamKernel.run(
                Int8AdamKernel.Buffers(
                    parameter: parameter.pointer, gradient: input.gradientPointer(), codes1: codes1.codes,
                    codes2: codes2.codes, absmax1: absmax1.pointer, absmax2: absmax2.pointer
                ),
                count: parameter.count, c, parallelism: input.parallelism
            )
        }
        return TensorStepResult(updateSquaredNorm: update, learningRate: lr)
    }

    /// One step on bfloat16 state.
    func stepBF16(_ input: TensorStepInput, state: StateSlots, coefficients: AdamKernel.Coefficients) -> TensorStepResult {
        let parameter = input.parameter
        let expAvg = state.packed("exp_avg", shape: parameter.shape, element: .bfloat16)
        let expAvgSq = state.packed("exp_avg_sq", shape: parameter.shape, element: .bfloat16)
        let update = BF16AdamKernel.run(
            BF16AdamKernel.Buffers(
                parameter: parameter.pointer, gradient: input.gradientPointer(),
                expAvg: expAvg.bfloat16Bits, expAvgSq: expAvgSq.bfloat16Bits
            ),
            count: parameter.count, coefficients, parallelism: input.parallelism
        )
        return TensorStepResult(updateSquaredNorm: update, learningRate: lr)
    }

    /// Refuses options the compact forms do not have: amsgrad (neither bitsandbytes nor the bfloat16
    /// kernel keeps a third moment) and, for `int8`, Adam's L2 decay (bitsandbytes decays decoupled).
    static func checkStateDType(_ dtype: StateDType, amsgrad: Bool, l2Decay: Bool) throws {
        guard dtype != .f32 else { return }
        if amsgrad {
            throw OptimizerError.invalidConfiguration(field: "state_dtype", "state_dtype \(dtype.rawValue) does not support amsgrad; use f32")
        }
        if dtype == .int8, l2Decay {
            throw OptimizerError.invalidConfiguration(
                field: "state_dtype",
                "state_dtype int8 decays weights decoupled as bitsandbytes' Adam8bit does: use adamw (or decoupled_weight_decay) for weight_decay > 0"
            )
        }
    }
}
