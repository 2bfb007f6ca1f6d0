import Testing

@testable import OptimizerKit

struct MomoKernelTests {
    static let lengths = [0, 1, 7, 8, 9, 15, 16, 17, 24, 31, 33, 1003]

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

    /// The sums in the order of the 8-lane loops (the former Swift SIMD passes, now every C variant):
    /// the terms of element i added into lane i mod 8 in element order for the whole vectors, the
    /// lanes added 0 to 7, plus the tail's terms added in order.
    static func laneOrder(count: Int, _ terms: (Int) -> (Double, Double, Double)) -> MomoKernel.Sums {
        var lanes = [MomoKernel.Sums](repeating: MomoKernel.Sums(), count: 8)
        let vectorEnd = count / 8 * 8
        func add(_ sums: inout MomoKernel.Sums, _ i: Int) {
            let (a, b, c) = terms(i)
            sums.parameterDotGradient += a
            sums.parameterDotAverage += b
            sums.averageSquaredNorm += c
        }
        for i in 0..<vectorEnd { add(&lanes[i % 8], i) }
        var tail = MomoKernel.Sums()
        for i in vectorEnd..<count { add(&tail, i) }
        return lanes.reduce(MomoKernel.Sums(), +) + tail
    }

    /// ‖Δθ‖² in the lane order of ``laneOrder(count:_:)``.
    static func laneOrderUpdate(before: [Float], after: [Float]) -> Double {
        laneOrder(count: before.count) { i in
            let delta = Double(after[i] - before[i])
            return (delta * delta, 0, 0)
        }.parameterDotGradient
    }

    static func expectBits(_ a: MomoKernel.Sums, _ b: MomoKernel.Sums, _ label: String) {
        #expect(a.parameterDotGradient.bitPattern == b.parameterDotGradient.bitPattern, "⟨θ,g⟩ \(label)")
        #expect(a.parameterDotAverage.bitPattern == b.parameterDotAverage.bitPattern, "⟨θ,d⟩ \(label)")
        #expect(a.averageSquaredNorm.bitPattern == b.averageSquaredNorm.bitPattern, "‖d‖² \(label)")
    }

    // MARK: MoMo

    /// Arrays: θ, g, d.
    static func momentumArrays(count: Int, seed: UInt64) -> [[Float]] {
        var random = SeededRandom(seed: seed)
        return [random.floats(count), random.floats(count), random.floats(count, in: -0.1...0.1)]
    }

    /// Both passes through every variant this CPU runs: the tensors bit for bit as the scalar
    /// passes', the sums and ‖Δθ‖² bit for bit in the 8-lane order.
    @Test(arguments: lengths)
    func momentumPassesMatchScalarBitForBit(count: Int) {
        let initial = Self.momentumArrays(count: count, seed: UInt64(count) + 1)
        #expect(KernelVariant.supported.contains(.baseline))
        for startFromGradient in [false, true] {
            let c = MomoKernel.Momentum.Coefficients(
                beta: 0.9, oneMinusBeta: 0.1, gradientScale: 0.5, startFromGradient: startFromGradient
            )
            let scalar = Arrays(initial)
            func buffers(_ a: Arrays) -> MomoKernel.Momentum.Buffers {
                .init(parameter: UnsafePointer(a[0]), gradient: UnsafePointer(a[1]), gradientAverage: a[2])
            }
            _ = MomoKernel.Momentum.accumulateScalar(buffers(scalar), count: count, c)
            let average = scalar.values(2, count: count)
            let expected = Self.laneOrder(count: count) { i in
                let p = Double(initial[0][i])
                let g = initial[1][i] * c.gradientScale
                let d = Double(average[i])
                return (p * Double(g), p * d, d * d)
            }
            for variant in KernelVariant.supported {
                let label = "\(variant), start \(startFromGradient), \(count)"
                let vector = Arrays(initial)
                let sums = MomoKernel.Momentum.accumulateSIMD(buffers(vector), count: count, c, variant: variant)
                #expect(vector.values(2, count: count).map(\.bitPattern) == average.map(\.bitPattern), "\(label)")
                Self.expectBits(sums, expected, label)

                for decays in [false, true] {
                    let step = MomoKernel.Momentum.Step(stepSize: 0.37, divisor: 1.01, decays: decays)
                    func stepBuffers(_ a: Arrays) -> MomoKernel.Momentum.StepBuffers {
                        .init(parameter: a[0], gradientAverage: UnsafePointer(a[2]))
                    }
                    let reference = Arrays([initial[0], initial[1], average])
                    let before = vector.values(0, count: count)
                    _ = MomoKernel.Momentum.applyScalar(stepBuffers(reference), count: count, step)
                    let update = MomoKernel.Momentum.applySIMD(stepBuffers(vector), count: count, step, variant: variant)
                    let after = vector.values(0, count: count)
                    #expect(reference.values(0, count: count).map(\.bitPattern) == after.map(\.bitPattern), "\(label)")
                    #expect(update.bitPattern == Self.laneOrderUpdate(before: before, after: after).bitPattern, "\(label)")
                    _ = UnsafeMutableBufferPointer(start: vector[0], count: count).update(from: initial[0])
                }
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

    /// Both passes through every variant, as ``momentumPassesMatchScalarBitForBit(count:)``.
    @Test(arguments: lengths)
    func adamPassesMatchScalarBitForBit(count: Int) {
        let initial = Self.adamArrays(count: count, seed: UInt64(count) + 100)
        let c = MomoKernel.Adam.Coefficients(
            beta1: 0.9, beta2: 0.999, oneMinusBeta1: 0.1, oneMinusBeta2: 0.001, biasCorrection2: 0.003,
            eps: 1e-8, gradientScale: 0.25
        )
        func buffers(_ a: Arrays) -> MomoKernel.Adam.Buffers {
            .init(parameter: UnsafePointer(a[0]), gradient: UnsafePointer(a[1]), gradientAverage: a[2], gradientAverageSquared: a[3])
        }
        let scalar = Arrays(initial)
        _ = MomoKernel.Adam.accumulateScalar(buffers(scalar), count: count, c)
        let (m, v) = (scalar.values(2, count: count), scalar.values(3, count: count))
        let expected = Self.laneOrder(count: count) { i in
            let p = Double(initial[0][i])
            let g = initial[1][i] * c.gradientScale
            let scaled = m[i] / ((v[i] / c.biasCorrection2).squareRoot() + c.eps)
            return (p * Double(g), p * Double(m[i]), Double(m[i]) * Double(scaled))
        }
        for variant in KernelVariant.supported {
            let vector = Arrays(initial)
            let sums = MomoKernel.Adam.accumulateSIMD(buffers(vector), count: count, c, variant: variant)
            #expect(vector.values(2, count: count).map(\.bitPattern) == m.map(\.bitPattern), "\(variant)")
            #expect(vector.values(3, count: count).map(\.bitPattern) == v.map(\.bitPattern), "\(variant)")
            Self.expectBits(sums, expected, "\(variant), \(count)")

            for (multiplies, divides) in [(false, false), (true, false), (false, true), (true, true)] {
                let label = "\(variant), multiplies \(multiplies), divides \(divides), \(count)"
                let step = MomoKernel.Adam.Step(
                    biasCorrection2: 0.003, eps: 1e-8, stepSize: 0.02, decay: 0.999, multiplies: multiplies,
                    divisor: 1.001, divides: divides
                )
                func stepBuffers(_ a: Arrays) -> MomoKernel.Adam.StepBuffers {
                    .init(parameter: a[0], gradientAverage: UnsafePointer(a[2]), gradientAverageSquared: UnsafePointer(a[3]))
                }
                let reference = Arrays([initial[0], initial[1], m, v])
                _ = MomoKernel.Adam.applyScalar(stepBuffers(reference), count: count, step)
                let update = MomoKernel.Adam.applySIMD(stepBuffers(vector), count: count, step, variant: variant)
                let after = vector.values(0, count: count)
                #expect(reference.values(0, count: count).map(\.bitPattern) == after.map(\.bitPattern), "\(label)")
                #expect(update.bitPattern == Self.laneOrderUpdate(before: initial[0], after: after).bitPattern, "\(label)")
                _ = UnsafeMutableBufferPointer(start: vector[0], count: count).update(from: initial[0])
            }
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
