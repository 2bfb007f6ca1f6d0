import Foundation

/// Adafactor (Shazeer & Stern 2018), following Hugging Face `transformers.optimization.Adafactor`.
///
/// Hyperparameters (HF names and defaults): `lr` (null: the relative step is used), `eps`
/// ((1e-30, 1e-3)), `clip_threshold` (1), `decay_rate` (−0.8), `beta1` (null: no momentum),
/// `weight_decay` (0), `scale_parameter` (true), `relative_step` (true), `warmup_init` (false).
/// `lr` must be null with `relative_step` (the relative step replaces it) and is required without it;
/// `warmup_init` needs `relative_step`. Beyond HF's two checks, values are range-checked (ε ≥ 0,
/// `clip_threshold` > 0, `decay_rate` ≤ 0, `beta1` in [0, 1), `weight_decay` ≥ 0, `lr` ≥ 0).
///
/// State: `step`; for rank ≥ 2 the factored statistics `exp_avg_sq_row` (shape `[..., n]`) and
/// `exp_avg_sq_col` (shape `[..., m]`) over the last two axes, separately for every index of the
/// leading axes; for rank 0 and 1, and for empty tensors, the full `exp_avg_sq`; `exp_avg` when
/// `beta1` is set; and `RMS`, the parameter's RMS before the last step (HF keeps it too).
///
/// The reported learning rate is the relative step ρ (or `lr`), the same for every tensor of a step;
/// the effective step size of a tensor is α = ρ·max(ε2, RMS(θ)) with `scale_parameter`.
struct Adafactor: TensorOptimizer {
    let lr: Double?
    let eps1: Double
    let eps2: Double
    let clipThreshold: Double
    let decayRate: Double
    let beta1: Double?
    let weightDecay: Double
    let scaleParameter: Bool
    let relativeStep: Bool
    let warmupInit: Bool

    init(_ reader: inout HyperparameterReader, terms: Int) throws {
        lr = try reader.optionalDouble("lr", .atLeast(0))
        let eps = try reader.doubles("eps", default: [1e-30, 1e-3], [.atLeast(0), .atLeast(0)])
        eps1 = eps[0]
        eps2 = eps[1]
        clipThreshold = try reader.double("clip_threshold", default: 1, .greaterThan(0))
        // HF does not check decay_rate; a positive one makes β̂2 = 1 − t^decay_rate negative.
        decayRate = try reader.double("decay_rate", default: -0.8, ValueRange("≤ 0") { $0 <= 0 })
        beta1 = try reader.optionalDouble("beta1", .halfOpen(0, 1))
        weightDecay = try reader.double("weight_decay", default: 0, .atLeast(0))
        scaleParameter = try reader.bool("scale_parameter", default: true)
        relativeStep = try reader.bool("relative_step", default: true)
        warmupInit = try reader.bool("warmup_init", default: false)
        if relativeStep, let lr {
            throw OptimizerError.invalidHyperparameter(
                field: reader.fieldPrefix + "lr",
                "cannot be combined with relative_step = true (got lr \(lr)); "
                    + "set relative_step to false to use a manual lr"
            )
        }
        if !relativeStep, lr == nil {
            throw OptimizerError.invalidHyperparameter(
                field: reader.fieldPrefix + "lr",
                "is required (a number ≥ 0) when relative_step is false"
            )
        }
        if warmupInit, !relativeStep {
            throw OptimizerError.invalidHyperparameter(
                field: reader.fieldPrefix + "warmup_init",
                "warmup_init = true requires relative_step = true"
            )
        }
    }

    /// ρ at (1-based) step `t`: min(warmup_init ? 1e-6·t : 1e-2, 1/√t) with `relative_step`, else `lr`.
    func relativeStepSize(step t: Double) -> Double {
        guard relativeStep else { return lr! }
        return min(warmupInit ? 1e-6 * t : 1e-2, 1 / t.squareRoot())
    }

    /// `exp_avg` with `beta1`; the factored statistics for rank ≥ 2 (see ``step(_:state:)``), else
    /// the full `exp_avg_sq`.
    func stateElements(for shape: TensorShape, terms: Int) -> Int {
        let dimensions = shape.dimensions
        let count = shape.elementCount
        let momentum = beta1 == nil ? 0 : count
        guard dimensions.count >= 2, count > 0 else { return momentum + count }
        let rows = dimensions.dropLast().reduce(1, *)
        let columns = dimensions.dropLast(2).reduce(1, *) * dimensions[dimensions.count - 1]
        return momentum + rows + columns
    }

    func step(_ input: TensorStepInput, state: StateSlots) -> TensorStepResult {
        let parameter = input.parameter
        let count = parameter.count
        let dimensions = parameter.shape.dimensions
        let t = (state.scalar("step") ?? 0) + 1
        state.setScalar("step", t)
        let expAvg = beta1 == nil ? nil : state.tensor("exp_avg", shape: parameter.shape)
        // An empty tensor has nothing to update, and factors sized by its other dimensions could be
        // huge ([0, 10^12] would want 10^12 column statistics), so it keeps an empty unfactored moment.
        let factored = dimensions.count >= 2 && count > 0
        var rowStatistics: TensorBuffer?
        var columnStatistics: TensorBuffer?
        var secondMoment: TensorBuffer?
        if factored {
            rowStatistics = state.tensor(
                "exp_avg_sq_row",
                shape: TensorShape(Array(dimensions.dropLast()))
            )
            columnStatistics = state.tensor(
                "exp_avg_sq_col",
                shape: TensorShape(Array(dimensions.dropLast(2)) + [dimensions[dimensions.count - 1]])
            )
        } else {
            secondMoment = state.tensor("exp_avg_sq", shape: parameter.shape)
        }
        let rms =
            count == 0
            ? 0
            : (Reduction.sumOfSquares(parameter.readOnly, parallelism: input.parallelism) / Double(count))
                .squareRoot()
        state.setScalar("RMS", rms)

        let rho = relativeStepSize(step: t)
        let alpha = scaleParameter ? rho * max(eps2, rms) : rho
        let beta2 = 1 - pow(t, decayRate)
        guard count > 0 else { return TensorStepResult(updateSquaredNorm: 0, learningRate: rho) }

        let scale = input.gradientScales[0]
        let buffers = AdafactorKernel.Buffers(
            parameter: parameter.pointer,
            gradient: input.gradientPointer(),
            expAvg: expAvg?.pointer
        )
        /// The apply constants once ΣU² is known.
        func update(sumOfSquares: Double) -> AdafactorKernel.Update {
            let clip = max(1, (sumOfSquares / Double(count)).squareRoot() / clipThreshold)
            return AdafactorKernel.Update(
                gradientScale: scale,
                stepSize: Float(alpha / clip),
                beta1: Float(beta1 ?? 0),
                oneMinusBeta1: Float(1 - (beta1 ?? 0)),
                decay: weightDecay == 0 ? 0 : Float(-weightDecay * alpha)
            )
        }

        let updateSquaredNorm: Double
        if let rowStatistics, let columnStatistics {
            let shape = FactoredShape(dimensions)
            let statistics = FactoredStatistics(
                rows: rowStatistics.pointer,
                columns: columnStatistics.pointer,
                shape: shape,
                beta2: beta2,
                eps1: eps1
            )
            // The factors are sized like R and C (HF's own factored state): sublinear for matrices, never a
            // temporary copy of U.
            updateSquaredNorm = withUnsafeTemporaryAllocation(
                of: Float.self,
                capacity: shape.slices * (shape.rows + shape.columns)
            ) { scratch in
                let rowFactors = scratch.baseAddress!
                let columnFactors = rowFactors + shape.slices * shape.rows
                statistics.accumulate(buffers.gradient, scale: scale, parallelism: input.parallelism)
                statistics.factors(rowFactors: rowFactors, columnFactors: columnFactors, parallelism: input.parallelism)
                let factors = AdafactorKernel.Factors(
                    rows: shape.rows,
                    columns: shape.columns,
                    rowFactors: rowFactors,
                    columnFactors: columnFactors
                )
                let sumOfSquares = Self.sumOverRowBlocks(shape, parallelism: input.parallelism) { rows in
                    AdafactorKernel.simdUpdateSquares(buffers.gradient, rows: rows, factors, scale: scale)
                }
                let coefficients = update(sumOfSquares: sumOfSquares)
                return Self.sumOverRowBlocks(shape, parallelism: input.parallelism) { rows in
                    AdafactorKernel.simdApply(buffers, rows: rows, factors, coefficients)
                }
            }
        } else {
            let v = secondMoment!.pointer
            let moment = AdafactorKernel.SecondMoment(
                beta2: Float(beta2),
                oneMinusBeta2: Float(1 - beta2),
                eps1: Float(eps1),
                gradientScale: scale
            )
            let sumOfSquares = Chunking.sum(count: count, parallelism: input.parallelism) { range in
                AdafactorKernel.simdSecondMoment(
                    buffers.gradient + range.lowerBound,
                    v + range.lowerBound,
                    count: range.count,
                    moment
                )
            }
            let coefficients = update(sumOfSquares: sumOfSquares)
            updateSquaredNorm = Chunking.sum(count: count, parallelism: input.parallelism) { range in
                AdafactorKernel.simdApplyDiagonal(
                    buffers.offset(by: range.lowerBound),
                    v + range.lowerBound,
                    count: range.count,
                    coefficients
                )
            }
        }
        return TensorStepResult(updateSquaredNorm: updateSquaredNorm, learningRate: rho)
    }
}

// MARK: Parallel passes

extension Adafactor {
    /// Runs `body` for every block `0..<blocks` (in parallel when allowed) and returns the sum of the
    /// results, added in block order.
    ///
    /// `Chunking` cuts `0..<count` into ranges of exactly `Chunking.grain` elements, so with
    /// `count = blocks · grain` every range is one block: the partition depends on the shape only, never
    /// on the thread count, and results are bit-identical for any number of threads.
    static func sumOverBlocks(_ blocks: Int, parallelism: Parallelism, _ body: (Int) -> Double) -> Double {
        Chunking.sum(count: blocks * Chunking.grain, parallelism: parallelism) { range in
            body(range.lowerBound / Chunking.grain)
        }
    }

    /// Runs `body` over consecutive ranges of the rows of a factored tensor (rows numbered across slices),
    /// each of about `Chunking.grain` elements, and returns the sum of its results in row order.
    static func sumOverRowBlocks(
        _ shape: FactoredShape,
        parallelism: Parallelism,
        _ body: (Range<Int>) -> Double
    ) -> Double {
        let rowsPerBlock = max(1, Chunking.grain / shape.columns)
        let totalRows = shape.slices * shape.rows
        let blocks = (totalRows + rowsPerBlock - 1) / rowsPerBlock
        return sumOverBlocks(blocks, parallelism: parallelism) { block in
            body(block * rowsPerBlock..<min(totalRows, (block + 1) * rowsPerBlock))
        }
    }
}

// MARK: Factored statistics

extension Adafactor {
    /// A factored tensor seen as `slices` matrices of `rows` × `columns`: its last two axes, once for
    /// every index of the leading axes (1 slice for rank 2).
    struct FactoredShape {
        let slices: Int
        let rows: Int
        let columns: Int

        /// The shape of a rank ≥ 2 tensor.
        init(_ dimensions: [Int]) {
            precondition(dimensions.count >= 2)
            columns = dimensions[dimensions.count - 1]
            rows = dimensions[dimensions.count - 2]
            slices = dimensions.dropLast(2).reduce(1, *)
        }
    }

    /// The factored second-moment statistics R (`exp_avg_sq_row`) and C (`exp_avg_sq_col`) of one tensor.
    struct FactoredStatistics {
        /// R, `slices · rows` floats.
        let rows: UnsafeMutablePointer<Float>
        /// C, `slices · columns` floats.
        let columns: UnsafeMutablePointer<Float>
        let shape: FactoredShape
        /// β̂2 = 1 − t^decay_rate.
        let beta2: Double
        let eps1: Double
        /// 1 / rows (means are sums times this).
        var inverseRows: Double { 1 / Double(shape.rows) }

        /// At most this many row groups share a large slice's column sums (each group keeps its own
        /// partial column sums, added in group order): it bounds the scratch to 16 column-sum vectors.
        static let maxRowGroups = 16

        /// R ← β̂2·R + (1−β̂2)·mean(g² + ε1 over a row), C likewise over a column: one pass over g, row and
        /// column sums accumulated in Double.
        func accumulate(_ gradient: UnsafePointer<Float>, scale: Float, parallelism: Parallelism) {
            let sliceSize = shape.rows * shape.columns
            let rowStatistics = AdafactorKernel.RowStatistics(
                rows: rows,
                beta2: beta2,
                eps1: eps1,
                gradientScale: scale
            )
            if sliceSize <= Chunking.grain {
                // Small slices (convolution kernels): whole slices per block.
                let slicesPerBlock = max(1, Chunking.grain / sliceSize)
                let blocks = (shape.slices + slicesPerBlock - 1) / slicesPerBlock
                _ = Adafactor.sumOverBlocks(blocks, parallelism: parallelism) { block in
                    let slices = block * slicesPerBlock..<min(shape.slices, (block + 1) * slicesPerBlock)
                    if shape.columns < 8 {
                        // Short rows: column sums in a register, reading the (cached) slice again; the same
                        // additions in the same order as accumulating them in memory.
                        for slice in slices {
                            let rowRange = slice * shape.rows..<(slice + 1) * shape.rows
                            AdafactorKernel.simdRowStatistics(
                                gradient,
                                rows: rowRange,
                                columns: shape.columns,
                                rowStatistics,
                                columnSums: nil
                            )
                            for column in 0..<shape.columns {
                                var sum = 0.0
                                var x = gradient + rowRange.lowerBound * shape.columns + column
                                for _ in rowRange {
                                    sum += AdafactorKernel.squared(x.pointee, scale)
                                    x += shape.columns
                                }
                                updateColumn(slice * shape.columns + column, sum: sum)
                            }
                        }
                        return 0
                    }
                    withUnsafeTemporaryAllocation(of: Double.self, capacity: shape.columns) { sums in
                        let sums = sums.baseAddress!
                        for slice in slices {
                            sums.initialize(repeating: 0, count: shape.columns)
                            AdafactorKernel.simdRowStatistics(
                                gradient,
                                rows: slice * shape.rows..<(slice + 1) * shape.rows,
                                columns: shape.columns,
                                rowStatistics,
                                columnSums: sums
                            )
                            finishColumns(slice: slice, partials: sums, groups: 1)
                        }
                    }
                    return 0
                }
                return
            }
            // Large slices: a slice's rows in a fixed number of groups, each with partial column sums.
            let groups = max(1, min(shape.rows, Self.maxRowGroups, (sliceSize + Chunking.grain - 1) / Chunking.grain))
            withUnsafeTemporaryAllocation(of: Double.self, capacity: groups * shape.columns) { partials in
                let base = partials.baseAddress!
                for slice in 0..<shape.slices {
                    _ = Adafactor.sumOverBlocks(groups, parallelism: parallelism) { group in
                        let sums = base + group * shape.columns
                        sums.initialize(repeating: 0, count: shape.columns)
                        let first = slice * shape.rows
                        AdafactorKernel.simdRowStatistics(
                            gradient,
                            rows: first + group * shape.rows / groups..<first + (group + 1) * shape.rows / groups,
                            columns: shape.columns,
                            rowStatistics,
                            columnSums: sums
                        )
                        return 0
                    }
                    finishColumns(slice: slice, partials: base, groups: groups)
                }
            }
        }

        /// Updates C for `slice` from `groups` partial column sums stored one after the other.
        private func finishColumns(slice: Int, partials: UnsafePointer<Double>, groups: Int) {
            let m = shape.columns
            for column in 0..<m {
                var sum = partials[column]
                for group in 1..<groups { sum += partials[group * m + column] }
                updateColumn(slice * m + column, sum: sum)
            }
        }

        /// C[index] ← β̂2·C + (1−β̂2)·(sum/rows + ε1), in Double, rounded once.
        @inline(__always)
        private func updateColumn(_ index: Int, sum: Double) {
            columns[index] = Float(beta2 * Double(columns[index]) + (1 - beta2) * (sum * inverseRows + eps1))
        }

        /// The factors of U = g·(R_i / mean R)^−½·C_j^−½, computed in Double and rounded once: one per row
        /// (`slices · rows`) and one per column (`slices · columns`).
        func factors(
            rowFactors: UnsafeMutablePointer<Float>,
            columnFactors: UnsafeMutablePointer<Float>,
            parallelism: Parallelism
        ) {
            let n = shape.rows
            let m = shape.columns
            let inverseRows = inverseRows
            let slicesPerBlock = max(1, Chunking.grain / (n + m))
            let blocks = (shape.slices + slicesPerBlock - 1) / slicesPerBlock
            _ = Adafactor.sumOverBlocks(blocks, parallelism: parallelism) { block in
                let slices = block * slicesPerBlock..<min(shape.slices, (block + 1) * slicesPerBlock)
                for slice in slices {
                    var sum = 0.0
                    for row in slice * n..<(slice + 1) * n { sum += Double(rows[row]) }
                    let mean = sum * inverseRows
                    for row in slice * n..<(slice + 1) * n {
                        rowFactors[row] = Float((mean / Double(rows[row])).squareRoot())
                    }
                }
                // One flat loop over the block's columns (contiguous across slices), 8 at a time: the same
                // IEEE operations per lane as the scalar tail.
                var column = slices.lowerBound * m
                let end = slices.upperBound * m
                while column + 8 <= end {
                    let c = widen(UnsafeRawPointer(columns + column).loadUnaligned(as: SIMD8<Float>.self))
                    let factors = narrow(1 / squareRoot(c))
                    UnsafeMutableRawPointer(columnFactors + column).storeBytes(of: factors, as: SIMD8<Float>.self)
                    column += 8
                }
                while column < end {
                    columnFactors[column] = Float(1 / Double(columns[column]).squareRoot())
                    column += 1
                }
                return 0
            }
        }
    }
}
