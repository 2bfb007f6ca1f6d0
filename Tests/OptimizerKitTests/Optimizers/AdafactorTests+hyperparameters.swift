import Foundation
import Testing

@testable import OptimizerKit

extension AdafactorTests {
    // MARK: Hyperparameters

    struct InvalidCase: Sendable, CustomTestStringConvertible {
        var hyperparameters: Hyperparameters
        var field: String
        var fragment: String
        var testDescription: String { field + ": " + fragment }
    }

    static let invalidCases = [
        InvalidCase(hyperparameters: ["lr": .number(0.01)], field: "hyperparameters.lr", fragment: "relative_step"),
        InvalidCase(
            hyperparameters: ["relative_step": .bool(false)],
            field: "hyperparameters.lr",
            fragment: "required"
        ),
        InvalidCase(
            hyperparameters: ["relative_step": .bool(false), "lr": .number(0.01), "warmup_init": .bool(true)],
            field: "hyperparameters.warmup_init",
            fragment: "requires relative_step"
        ),
        InvalidCase(
            hyperparameters: ["relative_step": .bool(false), "lr": .number(-1)],
            field: "hyperparameters.lr",
            fragment: "≥ 0"
        ),
        InvalidCase(
            hyperparameters: ["eps": .list([.number(-1), .number(1e-3)])],
            field: "hyperparameters.eps[0]",
            fragment: "≥ 0"
        ),
        InvalidCase(
            hyperparameters: ["eps": .list([.number(1e-30), .number(-1e-3)])],
            field: "hyperparameters.eps[1]",
            fragment: "≥ 0"
        ),
        InvalidCase(hyperparameters: ["eps": .number(1e-30)], field: "hyperparameters.eps", fragment: "list of 2"),
        InvalidCase(
            hyperparameters: ["clip_threshold": .number(0)],
            field: "hyperparameters.clip_threshold",
            fragment: "> 0"
        ),
        InvalidCase(
            hyperparameters: ["decay_rate": .number(0.5)],
            field: "hyperparameters.decay_rate",
            fragment: "≤ 0"
        ),
        InvalidCase(hyperparameters: ["beta1": .number(1)], field: "hyperparameters.beta1", fragment: "[0, 1)"),
        InvalidCase(
            hyperparameters: ["weight_decay": .number(-0.1)],
            field: "hyperparameters.weight_decay",
            fragment: "≥ 0"
        ),
        InvalidCase(
            hyperparameters: ["scale_parameter": .number(1)],
            field: "hyperparameters.scale_parameter",
            fragment: "true or false"
        ),
        InvalidCase(
            hyperparameters: ["betas": .list([.number(0.9), .number(0.99)])],
            field: "hyperparameters.betas",
            fragment: "no hyperparameter"
        ),
    ]

    @Test(arguments: invalidCases)
    func invalidHyperparametersNameTheFieldAndRange(_ test: InvalidCase) {
        do {
            _ = try SessionConfiguration(optimizer: "adafactor", hyperparameters: test.hyperparameters)
            Issue.record("accepted \(test.hyperparameters)")
        } catch let error as OptimizerError {
            #expect(error.subject == test.field)
            #expect(error.message.hasPrefix(test.field))
            #expect(error.message.contains(test.fragment), "\(error.message)")
            #expect(error.code.isConfigurationError)
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func groupErrorsNameTheGroupField() {
        #expect {
            _ = try SessionConfiguration(
                optimizer: "adafactor",
                groups: [ParameterGroup(parameters: ["b*"], hyperparameters: ["lr": .number(0.1)])]
            )
        } throws: { error in
            (error as? OptimizerError)?.subject == "groups[0].hyperparameters.lr"
        }
    }

    @Test func defaultsAreRecordedUnderTheReferenceNames() throws {
        let configuration = try SessionConfiguration(optimizer: "adafactor")
        let effective = configuration.effectiveHyperparameters[0]
        #expect(effective["lr"] == .null)
        #expect(effective["beta1"] == .null)
        #expect(effective["eps"] == .list([.number(1e-30), .number(1e-3)]))
        #expect(effective["clip_threshold"] == .number(1))
        #expect(effective["decay_rate"] == .number(-0.8))
        #expect(effective["weight_decay"] == .number(0))
        #expect(effective["scale_parameter"] == .bool(true))
        #expect(effective["relative_step"] == .bool(true))
        #expect(effective["warmup_init"] == .bool(false))
        let fixed = try SessionConfiguration(
            optimizer: "adafactor",
            hyperparameters: ["lr": .number(1e-3), "relative_step": .bool(false), "beta1": .number(0)]
        )
        #expect(fixed.effectiveHyperparameters[0]["lr"] == .number(1e-3))
        #expect(fixed.effectiveHyperparameters[0]["beta1"] == .number(0))
    }

    // MARK: State

    @Test func stateSlotsHaveTheReferenceNamesAndShapes() throws {
        let session = try OptimizerSession.make("adafactor")
        let tensors: [(String, [Int], [Float])] = [
            ("scalar", [], [0.5]),
            ("bias", [3], [1, 2, 3]),
            ("matrix", [2, 3], [1, 2, 3, 4, 5, 6]),
            ("conv", [2, 3, 4, 5], (0..<120).map { Float($0) / 60 - 1 }),
        ]
        try session.upload(tensors)
        #expect(session.states.allSatisfy { $0.isEmpty })
        let gradients = tensors.map { ($0.0, $0.1, $0.2.map { $0 * 0.1 + 0.01 }) }
        try session.step(gradients)
        try session.step(gradients)
        func slots(_ name: String) -> [(String, [Int]?)] {
            session.states[session.parameterIndex(named: name)!].all.map { slot in
                if case .tensor(let tensor) = slot.value { return (slot.name, tensor.shape.dimensions) }
                return (slot.name, nil)
            }
        }
        #expect(slots("scalar").map(\.0) == ["step", "exp_avg_sq", "RMS"])
        #expect(slots("scalar")[1].1 == [])
        #expect(slots("bias").map(\.0) == ["step", "exp_avg_sq", "RMS"])
        #expect(slots("bias")[1].1 == [3])
        #expect(slots("matrix").map(\.0) == ["step", "exp_avg_sq_row", "exp_avg_sq_col", "RMS"])
        #expect(slots("matrix")[1].1 == [2] && slots("matrix")[2].1 == [3])
        #expect(slots("conv")[1].1 == [2, 3, 4] && slots("conv")[2].1 == [2, 3, 5])
        let bias = session.states[session.parameterIndex(named: "bias")!]
        #expect(bias.scalar("step") == 2)
        // RMS is θ's before the last step; the first step's statistics are g² + ε1 exactly (β̂2 = 0).
        #expect(bias.scalar("RMS")! > 0)

        let momentum = try OptimizerSession.make("adafactor", ["beta1": .number(0.9)])
        try momentum.upload(tensors)
        try momentum.step(gradients)
        #expect(momentum.states[2].all.map(\.name) == ["step", "exp_avg", "exp_avg_sq_row", "exp_avg_sq_col", "RMS"])
        #expect(momentum.states[2].existingTensor("exp_avg")!.shape.dimensions == [2, 3])
    }

    @Test func firstStepStatisticsAreTheMeansOfSquaredGradients() throws {
        let session = try OptimizerSession.make("adafactor")
        let theta: [Float] = [1, 2, 3, 4, 5, 6]
        try session.upload([("w", [2, 3], theta)])
        let g: [Float] = [1, 2, 3, 0, 0, 4]
        try session.step([("w", [2, 3], g)])
        let state = session.states[0]
        #expect(
            state.existingTensor("exp_avg_sq_row")!.values == [Float(14.0 / 3 as Double), Float(16.0 / 3 as Double)]
        )
        #expect(state.existingTensor("exp_avg_sq_col")!.values == [0.5, 2, 12.5])
        let rms = (theta.reduce(0.0) { $0 + Double($1) * Double($1) } / 6).squareRoot()
        #expect(abs(state.scalar("RMS")! - rms) <= 1e-15 * rms)
    }

    @Test func emptyTensorsStepWithoutChange() throws {
        var reader = HyperparameterReader([:], optimizer: "adafactor")
        let adafactor = try Adafactor(&reader, terms: 1)
        for shape in [[0], [0, 3], [2, 0, 4], [3, 0]] {
            let parameter = TensorBuffer(zeros: TensorShape(shape))
            let state = StateSlots()
            let result = adafactor.step(
                TensorStepInput(
                    parameter: parameter,
                    gradients: [UnsafeBufferPointer(start: nil, count: 0)],
                    gradientScales: [1],
                    gradientNorms: [0],
                    termWeights: [1],
                    parallelism: .serial
                ),
                state: state
            )
            #expect(result.updateSquaredNorm == 0)
            #expect(result.learningRate == 0.01)
            #expect(state.scalar("step") == 1)
            #expect(state.scalar("RMS") == 0)
        }
    }
}
