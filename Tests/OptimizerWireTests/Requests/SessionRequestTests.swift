import OptimizerKit
import OptimizerWire
import Testing

/// `OptimizerSession.setParameters(from:in:beforeChange:)` and
/// `OptimizerSession.step(_:gradients:in:keepingDelta:parallelism:scratch:beforeApply:)`: the upload and the
/// step from their safetensors bodies, as the daemon, its log replay and the fuzz harness run them.
struct SessionRequestTests {
    struct Refused: Error {}

    /// An SGD session (lr 0.5) with `w` = [1, 2, 3] and `b` = [10].
    static func session() throws -> OptimizerSession {
        let session = OptimizerSession(configuration: try SessionConfiguration(optimizer: "sgd", hyperparameters: ["lr": .number(0.5)]))
        try upload(session) { writer in
            try writer.add("w", shape: [3], floats: [1, 2, 3])
            try writer.add("b", shape: [1], floats: [10], as: .BF16)
        }
        return session
    }

    static func upload(_ session: OptimizerSession, beforeChange: () throws -> Void = {}, _ build: (inout SafetensorsWriter) throws -> Void) throws {
        var writer = SafetensorsWriter()
        try build(&writer)
        let bytes = writer.bytes()
        try bytes.withUnsafeBytes { body in
            try session.setParameters(from: try SafetensorsHeader(parsing: body), in: body, beforeChange: beforeChange)
        }
    }

    static func step(
        _ session: OptimizerSession,
        metadata: [String: String] = [:],
        keepingDelta: Bool = false,
        beforeApply: (PreparedStep) throws -> Void = { _ in },
        _ build: (inout SafetensorsWriter) throws -> Void
    ) throws -> AppliedStep {
        var writer = SafetensorsWriter(metadata: metadata)
        try build(&writer)
        let bytes = writer.bytes()
        return try bytes.withUnsafeBytes { body in
            let header = try SafetensorsHeader(parsing: body)
            return try session.step(
                try StepMetadata(header.metadata), gradients: header, in: body, keepingDelta: keepingDelta, parallelism: .serial,
                beforeApply: beforeApply)
        }
    }

    static func values(_ session: OptimizerSession) -> [[Float]] { session.parameters.map(\.values) }

    @Test func uploadDecodesEveryFloatDType() throws {
        let session = try Self.session()
        #expect(session.parameterNames == ["w", "b"])
        #expect(Self.values(session) == [[1, 2, 3], [10]])
    }

    @Test func aStepAppliesDenseAndSparseGradientsAndKeepsTheDelta() throws {
        let session = try Self.session()
        let applied = try Self.step(session, metadata: ["step": "1", "loss": "2.5"], keepingDelta: true) { writer in
            try writer.add("w.indices", shape: [1], integers: [Int64(2)])
            try writer.add("w.values", shape: [1], floats: [4])
            try writer.add("b", shape: [1], floats: [2], as: .F16)
        }
        #expect(Self.values(session) == [[1, 2, 1], [9]])
        #expect(applied.parameterIndices == [0, 1])
        #expect(applied.delta?.map(\.values) == [[0, 0, -2], [-1]])
        #expect(applied.telemetry.step == 1 && applied.telemetry.loss == 2.5)
        #expect(session.step == 1)
    }

    @Test func theHookRunsAfterTheChecksAndBeforeTheChange() throws {
        let session = try Self.session()
        var seen: [[Float]] = []
        _ = try Self.step(session, beforeApply: { _ in seen = Self.values(session) }) { writer in
            try writer.add("w", shape: [3], floats: [2, 2, 2])
        }
        #expect(seen == [[1, 2, 3], [10]])
        #expect(Self.values(session) == [[0, 1, 2], [10]])
    }

    /// A hook that throws (the write-ahead log refusing the record) leaves the session as it was.
    @Test func aRefusingHookChangesNothing() throws {
        let session = try Self.session()
        #expect(throws: Refused.self) {
            try Self.step(session, beforeApply: { _ in throw Refused() }) { writer in
                try writer.add("w", shape: [3], floats: [2, 2, 2])
            }
        }
        #expect(throws: Refused.self) {
            try Self.upload(session, beforeChange: { throw Refused() }) { writer in
                try writer.add("w", shape: [3], floats: [7, 7, 7])
                try writer.add("c", shape: [1], floats: [7])
            }
        }
        #expect(Self.values(session) == [[1, 2, 3], [10]] && session.step == 0 && session.parameterNames == ["w", "b"])
    }

    @Test(arguments: ["0", "2", "9"])
    func aStepOutOfSequenceIsAMismatchNamingTheCurrentStep(requested: String) throws {
        let session = try Self.session()
        let error = try #require(throws: StepRequestError.self) {
            try Self.step(session, metadata: ["step": requested]) { writer in try writer.add("w", shape: [3], floats: [1, 1, 1]) }
        }
        #expect(error.code == .stepMismatch && error.key == "step")
        #expect(error.description.contains("the session is at step 0: send step 1"), "\(error)")
        #expect(Self.values(session) == [[1, 2, 3], [10]])
    }

    @Test func aSparseGradientOfAnUnknownParameterNamesItsIndices() throws {
        let session = try Self.session()
        let error = try #require(throws: OptimizerError.self) {
            try Self.step(session) { writer in
                try writer.add("v.indices", shape: [1], integers: [Int64(0)])
                try writer.add("v.values", shape: [1], floats: [1])
            }
        }
        #expect(error.code == .unknownTensor && error.subject == "v.indices")
    }

    @Test func aTensorSentDenseAndSparseIsADuplicate() throws {
        let session = try Self.session()
        let error = try #require(throws: OptimizerError.self) {
            try Self.step(session) { writer in
                try writer.add("w", shape: [3], floats: [1, 1, 1])
                try writer.add("w.indices", shape: [1], integers: [Int64(0)])
                try writer.add("w.values", shape: [1], floats: [1])
            }
        }
        #expect(error.code == .duplicateTensor && error.subject == "w")
        #expect(Self.values(session) == [[1, 2, 3], [10]])
    }

    @Test func anIntegerParameterUploadIsRefused() throws {
        let session = try Self.session()
        expectSafetensorsError(.unsupportedDType, tensor: "w") {
            try Self.upload(session) { writer in try writer.add("w", shape: [3], integers: [Int64(1), 2, 3]) }
        }
        #expect(Self.values(session) == [[1, 2, 3], [10]])
    }

    /// Parameters may be called `P.indices` and `P.values` (a module's attributes `indices` and
    /// `values`): their gradients are dense tensors, in one request and in parts, and with a
    /// parameter `P` too; a real pair for another parameter in the same request is still sparse.
    @Test func parametersNamedLikeASparsePairStepDense() throws {
        let session = OptimizerSession(configuration: try SessionConfiguration(optimizer: "sgd", hyperparameters: ["lr": .number(0.5)]))
        try Self.upload(session) { writer in
            try writer.add("mem", shape: [2], floats: [0, 0])
            try writer.add("mem.indices", shape: [2], floats: [1, 2])
            try writer.add("mem.values", shape: [2], floats: [3, 4])
            try writer.add("w", shape: [3], floats: [1, 2, 3])
        }
        _ = try Self.step(session, metadata: ["step": "1"]) { writer in
            try writer.add("mem", shape: [2], floats: [2, 2])
            try writer.add("mem.indices", shape: [2], floats: [2, 2])
            try writer.add("mem.values", shape: [2], floats: [2, 4])
            try writer.add("w.indices", shape: [1], integers: [Int64(1)])
            try writer.add("w.values", shape: [1], floats: [2])
        }
        #expect(Self.values(session) == [[-1, -1], [0, 1], [2, 2], [1, 1, 3]])
        var writer = SafetensorsWriter()
        try writer.add("mem.indices", shape: [2], floats: [2, 2])
        try writer.add("mem.values", shape: [2], floats: [2, 2])
        let bytes = writer.bytes()
        let staged = StagedStep(step: 2, for: session)
        let statistics = try bytes.withUnsafeBytes { body in
            try session.stage(part: try SafetensorsHeader(parsing: body), in: body, into: staged, parallelism: .serial)
        }
        #expect(statistics.map(\.name) == ["mem.indices", "mem.values"])
    }
}
