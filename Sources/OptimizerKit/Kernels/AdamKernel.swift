import CVectorMath

/// The fused Adam/AdamW element loop: one pass reads θ, g, m, v (and v_max) and writes θ, m, v.
///
/// The float operations follow torch's single-tensor path in the same order (`lerp` for m,
/// `mul_`/`addcmul_` for v, `sqrt(v)/sqrt(bc2) + eps`, `addcdiv_`), and the vector loop (every
/// ``KernelVariant``) and the scalar one perform identical IEEE operations lane by lane (neither
/// contracts to FMA), so their results are bit-identical; tests rely on that.
enum AdamKernel {
    /// Per-step constants, computed in Double and rounded once to Float.
    struct Coefficients {
        var beta1: Float
        var beta2: Float
        var oneMinusBeta1: Float
        var oneMinusBeta2: Float
        /// lr / (1 − β1^t)
        var stepSize: Float
        /// √(1 − β2^t)
        var sqrtBiasCorrection2: Float
        var eps: Float
        /// AdamW's θ multiplier 1 − lr·wd (1 when not decoupled).
        var decay: Float
        /// Adam's L2 coefficient wd (0 when decoupled).
        var l2: Float
        /// Gradient multiplier (unscale, clip, maximize sign).
        var gradientScale: Float
    }

    struct Buffers {
        var parameter: UnsafeMutablePointer<Float>
        var gradient: UnsafePointer<Float>
        var expAvg: UnsafeMutablePointer<Float>
        var expAvgSq: UnsafeMutablePointer<Float>
        var maxExpAvgSq: UnsafeMutablePointer<Float>?
    }

    /// Runs the vector kernel over `count` elements on up to `parallelism.threads` threads and
    /// returns ‖Δθ‖².
    static func run(_ buffers: Buffers, count: Int, _ c: Coefficients, parallelism: Parallelism) -> Double {
        Chunking.sum(count: count, parallelism: parallelism) { range in
            simd(buffers.offset(by: range.lowerBound), count: range.count, c)
        }
    }

    /// The plain scalar loop; the reference for ``simd(_:count:_:variant:)``.
    static func scalar(_ b: Buffers, count: Int, _ c: Coefficients) -> Double {
        var update = 0.0
        for i in 0..<count {
            var g = b.gradient[i] * c.gradientScale
            let old = b.parameter[i]
            var p = old
            if c.l2 != 0 { g = g + c.l2 * p }
            if c.decay != 1 { p = p * c.decay }
            let m = c.firstMoment(b.expAvg[i], g)
            let v = b.expAvgSq[i] * c.beta2 + c.oneMinusBeta2 * (g * g)
            var s = v
            if let maxV = b.maxExpAvgSq {
                s = max(maxV[i], v)
                maxV[i] = s
            }
            let denom = s.squareRoot() / c.sqrtBiasCorrection2 + c.eps
            p = p - c.stepSize * (m / denom)
            b.expAvg[i] = m
            b.expAvgSq[i] = v
            b.parameter[i] = p
            let delta = Double(p - old)
            update += delta * delta
        }
        return update
    }

    /// The vector loop, `optimizerd_adam` in C (`Sources/CVectorMath/adam_kernel.c`), compiled for
    /// every ``KernelVariant``: the same operations as ``scalar(_:count:_:)`` on 8 or 16 lanes, with
    /// ‖Δθ‖² summed in 8 Double lanes (element i in lane i mod 8) and the scalar tail.
    ///
    /// In C rather than Swift: one body compiles into each instruction set with a target attribute
    /// and is picked at run time, which Swift cannot do within one module; and Swift lowered the
    /// v load to per-pair shuffles and kept an overflow check in the loop (~0.6× the C loop).
    static func simd(_ b: Buffers, count: Int, _ c: Coefficients, variant: KernelVariant = .active) -> Double {
        var buffers = optimizerd_adam_buffers(
            parameter: b.parameter, gradient: b.gradient, exp_avg: b.expAvg, exp_avg_sq: b.expAvgSq,
            max_exp_avg_sq: b.maxExpAvgSq
        )
        var coefficients = optimizerd_adam_coefficients(
            beta2: c.beta2, one_minus_beta1: c.oneMinusBeta1, one_minus_beta2: c.oneMinusBeta2, step_size: c.stepSize,
            sqrt_bias_correction2: c.sqrtBiasCorrection2, eps: c.eps, decay: c.decay, l2: c.l2,
            gradient_scale: c.gradientScale
        )
        return optimizerd_adam(variant.code, &buffers, count, &coefficients)
    }
}

extension AdamKernel.Coefficients {
    /// torch's `m.lerp_(g, w)` with w = 1 − β1: m + w·(g − m) for w < 0.5, else g − (g − m)·(1 − w)
    /// (exactly g when β1 = 0, however much smaller g is than m).
    @inline(__always)
    func firstMoment(_ m: Float, _ g: Float) -> Float {
        oneMinusBeta1 < 0.5 ? m + oneMinusBeta1 * (g - m) : g - (g - m) * (1 - oneMinusBeta1)
    }
}

extension AdamKernel.Buffers {
    func offset(by n: Int) -> Self {
        Self(
            parameter: parameter + n,
            gradient: gradient + n,
            expAvg: expAvg + n,
            expAvgSq: expAvgSq + n,
            maxExpAvgSq: maxExpAvgSq.map { $0 + n }
        )
    }
}
