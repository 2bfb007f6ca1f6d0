import CVectorMath

// Adafactor's last pass: moving θ by the update, factored (row ranges) and unfactored (diagonal V).
// The conventions (lanes, order of reductions, bit-identity with the scalar loops) are those of
// AdafactorKernel.swift.

extension AdafactorKernel {
    /// The apply step for one element whose preconditioned gradient is `u` (g·P, before the step size):
    /// U = stepSize·u; m ← β1·m + (1−β1)·U and U ← m with beta1; θ ← θ + decay·θ; θ ← θ − U.
    /// Returns (Δθ)².
    @inline(__always)
    static func apply(_ b: Buffers, _ i: Int, preconditioned u: Float, _ c: Update) -> Double {
        var u = u * c.stepSize
        if let m = b.expAvg {
            u = m[i] * c.beta1 + c.oneMinusBeta1 * u
            m[i] = u
        }
        let old = b.parameter[i]
        var p = old
        if c.decay != 0 { p = p + c.decay * p }
        p = p - u
        b.parameter[i] = p
        let delta = Double(p - old)
        return delta * delta
    }

    /// The plain reference for ``simdApply(_:rows:_:_:variant:)``.
    static func scalarApply(_ b: Buffers, rows: Range<Int>, _ f: Factors, _ c: Update) -> Double {
        let body = f.columns & ~7
        var cursor = f.columnFactorCursor(from: rows.lowerBound)
        var sum = 0.0
        for row in rows {
            let r = b.offset(by: row * f.columns)
            let columnFactors = cursor.factors
            cursor.advance()
            var lanes = D()
            for j in 0..<body {
                let u = (f.rowFactors[row] * columnFactors[j]) * (r.gradient[j] * c.gradientScale)
                lanes[j & 7] += apply(r, j, preconditioned: u, c)
            }
            var rowSum = total(lanes, body: body)
            for j in body..<f.columns {
                let u = (f.rowFactors[row] * columnFactors[j]) * (r.gradient[j] * c.gradientScale)
                rowSum += apply(r, j, preconditioned: u, c)
            }
            sum += rowSum
        }
        return sum
    }

    /// Applies the update to `rows` of a factored tensor, U = stepSize·(rowFactor·columnFactor)·(s·g).
    /// Returns ‖Δθ‖² over those rows in Double (`optimizerd_adafactor_apply` in C).
    static func simdApply(_ b: Buffers, rows: Range<Int>, _ f: Factors, _ c: Update, variant: KernelVariant = .active) -> Double {
        var factors = f.c
        var update = c.c
        return optimizerd_adafactor_apply(
            variant.code, b.parameter, b.gradient, b.expAvg, rows.lowerBound, rows.upperBound, &factors, &update
        )
    }

    /// The plain reference for ``simdApplyDiagonal(_:_:count:_:variant:)``.
    static func scalarApplyDiagonal(_ b: Buffers, _ v: UnsafePointer<Float>, count: Int, _ c: Update) -> Double {
        let body = count & ~7
        var lanes = D()
        for i in 0..<body {
            lanes[i & 7] += apply(b, i, preconditioned: b.gradient[i] * c.gradientScale / v[i].squareRoot(), c)
        }
        var sum = total(lanes)
        for i in body..<count {
            sum += apply(b, i, preconditioned: b.gradient[i] * c.gradientScale / v[i].squareRoot(), c)
        }
        return sum
    }

    /// Applies the update to an unfactored range, U = stepSize·(s·g)/√V. Returns ‖Δθ‖² in Double
    /// (`optimizerd_adafactor_apply_diagonal` in C).
    static func simdApplyDiagonal(
        _ b: Buffers, _ v: UnsafePointer<Float>, count: Int, _ c: Update, variant: KernelVariant = .active
    ) -> Double {
        var update = c.c
        return optimizerd_adafactor_apply_diagonal(variant.code, b.parameter, b.gradient, b.expAvg, v, count, &update)
    }
}

extension AdafactorKernel.Update {
    /// The constants as the C kernels take them.
    var c: optimizerd_adafactor_update {
        optimizerd_adafactor_update(
            gradient_scale: gradientScale, step_size: stepSize, beta1: beta1, one_minus_beta1: oneMinusBeta1, decay: decay
        )
    }
}
