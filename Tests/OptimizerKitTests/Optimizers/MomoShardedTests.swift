import Testing

@testable import OptimizerKit

/// MoMo and MoMo-Adam with their tensors spread over two sessions (as over two daemons): each
/// session stages its own gradients, answers its tensors' ``MomoTotals``, and commits with the
/// totals folded in the global parameter order. The parameters, τ and the session-wide state must
/// equal, bit for bit, those of one session holding every tensor and stepping in one request.
struct MomoShardedTests {
    /// The global parameter order; `a` is larger than one chunk, so its sums come from several chunks.
    static let shapes: [(String, [Int])] = [("a", [70_001]), ("b", [3, 5]), ("c", []), ("d", [17])]
    /// Which tensors each shard holds (interleaved, so the global fold crosses shards).
    static let shards: [[String]] = [["a", "c"], ["b", "d"]]

    struct Case: Sendable, CustomTestStringConvertible {
        var optimizer: String
        var hyperparameters: Hyperparameters
        var gradScale: Double?
        var testDescription: String { "\(optimizer) \(hyperparameters.keys.sorted())" }
    }

    static let cases: [Case] = [
        Case(optimizer: "momo", hyperparameters: ["lr": .number(0.5), "clip_grad_norm": .number(2)]),
        Case(
            optimizer: "momo",
            hyperparameters: [
                "lr": .number(1), "bias_correction": .bool(true), "use_fstar": .bool(true), "weight_decay": .number(0.1),
                "lb": .number(-0.5),
            ],
            gradScale: 4),
        Case(optimizer: "momo_adam", hyperparameters: ["weight_decay": .number(0.2), "divide": .bool(false), "clip_grad_norm": .number(1)]),
        Case(optimizer: "momo_adam", hyperparameters: ["use_fstar": .bool(true), "lr": .number(0.1)], gradScale: 0.5),
    ]

    @Test(arguments: cases)
    func aShardedStepFollowsTheOneSessionStepBitForBit(_ c: Case) throws {
        var random = SeededRandom(seed: 7)
        let initial = Self.shapes.map { name, shape in (name, shape, random.floats(TensorShape(shape).elementCount)) }
        let whole = try OptimizerSession.make(c.optimizer, c.hyperparameters)
        try whole.upload(initial)
        let shards = try Self.shards.map { names in
            let shard = try OptimizerSession.make(c.optimizer, c.hyperparameters)
            try shard.upload(initial.filter { names.contains($0.0) })
            return shard
        }
        for step in 1...5 {
            let gradients = Self.shapes.map { name, shape in (name, shape, random.floats(TensorShape(shape).elementCount)) }
            let loss = 2.0 / Double(step)
            let expected = try whole.step(gradients, loss: loss, gradScale: c.gradScale)
            let tau = try withBuffers(gradients.map(\.2)) { buffers in
                let views = zip(gradients, buffers).map { TensorView(name: $0.0, shape: TensorShape($0.1), values: $1) }
                return try Self.shardedStep(shards, views, loss: loss, gradScale: c.gradScale)
            }
            #expect(tau == expected.lr, "τ at step \(step)")
            for (shard, names) in zip(shards, Self.shards) {
                for name in names { #expect(shard.value(name) == whole.value(name), "\(name) at step \(step)") }
                for key in ["step", "loss_avg", "lb", "initial_lb"] {
                    #expect(shard.globalState.scalar(key) == whole.globalState.scalar(key), "\(key) at step \(step)")
                }
            }
        }
    }

    /// One step over the shards: stage, fold the sums of squares, ask each shard's totals, fold
    /// them in the global order, commit on every shard. Returns the step size every shard used.
    static func shardedStep(_ shards: [OptimizerSession], _ gradients: [TensorView], loss: Double, gradScale: Double?) throws -> Double? {
        let order = shapes.map(\.0)
        let unscale = gradScale.map { 1 / $0 } ?? 1
        var staged = [StagedStep]()
        var squares = [String: Double]()
        for shard in shards {
            let stage = StagedStep(step: shard.step + 1, for: shard)
            for statistics in try shard.stage(gradients.filter { shard.parameterIndex(named: $0.name) != nil }, into: stage) {
                squares[statistics.name] = statistics.sumOfSquares
            }
            staged.append(stage)
        }
        var norm = 0.0
        for name in order { norm += StepScalars.contribution(sumOfSquares: squares[name]!, unscale: unscale) }
        var scalars = StepScalars(termSquaredNorms: [norm], loss: loss, gradScale: gradScale)
        var perTensor = [String: MomoTotals]()
        for (shard, stage) in zip(shards, staged) {
            for (name, totals) in try shard.momoTotals(stage, scalars: scalars) { perTensor[name] = totals }
        }
        var totals = MomoTotals()
        for name in order { totals.add(perTensor[name]!) }
        scalars.momoTotals = totals
        var stepSizes = Set<Double?>()
        for (shard, stage) in zip(shards, staged) {
            stepSizes.insert(shard.apply(try shard.prepareStep(stage, scalars: scalars)).lr)
        }
        #expect(stepSizes.count == 1)
        return stepSizes.first!
    }

    @Test(arguments: ["momo", "momo_adam"])
    func theSumsChangeNothingAndRepeatTheSame(_ optimizer: String) throws {
        var random = SeededRandom(seed: 3)
        let session = try OptimizerSession.make(optimizer)
        try session.upload(Self.shapes.map { name, shape in (name, shape, random.floats(TensorShape(shape).elementCount)) })
        // One plain step first, so the state (averages, γ, loss average) exists.
        try session.step(Self.shapes.map { name, shape in (name, shape, random.floats(TensorShape(shape).elementCount)) }, loss: 1)
        let gradients = Self.shapes.map { name, shape in (name, shape, random.floats(TensorShape(shape).elementCount)) }
        try withBuffers(gradients.map(\.2)) { buffers in
            let stage = StagedStep(step: 2, for: session)
            try session.stage(zip(gradients, buffers).map { TensorView(name: $0.0, shape: TensorShape($0.1), values: $1) }, into: stage)
            let before = session.states.map { $0.copy() }
            let parameters = session.parameters.map(\.values)
            let scalars = StepScalars(termSquaredNorms: [1], loss: 0.5)
            let first = try session.momoTotals(stage, scalars: scalars)
            let second = try session.momoTotals(stage, scalars: scalars)
            #expect(first.map(\.name) == ["a", "b", "c", "d"])
            #expect(first.map(\.totals) == second.map(\.totals))
            #expect(session.parameters.map(\.values) == parameters && session.step == 1)
            for (state, old) in zip(session.states, before) {
                #expect(state.existingTensor("grad_avg")?.values == old.existingTensor("grad_avg")?.values)
                #expect(state.existingTensor("grad_avg_sq")?.values == old.existingTensor("grad_avg_sq")?.values)
                #expect(state.scalar("grad_dot_w") == old.scalar("grad_dot_w"))
            }
            // This session holds every tensor: its own fold is what the step uses.
            var totals = MomoTotals()
            for tensor in first { totals.add(tensor.totals) }
            let withTotals = session.apply(try session.prepareStep(stage, scalars: StepScalars(termSquaredNorms: [1], loss: 0.5, momoTotals: totals)))
            #expect(withTotals.lr != nil)
        }
    }

    @Test func badRequestsForTheSumsNameTheirField() throws {
        let adam = try OptimizerSession.make("adam")
        try adam.upload([("w", [2], [1, 2])])
        try withBuffers([[1, 1]]) { buffers in
            let stage = StagedStep(step: 1, for: adam)
            try adam.stage([TensorView(name: "w", shape: TensorShape([2]), values: buffers[0])], into: stage)
            let notMomo = #expect(throws: OptimizerError.self) { try adam.momoTotals(stage, scalars: StepScalars(termSquaredNorms: [2])) }
            #expect(notMomo?.subject == "optimizer")
            let totals = StepScalars(termSquaredNorms: [2], momoTotals: MomoTotals(averageSquaredNorm: 1))
            let adamCommit = #expect(throws: OptimizerError.self) { try adam.prepareStep(stage, scalars: totals) }
            #expect(adamCommit?.subject == "momo_totals" && adam.step == 0)
        }
        let momo = try OptimizerSession.make("momo", ["nonfinite": .string("skip")])
        try momo.upload([("w", [2], [1, 2])])
        try withBuffers([[1, 1]]) { buffers in
            let stage = StagedStep(step: 1, for: momo)
            try momo.stage([TensorView(name: "w", shape: TensorShape([2]), values: buffers[0])], into: stage)
            let given = StepScalars(termSquaredNorms: [2], loss: 1, momoTotals: MomoTotals())
            #expect((#expect(throws: OptimizerError.self) { try momo.momoTotals(stage, scalars: given) })?.subject == "momo_totals")
            let skipped = StepScalars(termSquaredNorms: [2], nonfinite: "w", loss: 1)
            #expect((#expect(throws: OptimizerError.self) { try momo.momoTotals(stage, scalars: skipped) })?.subject == "nonfinite")
            let noLoss = StepScalars(termSquaredNorms: [2])
            #expect((#expect(throws: OptimizerError.self) { try momo.momoTotals(stage, scalars: noLoss) })?.subject == "loss")
            #expect(momo.step == 0 && momo.states.allSatisfy { $0.existingTensor("grad_avg") == nil })
        }
    }

    /// A commit whose loss is not finite while its scalars call the step finite is refused (applied,
    /// MoMo's loss average would be NaN for good); named as non-finite, it is a skipped step, as the
    /// one-request step with that loss is.
    @Test(arguments: ["momo", "momo_adam"])
    func aCommitWithANonFiniteLossMustSaySo(_ optimizer: String) throws {
        let session = try OptimizerSession.make(optimizer, ["nonfinite": .string("skip")])
        try session.upload([("w", [2], [1, 2])])
        try withBuffers([[1, 1]]) { buffers in
            let stage = StagedStep(step: 1, for: session)
            try session.stage([TensorView(name: "w", shape: TensorShape([2]), values: buffers[0])], into: stage)
            for loss in [Double.nan, .infinity] {
                let hidden = StepScalars(termSquaredNorms: [2], loss: loss)
                #expect((#expect(throws: OptimizerError.self) { try session.prepareStep(stage, scalars: hidden) })?.subject == "loss")
            }
            #expect(session.step == 0 && session.value("w") == [1, 2])
            let named = StepScalars(termSquaredNorms: [2], nonfinite: "loss", loss: .nan)
            let telemetry = session.apply(try session.prepareStep(stage, scalars: named))
            #expect(telemetry.skipped && session.value("w") == [1, 2])
            #expect(session.globalState.scalar("loss_avg").map { $0.isFinite } ?? true)
        }
    }
}
