import CVectorMath

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
/// scalar loops and the vector ones (C, every ``KernelVariant``) give bit-identical state, parameters
/// and sums (neither contracts to FMA, and a Float squared is exact in Double).
enum AdafactorKernel {
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

    /// The plain reference for ``simdRowStatistics(_:rows:columns:_:columnSums:variant:)``.
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
    /// (s·g[row, j])² added into `columnSums[j]` when given, all in Double: `optimizerd_adafactor_row_statistics`
    /// in C (`Sources/CVectorMath/adafactor_kernel.c`), compiled for every ``KernelVariant``.
    ///
    /// Rows are taken four at a time: each keeps its own lanes (four independent addition chains), and a
    /// column's sum is loaded once, given the four rows' squares in row order and stored once, which is
    /// the same sequence of additions as one row after the other.
    static func simdRowStatistics(
        _ g: UnsafePointer<Float>,
        rows: Range<Int>,
        columns: Int,
        _ s: RowStatistics,
        columnSums: UnsafeMutablePointer<Double>?,
        variant: KernelVariant = .active
    ) {
        var statistics = optimizerd_adafactor_row_statistics(
            rows: s.rows, beta2: s.beta2, eps1: s.eps1, gradient_scale: s.gradientScale
        )
        optimizerd_adafactor_row_statistics(
            variant.code, g, rows.lowerBound, rows.upperBound, columns, &statistics, columnSums
        )
    }

    /// (s·g)² in Double (exact).
    @inline(__always)
    static func squared(_ g: Float, _ scale: Float) -> Double {
        let x = Double(g * scale)
        return x * x
    }

    // MARK: V update and Σ U² (unfactored pass 1)

    /// One element of ``simdSecondMoment(_:_:count:_:variant:)``: updates V[i] and returns U[i]².
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

    /// The plain reference for ``simdSecondMoment(_:_:count:_:variant:)``.
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

    /// Updates V ← β̂2·V + (1−β̂2)·((s·g)² + ε1) and returns Σ (s·g/√V)² in Double
    /// (`optimizerd_adafactor_second_moment` in C).
    static func simdSecondMoment(
        _ g: UnsafePointer<Float>,
        _ v: UnsafeMutablePointer<Float>,
        count: Int,
        _ c: SecondMoment,
        variant: KernelVariant = .active
    ) -> Double {
        var coefficients = optimizerd_adafactor_second_moment(
            beta2: c.beta2, one_minus_beta2: c.oneMinusBeta2, eps1: c.eps1, gradient_scale: c.gradientScale
        )
        return optimizerd_adafactor_second_moment(variant.code, g, v, count, &coefficients)
    }

    // MARK: Σ U² (factored pass 2)

    /// One element of U² for a factored row: ((rowFactor·columnFactor)·(s·g))².
    @inline(__always)
    static func updateSquare(_ g: Float, scale: Float, rowFactor: Float, columnFactor: Float) -> Double {
        let u = Double((rowFactor * columnFactor) * (g * scale))
        return u * u
    }

    /// The plain reference for ``simdUpdateSquares(_:rows:_:scale:variant:)``.
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

    /// Σ U² over `rows` of a factored tensor, U = (rowFactor·columnFactor)·(s·g), in Double
    /// (`optimizerd_adafactor_update_squares` in C).
    ///
    /// Rows are taken two at a time, each with its own lanes (two independent addition chains), and
    /// their sums are added in row order, as one row after the other.
    static func simdUpdateSquares(
        _ g: UnsafePointer<Float>, rows: Range<Int>, _ f: Factors, scale: Float, variant: KernelVariant = .active
    ) -> Double {
        var factors = f.c
        return optimizerd_adafactor_update_squares(variant.code, g, rows.lowerBound, rows.upperBound, &factors, scale)
    }
}

extension AdafactorKernel.Factors {
    /// The layout and factors as the C kernels take them.
    var c: optimizerd_adafactor_factors {
        optimizerd_adafactor_factors(rows: rows, columns: columns, row_factors: rowFactors, column_factors: columnFactors)
    }
}

extension AdafactorKernel.RowStatistics {
    /// R[row] ← β̂2·R[row] + (1−β̂2)·(sum·inverseCount + ε1), in Double, rounded once.
    @inline(__always)
    func update(_ row: Int, sum: Double, inverseCount: Double) {
        rows[row] = Float(beta2 * Double(rows[row]) + (1 - beta2) * (sum * inverseCount + eps1))
    }
}
