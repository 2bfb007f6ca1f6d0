/// Adafactor's element loops (Hugging Face `transformers.optimization.Adafactor` semantics).
///
/// A step never stores the update U: every pass recomputes it from the gradient and the second-moment
/// statistics. Unfactored tensors (rank 0 and 1) take two passes over g: one updates V and sums U²,
/// one applies. Factored tensors take three: row and column sums of g² (into R and C), ΣU², apply.
/// Factored loops work on a range of rows of the tensor seen as `slices · rows` rows of `columns`
/// elements (row r belongs to slice r / rows), so short rows (convolution kernels) cost no call each.
///
/// Every reduction is accumulated in Double: within a row (or a range, unfactored) in 8 lanes (element i
/// of the 8-aligned body goes to lane i mod 8), the lanes added in order 0…7, then the tail elements one
/// by one; row results are added in row order. The scalar reference loops do exactly the same, so the
/// scalar and SIMD versions give bit-identical state, parameters and sums (Swift never contracts to FMA
/// on its own, and a Float squared is exact in Double).
enum AdafactorKernel {
    typealias V = SIMD8<Float>
    typealias D = SIMD8<Double>

    // MARK: Coefficients and buffers

    /// The factored statistics R ← β̂2·R + (1−β̂2)·(mean of (s·g)² over the row + ε1), in Double.
    struct RowStatistics {
        /// R, one float per row.
        var rows: UnsafeMutablePointer<Float>
        /// β̂2 = 1 − t^decay_rate.
        var beta2: Double
        var eps1: Double
        /// Gradient multiplier (unscale and clip, folded).
        var gradientScale: Float
    }

    /// Constants of the unfactored second-moment update V ← β̂2·V + (1−β̂2)·(g² + ε1), in Float.
    struct SecondMoment {
        /// β̂2 = 1 − t^decay_rate.
        var beta2: Float
        var oneMinusBeta2: Float
        /// ε1, added to g² before averaging.
        var eps1: Float
        /// Gradient multiplier (unscale and clip, folded).
        var gradientScale: Float
    }

    /// Constants of the apply pass, computed in Double and rounded once to Float.
    struct Update {
        /// Gradient multiplier (unscale and clip, folded).
        var gradientScale: Float
        /// α / max(1, RMS(U)/d): the update clipping and the step size in one factor.
        var stepSize: Float
        /// β1 (used only when `Buffers.expAvg` is given).
        var beta1: Float
        var oneMinusBeta1: Float
        /// −wd·α, the decoupled weight decay coefficient (0: no decay).
        var decay: Float
    }

    /// A factored tensor's layout and its factors: U[r, j] = (rowFactors[r]·columnFactors[slice·columns + j])·g.
    struct Factors {
        /// Rows per slice (the second-to-last axis).
        var rows: Int
        /// Elements per row (the last axis).
        var columns: Int
        /// (R_r / mean R of its slice)^−½, one per row.
        var rowFactors: UnsafePointer<Float>
        /// C^−½, `columns` per slice.
        var columnFactors: UnsafePointer<Float>

        /// The column factors of each row's slice, for rows visited in order from `firstRow` (one integer
        /// division per call instead of one per row: rows of 1×1 convolution kernels are one element long).
        @inline(__always)
        func columnFactorCursor(from firstRow: Int) -> ColumnFactorCursor {
            let slice = firstRow / rows
            return ColumnFactorCursor(
                factors: columnFactors + slice * columns,
                rowInSlice: firstRow - slice * rows,
                rows: rows,
                columns: columns
            )
        }
    }

    /// See ``Factors/columnFactorCursor(from:)``.
    struct ColumnFactorCursor {
        /// The column factors of the current row's slice.
        var factors: UnsafePointer<Float>
        var rowInSlice: Int
        let rows: Int
        let columns: Int

        /// Moves to the next row.
        @inline(__always)
        mutating func advance() {
            rowInSlice += 1
            if rowInSlice == rows {
                rowInSlice = 0
                factors += columns
            }
        }
    }

    /// The tensors the apply pass reads and writes.
    struct Buffers {
        var parameter: UnsafeMutablePointer<Float>
        var gradient: UnsafePointer<Float>
        /// `exp_avg`, when beta1 is set.
        var expAvg: UnsafeMutablePointer<Float>?

        func offset(by n: Int) -> Self {
            Self(parameter: parameter + n, gradient: gradient + n, expAvg: expAvg.map { $0 + n })
        }
    }

    /// The lanes of a Double accumulator added in order 0…7.
    @inline(__always)
    static func total(_ lanes: D) -> Double {
        var sum = lanes[0]
        for lane in 1..<8 { sum += lanes[lane] }
        return sum
    }

    /// ``total(_:)``, or 0 without touching the lanes when no 8-lane group was added (`body` = 0): the same
    /// value, since the lanes are then all +0, and cheaper for short rows.
    @inline(__always)
    static func total(_ lanes: D, body: Int) -> Double { body == 0 ? 0 : total(lanes) }

    // MARK: Row statistics (factored pass 1)

    /// The plain reference for ``simdRowStatistics(_:rows:columns:_:columnSums:)``.
    static func scalarRowStatistics(
        _ g: UnsafePointer<Float>,
        rows: Range<Int>,
        columns: Int,
        _ s: RowStatistics,
        columnSums: UnsafeMutablePointer<Double>?
    ) {
        let body = columns & ~7
        let inverseColumns = 1 / Double(columns)
        for row in rows {
            let x = g + row * columns
            var lanes = D()
            for j in 0..<body {
                let square = squared(x[j], s.gradientScale)
                columnSums?[j] += square
                lanes[j & 7] += square
            }
            var sum = total(lanes, body: body)
            for j in body..<columns {
                let square = squared(x[j], s.gradientScale)
                columnSums?[j] += square
                sum += square
            }
            s.update(row, sum: sum, inverseCount: inverseColumns)
        }
    }

    /// For each row in `rows` (all of one slice): R[row] ← β̂2·R + (1−β̂2)·(Σ_j (s·g)²/columns + ε1), and
    /// (s·g[row, j])² added into `columnSums[j]` when given, all in Double.
    ///
    /// Rows are taken four at a time: each keeps its own lanes (four independent addition chains), and a
    /// column's sum is loaded once, given the four rows' squares in row order and stored once, which is
    /// the same sequence of additions as one row after the other.
    static func simdRowStatistics(
        _ g: UnsafePointer<Float>,
        rows: Range<Int>,
        columns: Int,
        _ s: RowStatistics,
        columnSums: UnsafeMutablePointer<Double>?
    ) {
        if let columnSums {
            rowStatisticsLoop(g, rows: rows, columns: columns, s, columnSums: columnSums, hasColumns: true)
        } else {
            rowStatisticsLoop(g, rows: rows, columns: columns, s, columnSums: UnsafeMutablePointer(bitPattern: 8)!, hasColumns: false)
        }
    }

    /// ``simdRowStatistics(_:rows:columns:_:columnSums:)`` with the column sums on or off (a constant at
    /// each call site; `columnSums` is not touched when off).
    @inline(__always)
    private static func rowStatisticsLoop(
        _ g: UnsafePointer<Float>,
        rows: Range<Int>,
        columns: Int,
        _ s: RowStatistics,
        columnSums: UnsafeMutablePointer<Double>,
        hasColumns: Bool
    ) {
        let scale = V(repeating: s.gradientScale)
        let c0 = UnsafeMutableRawPointer(columnSums)
        let body = columns & ~7
        let inverseColumns = 1 / Double(columns)
        /// The tail columns of one row, after its body.
        @inline(__always)
        func finish(_ row: Int, _ lanes: D) {
            let x = g + row * columns
            var sum = total(lanes, body: body)
            var j = body
            while j < columns {
                let square = squared(x[j], s.gradientScale)
                if hasColumns { columnSums[j] += square }
                sum += square
                j += 1
            }
            s.update(row, sum: sum, inverseCount: inverseColumns)
        }
        var row = rows.lowerBound
        while row + 4 <= rows.upperBound {
            let x0 = UnsafeRawPointer(g + row * columns)
            let x1 = x0 + 4 * columns
            let x2 = x1 + 4 * columns
            let x3 = x2 + 4 * columns
            var lanes0 = D()
            var lanes1 = D()
            var lanes2 = D()
            var lanes3 = D()
            var j = 0
            while j < body {
                let a = widen(x0.loadUnaligned(fromByteOffset: j * 4, as: V.self) * scale)
                let b = widen(x1.loadUnaligned(fromByteOffset: j * 4, as: V.self) * scale)
                let c = widen(x2.loadUnaligned(fromByteOffset: j * 4, as: V.self) * scale)
                let d = widen(x3.loadUnaligned(fromByteOffset: j * 4, as: V.self) * scale)
                let a2 = a * a
                let b2 = b * b
                let c2 = c * c
                let d2 = d * d
                if hasColumns {
                    let sums = c0.loadUnaligned(fromByteOffset: j * 8, as: D.self) + a2 + b2 + c2 + d2
                    c0.storeBytes(of: sums, toByteOffset: j * 8, as: D.self)
                }
                lanes0 = lanes0 + a2
                lanes1 = lanes1 + b2
                lanes2 = lanes2 + c2
                lanes3 = lanes3 + d2
                j += 8
            }
            finish(row, lanes0)
            finish(row + 1, lanes1)
            finish(row + 2, lanes2)
            finish(row + 3, lanes3)
            row += 4
        }
        while row < rows.upperBound {
            let x0 = UnsafeRawPointer(g + row * columns)
            var lanes = D()
            var j = 0
            while j < body {
                let a = widen(x0.loadUnaligned(fromByteOffset: j * 4, as: V.self) * scale)
                let a2 = a * a
                if hasColumns {
                    let sums = c0.loadUnaligned(fromByteOffset: j * 8, as: D.self) + a2
                    c0.storeBytes(of: sums, toByteOffset: j * 8, as: D.self)
                }
                lanes = lanes + a2
                j += 8
            }
            finish(row, lanes)
            row += 1
        }
    }

    /// (s·g)² in Double (exact).
    @inline(__always)
    static func squared(_ g: Float, _ scale: Float) -> Double {
        let x = Double(g * scale)
        return x * x
    }

    // MARK: V update and Σ U² (unfactored pass 1)

    /// One element of ``simdSecondMoment(_:_:count:_:)``: updates V[i] and returns U[i]².
    @inline(__always)
    static func secondMoment(
        _ g: UnsafePointer<Float>, _ v: UnsafeMutablePointer<Float>, _ i: Int, _ c: SecondMoment
    )
        -> Double
    {
        let x = g[i] * c.gradientScale
        let updated = v[i] * c.beta2 + c.oneMinusBeta2 * (x * x + c.eps1)
        v[i] = updated
        let u = Double(x / updated.squareRoot())
        return u * u
    }

    /// The plain reference for ``simdSecondMoment(_:_:count:_:)``.
    static func scalarSecondMoment(
        _ g: UnsafePointer<Float>,
        _ v: UnsafeMutablePointer<Float>,
        count: Int,
        _ c: SecondMoment
    ) -> Double {
        let body = count & ~7
        var lanes = D()
        for i in 0..<body { lanes[i & 7] += secondMoment(g, v, i, c) }
        var sum = total(lanes)
        for i in body..<count { sum += secondMoment(g, v, i, c) }
        return sum
    }

    /// Updates V ← β̂2·V + (1−β̂2)·((s·g)² + ε1) and returns Σ (s·g/√V)² in Double.
    static func simdSecondMoment(
        _ g: UnsafePointer<Float>,
        _ v: UnsafeMutablePointer<Float>,
        count: Int,
        _ c: SecondMoment
    ) -> Double {
        let scale = V(repeating: c.gradientScale)
        let beta2 = V(repeating: c.beta2)
        let oneMinusBeta2 = V(repeating: c.oneMinusBeta2)
        let eps1 = V(repeating: c.eps1)
        let g0 = UnsafeRawPointer(g)
        let v0 = UnsafeMutableRawPointer(v)
        var lanes = D()
        var i = 0
        while i + 8 <= count {
            let x = g0.loadUnaligned(fromByteOffset: i * 4, as: V.self) * scale
            let updated = v0.loadUnaligned(fromByteOffset: i * 4, as: V.self) * beta2 + oneMinusBeta2 * (x * x + eps1)
            v0.storeBytes(of: updated, toByteOffset: i * 4, as: V.self)
            let u = widen(x / squareRoot(updated))
            lanes = lanes + u * u
            i += 8
        }
        var sum = total(lanes)
        while i < count {
            sum += secondMoment(g, v, i, c)
            i += 1
        }
        return sum
    }

    // MARK: Σ U² (factored pass 2)

    /// One element of U² for a factored row: ((rowFactor·columnFactor)·(s·g))².
    @inline(__always)
    static func updateSquare(_ g: Float, scale: Float, rowFactor: Float, columnFactor: Float) -> Double {
        let u = Double((rowFactor * columnFactor) * (g * scale))
        return u * u
    }

    /// The plain reference for ``simdUpdateSquares(_:rows:_:scale:)``.
    static func scalarUpdateSquares(_ g: UnsafePointer<Float>, rows: Range<Int>, _ f: Factors, scale: Float) -> Double {
        let body = f.columns & ~7
        var cursor = f.columnFactorCursor(from: rows.lowerBound)
        var sum = 0.0
        for row in rows {
            let x = g + row * f.columns
            let columnFactors = cursor.factors
            cursor.advance()
            var lanes = D()
            for j in 0..<body {
                lanes[j & 7] += updateSquare(
                    x[j],
                    scale: scale,
                    rowFactor: f.rowFactors[row],
                    columnFactor: columnFactors[j]
                )
            }
            var rowSum = total(lanes, body: body)
            for j in body..<f.columns {
                rowSum += updateSquare(x[j], scale: scale, rowFactor: f.rowFactors[row], columnFactor: columnFactors[j])
            }
            sum += rowSum
        }
        return sum
    }

    /// Σ U² over `rows` of a factored tensor, U = (rowFactor·columnFactor)·(s·g), in Double.
    ///
    /// Rows are taken two at a time, each with its own lanes (two independent addition chains), and
    /// their sums are added in row order, as one row after the other.
    static func simdUpdateSquares(_ g: UnsafePointer<Float>, rows: Range<Int>, _ f: Factors, scale: Float) -> Double {
        let s = V(repeating: scale)
        let body = f.columns & ~7
        var cursor = f.columnFactorCursor(from: rows.lowerBound)
        /// The tail of one row, added to its body's lanes.
        @inline(__always)
        func rowSum(_ row: Int, _ lanes: D, _ columnFactors: UnsafePointer<Float>) -> Double {
            let x = g + row * f.columns
            let rowFactor = f.rowFactors[row]
            var rowSum = total(lanes, body: body)
            var j = body
            while j < f.columns {
                rowSum += updateSquare(x[j], scale: scale, rowFactor: rowFactor, columnFactor: columnFactors[j])
                j += 1
            }
            return rowSum
        }
        var sum = 0.0
        var row = rows.lowerBound
        while row + 2 <= rows.upperBound {
            let factors0 = cursor.factors
            cursor.advance()
            let factors1 = cursor.factors
            cursor.advance()
            let x0 = UnsafeRawPointer(g + row * f.columns)
            let x1 = x0 + 4 * f.columns
            let f0 = UnsafeRawPointer(factors0)
            let f1 = UnsafeRawPointer(factors1)
            let r0 = V(repeating: f.rowFactors[row])
            let r1 = V(repeating: f.rowFactors[row + 1])
            var lanes0 = D()
            var lanes1 = D()
            var j = 0
            while j < body {
                let u0 = widen((r0 * f0.loadUnaligned(fromByteOffset: j * 4, as: V.self)) * (x0.loadUnaligned(fromByteOffset: j * 4, as: V.self) * s))
                let u1 = widen((r1 * f1.loadUnaligned(fromByteOffset: j * 4, as: V.self)) * (x1.loadUnaligned(fromByteOffset: j * 4, as: V.self) * s))
                lanes0 = lanes0 + u0 * u0
                lanes1 = lanes1 + u1 * u1
                j += 8
            }
            sum += rowSum(row, lanes0, factors0)
            sum += rowSum(row + 1, lanes1, factors1)
            row += 2
        }
        if row < rows.upperBound {
            let factors0 = cursor.factors
            let x0 = UnsafeRawPointer(g + row * f.columns)
            let f0 = UnsafeRawPointer(factors0)
            let r0 = V(repeating: f.rowFactors[row])
            var lanes0 = D()
            var j = 0
            while j < body {
                let u0 = widen((r0 * f0.loadUnaligned(fromByteOffset: j * 4, as: V.self)) * (x0.loadUnaligned(fromByteOffset: j * 4, as: V.self) * s))
                lanes0 = lanes0 + u0 * u0
                j += 8
            }
            sum += rowSum(row, lanes0, factors0)
        }
        return sum
    }
}

extension AdafactorKernel.RowStatistics {
    /// R[row] ← β̂2·R[row] + (1−β̂2)·(sum·inverseCount + ε1), in Double, rounded once.
    @inline(__always)
    func update(_ row: Int, sum: Double, inverseCount: Double) {
        rows[row] = Float(beta2 * Double(rows[row]) + (1 - beta2) * (sum * inverseCount + eps1))
    }
}
