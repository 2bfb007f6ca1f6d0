import Testing

@testable import OptimizerKit

/// A float64 reference of algorithms.md §2.
private func referenceSGD(
    _ theta0: [Double], _ grads: [[Double]], lr: Double, momentum: Double, dampening: Double,
    weightDecay: Double, nesterov: Bool
) -> [[Double]] {
    var theta = theta0
    var buffer: [Double]?
    var out: [[Double]] = []
    for gradient in grads {
        var g = zip(gradient, theta).map { $0 + weightDecay * $1 }
        if momentum != 0 {
            if let old = buffer {
                buffer = zip(old, g).map { momentum * $0 + (1 - dampening) * $1 }
            } else {
                buffer = g
            }
            g = nesterov ? zip(g, buffer!).map { $0 + momentum * $1 } : buffer!
        }
        theta = zip(theta, g).map { $0 - lr * $1 }
        out.append(theta)
    }
    return out
}

struct SGDTests {
    @Test(arguments: [
        (0.0, 0.0, 0.0, false),
        (0.9, 0.0, 0.0, false),
        (0.9, 0.3, 0.01, false),
        (0.8, 0.0, 0.02, true),
    ])
    func matchesFloat64Reference(momentum: Double, dampening: Double, weightDecay: Double, nesterov: Bool) throws {
        var random = SeededRandom(seed: 3)
        let theta = random.floats(21)
        let grads = (0..<5).map { _ in random.floats(21) }
        let session = try OptimizerSession.make(
            "sgd",
            [
                "lr": .number(0.1), "momentum": .number(momentum), "dampening": .number(dampening),
                "weight_decay": .number(weightDecay), "nesterov": .bool(nesterov),
            ]
        )
        try session.upload([("w", [3, 7], theta)])
        let expected = referenceSGD(
            theta.map(Double.init), grads.map { $0.map(Double.init) }, lr: 0.1, momentum: momentum,
            dampening: dampening, weightDecay: weightDecay, nesterov: nesterov
        )
        for (t, gradient) in grads.enumerated() {
            try session.step([("w", [3, 7], gradient)])
            #expect(withinCriterion(session.value("w"), expected[t], initial: theta, atol: 1e-6, rtol: 1e-5), "step \(t + 1)")
        }
        #expect(session.states[0].names == (momentum == 0 ? [] : ["momentum_buffer"]))
    }

    @Test func nesterovNeedsMomentumAndNoDampening() {
        #expect(throws: OptimizerError.self) {
            try SessionConfiguration(optimizer: "sgd", hyperparameters: ["nesterov": .bool(true)])
        }
        #expect(throws: OptimizerError.self) {
            try SessionConfiguration(
                optimizer: "sgd",
                hyperparameters: ["nesterov": .bool(true), "momentum": .number(0.9), "dampening": .number(0.1)]
            )
        }
    }

    /// Every option combination through every kernel variant this CPU runs: parameters and buffer bit
    /// for bit as the scalar loop's, ‖Δθ‖² bit for bit the same in every variant.
    @Test(arguments: [0, 1, 7, 8, 9, 15, 16, 17, 24, 31, 1003])
    func everyVariantMatchesScalarBitForBit(count: Int) {
        var random = SeededRandom(seed: UInt64(count) + 100)
        let gradient = random.floats(count)
        let initial = [random.floats(count), random.floats(count)]
        let options: [(Bool, Bool, Float)] = [(true, false, 0.9), (true, true, 0.9), (false, true, 0.9), (false, false, 0.9), (false, false, 0)]
        for (first, nesterov, momentum) in options {
            for weightDecay in [Float(0), 0.01] {
                let c = SGDKernel.Coefficients(
                    lr: 0.05, weightDecay: weightDecay, momentum: momentum, oneMinusDampening: 0.8, nesterov: nesterov,
                    firstStep: first, gradientScale: 2
                )
                func run(_ kernel: (SGDKernel.Buffers, Int, SGDKernel.Coefficients) -> Double) -> ([[Float]], Double) {
                    let buffers = initial.map { TensorBuffer(shape: TensorShape([count]), values: $0) }
                    let g = TensorBuffer(shape: TensorShape([count]), values: gradient)
                    let update = kernel(
                        SGDKernel.Buffers(
                            parameter: buffers[0].pointer,
                            gradient: UnsafePointer(g.pointer),
                            momentumBuffer: momentum == 0 ? nil : buffers[1].pointer
                        ), count, c)
                    return (buffers.map(\.values), update)
                }
                let scalar = run(SGDKernel.scalar)
                let variants = KernelVariant.supported.map { variant in
                    (variant, run { SGDKernel.simd($0, count: $1, $2, variant: variant) })
                }
                for (variant, (state, update)) in variants {
                    let label = "\(variant), first \(first), nesterov \(nesterov), momentum \(momentum), wd \(weightDecay)"
                    #expect(scalar.0[0].map(\.bitPattern) == state[0].map(\.bitPattern), "\(label)")
                    #expect(scalar.0[1].map(\.bitPattern) == state[1].map(\.bitPattern), "\(label)")
                    #expect(update.bitPattern == variants[0].1.1.bitPattern, "\(label)")
                    #expect(abs(update - scalar.1) <= 1e-12 * max(1, scalar.1))
                }
            }
        }
    }
}
