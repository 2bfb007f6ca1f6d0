import Testing

@testable import OptimizerKit

struct MTAdamKernelTests {
    static let lengths = [0, 1, 7, 8, 9, 16, 1003]

    /// Buffers of one kernel run: θ, then per term g, m, v, v_max.
    struct Snapshot {
        var parameter: [Float]
        var terms: [[[Float]]]
        var update: Double
    }

    /// Runs `kernel` over `range` on fresh copies of seeded random state with `terms` terms.
    static func run(
        count: Int,
        range: Range<Int>,
        terms: Int,
        amsgrad: Bool,
        l2: Float,
        seed: UInt64,
        _ kernel: (MTAdamKernel.Buffers, Range<Int>, MTAdamKernel.Coefficients) -> Double
    ) -> Snapshot {
        var random = SeededRandom(seed: seed)
        let shape = TensorShape([count])
        let parameter = TensorBuffer(shape: shape, values: random.floats(count))
        let buffers = (0..<terms).map { term in
            [
                TensorBuffer(shape: shape, values: random.floats(count, in: -2...2)),
                TensorBuffer(shape: shape, values: random.floats(count, in: -0.1...0.1)),
                TensorBuffer(shape: shape, values: random.floats(count, in: 0...Float(term + 1) * 0.01)),
                TensorBuffer(shape: shape, values: random.floats(count, in: 0...0.02)),
            ]
        }
        let kernelTerms = buffers.enumerated().map { index, b in
            MTAdamKernel.Term(
                gradient: UnsafePointer(b[0].pointer),
                gradientScale: [0.5, 3, 0.01, 1][index % 4],
                expAvg: b[1].pointer,
                expAvgSq: b[2].pointer,
                maxExpAvgSq: amsgrad ? b[3].pointer : nil
            )
        }
        let c = MTAdamKernel.Coefficients(
            beta1: 0.9,
            beta2: 0.999,
            oneMinusBeta1: 0.1,
            oneMinusBeta2: 0.001,
            stepSize: 0.003,
            sqrtBiasCorrection2: 0.07,
            eps: 1e-8,
            l2: l2
        )
        let update = kernel(MTAdamKernel.Buffers(parameter: parameter.pointer, terms: kernelTerms), range, c)
        return Snapshot(parameter: parameter.values, terms: buffers.map { $0.map(\.values) }, update: update)
    }

    @Test(arguments: lengths)
    func simdMatchesScalarBitForBit(count: Int) {
        for (terms, amsgrad, l2) in [
            (1, false, Float(0)), (2, true, 0.01), (3, false, 0.01), (3, true, 0), (5, true, 0.1),
        ] {
            let scalar = Self.run(
                count: count,
                range: 0..<count,
                terms: terms,
                amsgrad: amsgrad,
                l2: l2,
                seed: UInt64(count),
                MTAdamKernel.scalar
            )
            let simd = Self.run(
                count: count,
                range: 0..<count,
                terms: terms,
                amsgrad: amsgrad,
                l2: l2,
                seed: UInt64(count),
                MTAdamKernel.simd
            )
            #expect(
                scalar.parameter.map(\.bitPattern) == simd.parameter.map(\.bitPattern),
                "θ, K \(terms), amsgrad \(amsgrad)"
            )
            for term in 0..<terms {
                for slot in 1..<4 {
                    #expect(
                        scalar.terms[term][slot].map(\.bitPattern) == simd.terms[term][slot].map(\.bitPattern),
                        "term \(term) slot \(slot), K \(terms), amsgrad \(amsgrad)"
                    )
                }
            }
            #expect(abs(scalar.update - simd.update) <= 1e-12 * max(1, scalar.update))
        }
    }

    @Test func simdTouchesOnlyItsRange() {
        let count = 1003
        let range = 5..<994
        let untouched = Self.run(
            count: count,
            range: 0..<0,
            terms: 2,
            amsgrad: true,
            l2: 0.01,
            seed: 9,
            MTAdamKernel.scalar
        )
        let scalar = Self.run(
            count: count,
            range: range,
            terms: 2,
            amsgrad: true,
            l2: 0.01,
            seed: 9,
            MTAdamKernel.scalar
        )
        let simd = Self.run(count: count, range: range, terms: 2, amsgrad: true, l2: 0.01, seed: 9, MTAdamKernel.simd)
        #expect(scalar.parameter.map(\.bitPattern) == simd.parameter.map(\.bitPattern))
        #expect(
            scalar.terms.map { $0.map { $0.map(\.bitPattern) } } == simd.terms.map { $0.map { $0.map(\.bitPattern) } }
        )
        for i in Array(0..<5) + Array(994..<count) {
            #expect(simd.parameter[i] == untouched.parameter[i])
            #expect(simd.terms[1][1][i] == untouched.terms[1][1][i])
        }
        #expect(simd.parameter[5] != untouched.parameter[5])
    }

    @Test func sharedDenominatorIsTheLargestTerms() {
        // One element, two terms: term 1 has the larger second moment, so both divide by its denominator.
        let p = TensorBuffer(shape: TensorShape([1]), values: [1])
        let g = [
            TensorBuffer(shape: TensorShape([1]), values: [1]), TensorBuffer(shape: TensorShape([1]), values: [4]),
        ]
        let m = [TensorBuffer(zeros: TensorShape([1])), TensorBuffer(zeros: TensorShape([1]))]
        let v = [TensorBuffer(zeros: TensorShape([1])), TensorBuffer(zeros: TensorShape([1]))]
        let terms = (0..<2).map {
            MTAdamKernel.Term(
                gradient: UnsafePointer(g[$0].pointer),
                gradientScale: 1,
                expAvg: m[$0].pointer,
                expAvgSq: v[$0].pointer,
                maxExpAvgSq: nil
            )
        }
        // First step: bc1 = 0.1, √bc2 = √0.001, stepSize = lr/bc1 with lr = 0.1.
        let c = MTAdamKernel.Coefficients(
            beta1: 0.9,
            beta2: 0.999,
            oneMinusBeta1: 0.1,
            oneMinusBeta2: 0.001,
            stepSize: 1,
            sqrtBiasCorrection2: Float(0.001.squareRoot()),
            eps: 0,
            l2: 0
        )
        _ = MTAdamKernel.scalar(MTAdamKernel.Buffers(parameter: p.pointer, terms: terms), range: 0..<1, c)
        // m = (0.1, 0.4), D = max(|1|, |4|) = 4, update = 0.1·(0.1 + 0.4)/4/0.1 = 0.125
        #expect(abs(p.values[0] - (1 - 0.125)) < 1e-6)
    }

    @Test func parallelSplitIsBitIdenticalToSerial() throws {
        let count = Chunking.grain * 3 + 5
        var random = SeededRandom(seed: 7)
        let values = random.floats(count)
        let gradients = [random.floats(count), random.floats(count, in: -10...10)]
        func run(threads: Int) throws -> ([Float], [Float], [Float], [Double]) {
            let session = try OptimizerSession.make(
                "mtadam",
                ["terms": .number(2), "amsgrad": .bool(true), "weight_decay": .number(0.01)]
            )
            try session.upload([("w", [count], values)])
            var telemetry: StepTelemetry?
            for _ in 0..<2 {
                telemetry = try withBuffers(gradients) { g in
                    try session.step(
                        StepInput(
                            gradients: (0..<2).map {
                                TensorView(name: "\($0)/w", shape: TensorShape([count]), values: g[$0])
                            }
                        ),
                        parallelism: Parallelism(threads: threads)
                    )
                }
            }
            let state = session.states[0]
            return (
                session.parameters[0].values,
                state.existingTensor("exp_avg.1")!.values,
                state.existingTensor("max_exp_avg_sq.0")!.values,
                telemetry!.termWeights!["w"]!
            )
        }
        let serial = try run(threads: 1)
        let parallel = try run(threads: 4)
        #expect(serial.0.map(\.bitPattern) == parallel.0.map(\.bitPattern))
        #expect(serial.1.map(\.bitPattern) == parallel.1.map(\.bitPattern))
        #expect(serial.2.map(\.bitPattern) == parallel.2.map(\.bitPattern))
        #expect(serial.3 == parallel.3)
    }
}
