import Testing

@testable import OptimizerKit

/// The vector loops of ``AdafactorKernel`` (every ``KernelVariant`` this CPU runs) against their scalar
/// references: bit-identical results, state and sums on lengths around the 8-lane width (tails, empty,
/// single element = rank 0).
struct AdafactorKernelTests {
    static let lengths = [0, 1, 7, 8, 9, 15, 16, 17, 1003]

    /// Test data from a seeded generator; every fifth gradient is zero (it must give U = 0).
    struct Numbers {
        var random: SeededRandom

        init(state: UInt64) { random = SeededRandom(seed: state) }

        /// `count` values in [−scale, scale], every fifth one zero.
        mutating func values(_ count: Int, scale: Float = 1) -> [Float] {
            random.floats(count, in: -scale...scale).enumerated().map { $0.offset % 5 == 3 ? 0 : $0.element }
        }

        /// `count` positive values in [low, low + width] (second moments, factors).
        mutating func positive(_ count: Int, low: Float, width: Float) -> [Float] {
            random.floats(count, in: low...(low + width))
        }
    }

    static func bits(_ values: [Float]) -> [UInt32] { values.map(\.bitPattern) }

    // MARK: Factored row statistics

    @Test(arguments: lengths)
    func rowStatisticsAndColumnSumsMatchScalarBitForBit(columns: Int) {
        var numbers = Numbers(state: UInt64(columns) + 1)
        let rows = 7
        let g = numbers.values(rows * columns, scale: 3)
        let initialR = numbers.positive(rows + 1, low: 0, width: 2)
        let initialSums = (0..<columns).map { Double($0) * 0.25 }
        for (beta2, withColumns) in [(0.0, true), (0.7, true), (0.7, false)] {
            func run(simd: KernelVariant?) -> ([Float], [Double]) {
                var r = initialR
                var sums = initialSums
                g.withUnsafeBufferPointer { g in
                    r.withUnsafeMutableBufferPointer { r in
                        sums.withUnsafeMutableBufferPointer { sums in
                            let statistics = AdafactorKernel.RowStatistics(
                                rows: r.baseAddress!,
                                beta2: beta2,
                                eps1: 1e-30,
                                gradientScale: 0.75
                            )
                            let gb = g.baseAddress ?? UnsafePointer(bitPattern: 8)!
                            let sb = withColumns ? sums.baseAddress ?? UnsafeMutablePointer(bitPattern: 8)! : nil
                            // Rows 1..<7 only (one group of four rows, then two single rows): row 0 and the extra R entry
                            // must stay untouched.
                            if let variant = simd {
                                AdafactorKernel.simdRowStatistics(
                                    gb,
                                    rows: 1..<rows,
                                    columns: columns,
                                    statistics,
                                    columnSums: sb,
                                    variant: variant
                                )
                            } else {
                                AdafactorKernel.scalarRowStatistics(
                                    gb,
                                    rows: 1..<rows,
                                    columns: columns,
                                    statistics,
                                    columnSums: sb
                                )
                            }
                        }
                    }
                }
                return (r, sums)
            }
            let scalar = run(simd: nil)
            for variant in KernelVariant.supported {
                let simd = run(simd: variant)
                #expect(Self.bits(scalar.0) == Self.bits(simd.0), "\(variant)")
                #expect(scalar.1.map(\.bitPattern) == simd.1.map(\.bitPattern), "\(variant)")
            }
            // Every variant gave the scalar result (above), so what follows holds for each.
            let simd = scalar
            #expect(simd.0[0] == initialR[0] && simd.0[rows] == initialR[rows])
            for row in 1..<rows where columns > 0 {
                let mean =
                    (0..<columns).reduce(0.0) { $0 + AdafactorKernel.squared(g[row * columns + $1], 0.75) }
                    / Double(columns)
                let expect = beta2 * Double(initialR[row]) + (1 - beta2) * (mean + 1e-30)
                #expect(abs(Double(simd.0[row]) - expect) <= 1e-6 * expect)
            }
            for j in 0..<columns {
                let added =
                    !withColumns ? 0 : (1..<rows).reduce(0.0) { $0 + AdafactorKernel.squared(g[$1 * columns + j], 0.75) }
                #expect(abs(simd.1[j] - initialSums[j] - added) <= 1e-12 * max(1, simd.1[j]))
            }
        }
    }

    // MARK: Unfactored second moment

    @Test(arguments: lengths)
    func secondMomentMatchesScalarBitForBit(count: Int) {
        var numbers = Numbers(state: UInt64(count) + 100)
        let g = numbers.values(count, scale: 0.01)
        let v0 = numbers.positive(count, low: 1e-6, width: 1e-4)
        for (beta2, eps1) in [(Float(0), Float(1e-30)), (Float(0.6), Float(1e-30)), (Float(0.9), Float(1e-3))] {
            let c = AdafactorKernel.SecondMoment(beta2: beta2, oneMinusBeta2: 1 - beta2, eps1: eps1, gradientScale: 0.5)
            for variant in KernelVariant.supported {
                var scalarV = v0
                var simdV = v0
                let (scalar, simd) = g.withUnsafeBufferPointer { g in
                    let base = g.baseAddress ?? UnsafePointer(bitPattern: 8)!
                    let scalar = scalarV.withUnsafeMutableBufferPointer { v in
                        AdafactorKernel.scalarSecondMoment(
                            base,
                            v.baseAddress ?? UnsafeMutablePointer(bitPattern: 8)!,
                            count: count,
                            c
                        )
                    }
                    let simd = simdV.withUnsafeMutableBufferPointer { v in
                        AdafactorKernel.simdSecondMoment(
                            base,
                            v.baseAddress ?? UnsafeMutablePointer(bitPattern: 8)!,
                            count: count,
                            c,
                            variant: variant
                        )
                    }
                    return (scalar, simd)
                }
                #expect(scalar.bitPattern == simd.bitPattern, "\(variant)")
                #expect(Self.bits(scalarV) == Self.bits(simdV), "\(variant)")
                #expect(simd.isFinite)
            }
        }
    }

    // MARK: Factored ΣU²

    /// A factored layout of 2 slices × 2 rows × `columns`, with factors, for the row kernels.
    struct FactoredCase {
        var g: [Float]
        var rowFactors: [Float]
        var columnFactors: [Float]
        var columns: Int

        init(columns: Int, seed: UInt64) {
            var numbers = Numbers(state: seed)
            self.columns = columns
            g = numbers.values(4 * columns)
            rowFactors = numbers.positive(4, low: 0.5, width: 2)
            columnFactors = numbers.positive(2 * columns, low: 0.5, width: 20)
        }

        func withFactors<R>(_ body: (UnsafePointer<Float>, AdafactorKernel.Factors) -> R) -> R {
            g.withUnsafeBufferPointer { g in
                rowFactors.withUnsafeBufferPointer { r in
                    columnFactors.withUnsafeBufferPointer { c in
                        body(
                            g.baseAddress ?? UnsafePointer(bitPattern: 8)!,
                            AdafactorKernel.Factors(
                                rows: 2,
                                columns: columns,
                                rowFactors: r.baseAddress!,
                                columnFactors: c.baseAddress ?? UnsafePointer(bitPattern: 8)!
                            )
                        )
                    }
                }
            }
        }
    }

    @Test(arguments: lengths)
    func factoredUpdateSquaresMatchScalarBitForBit(columns: Int) {
        let test = FactoredCase(columns: columns, seed: UInt64(columns) + 200)
        for rows in [0..<4, 1..<3, 3..<4, 0..<3] {
            let scalar = test.withFactors { g, f in AdafactorKernel.scalarUpdateSquares(g, rows: rows, f, scale: 2) }
            for variant in KernelVariant.supported {
                let simd = test.withFactors { g, f in
                    AdafactorKernel.simdUpdateSquares(g, rows: rows, f, scale: 2, variant: variant)
                }
                #expect(scalar.bitPattern == simd.bitPattern, "\(variant), rows \(rows)")
            }
            // Every variant gave the scalar result (above), so what follows holds for each.
            let simd = scalar
            var exact = 0.0
            for row in rows {
                for j in 0..<columns {
                    let u = Double(
                        (test.rowFactors[row] * test.columnFactors[row / 2 * columns + j])
                            * (test.g[row * columns + j] * 2)
                    )
                    exact += u * u
                }
            }
            #expect(abs(simd - exact) <= 1e-12 * max(1, exact))
        }
    }

    // MARK: Apply

    struct ApplyCase: CustomTestStringConvertible, Sendable {
        var count: Int
        var factored: Bool
        var momentum: Bool
        var decay: Bool
        var testDescription: String { "n=\(count) factored=\(factored) momentum=\(momentum) decay=\(decay)" }
    }

    static let applyCases: [ApplyCase] = lengths.flatMap { count in
        [false, true].flatMap { factored in
            [(false, false), (true, false), (false, true), (true, true)].map {
                ApplyCase(count: count, factored: factored, momentum: $0.0, decay: $0.1)
            }
        }
    }

    @Test(arguments: applyCases)
    func applyMatchesScalarBitForBit(_ test: ApplyCase) {
        // Factored: 2 slices × 2 rows × `count` columns, rows 1..<4. Unfactored: `count` elements.
        let columns = test.count
        let size = test.factored ? 4 * columns : columns
        let factored = FactoredCase(columns: columns, seed: UInt64(columns) * 7 + 1)
        var numbers = Numbers(state: UInt64(columns) * 7 + 2)
        let g = test.factored ? factored.g : numbers.values(size, scale: 0.1)
        let theta = numbers.values(size, scale: 2)
        let m0 = numbers.values(size, scale: 0.01)
        let v = numbers.positive(size, low: 1e-4, width: 1e-2)
        let c = AdafactorKernel.Update(
            gradientScale: 0.5,
            stepSize: 0.0123,
            beta1: 0.9,
            oneMinusBeta1: 0.1,
            decay: test.decay ? -1e-3 : 0
        )
        func run(simd: KernelVariant?) -> (Double, [Float], [Float]) {
            var p = theta
            var m = m0
            let sum = p.withUnsafeMutableBufferPointer { p in
                m.withUnsafeMutableBufferPointer { m in
                    factored.withFactors { _, f in
                        g.withUnsafeBufferPointer { g in
                            v.withUnsafeBufferPointer { v in
                                let buffers = AdafactorKernel.Buffers(
                                    parameter: p.baseAddress ?? UnsafeMutablePointer(bitPattern: 8)!,
                                    gradient: g.baseAddress ?? UnsafePointer(bitPattern: 8)!,
                                    expAvg: test.momentum ? m.baseAddress ?? UnsafeMutablePointer(bitPattern: 8)! : nil
                                )
                                let vb = v.baseAddress ?? UnsafePointer(bitPattern: 8)!
                                switch (test.factored, simd) {
                                case (true, let variant?):
                                    return AdafactorKernel.simdApply(buffers, rows: 1..<4, f, c, variant: variant)
                                case (true, nil): return AdafactorKernel.scalarApply(buffers, rows: 1..<4, f, c)
                                case (false, let variant?):
                                    return AdafactorKernel.simdApplyDiagonal(buffers, vb, count: size, c, variant: variant)
                                case (false, nil):
                                    return AdafactorKernel.scalarApplyDiagonal(buffers, vb, count: size, c)
                                }
                            }
                        }
                    }
                }
            }
            return (sum, p, m)
        }
        let scalar = run(simd: nil)
        for variant in KernelVariant.supported {
            let simd = run(simd: variant)
            #expect(scalar.0.bitPattern == simd.0.bitPattern, "\(variant)")
            #expect(Self.bits(scalar.1) == Self.bits(simd.1), "\(variant)")
            #expect(Self.bits(scalar.2) == Self.bits(simd.2), "\(variant)")
        }
        // Every variant gave the scalar result (above), so what follows holds for each.
        let simd = scalar
        #expect(test.momentum || simd.2 == m0)
        // Row 0 is outside the range and stays untouched.
        if test.factored { #expect(Array(simd.1.prefix(columns)) == Array(theta.prefix(columns))) }
        // The update norm is the norm of what was applied.
        let applied = zip(simd.1, theta).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }
        #expect(abs(simd.0 - applied) <= 1e-12 * max(1e-30, applied))
        // Zero gradients move θ only through decay and momentum.
        for i in 0..<size where g[i] == 0 && !test.momentum && !test.decay {
            #expect(simd.1[i] == theta[i])
        }
    }

    @Test
    func oneElementIsTheScalarFormula() {
        // Rank 0: one element, all in the tail.
        // U = s·g/√v·stepSize; m = β1·m + (1−β1)·U; θ ← θ + decay·θ − m.
        var p: [Float] = [2]
        var m: [Float] = [0.5]
        let g: [Float] = [0.25]
        let v: [Float] = [0.04]
        let c = AdafactorKernel.Update(gradientScale: 2, stepSize: 0.1, beta1: 0.5, oneMinusBeta1: 0.5, decay: -0.01)
        let sum = p.withUnsafeMutableBufferPointer { p in
            m.withUnsafeMutableBufferPointer { m in
                g.withUnsafeBufferPointer { g in
                    v.withUnsafeBufferPointer { v in
                        AdafactorKernel.simdApplyDiagonal(
                            AdafactorKernel.Buffers(
                                parameter: p.baseAddress!,
                                gradient: g.baseAddress!,
                                expAvg: m.baseAddress!
                            ),
                            v.baseAddress!,
                            count: 1,
                            c
                        )
                    }
                }
            }
        }
        // U = 0.5/0.2·0.1 = 0.25; m = 0.25 + 0.125 = 0.375; θ = 2 − 0.02 − 0.375 = 1.605.
        #expect(abs(m[0] - 0.375) < 1e-7)
        #expect(abs(p[0] - 1.605) < 1e-6)
        #expect(abs(sum - 0.395 * 0.395) < 1e-6)
    }
}
