import Foundation
import Testing

@testable import OptimizerKit

/// A float64 reference of algorithms.md §1, written independently of the kernel.
private func referenceAdam(
    _ theta0: [Double], _ grads: [[Double]], lr: Double, beta1: Double, beta2: Double, eps: Double,
    weightDecay: Double, decoupled: Bool, amsgrad: Bool
) -> [[Double]] {
    var theta = theta0
    var m = [Double](repeating: 0, count: theta.count)
    var v = m
    var vmax = m
    var out: [[Double]] = []
    for (index, gradient) in grads.enumerated() {
        let t = Double(index + 1)
        for i in theta.indices {
            var g = gradient[i]
            if weightDecay != 0 {
                if decoupled { theta[i] *= 1 - lr * weightDecay } else { g += weightDecay * theta[i] }
            }
            m[i] = beta1 * m[i] + (1 - beta1) * g
            v[i] = beta2 * v[i] + (1 - beta2) * g * g
            vmax[i] = max(vmax[i], v[i])
            let s = amsgrad ? vmax[i] : v[i]
            let denom = s.squareRoot() / (1 - pow(beta2, t)).squareRoot() + eps
            theta[i] -= lr / (1 - pow(beta1, t)) * m[i] / denom
        }
        out.append(theta)
    }
    return out
}

struct AdamTests {
    @Test(arguments: [
        ("adam", Hyperparameters(), false, 0.0, false),
        ("adam", ["weight_decay": .number(0.1), "amsgrad": .bool(true)], false, 0.1, true),
        ("adamw", Hyperparameters(), true, 0.01, false),
        ("adam", ["weight_decay": .number(0.05), "decoupled_weight_decay": .bool(true)], true, 0.05, false),
    ])
    func matchesFloat64Reference(optimizer: String, hyperparameters: Hyperparameters, decoupled: Bool, wd: Double, amsgrad: Bool) throws {
        var random = SeededRandom(seed: 42)
        let shape = [3, 5]
        let theta = random.floats(15)
        let grads = (0..<6).map { step in random.floats(15).map { $0 * pow(0.5, Float(step)) } }
        var hp = hyperparameters
        hp["lr"] = .number(0.01)
        let session = try OptimizerSession.make(optimizer, hp)
        try session.upload([("w", shape, theta)])
        let expected = referenceAdam(
            theta.map(Double.init), grads.map { $0.map(Double.init) }, lr: 0.01, beta1: 0.9, beta2: 0.999,
            eps: 1e-8, weightDecay: wd, decoupled: decoupled, amsgrad: amsgrad
        )
        for (t, gradient) in grads.enumerated() {
            try session.step([("w", shape, gradient)])
            #expect(withinCriterion(session.value("w"), expected[t], initial: theta), "step \(t + 1)")
        }
        #expect(session.states[0].scalar("step") == 6)
        #expect(session.states[0].names == (amsgrad ? ["step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"] : ["step", "exp_avg", "exp_avg_sq"]))
    }

    @Test func firstStepIsSignTimesLearningRate() throws {
        let session = try OptimizerSession.make("adam", ["lr": .number(0.1)])
        try session.upload([("w", [4], [1, 1, 1, 1])])
        try session.step([("w", [4], [3, -0.5, 0, 1e-3])])
        let value = session.value("w")
        #expect(abs(value[0] - 0.9) < 1e-6)
        #expect(abs(value[1] - 1.1) < 1e-6)
        #expect(value[2] == 1)
        #expect(abs(value[3] - 0.9) < 1e-5)
    }

    @Test func rankZeroTensorSteps() throws {
        let session = try OptimizerSession.make("adam", ["lr": .number(0.5)])
        try session.upload([("scale", [], [2])])
        try session.step([("scale", [], [1])])
        #expect(abs(session.value("scale")[0] - 1.5) < 1e-6)
    }

    @Test(arguments: [
        (["lr": HyperparameterValue.number(-1)], "hyperparameters.lr"),
        (["betas": .list([.number(1), .number(0.9)])], "hyperparameters.betas[0]"),
        (["betas": .list([.number(0.9)])], "hyperparameters.betas"),
        (["eps": .string("x")], "hyperparameters.eps"),
        (["amsgrad": .number(1)], "hyperparameters.amsgrad"),
        (["weight_decy": .number(0.1)], "hyperparameters.weight_decy"),
    ])
    func invalidHyperparametersNameTheField(hyperparameters: Hyperparameters, field: String) {
        #expect {
            try SessionConfiguration(optimizer: "adam", hyperparameters: hyperparameters)
        } throws: { error in
            let error = error as! OptimizerError
            return error.subject == field && error.message.hasPrefix(field) && error.code.isConfigurationError
        }
    }

    /// The kernels compute in float32: a value past its range would be infinite there and turn the
    /// parameters non-finite at the first step, although it is a finite double.
    @Test func valuesPastFloat32sRangeAreRefused() throws {
        for hyperparameters: Hyperparameters in [["lr": .number(1e308)], ["betas": .list([.number(0.9), .number(-1e39)])]] {
            let error = try #require(throws: OptimizerError.self) { try SessionConfiguration(optimizer: "adam", hyperparameters: hyperparameters) }
            #expect(error.message.contains("float32"))
        }
        #expect(throws: Never.self) { try SessionConfiguration(optimizer: "adam", hyperparameters: ["lr": .number(3e38)]) }
        let mtadam = try OptimizerSession.make("mtadam", ["terms": .number(2)])
        try mtadam.upload([("w", [2], [1, 2])])
        let step = try #require(throws: OptimizerError.self) {
            try mtadam.step([("0/w", [2], [1, 1]), ("1/w", [2], [1, 1])], termWeights: [1e308, 1e308])
        }
        #expect(step.subject == "term_weights" && mtadam.step == 0 && mtadam.value("w") == [1, 2])
    }

    @Test func effectiveHyperparametersFillDefaults() throws {
        let configuration = try SessionConfiguration(optimizer: "adamw", hyperparameters: ["lr": .number(0.002)])
        let effective = configuration.effectiveHyperparameters[0]
        #expect(effective["lr"] == .number(0.002))
        #expect(effective["weight_decay"] == .number(0.01))
        #expect(effective["betas"] == .list([.number(0.9), .number(0.999)]))
        #expect(effective["nonfinite"] == .string("reject"))
    }
}
