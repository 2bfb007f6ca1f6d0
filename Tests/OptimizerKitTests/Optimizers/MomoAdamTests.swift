import Foundation
import Testing

@testable import OptimizerKit

struct MomoAdamTests {
    static let expectations: [MomoFixture.Expectation] = [
        .init(
            name: "defaults (lr 1e-2, τ = lr/bc1)",
            hyperparameters: [:],
            stepSizes: [0.10000000000000002, 0.05263157894736844, 0.03690036900369005, 0.029078220412910732],
            lowerBounds: [0, 0, 0, 0],
            weight: [
                [0.4900000003333333, -1.2400000005, 0.7400000002, 1.990000000090909, -0.2900000120637861, 0.0900000034901157],
                [0.48008827197426995, -1.2306782047015365, 0.7301187423652268, 1.9801015084198546, -0.2800694540083459, 0.0832994228444349],
                [0.4710804466053476, -1.2250415913623456, 0.7204909777276995, 1.9705670269647468, -0.2704839512908429, 0.08086551897667389],
                [0.4630418367054723, -1.223137970128253, 0.7113195315980918, 1.961344653684524, -0.2612968444871885, 0.08273402331381755],
            ],
            scale: [0.19000000310523224, 0.18017425240659954, 0.17398045517371571, 0.168363305430479]
        ),
        .init(
            name: "lr 1, proximal weight decay, fstar (Polyak step active)",
            hyperparameters: ["lr": .number(1), "weight_decay": .number(0.01), "use_fstar": .bool(true), "lb": .number(0.05)],
            stepSizes: [3.9205479761418975, 0.5341745864842754, 0.11034398200665536, 0.10914074424738358],
            lowerBounds: [0.7845000003352761, 0.49405588050139077, 0.5378460270315394, 0.5794557960612025],
            weight: [
                [0.1068764509448541, -0.8494507148401473, 0.35440119824446153, 1.5920249563860838, 0.09114334662621565, -0.28916308684468406],
                [0.0062170063281770365, -0.7473671811261203, 0.251597206639214, 1.4767940843338774, 0.19003141558401035, -0.35363307412009354],
                [-0.020514149757828858, -0.7232791017290318, 0.22060108027363923, 1.4339434807084008, 0.21652985584291182, -0.3573378516717689],
                [-0.05018402751522987, -0.7090437075242344, 0.18433409025514202, 1.385473944714634, 0.24852701480479153, -0.3468561391625878],
            ],
            scale: [-0.19015325716165604, -0.28700783878426767, -0.3025042439312881, -0.3203835386272695]
        ),
        .init(
            name: "AdamW-style decay (divide off), betas, eps, negative lb",
            hyperparameters: [
                "lr": .number(0.5), "betas": .list([.number(0.8), .number(0.99)]), "eps": .number(1e-6),
                "weight_decay": .number(0.1), "divide": .bool(false), "lb": .number(-1),
            ],
            stepSizes: [2.5000000000000004, 1.2939100929132286, 0.824190036316468, 0.7390928559156213],
            lowerBounds: [-1, -1, -1, -1],
            weight: [
                [-0.02499833333895518, -0.6875024999874628, 0.21250099999799993, 1.4000004545450313, 0.21499927439041133, -0.4049899987845347],
                [-0.48316380563739647, -0.22694999686634543, -0.25561852731492624, 0.8714267119928134, 0.6648917088789479, -0.6782490168517687],
                [-0.8083326184879978, -0.018017028802552154, -0.622991200679124, 0.4526056185373232, 1.009540344471959, -0.7081877082084669],
                [-1.0923289979258324, 0.014225463359817642, -0.9760936698105858, 0.04241678924115877, 1.344327903170209, -0.5386369559138038],
            ],
            scale: [-0.30999937216956996, -0.7486249305253669, -0.9335700459675478, -1.0996706894424269]
        ),
    ]

    @Test(arguments: expectations)
    func matchesFloat64Reference(_ expectation: MomoFixture.Expectation) throws {
        try MomoFixture.check("momo_adam", expectation)
    }

    @Test func stateSlotsAreNamedAfterMomoOpt() throws {
        let session = try MomoFixture.session("momo_adam", [:])
        try session.step([("w", [2, 3], MomoFixture.weightGradients[0]), ("s", [], [0.8])], loss: 1.5)
        #expect(session.globalState.names == ["step", "loss_avg", "lb", "initial_lb"])
        #expect(abs(session.globalState.scalar("loss_avg")! - 0.15) < 1e-15)
        for (index, shape) in [[2, 3], []].enumerated() {
            let state = session.states[index]
            #expect(state.names == ["grad_avg", "grad_avg_sq", "grad_dot_w"])
            #expect(state.existingTensor("grad_avg")?.shape == TensorShape(shape))
            #expect(state.existingTensor("grad_avg_sq")?.shape == TensorShape(shape))
        }
        #expect(abs(session.states[1].scalar("grad_dot_w")! - 0.1 * Double(Float(0.2) * Float(0.8))) < 1e-8)
    }

    /// With λ = 0 and the Polyak term never binding (lb far below the loss), MoMo-Adam is Adam with
    /// eps outside the bias correction: θ ← θ − lr/bc1 · m / (√(v/bc2) + eps).
    @Test func isAdamWhenTheStepSizeIsTruncated() throws {
        var random = SeededRandom(seed: 11)
        let theta = random.floats(19)
        let grads = (0..<5).map { _ in random.floats(19) }
        let session = try OptimizerSession.make("momo_adam", ["lr": .number(0.01), "lb": .number(-1e6)])
        try session.upload([("w", [19], theta)])
        var expected = theta.map(Double.init)
        var m = [Double](repeating: 0, count: 19)
        var v = m
        for (index, gradient) in grads.enumerated() {
            let t = Double(index + 1)
            let telemetry = try session.step([("w", [19], gradient)], loss: 1)
            for i in 0..<19 {
                let g = Double(gradient[i])
                m[i] = 0.9 * m[i] + 0.1 * g
                v[i] = 0.999 * v[i] + 0.001 * g * g
                expected[i] -= 0.01 / (1 - pow(0.9, t)) * m[i] / ((v[i] / (1 - pow(0.999, t))).squareRoot() + 1e-8)
            }
            #expect(abs(telemetry.lr! - 0.01 / (1 - pow(0.9, t))) < 1e-15)
            #expect(withinCriterion(session.value("w"), expected, initial: theta), "step \(index + 1)")
        }
    }

    @Test func zeroGradientMovesOnlyByDecay() throws {
        let session = try OptimizerSession.make("momo_adam", ["weight_decay": .number(0.5), "lr": .number(0.1)])
        try session.upload([("w", [2], [1, -3])])
        let telemetry = try session.step([("w", [2], [0, 0])], loss: 1)
        #expect(abs(telemetry.lr! - 1) < 1e-12)
        #expect(session.value("w") == [1, -3].map { $0 / Float(1.05) })
    }

    @Test func gradientScaleDividesTheGradient() throws {
        func run(factor: Float, gradScale: Double?) throws -> [Float] {
            let session = try MomoFixture.session("momo_adam", ["lr": .number(1)])
            for t in 0..<3 {
                try session.step(
                    [("w", [2, 3], MomoFixture.weightGradients[t].map { $0 * factor }), ("s", [], [MomoFixture.scaleGradients[t] * factor])],
                    loss: MomoFixture.losses[t],
                    gradScale: gradScale
                )
            }
            return session.value("w") + session.value("s")
        }
        #expect(try run(factor: 1, gradScale: nil).map(\.bitPattern) == run(factor: 256, gradScale: 256).map(\.bitPattern))
    }

    @Test(arguments: [
        (["lr": HyperparameterValue.number(-1)], "hyperparameters.lr", "≥ 0"),
        (["betas": .list([.number(1), .number(0.999)])], "hyperparameters.betas[0]", "[0, 1)"),
        (["betas": .list([.number(0.9), .number(-0.1)])], "hyperparameters.betas[1]", "[0, 1)"),
        (["betas": .list([.number(0.9)])], "hyperparameters.betas", "list of 2"),
        (["eps": .number(-1e-8)], "hyperparameters.eps", "≥ 0"),
        (["weight_decay": .number(-0.1)], "hyperparameters.weight_decay", "≥ 0"),
        (["lb": .number(.infinity)], "hyperparameters.lb", "finite number"),
        (["divide": .string("yes")], "hyperparameters.divide", "true or false"),
        (["beta": .number(0.9)], "hyperparameters.beta", "no hyperparameter"),
    ])
    func invalidHyperparametersNameTheFieldAndRange(hyperparameters: Hyperparameters, field: String, range: String) {
        #expect {
            try SessionConfiguration(optimizer: "momo_adam", hyperparameters: hyperparameters)
        } throws: { error in
            let error = error as! OptimizerError
            return error.subject == field && error.message.hasPrefix(field) && error.message.contains(range)
                && error.code.isConfigurationError
        }
    }

    @Test func defaultsFollowMomoOpt() throws {
        let effective = try SessionConfiguration(optimizer: "momo_adam").effectiveHyperparameters[0]
        #expect(effective["lr"] == .number(1e-2))
        #expect(effective["betas"] == .list([.number(0.9), .number(0.999)]))
        #expect(effective["eps"] == .number(1e-8))
        #expect(effective["weight_decay"] == .number(0))
        #expect(effective["lb"] == .number(0))
        #expect(effective["divide"] == .bool(true))
        #expect(effective["use_fstar"] == .bool(false))
    }
}
