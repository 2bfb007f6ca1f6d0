/// The fused Adam/AdamW element loop: one pass reads θ, g, m, v (and v_max) and writes θ, m, v.
///
/// The float operations follow torch's single-tensor path in the same order (`lerp` for m,
/// `mul_`/`addcmul_` for v, `sqrt(v)/sqrt(bc2) + eps`, `addcdiv_`), and the SIMD and scalar versions
/// perform identical IEEE operations lane by lane (Swift never contracts to FMA on its own), so their
/// results are bit-identical; tests rely on that.
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

    /// Runs the SIMD kernel over `count` elements on up to `parallelism.threads` threads and returns
    /// ‖Δθ‖².
    static func run(_ buffers: Buffers, count: Int, _ c: Coefficients, parallelism: Parallelism) -> Double {
        Chunking.sum(count: count, parallelism: parallelism) { range in
            simd(buffers.offset(by: range.lowerBound), count: range.count, c)
        }
    }

    /// The plain scalar loop; the reference for ``simd(_:count:_:)``.
    static func scalar(_ b: Buffers, count: Int, _ c: Coefficients) -> Double {
        var update = 0.0
        for i in 0..<count {
            var g = b.gradient[i] * c.gradientScale
            let old = b.parameter[i]
            var p = old
            if c.l2 != 0 { g = g + c.l2 * p }
            if c.decay != 1 { p = p * c.decay }
            let m = b.expAvg[i] + c.oneMinusBeta1 * (g - b.expAvg[i])
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

    /// The SIMD loop (8 lanes), with the scalar loop for the tail.
    ///
    /// The options (L2 or decoupled decay, amsgrad) are tested once here, not per vector: each
    /// combination gets its own copy of the loop with the tests folded away, which keeps the
    /// accumulators in registers (the per-vector tests made the loop spill and cost ~15 %).
    static func simd(_ b: Buffers, count: Int, _ c: Coefficients) -> Double {
        let hasL2 = c.l2 != 0
        let hasDecay = c.decay != 1
        let lanes: SIMD8<Double>
        switch (hasL2, hasDecay, b.maxExpAvgSq != nil) {
        case (false, false, false): lanes = simdLoop(b, count: count, c, l2: false, decay: false, amsgrad: false)
        case (false, true, false): lanes = simdLoop(b, count: count, c, l2: false, decay: true, amsgrad: false)
        case (true, false, false): lanes = simdLoop(b, count: count, c, l2: true, decay: false, amsgrad: false)
        case (true, true, false): lanes = simdLoop(b, count: count, c, l2: true, decay: true, amsgrad: false)
        case (false, false, true): lanes = simdLoop(b, count: count, c, l2: false, decay: false, amsgrad: true)
        case (false, true, true): lanes = simdLoop(b, count: count, c, l2: false, decay: true, amsgrad: true)
        case (true, false, true): lanes = simdLoop(b, count: count, c, l2: true, decay: false, amsgrad: true)
        case (true, true, true): lanes = simdLoop(b, count: count, c, l2: true, decay: true, amsgrad: true)
        }
        let body = count & ~7
        return lanes.sum() + scalar(b.offset(by: body), count: count - body, c)
    }

    /// The 8-lane body of ``simd(_:count:_:)`` over `count & ~7` elements, for one combination of the
    /// options (constants at every call site); returns the per-lane (Δθ)² sums.
    @inline(__always)
    private static func simdLoop(
        _ b: Buffers, count: Int, _ c: Coefficients, l2 hasL2: Bool, decay hasDecay: Bool, amsgrad: Bool
    ) -> SIMD8<Double> {
        typealias V = SIMD8<Float>
        let beta2 = V(repeating: c.beta2)
        let oneMinusBeta1 = V(repeating: c.oneMinusBeta1)
        let oneMinusBeta2 = V(repeating: c.oneMinusBeta2)
        let stepSize = V(repeating: c.stepSize)
        let sqrtBC2 = V(repeating: c.sqrtBiasCorrection2)
        let eps = V(repeating: c.eps)
        let decay = V(repeating: c.decay)
        let l2 = V(repeating: c.l2)
        let scale = V(repeating: c.gradientScale)
        let p0 = UnsafeMutableRawPointer(b.parameter)
        let g0 = UnsafeRawPointer(b.gradient)
        let m0 = UnsafeMutableRawPointer(b.expAvg)
        let v0 = UnsafeMutableRawPointer(b.expAvgSq)
        let x0 = UnsafeMutableRawPointer(b.maxExpAvgSq ?? b.expAvgSq)
        var lanes = SIMD8<Double>()
        var i = 0
        while i + 8 <= count {
            let offset = i * 4
            var g = g0.loadUnaligned(fromByteOffset: offset, as: V.self) * scale
            let old = p0.loadUnaligned(fromByteOffset: offset, as: V.self)
            var p = old
            if hasL2 { g = g + l2 * p }
            if hasDecay { p = p * decay }
            var m = m0.loadUnaligned(fromByteOffset: offset, as: V.self)
            m = m + oneMinusBeta1 * (g - m)
            let v = v0.loadUnaligned(fromByteOffset: offset, as: V.self) * beta2 + oneMinusBeta2 * (g * g)
            var s = v
            if amsgrad {
                s = maximum(x0.loadUnaligned(fromByteOffset: offset, as: V.self), v)
                x0.storeBytes(of: s, toByteOffset: offset, as: V.self)
            }
            let denom = squareRoot(s) / sqrtBC2 + eps
            p = p - stepSize * (m / denom)
            m0.storeBytes(of: m, toByteOffset: offset, as: V.self)
            v0.storeBytes(of: v, toByteOffset: offset, as: V.self)
            p0.storeBytes(of: p, toByteOffset: offset, as: V.self)
            let delta = widen(p - old)
            lanes += delta * delta
            i += 8
        }
        return lanes
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
