import Testing

@testable import OptimizerKit

struct ACClipKernelTests {
    static let lengths = [0, 1, 7, 8, 9, 15, 16, 17, 24, 31, 1003]
    static let powers: [ACClipKernel.Power] = [.one, .two, .general(alpha: 1.5, inverse: Float(1 / 1.5))]

    /// Runs `kernel` on fresh copies of seeded random state and returns θ, m, T and ‖Δθ‖².
    static func run(
        count: Int,
        power: ACClipKernel.Power,
        l2: Float,
        seed: UInt64,
        _ kernel: (ACClipKernel.Buffers, Int, ACClipKernel.Coefficients) -> Double
    ) -> ([[Float]], Double) {
        var random = SeededRandom(seed: seed)
        let shape = TensorShape([count])
        var gradient = random.floats(count)
        // Exact zeros and a negative zero exercise |g| and the 0/eps path.
        for i in stride(from: 3, to: count, by: 11) { gradient[i] = i % 2 == 0 ? 0 : -0.0 }
        let g = TensorBuffer(shape: shape, values: gradient)
        let buffers = [
            TensorBuffer(shape: shape, values: random.floats(count)),
            TensorBuffer(shape: shape, values: random.floats(count, in: -0.1...0.1)),
            TensorBuffer(shape: shape, values: random.floats(count, in: 0...0.05)),
        ]
        let c = ACClipKernel.Coefficients(
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.99,
            oneMinusBeta1: 0.1,
            oneMinusBeta2: 0.01,
            eps: 1e-5,
            l2: l2,
            gradientScale: 0.5,
            power: power
        )
        let update = kernel(
            ACClipKernel.Buffers(
                parameter: buffers[0].pointer,
                gradient: UnsafePointer(g.pointer),
                expAvg: buffers[1].pointer,
                tauAlpha: buffers[2].pointer
            ),
            count,
            c
        )
        return (buffers.map(\.values), update)
    }

    /// Every power and L2 choice through every kernel variant this CPU runs (gradients include 0 and
    /// −0): the state bit for bit as the scalar loop's, ‖Δθ‖² bit for bit the same in every variant.
    @Test(arguments: lengths)
    func everyVariantMatchesScalarBitForBit(count: Int) {
        for power in Self.powers {
            for l2: Float in [0, 0.01] {
                let scalar = Self.run(count: count, power: power, l2: l2, seed: UInt64(count), ACClipKernel.scalar)
                let variants = KernelVariant.supported.map { variant in
                    (variant, Self.run(count: count, power: power, l2: l2, seed: UInt64(count)) { ACClipKernel.simd($0, count: $1, $2, variant: variant) })
                }
                for (variant, (state, update)) in variants {
                    for slot in 0..<3 {
                        #expect(
                            scalar.0[slot].map(\.bitPattern) == state[slot].map(\.bitPattern),
                            "slot \(slot), \(power), l2 \(l2), \(variant)"
                        )
                    }
                    #expect(update.bitPattern == variants[0].1.1.bitPattern, "\(power), l2 \(l2), \(variant)")
                    #expect(abs(scalar.1 - update) <= 1e-12 * max(1, scalar.1))
                }
            }
        }
    }

    @Test func generalPowerMatchesTheClosedForms() {
        // α = 2 through pow must agree with the square/√ fast path to within rounding.
        let count = 64
        let fast = Self.run(count: count, power: .two, l2: 0, seed: 3) { ACClipKernel.simd($0, count: $1, $2) }
        let general = Self.run(count: count, power: .general(alpha: 2, inverse: 0.5), l2: 0, seed: 3) {
            ACClipKernel.simd($0, count: $1, $2)
        }
        for i in 0..<count {
            #expect(abs(fast.0[0][i] - general.0[0][i]) <= 1e-6)
            #expect(abs(fast.0[2][i] - general.0[2][i]) <= 1e-6 * max(1, fast.0[2][i]))
        }
    }

    @Test func parallelSplitIsBitIdenticalToSerial() throws {
        let count = Chunking.grain * 3 + 5
        var random = SeededRandom(seed: 11)
        let values = random.floats(count)
        let gradient = random.floats(count)
        func run(threads: Int) throws -> ([Float], [Float]) {
            let session = try OptimizerSession.make("acclip", ["alpha": .number(1.5), "weight_decay": .number(0.01)])
            try session.upload([("w", [count], values)])
            for _ in 0..<2 {
                _ = try withBuffers([gradient]) { g in
                    try session.step(
                        StepInput(gradients: [TensorView(name: "w", shape: TensorShape([count]), values: g[0])]),
                        parallelism: Parallelism(threads: threads)
                    )
                }
            }
            return (session.parameters[0].values, session.states[0].existingTensor("tau_alpha")!.values)
        }
        let serial = try run(threads: 1)
        let parallel = try run(threads: 4)
        #expect(serial.0.map(\.bitPattern) == parallel.0.map(\.bitPattern))
        #expect(serial.1.map(\.bitPattern) == parallel.1.map(\.bitPattern))
    }
}
