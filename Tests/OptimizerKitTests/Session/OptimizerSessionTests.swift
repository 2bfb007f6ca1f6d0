import Testing

@testable import OptimizerKit

struct OptimizerSessionTests {
    static func adamSession(_ hyperparameters: Hyperparameters = [:], groups: [ParameterGroup] = []) throws -> OptimizerSession {
        let session = try OptimizerSession.make("adam", hyperparameters, groups: groups)
        try session.upload([("layer.weight", [2, 2], [1, 2, 3, 4]), ("layer.bias", [2], [0.5, -0.5])])
        return session
    }

    /// Parameters and every state slot, as bit patterns, to prove nothing changed.
    static func fingerprint(_ session: OptimizerSession) -> [[UInt32]] {
        var result = session.parameters.map { $0.values.map(\.bitPattern) }
        for state in session.states {
            for slot in state.all {
                switch slot.value {
                case .tensor(let tensor): result.append(tensor.values.map(\.bitPattern))
                case .scalar(let value): result.append([UInt32(truncatingIfNeeded: value.bitPattern), UInt32(value.bitPattern >> 32)])
                case .packed(let tensor): result.append(tensor.bytes.map(UInt32.init))
                }
            }
        }
        result.append([UInt32(session.step)])
        return result
    }

    @Test func unknownOptimizerListsTheKnownOnes() {
        #expect {
            try SessionConfiguration(optimizer: "lion")
        } throws: { error in
            let error = error as! OptimizerError
            return error.code == .unknownOptimizer && error.message.contains("momo_adam")
        }
    }

    @Test(arguments: [
        ([("nope", [2], [Float](repeating: 0, count: 2))], OptimizerError.Code.unknownTensor, "nope"),
        ([("layer.bias", [3], [Float](repeating: 0, count: 3))], .shapeMismatch, "layer.bias"),
        ([("layer.bias", [2], [0, 0]), ("layer.bias", [2], [1, 1])], .duplicateTensor, "layer.bias"),
        ([("layer.bias", [2], [Float.nan, 0])], .nonFiniteValue, "layer.bias"),
        ([("layer.weight", [2, 2], [0, Float.infinity, 0, 0])], .nonFiniteValue, "layer.weight"),
    ])
    func badGradientsAreRejectedAndChangeNothing(gradients: [(String, [Int], [Float])], code: OptimizerError.Code, subject: String) throws {
        let session = try Self.adamSession()
        try session.step([("layer.bias", [2], [1, 1])])
        let before = Self.fingerprint(session)
        #expect {
            try session.step(gradients)
        } throws: { error in
            let error = error as! OptimizerError
            return error.code == code && error.subject == subject && error.message.contains(subject)
        }
        #expect(Self.fingerprint(session) == before)
    }

    /// A sum of squares known from the body's arrival stands in for reading the gradient again:
    /// the true sum gives the same bits (with clipping, which uses it), and a non-finite one is the
    /// non-finite gradient it would describe.
    @Test func knownSumsOfSquaresAreUsedInPlaceOfTheGradientsOwn() throws {
        let gradients = [("layer.weight", [2, 2], [Float(3), -1, 2, 0.5]), ("layer.bias", [2], [Float(4), 1])]
        let reference = try Self.adamSession(["clip_grad_norm": .number(1)])
        try reference.step(gradients)
        let known = try Self.adamSession(["clip_grad_norm": .number(1)])
        try known.step(gradients, knownSumsOfSquares: ["layer.weight": 9 + 1 + 4 + 0.25, "layer.bias": 17])
        #expect(Self.fingerprint(known) == Self.fingerprint(reference))

        let before = Self.fingerprint(known)
        #expect {
            try known.step(gradients, knownSumsOfSquares: ["layer.bias": Double.nan])
        } throws: { error in
            (error as! OptimizerError).code == .nonFiniteValue && (error as! OptimizerError).subject == "layer.bias"
        }
        #expect(Self.fingerprint(known) == before)
    }

    @Test func perTensorOptimizersMayOmitParameters() throws {
        let session = try Self.adamSession()
        try session.step([("layer.bias", [2], [1, 1])])
        #expect(session.value("layer.weight") == [1, 2, 3, 4])
        #expect(session.states[0].isEmpty)
        #expect(session.step == 1)
    }

    @Test func nonfiniteSkipCountsTheStepButMovesNothing() throws {
        let session = try Self.adamSession(["nonfinite": .string("skip")])
        try session.step([("layer.bias", [2], [1, 1])])
        let parameters = session.parameters.map(\.values)
        let telemetry = try session.step([("layer.bias", [2], [.nan, 1])])
        #expect(telemetry.skipped)
        #expect(telemetry.step == 2)
        #expect(session.step == 2)
        #expect(session.parameters.map(\.values) == parameters)
        #expect(session.states[1].scalar("step") == 1)
    }

    @Test func gradScaleDividesTheGradient() throws {
        let plain = try OptimizerSession.make("sgd", ["lr": .number(1)])
        let scaled = try OptimizerSession.make("sgd", ["lr": .number(1)])
        try plain.upload([("w", [2], [0, 0])])
        try scaled.upload([("w", [2], [0, 0])])
        try plain.step([("w", [2], [0.5, -2])])
        let telemetry = try scaled.step([("w", [2], [512, -2048])], gradScale: 1024)
        #expect(plain.value("w") == scaled.value("w"))
        #expect(abs(telemetry.gradNorm - (0.25 + 4.0).squareRoot()) < 1e-9)
    }

    /// Gradients that leave float32 once divided by `grad_scale` are non-finite, as torch's GradScaler
    /// finds them after unscaling (clipping comes after): refused under `reject`, a skipped step under
    /// `skip`. So are all gradients when 1/grad_scale is no float32.
    @Test(arguments: ["reject", "skip"], [(Float(1e9), 1e-30), (0.5, 1e-39), (0, 1e-40)])
    func gradientsOverflowingOnceUnscaledAreNonFinite(policy: String, overflow: (gradient: Float, scale: Double)) throws {
        let session = try OptimizerSession.make("adam", ["lr": .number(0.1), "nonfinite": .string(policy), "clip_grad_norm": .number(1)])
        try session.upload([("w", [2], [1, 2])])
        try session.step([("w", [2], [1, 1])], gradScale: 1e-10)
        let before = Self.fingerprint(session)
        let parameters = session.value("w")
        let unscaled = { () throws -> StepTelemetry in try session.step([("w", [2], [overflow.gradient, 1])], gradScale: overflow.scale) }
        if policy == "reject" {
            #expect {
                try unscaled()
            } throws: { error in
                let error = error as! OptimizerError
                return error.code == .nonFiniteValue && error.subject == "grad_scale" && error.message.contains("overflow")
            }
            #expect(Self.fingerprint(session) == before)
        } else {
            let telemetry = try unscaled()
            #expect(telemetry.skipped)
            #expect(session.value("w") == parameters)
            #expect(session.states[0].scalar("step") == 1)
        }
    }

    @Test func clipGradNormScalesLikeTorch() throws {
        let session = try OptimizerSession.make("sgd", ["lr": .number(1), "clip_grad_norm": .number(1)])
        try session.upload([("a", [1], [0]), ("b", [1], [0])])
        let telemetry = try session.step([("a", [1], [3]), ("b", [1], [4])])
        let coefficient = 1 / (5 + 1e-6)
        #expect(abs(Double(session.value("a")[0]) + 3 * coefficient) < 1e-6)
        #expect(abs(Double(session.value("b")[0]) + 4 * coefficient) < 1e-6)
        #expect(telemetry.gradNorm == 5)
        #expect(abs(telemetry.clipCoefficient! - coefficient) < 1e-12)
    }

    @Test func groupsOverrideHyperparametersByNamePattern() throws {
        let groups = [ParameterGroup(parameters: ["*.bias"], hyperparameters: ["lr": .number(0)])]
        let session = try Self.adamSession(["lr": .number(0.1)], groups: groups)
        #expect(session.parameterGroups == [0, 1])
        try session.step([("layer.weight", [2, 2], [1, 1, 1, 1]), ("layer.bias", [2], [1, 1])])
        #expect(session.value("layer.bias") == [0.5, -0.5])
        #expect(session.value("layer.weight") != [1, 2, 3, 4])
        #expect(session.configuration.effectiveHyperparameters[1]["lr"] == .number(0))
    }

    @Test func groupsCannotSetSessionOptions() {
        #expect {
            try SessionConfiguration(
                optimizer: "adam",
                groups: [ParameterGroup(parameters: ["*"], hyperparameters: ["clip_grad_norm": .number(1)])]
            )
        } throws: { ($0 as! OptimizerError).subject == "groups[0].hyperparameters.clip_grad_norm" }
        #expect {
            try SessionConfiguration(optimizer: "adam", groups: [ParameterGroup(parameters: ["*"], hyperparameters: ["lr": .number(-1)])])
        } throws: { ($0 as! OptimizerError).subject == "groups[0].hyperparameters.lr" }
    }

    @Test func patchChangesTheLearningRateAndKeepsState() throws {
        let session = try Self.adamSession(["lr": .number(0.1)])
        try session.step([("layer.bias", [2], [1, 1])])
        try session.reconfigure(try session.configuration.patched(hyperparameters: ["lr": .number(0)]))
        let before = session.value("layer.bias")
        try session.step([("layer.bias", [2], [1, 1])])
        #expect(session.value("layer.bias") == before)
        #expect(session.states[1].scalar("step") == 2)
    }

    @Test func reuploadKeepsStateAndRejectsNewShapes() throws {
        let session = try Self.adamSession()
        try session.step([("layer.bias", [2], [1, 1])])
        try session.upload([("layer.bias", [2], [7, 7])])
        #expect(session.value("layer.bias") == [7, 7])
        #expect(session.states[1].scalar("step") == 1)
        #expect(throws: OptimizerError.self) { try session.upload([("layer.bias", [3], [1, 2, 3])]) }
        try session.upload([("extra", [1], [1])])
        #expect(session.parameterNames == ["layer.weight", "layer.bias", "extra"])
    }

    /// "é" and "e" + U+0301 are equal Swift strings: a second spelling would reach the first's
    /// parameter and state. Names must be in NFC, so an upload names exactly what it writes.
    @Test func parameterNamesMustBeInNormalizationFormC() throws {
        let session = try OptimizerSession.make("adam")
        try session.upload([("caf\u{E9}", [1], [1])])
        let error = try #require(throws: OptimizerError.self) { try session.upload([("cafe\u{301}", [1], [5])]) }
        #expect(error.subject == "cafe\u{301}" && error.message.contains("normalization form C"))
        #expect(session.parameterNames.map { Array($0.utf8) } == [Array("caf\u{E9}".utf8)] && session.value("caf\u{E9}") == [1])
    }

    @Test func aPatternInAnotherSpellingMatchesItsNFCNames() {
        let group = ParameterGroup(parameters: ["e\u{301}mb.*"], hyperparameters: [:])
        #expect(group.matches("\u{E9}mb.weight"))
        #expect(!group.matches("emb.weight"))
    }

    @Test func stepWithoutParametersIsAnError() throws {
        let session = try OptimizerSession.make("adam")
        #expect(throws: OptimizerError.self) { try session.step([]) }
    }

    @Test(arguments: [
        ("*.bias", "layer.bias", true), ("*.bias", "layer.bias.x", false), ("norm.*", "norm.weight", true),
        ("layer?.w", "layer1.w", true), ("layer?.w", "layer12.w", false), ("*", "", true), ("a*b*c", "axxbyyc", true),
        ("a*b*c", "axxbyy", false), ("exact", "exact", true), ("layer?.w", "layeré.w", true), ("?", "日", true),
        ("??", "日", false),
    ])
    func globMatchesWholeNames(pattern: String, name: String, matches: Bool) {
        #expect(Glob.matches(pattern: Array(pattern.unicodeScalars), name: Array(name.unicodeScalars)) == matches)
    }
}
