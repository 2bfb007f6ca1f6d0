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

    /// The plain scalar loop; the reference for ``simd(_:count:_:)``.
    static func scalar(_ b: Buffers, count: Int, _ c: AdamKernel.Coefficients) -> Double {
        var update = 0.0
        for i in 0..<count {
            var g = b.gradient[i] * c.gradientScale
            let old = b.parameter[i]
            var p = old
            if c.l2 != 0 { g = g + c.l2 * p }
            if c.decay != 1 { p = p * c.decay }
            let m0 = BFloat16.float(b.expAvg[i])
            let m = m0 + c.oneMinusBeta1 * (g - m0)
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

    /// The SIMD loop (8 lanes), one copy per weight-decay form, with the scalar loop for the tail.
    static func simd(_ b: Buffers, count: Int, _ c: AdamKernel.Coefficients) -> Double {
        let lanes: SIMD8<Double>
        switch (c.l2 != 0, c.decay != 1) {
        case (false, false): lanes = simdLoop(b, count: count, c, l2: false, decay: false)
        case (false, true): lanes = simdLoop(b, count: count, c, l2: false, decay: true)
        case (true, false): lanes = simdLoop(b, count: count, c, l2: true, decay: false)
        case (true, true): lanes = simdLoop(b, count: count, c, l2: true, decay: true)
        }
        let body = count & ~7
        return lanes.sum() + scalar(b.offset(by: body), count: count - body, c)
    }

    @inline(__always)
    private static func simdLoop(
        _ b: Buffers, count: Int, _ c: AdamKernel.Coefficients, l2 hasL2: Bool, decay hasDecay: Bool
    ) -> SIMD8<Double> {
        typealias V = SIMD8<Float>
        typealias H = SIMD8<UInt16>
        let beta2 = V(repeating: c.beta2), oneMinusBeta1 = V(repeating: c.oneMinusBeta1)
        let oneMinusBeta2 = V(repeating: c.oneMinusBeta2), stepSize = V(repeating: c.stepSize)
        let sqrtBC2 = V(repeating: c.sqrtBiasCorrection2), eps = V(repeating: c.eps)
        let decay = V(repeating: c.decay), l2 = V(repeating: c.l2), scale = V(repeating: c.gradientScale)
        let p0 = UnsafeMutableRawPointer(b.parameter), g0 = UnsafeRawPointer(b.gradient)
        let m0 = UnsafeMutableRawPointer(b.expAvg), v0 = UnsafeMutableRawPointer(b.expAvgSq)
        var lanes = SIMD8<Double>()
        var i = 0
        while i + 8 <= count {
            var g = g0.loadUnaligned(fromByteOffset: i * 4, as: V.self) * scale
            let old = p0.loadUnaligned(fromByteOffset: i * 4, as: V.self)
            var p = old
            if hasL2 { g = g + l2 * p }
            if hasDecay { p = p * decay }
            let mOld = BFloat16.float(m0.loadUnaligned(fromByteOffset: i * 2, as: H.self))
            let m = mOld + oneMinusBeta1 * (g - mOld)
            let v = BFloat16.float(v0.loadUnaligned(fromByteOffset: i * 2, as: H.self)) * beta2 + oneMinusBeta2 * (g * g)
            let denom = squareRoot(v) / sqrtBC2 + eps
            p = p - stepSize * (m / denom)
            m0.storeBytes(of: BFloat16.bits(m), toByteOffset: i * 2, as: H.self)
            v0.storeBytes(of: BFloat16.bits(v), toByteOffset: i * 2, as: H.self)
            p0.storeBytes(of: p, toByteOffset: i * 4, as: V.self)
            let delta = widen(p - old)
            lanes += delta * delta
            i += 8
        }
        return lanes
    }
}
