import Testing

@testable import OptimizerKit

struct MomoKernelTests {
    static let lengths = [0, 1, 7, 8, 9, 16, 1003]

    /// Owns copies of the arrays a kernel reads and writes, at stable addresses.
    final class Arrays {
        let buffers: [UnsafeMutableBufferPointer<Float>]

        init(_ arrays: [[Float]]) {
            buffers = arrays.map { array in
                let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(array.count, 1))
                buffer.initialize(repeating: 0)
                _ = buffer.initialize(from: array)
                return buffer
            }
        }

        deinit { buffers.forEach { $0.deallocate() } }

        subscript(_ index: Int) -> UnsafeMutablePointer<Float> { buffers[index].baseAddress! }

        func values(_ index: Int, count: Int) -> [Float] { Array(buffers[index].prefix(count)) }
    }

    static func expectClose(_ a: MomoKernel.Sums, _ b: MomoKernel.Sums) {
        for (x, y) in [
            (a.parameterDotGradient, b.parameterDotGradient),
            (a.parameterDotAverage, b.parameterDotAverage),
            (a.averageSquaredNorm, b.averageSquaredNorm),
        ] {
            #expect(abs(x - y) <= 1e-12 * max(1, abs(x)))
        }
    }

    // MARK: MoMo

    /// Arrays: θ, g, d.
    static func momentumArrays(count: Int, seed: UInt64) -> [[Float]] {
        var random = SeededRandom(seed: seed)
        return [random.floats(count), random.floats(count), random.floats(count, in: -0.1...0.1)]
    }

    @Test(arguments: lengths)
    func momentumPassesMatchScalarBitForBit(count: Int) {
        let initial = Self.momentumArrays(count: count, seed: UInt64(count) + 1)
        for startFromGradient in [false, true] {
            let c = MomoKernel.Momentum.Coefficients(
                beta: 0.9, oneMinusBeta: 0.1, gradientScale: 0.5, startFromGradient: startFromGradient
            )
            let scalar = Arrays(initial)
            let simd = Arrays(initial)
            func buffers(_ a: Arrays) -> MomoKernel.Momentum.Buffers {
                .init(parameter: UnsafePointer(a[0]), gradient: UnsafePointer(a[1]), gradientAverage: a[2])
            }
            let s1 = MomoKernel.Momentum.accumulateScalar(buffers(scalar), count: count, c)
            let s2 = MomoKernel.Momentum.accumulateSIMD(buffers(simd), count: count, c)
            #expect(scalar.values(2, count: count).map(\.bitPattern) == simd.values(2, count: count).map(\.bitPattern))
            Self.expectClose(s1, s2)

            for decays in [false, true] {
                let step = MomoKernel.Momentum.Step(stepSize: 0.37, divisor: 1.01, decays: decays)
                func stepBuffers(_ a: Arrays) -> MomoKernel.Momentum.StepBuffers {
                    .init(parameter: a[0], gradientAverage: UnsafePointer(a[2]))
                }
                let u1 = MomoKernel.Momentum.applyScalar(stepBuffers(scalar), count: count, step)
                let u2 = MomoKernel.Momentum.applySIMD(stepBuffers(simd), count: count, step)
                #expect(scalar.values(0, count: count).map(\.bitPattern) == simd.values(0, count: count).map(\.bitPattern))
                #expect(abs(u1 - u2) <= 1e-12 * max(1, u1))
            }
        }
    }

    @Test func momentumPassComputesTheDocumentedSums() {
        let arrays = Arrays([[1, 2, -1], [0.5, -1, 2], [0, 0, 0]])
        let sums = MomoKernel.Momentum.accumulateScalar(
            .init(parameter: UnsafePointer(arrays[0]), gradient: UnsafePointer(arrays[1]), gradientAverage: arrays[2]),
            count: 3,
            .init(beta: 0.5, oneMinusBeta: 0.5, gradientScale: 2, startFromGradient: false)
        )
        // g = (1, −2, 4), d = (0.5, −1, 2)
        #expect(arrays.values(2, count: 3) == [0.5, -1, 2])
        #expect(sums == MomoKernel.Sums(parameterDotGradient: -7, parameterDotAverage: -3.5, averageSquaredNorm: 5.25))
    }

    // MARK: MoMo-Adam

    /// Arrays: θ, g, m, v.
    static func adamArrays(count: Int, seed: UInt64) -> [[Float]] {
        var random = SeededRandom(seed: seed)
        return [
            random.floats(count), random.floats(count), random.floats(count, in: -0.1...0.1),
            random.floats(count, in: 0...0.01),
        ]
    }

    @Test(arguments: lengths)
    func adamPassesMatchScalarBitForBit(count: Int) {
        let initial = Self.adamArrays(count: count, seed: UInt64(count) + 100)
        let c = MomoKernel.Adam.Coefficients(
            beta1: 0.9, beta2: 0.999, oneMinusBeta1: 0.1, oneMinusBeta2: 0.001, biasCorrection2: 0.003,
            eps: 1e-8, gradientScale: 0.25
        )
        let scalar = Arrays(initial)
        let simd = Arrays(initial)
        func buffers(_ a: Arrays) -> MomoKernel.Adam.Buffers {
            .init(parameter: UnsafePointer(a[0]), gradient: UnsafePointer(a[1]), gradientAverage: a[2], gradientAverageSquared: a[3])
        }
        let s1 = MomoKernel.Adam.accumulateScalar(buffers(scalar), count: count, c)
        let s2 = MomoKernel.Adam.accumulateSIMD(buffers(simd), count: count, c)
        for slot in 2...3 {
            #expect(scalar.values(slot, count: count).map(\.bitPattern) == simd.values(slot, count: count).map(\.bitPattern))
        }
        Self.expectClose(s1, s2)

        for (multiplies, divides) in [(false, false), (true, false), (false, true)] {
            let step = MomoKernel.Adam.Step(
                biasCorrection2: 0.003, eps: 1e-8, stepSize: 0.02, decay: 0.999, multiplies: multiplies,
                divisor: 1.001, divides: divides
            )
            func stepBuffers(_ a: Arrays) -> MomoKernel.Adam.StepBuffers {
                .init(parameter: a[0], gradientAverage: UnsafePointer(a[2]), gradientAverageSquared: UnsafePointer(a[3]))
            }
            let u1 = MomoKernel.Adam.applyScalar(stepBuffers(scalar), count: count, step)
            let u2 = MomoKernel.Adam.applySIMD(stepBuffers(simd), count: count, step)
            #expect(scalar.values(0, count: count).map(\.bitPattern) == simd.values(0, count: count).map(\.bitPattern))
            #expect(abs(u1 - u2) <= 1e-12 * max(1, u1))
        }
    }

    // MARK: Parallel split

    /// Two steps of `optimizer` on a tensor larger than three chunks plus a small one, on `threads` threads.
    static func runSession(_ optimizer: String, threads: Int) throws -> (values: [[Float]], lr: Double, update: Double) {
        let count = Chunking.grain * 3 + 5
        var random = SeededRandom(seed: 9)
        let big = random.floats(count)
        let small = random.floats(7)
        let gradients = (0..<2).map { _ in (random.floats(count, in: -0.01...0.01), random.floats(7)) }
        let session = try OptimizerSession.make(optimizer, ["weight_decay": .number(0.01), "use_fstar": .bool(true)])
        try session.upload([("big", [count], big), ("small", [7], small)])
        var telemetry: StepTelemetry?
        for (step, (g1, g2)) in gradients.enumerated() {
            telemetry = try withBuffers([g1, g2]) { buffers in
                try session.step(
                    StepInput(
                        gradients: [
                            TensorView(name: "big", shape: TensorShape([count]), values: buffers[0]),
                            TensorView(name: "small", shape: TensorShape([7]), values: buffers[1]),
                        ],
                        loss: 2 - Double(step) * 0.1
                    ),
                    parallelism: Parallelism(threads: threads)
                )
            }
        }
        let states = session.states.flatMap { state in
            state.all.compactMap { slot -> [Float]? in
                if case .tensor(let tensor) = slot.value { return tensor.values }
                return nil
            }
        }
        return ([session.value("big"), session.value("small")] + states, telemetry!.lr!, telemetry!.updateNorm)
    }

    @Test(arguments: ["momo", "momo_adam"])
    func parallelSplitIsBitIdenticalToSerial(optimizer: String) throws {
        let serial = try Self.runSession(optimizer, threads: 1)
        let parallel = try Self.runSession(optimizer, threads: 4)
        #expect(serial.values.count == parallel.values.count)
        for (a, b) in zip(serial.values, parallel.values) { #expect(a.map(\.bitPattern) == b.map(\.bitPattern)) }
        #expect(serial.lr == parallel.lr)
        #expect(serial.update == parallel.update)
    }

    @Test func chunkedSumAddsChunksInOrder() {
        let count = Chunking.grain * 2 + 3
        let total = MomoKernel.sum(count: count, parallelism: Parallelism(threads: 3)) { range in
            MomoKernel.Sums(parameterDotGradient: Double(range.count), parameterDotAverage: Double(range.lowerBound), averageSquaredNorm: 1)
        }
        #expect(total == MomoKernel.Sums(parameterDotGradient: Double(count), parameterDotAverage: Double(Chunking.grain * 3), averageSquaredNorm: 3))
        #expect(MomoKernel.sum(count: 0, parallelism: .serial) { _ in MomoKernel.Sums() } == MomoKernel.Sums())
    }
}
