import CVectorMath
import Foundation

/// The fused ACClip element loop: one pass reads θ, g, m, T and writes θ, m, T.
///
/// Per element: g ← scale·g (+ wd·θ); m ← β1·m + (1−β1)·g; T ← β2·T + (1−β2)·|g|^α; τ = T^(1/α);
/// f = τ/(|m| + eps), capped at 1 by a compare-and-select; θ ← θ − (lr·f)·m.
/// |x| clears the sign bit in both versions, α = 1 needs no power, α = 2 squares and takes √, and other
/// α call `powf` lane by lane, so the vector (every ``KernelVariant``) and scalar versions are
/// bit-identical; tests rely on that.
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

    /// The plain scalar loop; the reference for ``simd(_:count:_:variant:)``.
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

    /// The vector loop, `optimizerd_acclip` in C (`Sources/CVectorMath/acclip_kernel.c`), compiled
    /// for every ``KernelVariant`` (see ``AdamKernel/simd(_:count:_:variant:)`` for why C): the same
    /// operations as ``scalar(_:count:_:)`` on 8 or 16 lanes, ‖Δθ‖² in 8 Double lanes and the tail.
    static func simd(_ b: Buffers, count: Int, _ c: Coefficients, variant: KernelVariant = .active) -> Double {
        var coefficients = optimizerd_acclip_coefficients(
            lr: c.lr, beta1: c.beta1, beta2: c.beta2, one_minus_beta1: c.oneMinusBeta1, one_minus_beta2: c.oneMinusBeta2,
            eps: c.eps, l2: c.l2, gradient_scale: c.gradientScale, power: 0, alpha: 0, inverse: 0
        )
        switch c.power {
        case .one: coefficients.power = Int32(OPTIMIZERD_ACCLIP_POWER_ONE)
        case .two: coefficients.power = Int32(OPTIMIZERD_ACCLIP_POWER_TWO)
        case .general(let alpha, let inverse):
            coefficients.power = Int32(OPTIMIZERD_ACCLIP_POWER_GENERAL)
            coefficients.alpha = alpha
            coefficients.inverse = inverse
        }
        return optimizerd_acclip(variant.code, b.parameter, b.gradient, b.expAvg, b.tauAlpha, count, &coefficients)
    }
}
