/// The fused SGD element loop (weight decay, momentum with dampening, Nesterov), in torch's order.
enum SGDKernel {
    struct Coefficients {
        var lr: Float
        var weightDecay: Float
        var momentum: Float
        var oneMinusDampening: Float
        var nesterov: Bool
        /// The momentum buffer does not exist yet: it becomes a copy of the gradient (no dampening).
        var firstStep: Bool
        var gradientScale: Float
    }

    struct Buffers {
        var parameter: UnsafeMutablePointer<Float>
        var gradient: UnsafePointer<Float>
        /// nil when momentum is 0.
        var momentumBuffer: UnsafeMutablePointer<Float>?

        func offset(by n: Int) -> Self {
            Self(parameter: parameter + n, gradient: gradient + n, momentumBuffer: momentumBuffer.map { $0 + n })
        }
    }

    static func run(_ buffers: Buffers, count: Int, _ c: Coefficients, parallelism: Parallelism) -> Double {
        Chunking.sum(count: count, parallelism: parallelism) { range in
            simd(buffers.offset(by: range.lowerBound), count: range.count, c)
        }
    }

    /// The plain scalar loop; the reference for ``simd(_:count:_:)``.
    static func scalar(_ b: Buffers, count: Int, _ c: Coefficients) -> Double {
        var update = 0.0
        for i in 0..<count {
            let old = b.parameter[i]
            var g = b.gradient[i] * c.gradientScale
            if c.weightDecay != 0 { g = g + c.weightDecay * old }
            if let buffer = b.momentumBuffer {
                let m = c.firstStep ? g : buffer[i] * c.momentum + c.oneMinusDampening * g
                buffer[i] = m
                g = c.nesterov ? g + c.momentum * m : m
            }
            let p = old - c.lr * g
            b.parameter[i] = p
            let delta = Double(p - old)
            update += delta * delta
        }
        return update
    }

    /// The SIMD loop (8 lanes), with the scalar loop for the tail.
    ///
    /// The options are tested once here, not per vector: each combination runs its own copy of
    /// ``simdLoop(_:count:_:decays:momentum:firstStep:nesterov:)`` with the tests folded away (the
    /// coefficients live in memory the stores could alias, so in-loop tests were reloaded every
    /// vector and the loop body was vectorized badly around them).
    static func simd(_ b: Buffers, count: Int, _ c: Coefficients) -> Double {
        let decays = c.weightDecay != 0
        @inline(__always)
        func loop(momentum: Bool, firstStep: Bool, nesterov: Bool) -> SIMD8<Double> {
            decays
                ? simdLoop(b, count: count, c, decays: true, momentum: momentum, firstStep: firstStep, nesterov: nesterov)
                : simdLoop(b, count: count, c, decays: false, momentum: momentum, firstStep: firstStep, nesterov: nesterov)
        }
        let lanes: SIMD8<Double>
        switch (b.momentumBuffer != nil, c.firstStep, c.nesterov) {
        case (false, _, _): lanes = loop(momentum: false, firstStep: false, nesterov: false)
        case (true, true, false): lanes = loop(momentum: true, firstStep: true, nesterov: false)
        case (true, true, true): lanes = loop(momentum: true, firstStep: true, nesterov: true)
        case (true, false, false): lanes = loop(momentum: true, firstStep: false, nesterov: false)
        case (true, false, true): lanes = loop(momentum: true, firstStep: false, nesterov: true)
        }
        let body = count & ~7
        return lanes.sum() + scalar(b.offset(by: body), count: count - body, c)
    }

    /// The 8-lane body of ``simd(_:count:_:)`` over `count & ~7` elements, for one combination of the
    /// options (constants at every call site); returns the per-lane (Δθ)² sums.
    @inline(__always)
    private static func simdLoop(
        _ b: Buffers,
        count: Int,
        _ c: Coefficients,
        decays: Bool,
        momentum hasMomentum: Bool,
        firstStep: Bool,
        nesterov: Bool
    ) -> SIMD8<Double> {
        typealias V = SIMD8<Float>
        let lr = V(repeating: c.lr)
        let weightDecay = V(repeating: c.weightDecay)
        let momentum = V(repeating: c.momentum)
        let oneMinusDampening = V(repeating: c.oneMinusDampening)
        let scale = V(repeating: c.gradientScale)
        let p0 = UnsafeMutableRawPointer(b.parameter)
        let g0 = UnsafeRawPointer(b.gradient)
        // Only dereferenced with momentum (then it is the buffer).
        let b0 = UnsafeMutableRawPointer(b.momentumBuffer ?? b.parameter)
        let end = (count & ~7) * 4
        var lanes = SIMD8<Double>()
        var offset = 0
        while offset < end {
            let old = p0.loadUnaligned(fromByteOffset: offset, as: V.self)
            var g = g0.loadUnaligned(fromByteOffset: offset, as: V.self) * scale
            if decays { g = g + weightDecay * old }
            if hasMomentum {
                let m = firstStep ? g : b0.loadUnaligned(fromByteOffset: offset, as: V.self) * momentum + oneMinusDampening * g
                b0.storeBytes(of: m, toByteOffset: offset, as: V.self)
                g = nesterov ? g + momentum * m : m
            }
            let p = old - lr * g
            p0.storeBytes(of: p, toByteOffset: offset, as: V.self)
            let delta = widen(p - old)
            lanes += delta * delta
            offset += 32
        }
        return lanes
    }
}
