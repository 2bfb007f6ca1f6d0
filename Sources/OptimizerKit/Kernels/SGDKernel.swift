import CVectorMath

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

    /// The plain scalar loop; the reference for ``simd(_:count:_:variant:)``.
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

    /// The vector loop, `optimizerd_sgd` in C (`Sources/CVectorMath/sgd_kernel.c`), compiled for
    /// every ``KernelVariant`` (see ``AdamKernel/simd(_:count:_:variant:)`` for why C): the same
    /// operations as ``scalar(_:count:_:)`` on 8 or 16 lanes, ‖Δθ‖² in 8 Double lanes and the tail.
    static func simd(_ b: Buffers, count: Int, _ c: Coefficients, variant: KernelVariant = .active) -> Double {
        var coefficients = optimizerd_sgd_coefficients(
            lr: c.lr, weight_decay: c.weightDecay, momentum: c.momentum, one_minus_dampening: c.oneMinusDampening,
            nesterov: c.nesterov, first_step: c.firstStep, gradient_scale: c.gradientScale
        )
        return optimizerd_sgd(variant.code, b.parameter, b.gradient, b.momentumBuffer, count, &coefficients)
    }
}
