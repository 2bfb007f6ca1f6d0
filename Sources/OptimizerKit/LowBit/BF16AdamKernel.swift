import CLowBit
import CVectorMath

/// Adam/AdamW on bfloat16 moments: per element the moments are widened to float32, updated with
/// exactly ``AdamKernel``'s float operations (torch's order), and rounded back to bfloat16 (nearest,
/// ties to even) — one pass, no float32 copy of the state. The SIMD and scalar versions give the
/// same bits. No amsgrad (the configuration refuses it with bfloat16 state).
enum BF16AdamKernel {
    /// The tensors of one parameter: θ and g in float32, m and v as bfloat16 bits.
    struct Buffers {
        var parameter: UnsafeMutablePointer<Float>
        var gradient: UnsafePointer<Float>
        var expAvg: UnsafeMutablePointer<UInt16>
        var expAvgSq: UnsafeMutablePointer<UInt16>

        func offset(by n: Int) -> Self {
            Self(parameter: parameter + n, gradient: gradient + n, expAvg: expAvg + n, expAvgSq: expAvgSq + n)
        }
    }

    /// Runs the SIMD kernel in fixed chunks on up to `parallelism.threads` threads; returns ‖Δθ‖².
    static func run(_ buffers: Buffers, count: Int, _ c: AdamKernel.Coefficients, parallelism: Parallelism) -> Double {
        Chunking.sum(count: count, parallelism: parallelism) { range in
            simd(buffers.offset(by: range.lowerBound), count: range.count, c)
        }
    }

    /// The plain scalar loop; the reference for ``simd(_:count:_:variant:)``.
    static func scalar(_ b: Buffers, count: Int, _ c: AdamKernel.Coefficients) -> Double {
        var update = 0.0
        for i in 0..<count {
            var g = b.gradient[i] * c.gradientScale
            let old = b.parameter[i]
            var p = old
            if c.l2 != 0 { g = g + c.l2 * p }
            if c.decay != 1 { p = p * c.decay }
            let m0 = BFloat16.float(b.expAvg[i])
            let m = c.firstMoment(m0, g)
            let v = BFloat16.float(b.expAvgSq[i]) * c.beta2 + c.oneMinusBeta2 * (g * g)
            let denom = v.squareRoot() / c.sqrtBiasCorrection2 + c.eps
            p = p - c.stepSize * (m / denom)
            b.expAvg[i] = BFloat16.bits(m)
            b.expAvgSq[i] = BFloat16.bits(v)
            b.parameter[i] = p
            let delta = Double(p - old)
            update += delta * delta
        }
        return update
    }

    /// Whether this CPU has AVX-512 BF16 (and DQ): the AVX-512 variant then rounds the moments with
    /// `vcvtneps2bf16`, sending the blocks that instruction would round differently (NaN or subnormal
    /// moments) to the integer rounding, with the same bits as without it.
    static let cpuConverts = optimizerd_bf16_cpu_converts() != 0

    /// The vector loop, `optimizerd_bf16_adam` in C (`Sources/CLowBit/bf16_adam_kernel.c`), compiled
    /// for every ``KernelVariant``: the same operations as ``scalar(_:count:_:)`` on 16 or 8 lanes,
    /// with ‖Δθ‖² summed in 8 Double lanes (element i in lane i mod 8) and the scalar tail.
    /// `converting` (only where ``cpuConverts``) rounds with AVX-512 BF16 in the AVX-512 variant.
    ///
    /// In C for the reasons ``AdamKernel/simd(_:count:_:variant:)`` is, and because Swift's 16-bit
    /// lane conversions ran this step at 0.4× the float32 step (BENCHMARKS.md, Low-bit state).
    static func simd(
        _ b: Buffers, count: Int, _ c: AdamKernel.Coefficients, variant: KernelVariant = .active, converting: Bool = cpuConverts
    ) -> Double {
        var buffers = optimizerd_bf16_adam_buffers(
            parameter: b.parameter, gradient: b.gradient, exp_avg: b.expAvg, exp_avg_sq: b.expAvgSq
        )
        var coefficients = optimizerd_adam_coefficients(
            beta2: c.beta2, one_minus_beta1: c.oneMinusBeta1, one_minus_beta2: c.oneMinusBeta2, step_size: c.stepSize,
            sqrt_bias_correction2: c.sqrtBiasCorrection2, eps: c.eps, decay: c.decay, l2: c.l2, gradient_scale: c.gradientScale
        )
        let code = variant == .avx512 && converting ? OPTIMIZERD_BF16_KERNELS_AVX512_CONVERT : variant.code
        return optimizerd_bf16_adam(code, &buffers, count, &coefficients)
    }
}
