import CVectorMath

/// The element loops of MoMo and MoMo-Adam: two passes per tensor, around one global step size.
///
/// Pass 1 (`accumulate`) updates the gradient averages (d, or m and v) and, in the same sweep, sums
/// the three dot products the step size needs; pass 2 (`apply`) moves θ by τ. MoMo-Adam's
/// preconditioner P = √(v/bc2) + eps is recomputed in pass 2 rather than stored, so a step allocates
/// nothing beyond the state slots. The float operations follow momo-opt's torch calls in order
/// (`mul_(β).add_(g, alpha=1−β)`, `div(bc2).sqrt().add(eps)`, `add_(d, alpha=−τ)`, `div_(1+lr·λ)`); the
/// vector passes (C, every ``KernelVariant``) and the scalar ones perform identical IEEE operations
/// lane by lane, so their tensors are bit-identical (the Double sums differ only in summation order,
/// and are bit-identical across variants).
enum MomoKernel {
    /// The per-tensor sums of pass 1, accumulated in Double.
    struct Sums: Equatable {
        /// ⟨θ, g⟩ with θ before the step (feeds γ).
        var parameterDotGradient = 0.0
        /// ⟨θ, d⟩ (MoMo) or ⟨θ, m⟩ (MoMo-Adam), with the new average and θ before the step.
        var parameterDotAverage = 0.0
        /// ‖d‖² (MoMo) or ⟨m, m/P⟩ (MoMo-Adam), with the new averages.
        var averageSquaredNorm = 0.0

        static func + (a: Sums, b: Sums) -> Sums {
            Sums(
                parameterDotGradient: a.parameterDotGradient + b.parameterDotGradient,
                parameterDotAverage: a.parameterDotAverage + b.parameterDotAverage,
                averageSquaredNorm: a.averageSquaredNorm + b.averageSquaredNorm
            )
        }
    }

    /// Runs `body` over the ``Chunking`` ranges of `0..<count` (in parallel when large) and adds the
    /// partial sums in range order, so the result does not depend on the thread count.
    static func sum(count: Int, parallelism: Parallelism, _ body: (Range<Int>) -> Sums) -> Sums {
        let chunks = (count + Chunking.grain - 1) / Chunking.grain
        if chunks <= 1 { return body(0..<count) }
        return withUnsafeTemporaryAllocation(of: Sums.self, capacity: chunks) { partials in
            // Every range starts at a multiple of the grain, so each chunk writes its own entry once.
            Chunking.forEach(count: count, parallelism: parallelism) { range in
                partials[range.lowerBound / Chunking.grain] = body(range)
            }
            var total = Sums()
            for index in 0..<chunks { total = total + partials[index] }
            return total
        }
    }
}

extension MomoKernel.Sums {
    /// The sums a C pass returns.
    init(_ sums: optimizerd_momo_sums) {
        self.init(
            parameterDotGradient: sums.parameter_dot_gradient,
            parameterDotAverage: sums.parameter_dot_average,
            averageSquaredNorm: sums.average_squared_norm
        )
    }
}

// MARK: - MoMo

extension MomoKernel {
    /// MoMo's loops: d ← β·d + (1−β)·g, then θ ← θ − τ·d (÷ (1 + lr·λ) with weight decay).
    enum Momentum {
        /// Pass 1 constants, rounded once to Float.
        struct Coefficients {
            var beta: Float
            var oneMinusBeta: Float
            /// Gradient multiplier (unscale, clip).
            var gradientScale: Float
            /// The average does not exist yet and starts as the gradient (`bias_correction` off).
            var startFromGradient: Bool
        }

        struct Buffers {
            var parameter: UnsafePointer<Float>
            var gradient: UnsafePointer<Float>
            var gradientAverage: UnsafeMutablePointer<Float>

            func offset(by n: Int) -> Self {
                Self(parameter: parameter + n, gradient: gradient + n, gradientAverage: gradientAverage + n)
            }
        }

        /// Pass 2 constants.
        struct Step {
            /// τ.
            var stepSize: Float
            /// 1 + lr·λ; θ is divided by it when `decays`.
            var divisor: Float
            var decays: Bool
        }

        struct StepBuffers {
            var parameter: UnsafeMutablePointer<Float>
            var gradientAverage: UnsafePointer<Float>

            func offset(by n: Int) -> Self {
                Self(parameter: parameter + n, gradientAverage: gradientAverage + n)
            }
        }

        /// Pass 1 over `count` elements on up to `parallelism.threads` threads.
        static func accumulate(_ buffers: Buffers, count: Int, _ c: Coefficients, parallelism: Parallelism) -> Sums {
            MomoKernel.sum(count: count, parallelism: parallelism) { range in
                accumulateSIMD(buffers.offset(by: range.lowerBound), count: range.count, c)
            }
        }

        /// The plain scalar pass 1; the reference for ``accumulateSIMD(_:count:_:)``.
        static func accumulateScalar(_ b: Buffers, count: Int, _ c: Coefficients) -> Sums {
            var sums = Sums()
            for i in 0..<count {
                let g = b.gradient[i] * c.gradientScale
                let p = b.parameter[i]
                let previous = c.startFromGradient ? g : b.gradientAverage[i]
                let d = previous * c.beta + c.oneMinusBeta * g
                b.gradientAverage[i] = d
                sums.parameterDotGradient += Double(p) * Double(g)
                sums.parameterDotAverage += Double(p) * Double(d)
                sums.averageSquaredNorm += Double(d) * Double(d)
            }
            return sums
        }

        /// The vector pass 1, `optimizerd_momo_accumulate` in C (`Sources/CVectorMath/momo_kernel.c`),
        /// compiled for every ``KernelVariant``: the operations of ``accumulateScalar(_:count:_:)`` on 8
        /// or 16 lanes, the sums in 8 Double lanes (element i in lane i mod 8) added lane 0 to 7, plus
        /// the tail's.
        static func accumulateSIMD(_ b: Buffers, count: Int, _ c: Coefficients, variant: KernelVariant = .active) -> Sums {
            var coefficients = optimizerd_momo_coefficients(
                beta: c.beta, one_minus_beta: c.oneMinusBeta, gradient_scale: c.gradientScale,
                start_from_gradient: c.startFromGradient
            )
            return Sums(optimizerd_momo_accumulate(variant.code, b.parameter, b.gradient, b.gradientAverage, count, &coefficients))
        }

        /// Pass 2 over `count` elements; returns ‖Δθ‖².
        static func apply(_ buffers: StepBuffers, count: Int, _ s: Step, parallelism: Parallelism) -> Double {
            Chunking.sum(count: count, parallelism: parallelism) { range in
                applySIMD(buffers.offset(by: range.lowerBound), count: range.count, s)
            }
        }

        /// The plain scalar pass 2; the reference for ``applySIMD(_:count:_:)``.
        static func applyScalar(_ b: StepBuffers, count: Int, _ s: Step) -> Double {
            var update = 0.0
            for i in 0..<count {
                let old = b.parameter[i]
                var p = old - s.stepSize * b.gradientAverage[i]
                if s.decays { p = p / s.divisor }
                b.parameter[i] = p
                let delta = Double(p - old)
                update += delta * delta
            }
            return update
        }

        /// The vector pass 2, `optimizerd_momo_apply` in C: the operations of ``applyScalar(_:count:_:)``
        /// on 8 or 16 lanes, ‖Δθ‖² in 8 Double lanes and the tail.
        static func applySIMD(_ b: StepBuffers, count: Int, _ s: Step, variant: KernelVariant = .active) -> Double {
            var step = optimizerd_momo_step(step_size: s.stepSize, divisor: s.divisor, decays: s.decays)
            return optimizerd_momo_apply(variant.code, b.parameter, b.gradientAverage, count, &step)
        }
    }
}

// MARK: - MoMo-Adam

extension MomoKernel {
    /// MoMo-Adam's loops: Adam's m and v, P = √(v/bc2) + eps, then θ ← θ − τ·m/P with weight decay.
    enum Adam {
        /// Pass 1 constants, rounded once to Float.
        struct Coefficients {
            var beta1: Float
            var beta2: Float
            var oneMinusBeta1: Float
            var oneMinusBeta2: Float
            /// 1 − β2^k
            var biasCorrection2: Float
            var eps: Float
            /// Gradient multiplier (unscale, clip).
            var gradientScale: Float
        }

        struct Buffers {
            var parameter: UnsafePointer<Float>
            var gradient: UnsafePointer<Float>
            var gradientAverage: UnsafeMutablePointer<Float>
            var gradientAverageSquared: UnsafeMutablePointer<Float>

            func offset(by n: Int) -> Self {
                Self(
                    parameter: parameter + n,
                    gradient: gradient + n,
                    gradientAverage: gradientAverage + n,
                    gradientAverageSquared: gradientAverageSquared + n
                )
            }
        }

        /// Pass 2 constants.
        struct Step {
            /// 1 − β2^k, as in pass 1.
            var biasCorrection2: Float
            var eps: Float
            /// τ.
            var stepSize: Float
            /// AdamW-style multiplier 1 − lr·λ, applied before the step when `multiplies` (`divide` off).
            var decay: Float
            var multiplies: Bool
            /// Proximal divisor 1 + lr·λ, applied after the step when `divides` (`divide` on).
            var divisor: Float
            var divides: Bool
        }

        struct StepBuffers {
            var parameter: UnsafeMutablePointer<Float>
            var gradientAverage: UnsafePointer<Float>
            var gradientAverageSquared: UnsafePointer<Float>

            func offset(by n: Int) -> Self {
                Self(
                    parameter: parameter + n,
                    gradientAverage: gradientAverage + n,
                    gradientAverageSquared: gradientAverageSquared + n
                )
            }
        }

        /// Pass 1 over `count` elements on up to `parallelism.threads` threads.
        static func accumulate(_ buffers: Buffers, count: Int, _ c: Coefficients, parallelism: Parallelism) -> Sums {
            MomoKernel.sum(count: count, parallelism: parallelism) { range in
                accumulateSIMD(buffers.offset(by: range.lowerBound), count: range.count, c)
            }
        }

        /// The plain scalar pass 1; the reference for ``accumulateSIMD(_:count:_:)``.
        static func accumulateScalar(_ b: Buffers, count: Int, _ c: Coefficients) -> Sums {
            var sums = Sums()
            for i in 0..<count {
                let g = b.gradient[i] * c.gradientScale
                let p = b.parameter[i]
                let m = b.gradientAverage[i] * c.beta1 + c.oneMinusBeta1 * g
                let v = b.gradientAverageSquared[i] * c.beta2 + c.oneMinusBeta2 * (g * g)
                b.gradientAverage[i] = m
                b.gradientAverageSquared[i] = v
                let preconditioner = (v / c.biasCorrection2).squareRoot() + c.eps
                let scaled = m / preconditioner
                sums.parameterDotGradient += Double(p) * Double(g)
                sums.parameterDotAverage += Double(p) * Double(m)
                sums.averageSquaredNorm += Double(m) * Double(scaled)
            }
            return sums
        }

        /// The vector pass 1, `optimizerd_momo_adam_accumulate` in C (`Sources/CVectorMath/momo_kernel.c`),
        /// compiled for every ``KernelVariant``: the operations of ``accumulateScalar(_:count:_:)`` on 8
        /// or 16 lanes, the sums as in ``Momentum/accumulateSIMD(_:count:_:variant:)``.
        static func accumulateSIMD(_ b: Buffers, count: Int, _ c: Coefficients, variant: KernelVariant = .active) -> Sums {
            var coefficients = optimizerd_momo_adam_coefficients(
                beta1: c.beta1, beta2: c.beta2, one_minus_beta1: c.oneMinusBeta1, one_minus_beta2: c.oneMinusBeta2,
                bias_correction2: c.biasCorrection2, eps: c.eps, gradient_scale: c.gradientScale
            )
            return Sums(
                optimizerd_momo_adam_accumulate(
                    variant.code, b.parameter, b.gradient, b.gradientAverage, b.gradientAverageSquared, count,
                    &coefficients
                )
            )
        }

        /// Pass 2 over `count` elements; returns ‖Δθ‖².
        static func apply(_ buffers: StepBuffers, count: Int, _ s: Step, parallelism: Parallelism) -> Double {
            Chunking.sum(count: count, parallelism: parallelism) { range in
                applySIMD(buffers.offset(by: range.lowerBound), count: range.count, s)
            }
        }

        /// The plain scalar pass 2; the reference for ``applySIMD(_:count:_:)``.
        static func applyScalar(_ b: StepBuffers, count: Int, _ s: Step) -> Double {
            var update = 0.0
            for i in 0..<count {
                let old = b.parameter[i]
                var p = old
                if s.multiplies { p = p * s.decay }
                let preconditioner = (b.gradientAverageSquared[i] / s.biasCorrection2).squareRoot() + s.eps
                p = p - s.stepSize * (b.gradientAverage[i] / preconditioner)
                if s.divides { p = p / s.divisor }
                b.parameter[i] = p
                let delta = Double(p - old)
                update += delta * delta
            }
            return update
        }

        /// The vector pass 2, `optimizerd_momo_adam_apply` in C: the operations of
        /// ``applyScalar(_:count:_:)`` on 8 or 16 lanes, ‖Δθ‖² in 8 Double lanes and the tail.
        static func applySIMD(_ b: StepBuffers, count: Int, _ s: Step, variant: KernelVariant = .active) -> Double {
            var step = optimizerd_momo_adam_step(
                bias_correction2: s.biasCorrection2, eps: s.eps, step_size: s.stepSize, decay: s.decay,
                divisor: s.divisor, multiplies: s.multiplies, divides: s.divides
            )
            return optimizerd_momo_adam_apply(
                variant.code, b.parameter, b.gradientAverage, b.gradientAverageSquared, count, &step
            )
        }
    }
}
