import Testing

@testable import OptimizerKit

/// The gradients of the reference trajectory: term i of `w` (shape [2, 3]) and of the scalar `b`.
/// Term 1 of `b` is zero at every step, so it is never rescaled; term 0 of `b` is zero at step 4.
private func referenceGradient(step s: Int, term i: Int, _ name: String) -> [Float] {
    let magnitudes = [0.01, 1.0, 10.0]
    if name == "w" {
        return (0..<6).map { j in Float(Double((j * 7 + s * 3 + i * 5) % 11 - 5) / 8 * magnitudes[i]) }
    }
    switch i {
    case 0: return [Float(Double((s * 3) % 5 - 2) / 4 * 0.01)]
    case 1: return [0]
    default: return [Float(Double(s % 3 + 1) * 0.5)]
    }
}

/// One reference case: hyperparameters and the float64 trajectory (θ after each of 4 steps) computed
/// from algorithms.md §3 with NumPy, plus the effective weights of the last step.
struct MTAdamReferenceCase: Sendable, CustomTestStringConvertible {
    var name: String
    var hyperparameters: Hyperparameters
    var w: [[Double]]
    var b: [Double]
    var lastWeights: [String: [Double]]
    var testDescription: String { name }
}

private let referenceCases = [
    MTAdamReferenceCase(
        name: "amsgrad, weight decay, weights [1, 0.5, 2]",
        hyperparameters: [
            "lr": .number(0.01), "betas": .list([.number(0.9), .number(0.99), .number(0.8)]),
            "weight_decay": .number(0.01), "amsgrad": .bool(true),
            "term_weights": .list([.number(1), .number(0.5), .number(2)]),
        ],
        w: [
            [
                -0.6055163346604658, -0.3822687785280832, -0.11192156074128473, 0.13513772353511438, 0.3551410651108722,
                0.60406921517687,
            ],
            [
                -0.5839011028919312, -0.3727085692090847, -0.11572748367984802, 0.1384157441693986, 0.3480617939220273,
                0.5772502160654555,
            ],
            [
                -0.5644100017012851, -0.36328215920246215, -0.10990040128000031, 0.1349094870090138, 0.3375828483003605,
                0.5567221128953327,
            ],
            [
                -0.5457683827526407, -0.3541520969955033, -0.10176811708104186, 0.12974421802428154,
                0.32498280894436127, 0.5364853999547616,
            ],
        ],
        b: [0.27937503748386827, 0.2629852943658368, 0.24307657932285262, 0.2230299463268881],
        lastWeights: ["w": [1.0, 0.004787537116542477, 0.0019954480890161564], "b": [1.0, 1.0, 0.004878048671454918]]
    ),
    MTAdamReferenceCase(
        name: "defaults",
        hyperparameters: [:],
        w: [
            [
                -0.6242240607319216, -0.37665090851502825, -0.1242223851593228, 0.1262891973126605, 0.3736708191086021,
                0.624230941475885,
            ],
            [
                -0.6234192099885055, -0.3769177961472559, -0.12455348510930239, 0.1265004267999414, 0.37409995079512226,
                0.6234514629845631,
            ],
            [
                -0.6235614800386159, -0.37759510786395767, -0.12409700670684107, 0.1262589482426445,
                0.37430922544163886, 0.6236827551175875,
            ],
            [
                -0.6231525467293662, -0.37828975588813885, -0.12376936321954958, 0.12609492231347894, 0.374537478235919,
                0.6239924350110053,
            ],
        ],
        b: [0.29800001992089714, 0.2970488583967884, 0.29612369619173223, 0.29522956403217554],
        lastWeights: ["w": [1.0, 0.009291193531581561, 0.001015740917958796], "b": [1.0, 1.0, 0.0024861877897332384]]
    ),
]

struct MTAdamTests {
    /// Three terms over four steps; step 3 overrides the term weights with [2, 1, 0.25] and step 4 sends
    /// its gradients multiplied by 4 with `grad_scale` 4.
    @Test(arguments: referenceCases)
    func matchesFloat64Reference(_ reference: MTAdamReferenceCase) throws {
        var hyperparameters = reference.hyperparameters
        hyperparameters["terms"] = .number(3)
        let session = try OptimizerSession.make("mtadam", hyperparameters)
        let initialW: [Float] = (0..<6).map { Float(Double($0) - 2.5) / 4 }
        let initialB: [Float] = [0.3]
        try session.upload([("w", [2, 3], initialW), ("b", [], initialB)])
        var telemetry: StepTelemetry?
        for step in 1...4 {
            let factor: Float = step == 4 ? 4 : 1
            let gradients = (0..<3).flatMap { term in
                [
                    ("\(term)/w", [2, 3], referenceGradient(step: step, term: term, "w").map { $0 * factor }),
                    ("\(term)/b", [Int](), referenceGradient(step: step, term: term, "b").map { $0 * factor }),
                ]
            }
            telemetry = try session.step(
                gradients,
                termWeights: step == 3 ? [2, 1, 0.25] : nil,
                gradScale: step == 4 ? 4 : nil
            )
            #expect(
                withinCriterion(session.value("w"), reference.w[step - 1], initial: initialW, rtol: 1e-4),
                "w, step \(step)"
            )
            #expect(
                withinCriterion(session.value("b"), [reference.b[step - 1]], initial: initialB, rtol: 1e-4),
                "b, step \(step)"
            )
        }
        let weights = try #require(telemetry?.termWeights)
        for (name, expected) in reference.lastWeights {
            let got = try #require(weights[name])
            #expect(zip(got, expected).allSatisfy { abs($0 - $1) <= 1e-9 * abs($1) }, "\(name): \(got) vs \(expected)")
        }
        #expect(telemetry?.lr == (reference.hyperparameters["lr"]?.number ?? 1e-3))
        #expect(session.states[0].scalar("step") == 4)
    }

    /// With one term and λ = [1], MTAdam is Adam (same L2 decay and amsgrad).
    @Test(arguments: [false, true])
    func oneTermEqualsAdam(amsgrad: Bool) throws {
        var random = SeededRandom(seed: 5)
        let count = 37
        let initial = random.floats(count)
        let grads = (0..<6).map { step in random.floats(count).map { $0 * Float(1 << step) / 64 } }
        let common: Hyperparameters = ["lr": .number(0.01), "weight_decay": .number(0.05), "amsgrad": .bool(amsgrad)]
        let adam = try OptimizerSession.make("adam", common)
        let mtadam = try OptimizerSession.make(
            "mtadam",
            common.merging(["terms": .number(1), "term_weights": .list([.number(1)])]) { $1 }
        )
        try adam.upload([("w", [count], initial)])
        try mtadam.upload([("w", [count], initial)])
        for gradient in grads {
            try adam.step([("w", [count], gradient)])
            let telemetry = try mtadam.step([("0/w", [count], gradient)])
            #expect(telemetry.termWeights?["w"] == [1])
            let expected = adam.value("w")
            let got = mtadam.value("w")
            // Relative 1e-6, floored at the learning rate: both round m differently (torch's lerp vs
            // β1·m + (1−β1)·g), which shows as a few ulps of one step on coordinates near zero.
            for i in 0..<count {
                #expect(abs(got[i] - expected[i]) <= 1e-6 * max(abs(expected[i]), 0.01), "element \(i)")
            }
        }
    }

    @Test func effectiveWeightsUseTheFirstActiveTermAsAnchor() {
        #expect(MTAdam.effectiveWeights(norms: [2, 4, 1], termWeights: [1, 1, 3]) == [1, 0.5, 6])
        // Anchor's EMA ≤ 1e-10: the next active term becomes the anchor; the idle term keeps 1, without λ.
        #expect(MTAdam.effectiveWeights(norms: [1e-11, 2, 8], termWeights: [5, 2, 1]) == [1, 2, 0.25])
        #expect(MTAdam.effectiveWeights(norms: [0, 0], termWeights: [3, 3]) == [1, 1])
    }

    @Test func stateSlotsHaveReferenceNamesAndShapes() throws {
        let session = try OptimizerSession.make("mtadam", ["terms": .number(2), "amsgrad": .bool(true)])
        try session.upload([("w", [2, 2], [1, 2, 3, 4]), ("s", [], [1])])
        try session.step([
            ("0/w", [2, 2], [3, 0, 0, 4]), ("1/w", [2, 2], [0, 0, 0, 0]),
            ("0/s", [], [1]), ("1/s", [], [-2]),
        ])
        let state = session.states[0]
        #expect(
            state.names == [
                "step", "exp_avg.0", "exp_avg_sq.0", "max_exp_avg_sq.0", "grad_norm_ema.0",
                "exp_avg.1", "exp_avg_sq.1", "max_exp_avg_sq.1", "grad_norm_ema.1",
            ]
        )
        for name in state.names where name.hasPrefix("exp_avg") || name.hasPrefix("max_") {
            #expect(state.existingTensor(name)?.shape == TensorShape([2, 2]), "\(name)")
        }
        #expect(state.scalar("step") == 1)
        #expect(state.scalar("grad_norm_ema.0") == 5)
        #expect(state.scalar("grad_norm_ema.1") == 0)
        #expect(session.states[1].existingTensor("exp_avg.1")?.shape == TensorShape([]))
        #expect(session.states[1].scalar("grad_norm_ema.1") == 2)

        // Second step: the EMA (β3 = 0.9) takes over from the seed.
        try session.step([
            ("0/w", [2, 2], [0, 0, 0, 0]), ("1/w", [2, 2], [0, 0, 0, 0]),
            ("0/s", [], [1]), ("1/s", [], [-2]),
        ])
        #expect(abs(state.scalar("grad_norm_ema.0")! - 4.5) < 1e-12)
        #expect(state.scalar("step") == 2)
    }

    @Test func zeroGradientTermLeavesItsMomentsAtZero() throws {
        let session = try OptimizerSession.make(
            "mtadam",
            ["terms": .number(2), "term_weights": .list([.number(1), .number(3)])]
        )
        try session.upload([("w", [3], [1, 1, 1])])
        let telemetry = try session.step([("0/w", [3], [0.1, -0.2, 0]), ("1/w", [3], [0, 0, 0])])
        #expect(telemetry.termWeights?["w"] == [1, 1])
        #expect(session.states[0].existingTensor("exp_avg.1")?.values == [0, 0, 0])
        let value = session.value("w")
        // First step of term 0 alone: −lr·sign(g), and no update where g = 0.
        #expect(abs(value[0] - 0.999) < 1e-6 && abs(value[1] - 1.001) < 1e-6 && value[2] == 1)
    }

    @Test(arguments: [
        (
            ["betas": HyperparameterValue.list([.number(0.9), .number(0.999)])], "hyperparameters.betas",
            "list of 3 numbers"
        ),
        (["betas": .list([.number(0.9), .number(0.999), .number(1)])], "hyperparameters.betas[2]", "[0, 1)"),
        (["betas": .list([.number(-0.1), .number(0.999), .number(0.9)])], "hyperparameters.betas[0]", "[0, 1)"),
        (["lr": .number(-1)], "hyperparameters.lr", "≥ 0"),
        (["eps": .number(-1e-8)], "hyperparameters.eps", "≥ 0"),
        (["weight_decay": .number(-0.1)], "hyperparameters.weight_decay", "≥ 0"),
        (["amsgrad": .number(1)], "hyperparameters.amsgrad", "true or false"),
        (["maximize": .bool(true)], "hyperparameters.maximize", "no hyperparameter"),
    ])
    func invalidHyperparametersNameTheFieldAndRange(hyperparameters: Hyperparameters, field: String, range: String) {
        #expect {
            try SessionConfiguration(
                optimizer: "mtadam",
                hyperparameters: hyperparameters.merging(["terms": .number(2)]) { $1 }
            )
        } throws: { error in
            let error = error as! OptimizerError
            return error.subject == field && error.message.hasPrefix(field) && error.message.contains(range)
                && error.code.isConfigurationError
        }
    }

    @Test func effectiveHyperparametersFillDefaults() throws {
        let configuration = try SessionConfiguration(optimizer: "mtadam", hyperparameters: ["terms": .number(2)])
        let effective = configuration.effectiveHyperparameters[0]
        #expect(effective["lr"] == .number(1e-3))
        #expect(effective["betas"] == .list([.number(0.9), .number(0.999), .number(0.9)]))
        #expect(effective["eps"] == .number(1e-8))
        #expect(effective["weight_decay"] == .number(0))
        #expect(effective["amsgrad"] == .bool(false))
        #expect(configuration.termWeights == [1, 1])
    }
}
