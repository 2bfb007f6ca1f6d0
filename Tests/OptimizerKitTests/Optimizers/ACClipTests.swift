import Testing

@testable import OptimizerKit

/// One reference case: hyperparameters and the float64 trajectory (θ of `w` after each of 4 steps)
/// computed from algorithms.md §6 with NumPy. `b` (rank 0) gets a zero gradient at every step.
struct ACClipReferenceCase: Sendable, CustomTestStringConvertible {
    var name: String
    var hyperparameters: Hyperparameters
    var w: [[Double]]
    var b: [Double]
    var testDescription: String { name }
}

private let referenceCases = [
    ACClipReferenceCase(
        name: "alpha 1",
        hyperparameters: ["lr": .number(0.01)],
        w: [
            [
                -0.6249875099920064, -0.3750499900019996, -0.125, 0.1250499900019996, 0.3749875099920064,
                0.625037490002666,
            ],
            [
                -0.6250000099920063, -0.37511197093094456, -0.1250187400053305, 0.12510572912607296, 0.3749501452995078,
                0.6250746040059243,
            ],
            [
                -0.6249629163517999, -0.37517645601277255, -0.12504664030493104, 0.12516715622115882,
                0.3749069104418709, 0.625120710800308,
            ],
            [
                -0.6249246313092512, -0.37524654615630315, -0.12507425751554493, 0.12523421838108081,
                0.37486254673943115, 0.625171044423699,
            ],
        ],
        b: [0.30000001192092896, 0.30000001192092896, 0.30000001192092896, 0.30000001192092896]
    ),
    ACClipReferenceCase(
        name: "alpha 2, weight decay",
        hyperparameters: [
            "lr": .number(0.05), "betas": .list([.number(0.8), .number(0.95)]), "eps": .number(1e-6),
            "weight_decay": .number(0.01), "alpha": .number(2),
        ],
        w: [
            [-0.6236875, -0.3799625, -0.1249875, 0.1299875, 0.3737125, 0.6286875],
            [
                -0.6238251312499999, -0.38264450375, -0.12684000125, 0.13458950125, 0.3705476931965298,
                0.6315746312499999,
            ],
            [
                -0.622622853736875, -0.385064342299625, -0.127371818249875, 0.13763264329987498, 0.36828174142721015,
                0.6328836787868749,
            ],
            [
                -0.6214425194410013, -0.38758670670509504, -0.12778453466795, 0.140678393675445, 0.3662759018376117,
                0.6343363784484962,
            ],
        ],
        b: [0.2999700119197369, 0.29992322016285783, 0.2998666172110903, 0.29980206373385376]
    ),
    ACClipReferenceCase(
        name: "alpha 1.5",
        hyperparameters: ["lr": .number(0.02), "alpha": .number(1.5)],
        w: [
            [
                -0.6248840530367303, -0.37546406607014726, -0.125, 0.12546406607014726, 0.3748840530367303,
                0.6253480263554928,
            ],
            [
                -0.6249090530367304, -0.37596300757939527, -0.1251739667989677, 0.1259386539677016, 0.37460064648184843,
                0.6256937184110385,
            ],
            [
                -0.6246815530367303, -0.37646328258860745, -0.1253239667989677, 0.126423515632455, 0.37430187343039584,
                0.6260656435708785,
            ],
            [
                -0.6244455530367303, -0.37697335459498804, -0.1254589667989677, 0.12691847446827195, 0.3740029675852002,
                0.6264449881521488,
            ],
        ],
        b: [0.30000001192092896, 0.30000001192092896, 0.30000001192092896, 0.30000001192092896]
    ),
]

struct ACClipTests {
    @Test(arguments: referenceCases)
    func matchesFloat64Reference(_ reference: ACClipReferenceCase) throws {
        let session = try OptimizerSession.make("acclip", reference.hyperparameters)
        let initialW: [Float] = (0..<6).map { Float(Double($0) - 2.5) / 4 }
        let initialB: [Float] = [0.3]
        try session.upload([("w", [2, 3], initialW), ("b", [], initialB)])
        for step in 1...4 {
            let gradient = (0..<6).map { j in Float(Double((j * 5 + step * 3) % 9 - 4) / 4 * pow2(-step)) }
            let telemetry = try session.step([("w", [2, 3], gradient), ("b", [], [0])])
            #expect(
                withinCriterion(session.value("w"), reference.w[step - 1], initial: initialW, rtol: 1e-4),
                "w, step \(step)"
            )
            #expect(
                withinCriterion(session.value("b"), [reference.b[step - 1]], initial: initialB, rtol: 1e-4),
                "b, step \(step)"
            )
            #expect(telemetry.lr == reference.hyperparameters["lr"]?.number)
        }
    }

    @Test func firstStepIsAHundredthOfTheGradientTimesLearningRate() throws {
        // m = 0.1·g and τ = 0.01·|g|, so the factor is ≈ 0.1 and the step ≈ lr·0.01·g.
        let session = try OptimizerSession.make("acclip", ["lr": .number(1)])
        try session.upload([("w", [3], [1, 1, 1])])
        try session.step([("w", [3], [2, -4, 0])])
        let value = session.value("w")
        #expect(abs(value[0] - (1 - 0.02)) < 1e-5)
        #expect(abs(value[1] - (1 + 0.04)) < 1e-5)
        #expect(value[2] == 1)
    }

    @Test func stateSlotsHaveDocumentedNamesAndShapes() throws {
        let session = try OptimizerSession.make("acclip")
        try session.upload([("w", [2, 2], [1, 2, 3, 4]), ("s", [], [1])])
        try session.step([("w", [2, 2], [1, -1, 2, 0]), ("s", [], [0.5])])
        #expect(session.states[0].names == ["exp_avg", "tau_alpha"])
        #expect(session.states[0].existingTensor("exp_avg")?.shape == TensorShape([2, 2]))
        #expect(session.states[0].existingTensor("tau_alpha")?.values == [0.01, 0.01, 0.02, 0].map { Float($0) })
        #expect(session.states[1].existingTensor("tau_alpha")?.shape == TensorShape([]))
        #expect(session.states[0].scalar("step") == nil)
    }

    @Test func effectiveHyperparametersFillDefaults() throws {
        let effective = try SessionConfiguration(optimizer: "acclip").effectiveHyperparameters[0]
        #expect(effective["lr"] == .number(1e-4))
        #expect(effective["betas"] == .list([.number(0.9), .number(0.99)]))
        #expect(effective["eps"] == .number(1e-5))
        #expect(effective["weight_decay"] == .number(0))
        #expect(effective["alpha"] == .number(1))
    }

    @Test(arguments: [
        (["alpha": HyperparameterValue.number(0.5)], "hyperparameters.alpha", "[1, 2]"),
        (["alpha": .number(2.5)], "hyperparameters.alpha", "[1, 2]"),
        (["betas": .list([.number(0.9), .number(1)])], "hyperparameters.betas[1]", "[0, 1)"),
        (["betas": .list([.number(0.9)])], "hyperparameters.betas", "list of 2 numbers"),
        (["lr": .number(-1)], "hyperparameters.lr", "≥ 0"),
        (["eps": .number(0)], "hyperparameters.eps", "> 0"),
        (["weight_decay": .number(-1)], "hyperparameters.weight_decay", "≥ 0"),
        (["mod": .number(1)], "hyperparameters.mod", "no hyperparameter"),
    ])
    func invalidHyperparametersNameTheFieldAndRange(hyperparameters: Hyperparameters, field: String, range: String) {
        #expect {
            try SessionConfiguration(optimizer: "acclip", hyperparameters: hyperparameters)
        } throws: { error in
            let error = error as! OptimizerError
            return error.subject == field && error.message.hasPrefix(field) && error.message.contains(range)
                && error.code.isConfigurationError
        }
    }

    @Test func kernelPowerFollowsAlpha() throws {
        func power(_ alpha: Double) throws -> ACClipKernel.Power {
            var reader = HyperparameterReader(["alpha": .number(alpha)], optimizer: "acclip")
            return try ACClip(&reader, terms: 1).power
        }
        #expect(try power(1) == .one)
        #expect(try power(2) == .two)
        #expect(try power(1.25) == .general(alpha: 1.25, inverse: 0.8))
    }
}

/// 2^n as a Double.
private func pow2(_ n: Int) -> Double { n >= 0 ? Double(1 << n) : 1 / Double(1 << -n) }
