import CVectorMath

/// The fused MTAdam element loop: one pass over θ and every term's gradient and moments.
///
/// For each element, in term order i = 0..K−1: g̃ = cᵢ·gᵢ (+ wd·θ), mᵢ ← β1·mᵢ + (1−β1)·g̃,
/// vᵢ ← β2·vᵢ + (1−β2)·g̃², sᵢ = vᵢ or v_maxᵢ ← max(v_maxᵢ, vᵢ), denᵢ = √sᵢ/√bc2 + eps and
/// D = max over the terms so far; then u = Σᵢ stepSize·(mᵢ/D), summed in term order, and θ ← θ − u.
/// Each mᵢ is read back right after it was written (still in cache), so nothing of θ's size is
/// stored besides the state itself. Here cᵢ = scaleᵢ·wᵢ folds the session's gradient scale and the
/// per-layer balancing weight wᵢ = λᵢ·n_a/nᵢ into one multiplier.
///
/// The vector loop (C, every ``KernelVariant``) and the scalar one perform identical IEEE operations
/// lane by lane (the maximum is a compare-and-select in both), so their results are bit-identical;
/// tests rely on that.
enum MTAdamKernel {
    /// Per-step constants shared by all terms, computed in Double and rounded once to Float.
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
        /// The L2 weight decay wd, added to every term's rescaled gradient (0 for none).
        var l2: Float
    }

    /// One loss term's gradient, multiplier and moments.
    struct Term {
        var gradient: UnsafePointer<Float>
        /// scaleᵢ·wᵢ: gradient unscaling/clipping times the balancing weight.
        var gradientScale: Float
        var expAvg: UnsafeMutablePointer<Float>
        var expAvgSq: UnsafeMutablePointer<Float>
        /// nil without amsgrad.
        var maxExpAvgSq: UnsafeMutablePointer<Float>?
    }

    /// The parameter and its K ≥ 1 terms (all the same element count).
    struct Buffers {
        var parameter: UnsafeMutablePointer<Float>
        var terms: [Term]
    }

    /// Runs the SIMD kernel over `count` elements on up to `parallelism.threads` threads and returns
    /// ‖Δθ‖².
    static func run(_ buffers: Buffers, count: Int, _ c: Coefficients, parallelism: Parallelism) -> Double {
        precondition(!buffers.terms.isEmpty, "MTAdam needs at least one term")
        return Chunking.sum(count: count, parallelism: parallelism) { range in
            simd(buffers, range: range, c)
        }
    }

    /// The plain scalar loop over `range`; the reference for ``simd(_:range:_:variant:)``.
    static func scalar(_ b: Buffers, range: Range<Int>, _ c: Coefficients) -> Double {
        b.terms.withUnsafeBufferPointer { terms in
            var update = 0.0
            for j in range {
                let old = b.parameter[j]
                var denom: Float = 0
                for k in terms.indices {
                    let term = terms[k]
                    var g = term.gradient[j] * term.gradientScale
                    if c.l2 != 0 { g = g + c.l2 * old }
                    let m = c.beta1 * term.expAvg[j] + c.oneMinusBeta1 * g
                    let v = term.expAvgSq[j] * c.beta2 + c.oneMinusBeta2 * (g * g)
                    var s = v
                    if let maxV = term.maxExpAvgSq {
                        if maxV[j] > s { s = maxV[j] }
                        maxV[j] = s
                    }
                    term.expAvg[j] = m
                    term.expAvgSq[j] = v
                    let den = s.squareRoot() / c.sqrtBiasCorrection2 + c.eps
                    if k == 0 || den > denom { denom = den }
                }
                var step = c.stepSize * (terms[0].expAvg[j] / denom)
                for k in terms.indices.dropFirst() {
                    step = step + c.stepSize * (terms[k].expAvg[j] / denom)
                }
                let p = old - step
                b.parameter[j] = p
                let delta = Double(p - old)
                update += delta * delta
            }
            return update
        }
    }

    /// The vector loop over `range`, `optimizerd_mtadam` in C (`Sources/CVectorMath/mtadam_kernel.c`),
    /// compiled for every ``KernelVariant``: the operations of ``scalar(_:range:_:)`` on 8 or 16 lanes,
    /// ‖Δθ‖² in 8 Double lanes (element i in lane i mod 8) and the tail.
    static func simd(_ b: Buffers, range: Range<Int>, _ c: Coefficients, variant: KernelVariant = .active) -> Double {
        var coefficients = optimizerd_mtadam_coefficients(
            beta1: c.beta1, beta2: c.beta2, one_minus_beta1: c.oneMinusBeta1, one_minus_beta2: c.oneMinusBeta2,
            step_size: c.stepSize, sqrt_bias_correction2: c.sqrtBiasCorrection2, eps: c.eps, l2: c.l2
        )
        return withUnsafeTemporaryAllocation(of: optimizerd_mtadam_term.self, capacity: b.terms.count) { terms in
            for (k, term) in b.terms.enumerated() {
                terms[k] = optimizerd_mtadam_term(
                    gradient: term.gradient, gradient_scale: term.gradientScale, exp_avg: term.expAvg,
                    exp_avg_sq: term.expAvgSq, max_exp_avg_sq: term.maxExpAvgSq
                )
            }
            return optimizerd_mtadam(
                variant.code, b.parameter, terms.baseAddress, terms.count, range.lowerBound, range.upperBound,
                &coefficients
            )
        }
    }
}
