import Testing

@testable import OptimizerKit

struct AdamKernelTests {
    static let lengths = [0, 1, 7, 8, 9, 16, 1003]

    /// Runs the scalar and the SIMD kernel on identical copies of random state and returns both outcomes.
    static func runBoth(count: Int, amsgrad: Bool, l2: Float, decay: Float, seed: UInt64) -> ([[Float]], [[Float]], Double, Double) {
        var random = SeededRandom(seed: seed)
        let gradient = random.floats(count)
        let initial = [random.floats(count), random.floats(count, in: -0.1...0.1), random.floats(count, in: 0...0.01), random.floats(count, in: 0...0.02)]
        let c = AdamKernel.Coefficients(
            beta1: 0.9, beta2: 0.999, oneMinusBeta1: 0.1, oneMinusBeta2: 0.001,
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
        let simd = run(AdamKernel.simd)
        return (scalar.0, simd.0, scalar.1, simd.1)
    }

    @Test(arguments: lengths)
    func simdMatchesScalarBitForBit(count: Int) {
        for (amsgrad, l2, decay) in [(false, Float(0), Float(1)), (true, 0.01, 1), (false, 0, 0.999)] {
            let (scalar, simd, u1, u2) = Self.runBoth(count: count, amsgrad: amsgrad, l2: l2, decay: decay, seed: UInt64(count))
            for slot in 0..<4 {
                #expect(scalar[slot].map(\.bitPattern) == simd[slot].map(\.bitPattern), "slot \(slot), amsgrad \(amsgrad)")
            }
            #expect(abs(u1 - u2) <= 1e-12 * max(1, u1))
        }
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
