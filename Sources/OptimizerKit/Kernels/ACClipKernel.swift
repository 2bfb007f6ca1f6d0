import Foundation

/// The fused ACClip element loop: one pass reads θ, g, m, T and writes θ, m, T.
///
/// Per element: g ← scale·g (+ wd·θ); m ← β1·m + (1−β1)·g; T ← β2·T + (1−β2)·|g|^α; τ = T^(1/α);
/// f = τ/(|m| + eps), capped at 1 by a compare-and-select; θ ← θ − (lr·f)·m.
/// |x| clears the sign bit in both versions, α = 1 needs no power, α = 2 squares and takes √, and other
/// α call `powf` lane by lane, so the SIMD and scalar versions are bit-identical; tests rely on that.
enum ACClipKernel {
    /// How |g|^α and T^(1/α) are computed.
    enum Power: Equatable {
        /// α = 1: both are the identity.
        case one
        /// α = 2: g·g and √T.
        case two
        /// Any other α in (1, 2): `pow(|g|, alpha)` and `pow(T, inverse)`.
        case general(alpha: Float, inverse: Float)
    }

    /// Per-step constants, computed in Double and rounded once to Float.
    struct Coefficients {
        var lr: Float
        var beta1: Float
        var beta2: Float
        var oneMinusBeta1: Float
        var oneMinusBeta2: Float
        var eps: Float
        /// The L2 weight decay wd (0 for none).
        var l2: Float
        /// Gradient multiplier (unscale, clip).
        var gradientScale: Float
        var power: Power
    }

    struct Buffers {
        var parameter: UnsafeMutablePointer<Float>
        var gradient: UnsafePointer<Float>
        /// m
        var expAvg: UnsafeMutablePointer<Float>
        /// T = τ^α
        var tauAlpha: UnsafeMutablePointer<Float>

        func offset(by n: Int) -> Self {
            Self(parameter: parameter + n, gradient: gradient + n, expAvg: expAvg + n, tauAlpha: tauAlpha + n)
        }
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
            let old = b.parameter[i]
            var g = b.gradient[i] * c.gradientScale
            if c.l2 != 0 { g = g + c.l2 * old }
            let m = c.beta1 * b.expAvg[i] + c.oneMinusBeta1 * g
            let tau: Float
            let tauAlpha: Float
            switch c.power {
            case .one:
                tauAlpha = c.beta2 * b.tauAlpha[i] + c.oneMinusBeta2 * g.magnitude
                tau = tauAlpha
            case .two:
                tauAlpha = c.beta2 * b.tauAlpha[i] + c.oneMinusBeta2 * (g * g)
                tau = tauAlpha.squareRoot()
            case .general(let alpha, let inverse):
                tauAlpha = c.beta2 * b.tauAlpha[i] + c.oneMinusBeta2 * pow(g.magnitude, alpha)
                tau = pow(tauAlpha, inverse)
            }
            var factor = tau / (m.magnitude + c.eps)
            if factor > 1 { factor = 1 }
            let p = old - c.lr * factor * m
            b.expAvg[i] = m
            b.tauAlpha[i] = tauAlpha
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
        let beta1 = V(repeating: c.beta1)
        let beta2 = V(repeating: c.beta2)
        let oneMinusBeta1 = V(repeating: c.oneMinusBeta1)
        let oneMinusBeta2 = V(repeating: c.oneMinusBeta2)
        let eps = V(repeating: c.eps)
        let l2 = V(repeating: c.l2)
        let scale = V(repeating: c.gradientScale)
        let one = V(repeating: 1)
        let hasL2 = c.l2 != 0
        let p0 = UnsafeMutableRawPointer(b.parameter)
        let g0 = UnsafeRawPointer(b.gradient)
        let m0 = UnsafeMutableRawPointer(b.expAvg)
        let t0 = UnsafeMutableRawPointer(b.tauAlpha)
        var lanes = SIMD8<Double>()
        var i = 0
        while i + 8 <= count {
            let offset = i * 4
            let old = p0.loadUnaligned(fromByteOffset: offset, as: V.self)
            var g = g0.loadUnaligned(fromByteOffset: offset, as: V.self) * scale
            if hasL2 { g = g + l2 * old }
            let m = beta1 * m0.loadUnaligned(fromByteOffset: offset, as: V.self) + oneMinusBeta1 * g
            let previous = t0.loadUnaligned(fromByteOffset: offset, as: V.self)
            let tau: V
            let tauAlpha: V
            switch c.power {
            case .one:
                tauAlpha = beta2 * previous + oneMinusBeta2 * magnitude(g)
                tau = tauAlpha
            case .two:
                tauAlpha = beta2 * previous + oneMinusBeta2 * (g * g)
                tau = squareRoot(tauAlpha)
            case .general(let alpha, let inverse):
                let absG = magnitude(g)
                var powered = V()
                for lane in 0..<8 { powered[lane] = pow(absG[lane], alpha) }
                tauAlpha = beta2 * previous + oneMinusBeta2 * powered
                var root = V()
                for lane in 0..<8 { root[lane] = pow(tauAlpha[lane], inverse) }
                tau = root
            }
            var factor = tau / (magnitude(m) + eps)
            factor.replace(with: one, where: factor .> one)
            let p = old - lr * factor * m
            m0.storeBytes(of: m, toByteOffset: offset, as: V.self)
            t0.storeBytes(of: tauAlpha, toByteOffset: offset, as: V.self)
            p0.storeBytes(of: p, toByteOffset: offset, as: V.self)
            let delta = widen(p - old)
            lanes += delta * delta
            i += 8
        }
        return lanes.sum() + scalar(b.offset(by: i), count: count - i, c)
    }

    /// |x| lane by lane, by clearing the sign bit (exactly `Float.magnitude`).
    @inline(__always)
    static func magnitude(_ x: SIMD8<Float>) -> SIMD8<Float> {
        unsafeBitCast(unsafeBitCast(x, to: SIMD8<UInt32>.self) & 0x7fff_ffff, to: SIMD8<Float>.self)
    }
}
