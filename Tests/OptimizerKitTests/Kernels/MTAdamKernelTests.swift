import Testing

@testable import OptimizerKit

struct MTAdamKernelTests {
    static let lengths = [0, 1, 7, 8, 9, 15, 16, 17, 24, 33, 1003]

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
            let initial = Self.run(
                count: count, range: 0..<0, terms: terms, amsgrad: amsgrad, l2: l2, seed: UInt64(count), MTAdamKernel.scalar
            )
            for variant in KernelVariant.supported {
                let simd = Self.run(
                    count: count,
                    range: 0..<count,
                    terms: terms,
                    amsgrad: amsgrad,
                    l2: l2,
                    seed: UInt64(count)
                ) { MTAdamKernel.simd($0, range: $1, $2, variant: variant) }
                #expect(
                    scalar.parameter.map(\.bitPattern) == simd.parameter.map(\.bitPattern),
                    "θ, K \(terms), amsgrad \(amsgrad), \(variant)"
                )
                for term in 0..<terms {
                    for slot in 1..<4 {
                        #expect(
                            scalar.terms[term][slot].map(\.bitPattern) == simd.terms[term][slot].map(\.bitPattern),
                            "term \(term) slot \(slot), K \(terms), amsgrad \(amsgrad), \(variant)"
                        )
                    }
                }
                let expected = Self.laneOrderUpdate(before: initial.parameter, after: simd.parameter)
                #expect(simd.update.bitPattern == expected.bitPattern, "‖Δθ‖², K \(terms), \(variant)")
                #expect(abs(scalar.update - simd.update) <= 1e-12 * max(1, scalar.update))
            }
        }
    }

    /// ‖Δθ‖² in the order of the 8-lane loops (the former Swift SIMD loop, now every C variant):
    /// (Δθ)² of element i into lane i mod 8 for the whole vectors, the lanes added 0 to 7, plus the
    /// tail's squares added in order.
    static func laneOrderUpdate(before: [Float], after: [Float]) -> Double {
        let vectorEnd = before.count / 8 * 8
        var lanes = [Double](repeating: 0, count: 8)
        var tail = 0.0
        for i in before.indices {
            let delta = Double(after[i] - before[i])
            if i < vectorEnd { lanes[i % 8] += delta * delta } else { tail += delta * delta }
        }
        return lanes.reduce(0, +) + tail
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
        let simd = Self.run(count: count, range: range, terms: 2, amsgrad: true, l2: 0.01, seed: 9) {
            MTAdamKernel.simd($0, range: $1, $2)
        }
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
