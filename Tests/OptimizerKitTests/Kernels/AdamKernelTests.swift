import Testing

@testable import OptimizerKit

struct AdamKernelTests {
    static let lengths = [0, 1, 7, 8, 9, 15, 16, 17, 24, 31, 1003]

    /// Runs the scalar kernel and the vector kernel of every variant this CPU runs on identical copies of
    /// random state; returns the scalar outcome and one outcome per variant.
    static func runAll(
        count: Int, amsgrad: Bool, l2: Float, decay: Float, seed: UInt64, oneMinusBeta1: Float = 0.1
    )
        -> (scalar: ([[Float]], Double), variants: [(KernelVariant, [[Float]], Double)])
    {
        var random = SeededRandom(seed: seed)
        let gradient = random.floats(count)
        let initial = [random.floats(count), random.floats(count, in: -0.1...0.1), random.floats(count, in: 0...0.01), random.floats(count, in: 0...0.02)]
        let c = AdamKernel.Coefficients(
            beta1: 1 - oneMinusBeta1, beta2: 0.999, oneMinusBeta1: oneMinusBeta1, oneMinusBeta2: 0.001,
            stepSize: 0.003, sqrtBiasCorrection2: 0.07, eps: 1e-8, decay: decay, l2: l2, gradientScale: 0.5
        )
        func run(_ kernel: (AdamKernel.Buffers, Int, AdamKernel.Coefficients) -> Double) -> ([[Float]], Double) {
            let buffers = initial.map { TensorBuffer(shape: TensorShape([count]), values: $0) }
            let g = TensorBuffer(shape: TensorShape([count]), values: gradient)
            let update = kernel(
                AdamKernel.Buffers(
                    parameter: buffers[0].pointer,
                    gradient: UnsafePointer(g.pointer),
                    expAvg: buffers[1].pointer,
                    expAvgSq: buffers[2].pointer,
                    maxExpAvgSq: amsgrad ? buffers[3].pointer : nil
                ), count, c)
            return (buffers.map(\.values), update)
        }
        let scalar = run(AdamKernel.scalar)
        let variants = KernelVariant.supported.map { variant in
            let outcome = run { AdamKernel.simd($0, count: $1, $2, variant: variant) }
            return (variant, outcome.0, outcome.1)
        }
        return (scalar, variants)
    }

    /// Every option combination (L2, decoupled decay, amsgrad) through every variant this CPU runs:
    /// the state bit for bit as the scalar loop's, and ‖Δθ‖² bit for bit the same in every variant
    /// (the scalar loop sums it in another order).
    @Test(arguments: lengths)
    func everyVariantMatchesScalarBitForBit(count: Int) {
        #expect(KernelVariant.supported.contains(.baseline))
        for amsgrad in [false, true] {
            for (l2, decay) in [(Float(0), Float(1)), (0.01, 1), (0, 0.999), (0.01, 0.999)] {
                let (scalar, variants) = Self.runAll(count: count, amsgrad: amsgrad, l2: l2, decay: decay, seed: UInt64(count))
                for (variant, state, update) in variants {
                    let label = "\(variant), amsgrad \(amsgrad), l2 \(l2), decay \(decay)"
                    for slot in 0..<4 {
                        #expect(scalar.0[slot].map(\.bitPattern) == state[slot].map(\.bitPattern), "slot \(slot), \(label)")
                    }
                    #expect(update.bitPattern == variants[0].2.bitPattern, "\(label)")
                    #expect(abs(update - scalar.1) <= 1e-12 * max(1, scalar.1))
                }
            }
        }
    }

    /// torch's lerp takes its other form for weights from 0.5 (β1 ≤ 0.5): the same bits in every
    /// variant, and with β1 = 0 the first moment is exactly the gradient, however large the old one.
    @Test(arguments: [Float(0.5), 0.7, 1])
    func theLerpsOtherFormMatchesInEveryVariant(oneMinusBeta1: Float) {
        let (scalar, variants) = Self.runAll(count: 1003, amsgrad: false, l2: 0, decay: 1, seed: 5, oneMinusBeta1: oneMinusBeta1)
        for (variant, state, _) in variants {
            #expect(scalar.0[1].map(\.bitPattern) == state[1].map(\.bitPattern), "\(variant)")
            #expect(scalar.0[0].map(\.bitPattern) == state[0].map(\.bitPattern), "\(variant)")
        }
        let c = AdamKernel.Coefficients(
            beta1: 0, beta2: 0, oneMinusBeta1: 1, oneMinusBeta2: 1, stepSize: 0.01, sqrtBiasCorrection2: 1, eps: 1e-8, decay: 1, l2: 0,
            gradientScale: 1)
        #expect(c.firstMoment(1, 3.3e-6) == 3.3e-6)
        #expect(
            AdamKernel.Coefficients(
                beta1: 0.9, beta2: 0, oneMinusBeta1: 0.1, oneMinusBeta2: 1, stepSize: 0.01, sqrtBiasCorrection2: 1, eps: 1e-8, decay: 1,
                l2: 0, gradientScale: 1
            ).firstMoment(1, 3) == 1 + Float(0.1) * 2)
    }

    @Test func parallelSplitIsBitIdenticalToSerial() throws {
        let count = Chunking.grain * 3 + 5
        var random = SeededRandom(seed: 7)
        let values = random.floats(count)
        let gradient = random.floats(count)
        func run(threads: Int) throws -> ([Float], [Float], Double) {
            let session = OptimizerSession(configuration: try SessionConfiguration(optimizer: "adam"))
            try values.withUnsafeBufferPointer {
                try session.setParameters([TensorView(name: "w", shape: TensorShape([count]), values: $0)])
            }
            var telemetry: StepTelemetry?
            for _ in 0..<2 {
                telemetry = try gradient.withUnsafeBufferPointer {
                    try session.step(
                        StepInput(gradients: [TensorView(name: "w", shape: TensorShape([count]), values: $0)]),
                        parallelism: Parallelism(threads: threads)
                    )
                }
            }
            return (session.parameters[0].values, session.states[0].existingTensor("exp_avg_sq")!.values, telemetry!.gradNorm)
        }
        let serial = try run(threads: 1)
        let parallel = try run(threads: 4)
        #expect(serial.0.map(\.bitPattern) == parallel.0.map(\.bitPattern))
        #expect(serial.1.map(\.bitPattern) == parallel.1.map(\.bitPattern))
        #expect(serial.2 == parallel.2)
    }
}
