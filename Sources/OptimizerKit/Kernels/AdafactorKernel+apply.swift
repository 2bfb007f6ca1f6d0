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

    /// ``apply(_:_:preconditioned:_:)`` on 8 lanes at byte offset `offset`; returns (Δθ)² per lane.
    @inline(__always)
    static func apply(_ b: Buffers, byteOffset offset: Int, preconditioned u: V, _ c: UpdateLanes) -> D {
        var u = u * c.stepSize
        if let m = b.expAvg {
            let m0 = UnsafeMutableRawPointer(m)
            u = m0.loadUnaligned(fromByteOffset: offset, as: V.self) * c.beta1 + c.oneMinusBeta1 * u
            m0.storeBytes(of: u, toByteOffset: offset, as: V.self)
        }
        let p0 = UnsafeMutableRawPointer(b.parameter)
        let old = p0.loadUnaligned(fromByteOffset: offset, as: V.self)
        var p = old
        if c.hasDecay { p = p + c.decay * p }
        p = p - u
        p0.storeBytes(of: p, toByteOffset: offset, as: V.self)
        let delta = widen(p - old)
        return delta * delta
    }

    /// ``Update`` broadcast to 8 lanes.
    struct UpdateLanes {
        var gradientScale: V
        var stepSize: V
        var beta1: V
        var oneMinusBeta1: V
        var decay: V
        var hasDecay: Bool

        init(_ c: Update) {
            gradientScale = V(repeating: c.gradientScale)
            stepSize = V(repeating: c.stepSize)
            beta1 = V(repeating: c.beta1)
            oneMinusBeta1 = V(repeating: c.oneMinusBeta1)
            decay = V(repeating: c.decay)
            hasDecay = c.decay != 0
        }
    }

    /// The plain reference for ``simdApply(_:rows:_:_:)``.
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
    /// Returns ‖Δθ‖² over those rows in Double.
    static func simdApply(_ b: Buffers, rows: Range<Int>, _ f: Factors, _ c: Update) -> Double {
        switch (b.expAvg != nil, c.decay != 0) {
        case (false, false): applyLoop(b, rows: rows, f, c, momentum: false, decays: false)
        case (false, true): applyLoop(b, rows: rows, f, c, momentum: false, decays: true)
        case (true, false): applyLoop(b, rows: rows, f, c, momentum: true, decays: false)
        case (true, true): applyLoop(b, rows: rows, f, c, momentum: true, decays: true)
        }
    }

    /// ``simdApply(_:rows:_:_:)`` with its options fixed (constants at each call site), so the vector
    /// loop has no test in it.
    @inline(__always)
    private static func applyLoop(
        _ b: Buffers,
        rows: Range<Int>,
        _ f: Factors,
        _ c: Update,
        momentum: Bool,
        decays: Bool
    ) -> Double {
        let gradientScale = V(repeating: c.gradientScale)
        let stepSize = V(repeating: c.stepSize)
        let beta1 = V(repeating: c.beta1)
        let oneMinusBeta1 = V(repeating: c.oneMinusBeta1)
        let decay = V(repeating: c.decay)
        let body = f.columns & ~7
        var cursor = f.columnFactorCursor(from: rows.lowerBound)
        var sum = 0.0
        for row in rows {
            let r = b.offset(by: row * f.columns)
            let g0 = UnsafeRawPointer(r.gradient)
            let p0 = UnsafeMutableRawPointer(r.parameter)
            // Only dereferenced with momentum (then it is m).
            let m0 = UnsafeMutableRawPointer(r.expAvg ?? r.parameter)
            let columnFactors = cursor.factors
            cursor.advance()
            let f0 = UnsafeRawPointer(columnFactors)
            let rowFactor = f.rowFactors[row]
            let rowLanes = V(repeating: rowFactor)
            var lanes = D()
            var offset = 0
            while offset < body * 4 {
                let x = g0.loadUnaligned(fromByteOffset: offset, as: V.self) * gradientScale
                var u = ((rowLanes * f0.loadUnaligned(fromByteOffset: offset, as: V.self)) * x) * stepSize
                if momentum {
                    u = m0.loadUnaligned(fromByteOffset: offset, as: V.self) * beta1 + oneMinusBeta1 * u
                    m0.storeBytes(of: u, toByteOffset: offset, as: V.self)
                }
                let old = p0.loadUnaligned(fromByteOffset: offset, as: V.self)
                var p = old
                if decays { p = p + decay * p }
                p = p - u
                p0.storeBytes(of: p, toByteOffset: offset, as: V.self)
                let delta = widen(p - old)
                lanes = lanes + delta * delta
                offset += 32
            }
            var rowSum = total(lanes, body: body)
            var j = body
            while j < f.columns {
                let u = (rowFactor * columnFactors[j]) * (r.gradient[j] * c.gradientScale)
                rowSum += apply(r, j, preconditioned: u, c)
                j += 1
            }
            sum += rowSum
        }
        return sum
    }

    /// The plain reference for ``simdApplyDiagonal(_:_:count:_:)``.
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

    /// Applies the update to an unfactored range, U = stepSize·(s·g)/√V. Returns ‖Δθ‖² in Double.
    static func simdApplyDiagonal(_ b: Buffers, _ v: UnsafePointer<Float>, count: Int, _ c: Update) -> Double {
        let lanesC = UpdateLanes(c)
        let g0 = UnsafeRawPointer(b.gradient)
        let v0 = UnsafeRawPointer(v)
        var lanes = D()
        var i = 0
        while i + 8 <= count {
            let offset = i * 4
            let x = g0.loadUnaligned(fromByteOffset: offset, as: V.self) * lanesC.gradientScale
            let u = x / squareRoot(v0.loadUnaligned(fromByteOffset: offset, as: V.self))
            lanes = lanes + apply(b, byteOffset: offset, preconditioned: u, lanesC)
            i += 8
        }
        var sum = total(lanes)
        while i < count {
            sum += apply(b, i, preconditioned: b.gradient[i] * c.gradientScale / v[i].squareRoot(), c)
            i += 1
        }
        return sum
    }
}
