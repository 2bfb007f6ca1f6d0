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
    static func simd(_ b: Buffers, count: Int, _ c: Coefficients) -> Double {
        typealias V = SIMD8<Float>
        let lr = V(repeating: c.lr)
        let weightDecay = V(repeating: c.weightDecay)
        let momentum = V(repeating: c.momentum)
        let oneMinusDampening = V(repeating: c.oneMinusDampening)
        let scale = V(repeating: c.gradientScale)
        let p0 = UnsafeMutableRawPointer(b.parameter)
        let g0 = UnsafeRawPointer(b.gradient)
        let b0 = b.momentumBuffer.map(UnsafeMutableRawPointer.init)
        var lanes = SIMD8<Double>()
        var i = 0
        while i + 8 <= count {
            let offset = i * 4
            let old = p0.loadUnaligned(fromByteOffset: offset, as: V.self)
            var g = g0.loadUnaligned(fromByteOffset: offset, as: V.self) * scale
            if c.weightDecay != 0 { g = g + weightDecay * old }
            if let b0 {
                let m = c.firstStep ? g : b0.loadUnaligned(fromByteOffset: offset, as: V.self) * momentum + oneMinusDampening * g
                b0.storeBytes(of: m, toByteOffset: offset, as: V.self)
                g = c.nesterov ? g + momentum * m : m
            }
            let p = old - lr * g
            p0.storeBytes(of: p, toByteOffset: offset, as: V.self)
            let delta = widen(p - old)
            lanes += delta * delta
            i += 8
        }
        return lanes.sum() + scalar(b.offset(by: i), count: count - i, c)
    }
}
