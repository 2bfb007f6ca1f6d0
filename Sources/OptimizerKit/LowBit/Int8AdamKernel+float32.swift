extension Int8AdamKernel {
    /// bitsandbytes' 32-bit Adam step, which `Adam8bit`/`AdamW8bit` use for tensors below
    /// `min_8bit_size` (4096 elements): moments in float32, m and v as in the 8-bit step,
    /// θ = fma(m / (√v + ε·√(1−β2^t)), −lr·√(1−β2^t)/(1−β1^t), θ·(1 − lr·wd)).
    ///
    /// Only small tensors take this path, so it is one scalar loop; returns ‖Δθ‖².
    static func float32(
        parameter: UnsafeMutablePointer<Float>,
        gradient: UnsafePointer<Float>,
        expAvg: UnsafeMutablePointer<Float>,
        expAvgSq: UnsafeMutablePointer<Float>,
        count: Int,
        _ c: Coefficients,
        epsTimesSqrtBiasCorrection2: Float,
        stepSize: Float
    ) -> Double {
        var update = 0.0
        for i in 0..<count {
            let g = gradient[i] * c.gradientScale
            let m = (expAvg[i] * c.beta1).addingProduct(g, c.oneMinusBeta1)
            let v = (expAvgSq[i] * c.beta2).addingProduct(c.oneMinusBeta2 * g, g)
            let old = parameter[i]
            let direction = m / (v.squareRoot() + epsTimesSqrtBiasCorrection2)
            let p = (old * c.decay).addingProduct(direction, stepSize)
            parameter[i] = p
            expAvg[i] = m
            expAvgSq[i] = v
            let delta = Double(p - old)
            update += delta * delta
        }
        return update
    }
}
