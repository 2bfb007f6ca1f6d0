import Testing

@testable import OptimizerKit

/// Four steps on two tensors (a 2×3 weight and a rank-0 scale), shared by the MoMo and MoMo-Adam tests.
enum MomoFixture {
    static let weight: [Float] = [0.5, -1.25, 0.75, 2.0, -0.3, 0.1]
    static let scale: [Float] = [0.2]
    static let weightGradients: [[Float]] = [
        [0.3, -0.2, 0.5, 1.1, -0.7, 0.05],
        [0.25, -0.1, 0.4, 0.9, -0.6, 0.0],
        [0.1, 0.05, 0.3, 0.6, -0.4, -0.02],
        [0.05, 0.1, 0.2, 0.5, -0.3, -0.04],
    ]
    static let scaleGradients: [Float] = [0.8, 0.6, -0.2, 0.1]
    static let losses = [1.5, 1.2, 1.0, 0.9]

    /// Expected values from a float64 NumPy transcription of algorithms.md §5 (momo-opt semantics).
    struct Expectation: Sendable, CustomTestStringConvertible {
        var name: String
        var hyperparameters: Hyperparameters
        /// τ at each step.
        var stepSizes: [Double]
        /// The `lb` slot after each step.
        var lowerBounds: [Double]
        /// The weight after each step.
        var weight: [[Double]]
        /// The scale after each step.
        var scale: [Double]

        var testDescription: String { name }
    }

    static func session(_ optimizer: String, _ hyperparameters: Hyperparameters) throws -> OptimizerSession {
        let session = try OptimizerSession.make(optimizer, hyperparameters)
        try session.upload([("w", [2, 3], weight), ("s", [], scale)])
        return session
    }

    /// Runs the four steps and checks parameters, τ and `lb` against `expectation` after each.
    static func check(_ optimizer: String, _ expectation: Expectation) throws {
        let session = try session(optimizer, expectation.hyperparameters)
        for t in 0..<4 {
            let telemetry = try session.step(
                [("w", [2, 3], weightGradients[t]), ("s", [], [scaleGradients[t]])],
                loss: losses[t]
            )
            #expect(withinCriterion(session.value("w"), expectation.weight[t], initial: weight), "w, step \(t + 1)")
            #expect(withinCriterion(session.value("s"), [expectation.scale[t]], initial: scale), "s, step \(t + 1)")
            let tau = try #require(telemetry.lr)
            #expect(abs(tau - expectation.stepSizes[t]) <= 1e-5 * expectation.stepSizes[t], "τ, step \(t + 1)")
            let lb = try #require(session.globalState.scalar("lb"))
            #expect(abs(lb - expectation.lowerBounds[t]) <= 1e-5 * max(1, abs(expectation.lowerBounds[t])), "lb, step \(t + 1)")
        }
        #expect(session.globalState.scalar("step") == 4)
    }
}

struct MomoTests {
    static let expectations: [MomoFixture.Expectation] = [
        .init(
            name: "defaults (lr 1, Polyak step active)",
            hyperparameters: [:],
            stepSizes: [0.550964174526547, 0.045868928513616104, 0.04359485711929602, 0.04457478699827816],
            lowerBounds: [0, 0, 0, 0],
            weight: [
                [0.3347107410740311, -1.1398071634526894, 0.4745179127367265, 1.3939393948847887, 0.08567490367964914, 0.07245179235328847],
                [0.32117940667039413, -1.1310920669052373, 0.4520421377377146, 1.3444009512152029, 0.11732446397128408, 0.07038769053941824],
                [0.30916902310658206, -1.1238553205155983, 0.431508959959171, 1.2994110578157958, 0.14614066422571786, 0.06870928851206713],
                [0.29789383033869776, -1.1176415951154466, 0.41172221192800684, 1.2557812555175747, 0.17399544839670253, 0.06734307126058055],
            ],
            scale: [-0.24077134320901017, -0.276549108051111, -0.3062808011079729, -0.33408655370563833]
        ),
        .init(
            name: "weight decay, fstar, bias correction",
            hyperparameters: [
                "lr": .number(0.5), "weight_decay": .number(0.01), "beta": .number(0.8),
                "bias_correction": .bool(true), "use_fstar": .bool(true),
            ],
            stepSizes: [2.5000000000000004, 0.462060511224381, 0.11378671026137802, 0.13930934291473251],
            lowerBounds: [0.8193749841861425, 0.5442225571257685, 0.5852814752799295, 0.6270372698808485],
            weight: [
                [0.3482587005368513, -1.1442786054824716, 0.49751243781094534, 1.4427860577901206, 0.0497512259886632, 0.07462686678366875],
                [0.3014694224433349, -1.1146780681997728, 0.4214753785713685, 1.2719328519750213, 0.15616842379570678, 0.07057749516297691],
                [0.2888286666130145, -1.1055546349272973, 0.39809301160440336, 1.2197731255775628, 0.1854628601365276, 0.06995463386798483],
                [0.2750936731199915, -1.0993224692395493, 0.36971991269493276, 1.1549534858011814, 0.22231031901891746, 0.07044938768895853],
            ],
            scale: [-0.19900497808978335, -0.3120358089134493, -0.32841753667533935, -0.3471213970528082]
        ),
        .init(
            name: "lb above the Polyak level, weight decay (τ = lr)",
            hyperparameters: ["lr": .number(0.1), "weight_decay": .number(0.2), "lb": .number(0.3)],
            stepSizes: [0.1, 0.1, 0.1, 0.1],
            lowerBounds: [0.3, 0.3, 0.3, 0.3],
            weight: [
                [0.46078431255677166, -1.2058823526489968, 0.6862745098039215, 1.8529411741331512, -0.22549020893433513, 0.09313725628981402],
                [0.422827756356753, -1.1636101493783084, 0.6247789311218793, 1.7107266394370613, -0.1534217742831374, 0.08689927080662627],
                [0.3875272111531927, -1.1245197540499503, 0.5663518930872803, 1.5760065073353224, -0.08560958330838361, 0.08142085366843746],
                [0.35512961790519154, -1.0888036802374785, 0.5117273459822645, 1.4491436329174443, -0.022666258638673345, 0.07681946431486147],
            ],
            scale: [0.11764706057660719, 0.038869665946377446, -0.028755230592149225, -0.08934826631606185]
        ),
    ]

    @Test(arguments: expectations)
    func matchesFloat64Reference(_ expectation: MomoFixture.Expectation) throws {
        try MomoFixture.check("momo", expectation)
    }

    @Test func stateSlotsAreNamedAfterMomoOpt() throws {
        let session = try MomoFixture.session("momo", [:])
        try session.step([("w", [2, 3], MomoFixture.weightGradients[0]), ("s", [], [0.8])], loss: 1.5)
        #expect(session.globalState.names == ["step", "loss_avg", "lb", "initial_lb"])
        #expect(session.globalState.scalar("loss_avg") == 1.5)
        #expect(session.globalState.scalar("initial_lb") == 0)
        for (index, shape) in [[2, 3], []].enumerated() {
            let state = session.states[index]
            #expect(state.names == ["grad_avg", "grad_dot_w"])
            #expect(state.existingTensor("grad_avg")?.shape == TensorShape(shape))
        }
        // Without bias correction the first average is the gradient and γ is ⟨θ, g⟩.
        let gamma = try #require(session.states[1].scalar("grad_dot_w"))
        #expect(abs(gamma - Double(Float(0.2) * Float(0.8))) < 1e-7)
        let average = try #require(session.states[0].existingTensor("grad_avg")).values
        for (got, gradient) in zip(average, MomoFixture.weightGradients[0]) { #expect(abs(got - gradient) <= 1e-7) }
    }

    @Test func biasCorrectionStartsFromZero() throws {
        let session = try MomoFixture.session("momo", ["bias_correction": .bool(true), "beta": .number(0.5)])
        try session.step([("w", [2, 3], MomoFixture.weightGradients[0]), ("s", [], [0.8])], loss: 1.5)
        #expect(session.globalState.scalar("loss_avg") == 0.75)
        #expect(session.states[1].existingTensor("grad_avg")?.values == [0.4])
        #expect(abs(session.states[1].scalar("grad_dot_w")! - 0.5 * Double(Float(0.2) * Float(0.8))) < 1e-7)
    }

    @Test func zeroGradientUsesMaximalStepAndOnlyDecays() throws {
        let session = try OptimizerSession.make("momo", ["lr": .number(0.5), "weight_decay": .number(0.2)])
        try session.upload([("w", [3], [1, -2, 4])])
        let telemetry = try session.step([("w", [3], [0, 0, 0])], loss: 2)
        #expect(telemetry.lr == 0.5)
        #expect(session.value("w") == [1, -2, 4].map { $0 / Float(1.1) })
    }

    @Test func gradientScaleDividesTheGradient() throws {
        func run(factor: Float, gradScale: Double?) throws -> ([Float], Double?) {
            let session = try MomoFixture.session("momo", ["weight_decay": .number(0.01)])
            var lr: Double?
            for t in 0..<3 {
                lr = try session.step(
                    [("w", [2, 3], MomoFixture.weightGradients[t].map { $0 * factor }), ("s", [], [MomoFixture.scaleGradients[t] * factor])],
                    loss: MomoFixture.losses[t],
                    gradScale: gradScale
                ).lr
            }
            return (session.value("w") + session.value("s"), lr)
        }
        let plain = try run(factor: 1, gradScale: nil)
        let scaled = try run(factor: 1024, gradScale: 1024)
        #expect(plain.0.map(\.bitPattern) == scaled.0.map(\.bitPattern))
        #expect(plain.1 == scaled.1)
    }

    @Test func tensorAddedLaterStartsFromItsGradient() throws {
        let session = try OptimizerSession.make("momo", ["lr": .number(0.1)])
        try session.upload([("a", [2], [1, 2])])
        try session.step([("a", [2], [0.5, -0.5])], loss: 1)
        try session.upload([("b", [1], [3])])
        try session.step([("a", [2], [0.25, -0.25]), ("b", [1], [2])], loss: 0.5)
        let state = session.states[1]
        #expect(state.names == ["grad_avg", "grad_dot_w"])
        #expect(abs(state.existingTensor("grad_avg")!.values[0] - 2) < 1e-6)
        #expect(abs(state.scalar("grad_dot_w")! - 6) < 1e-6)
    }

    @Test func changingLowerBoundRestartsTheEstimate() throws {
        let session = try MomoFixture.session("momo", ["use_fstar": .bool(true)])
        try session.step([("w", [2, 3], MomoFixture.weightGradients[0]), ("s", [], [0.8])], loss: 1.5)
        #expect(session.globalState.scalar("lb")! > 0)
        try session.reconfigure(try session.configuration.patched(hyperparameters: ["lb": .number(-5), "use_fstar": .bool(false)]))
        try session.step([("w", [2, 3], MomoFixture.weightGradients[1]), ("s", [], [0.6])], loss: 1.2)
        #expect(session.globalState.scalar("lb") == -5)
        #expect(session.globalState.scalar("initial_lb") == -5)
    }

    @Test(arguments: [
        (["lr": HyperparameterValue.number(-0.1)], "hyperparameters.lr", "≥ 0"),
        (["weight_decay": .number(-1)], "hyperparameters.weight_decay", "≥ 0"),
        (["beta": .number(1.5)], "hyperparameters.beta", "[0, 1]"),
        (["beta": .number(-0.1)], "hyperparameters.beta", "[0, 1]"),
        (["beta": .number(1), "bias_correction": .bool(true)], "hyperparameters.beta", "< 1"),
        (["lb": .string("zero")], "hyperparameters.lb", "finite number"),
        (["use_fstar": .number(1)], "hyperparameters.use_fstar", "true or false"),
        (["betas": .list([.number(0.9), .number(0.99)])], "hyperparameters.betas", "no hyperparameter"),
    ])
    func invalidHyperparametersNameTheFieldAndRange(hyperparameters: Hyperparameters, field: String, range: String) {
        #expect {
            try SessionConfiguration(optimizer: "momo", hyperparameters: hyperparameters)
        } throws: { error in
            let error = error as! OptimizerError
            return error.subject == field && error.message.hasPrefix(field) && error.message.contains(range)
                && error.code.isConfigurationError
        }
    }

    @Test func defaultsFollowMomoOpt() throws {
        let effective = try SessionConfiguration(optimizer: "momo").effectiveHyperparameters[0]
        #expect(effective["lr"] == .number(1))
        #expect(effective["weight_decay"] == .number(0))
        #expect(effective["beta"] == .number(0.9))
        #expect(effective["lb"] == .number(0))
        #expect(effective["bias_correction"] == .bool(false))
        #expect(effective["use_fstar"] == .bool(false))
        #expect(throws: OptimizerError.self) {
            try SessionConfiguration(optimizer: "momo", groups: [ParameterGroup(parameters: ["w"], hyperparameters: [:])])
        }
    }

    @Test func lossIsRequired() throws {
        let session = try MomoFixture.session("momo", [:])
        #expect(throws: OptimizerError.self) {
            try session.step([("w", [2, 3], MomoFixture.weightGradients[0]), ("s", [], [0.8])])
        }
        #expect(session.globalState.isEmpty)
    }
}
