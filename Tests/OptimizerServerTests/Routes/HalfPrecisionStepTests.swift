import HTTPTypes
import HummingbirdTesting
import NIOCore
import OptimizerKit
import OptimizerWire
import Testing

/// Large bfloat16 steps through the daemon: their float32 copy is converted on the compute threads
/// into a block the daemon's buffer pool keeps from one step to the next, and the results are the
/// bits of a session stepped directly with the same (bfloat16-rounded) gradients.
struct HalfPrecisionStepTests {
    /// Two tensors, the first large enough to be converted on both compute threads (2 Mi elements
    /// or more) and the scratch of all of them large enough to be pooled (1 MiB or more).
    static let shapes: [(name: String, count: Int)] = [("w", 2_300_001), ("b", 70_000)]

    static func values(_ count: Int, seed: Int) -> [Float] {
        (0..<count).map { Float((($0 &* 7919 &+ seed &* 104_729) % 20_011) - 10_005) * 1e-4 }
    }

    @Test(arguments: Transport.all)
    func bf16StepsMatchADirectSessionBitForBit(over transport: Transport) async throws {
        let parameters = Self.shapes.map { ($0.name, [$0.count], Self.values($0.count, seed: 1)) }
        let bodies = try (1...3).map { step in
            try Body.tensors(Self.shapes.map { ($0.name, [$0.count], Self.values($0.count, seed: step + 1)) }, as: .BF16)
        }
        let answers = try await makeApp().test(transport.setup) { client in
            let session = try await client.createSession(#"{"optimizer":"adam","hyperparameters":{"lr":0.01}}"#)
            try await client.putParameters(session, try Body.tensors(parameters))
            var answers: [[[UInt32]]] = []
            for body in bodies {
                let response = try await client.execute(uri: session.path + "/step", method: .post, headers: session.auth, body: body)
                #expect(response.status == .ok, "\(String(buffer: response.body))")
                let answer = try safetensors(response.body)
                answers.append(try Self.shapes.map { try answer.floats(named: $0.name).map(\.bitPattern) })
            }
            return answers
        }

        // The reference gets the gradients the daemon received: the bodies' bfloat16 values.
        let reference = OptimizerSession(
            configuration: try SessionConfiguration(optimizer: "adam", hyperparameters: ["lr": .number(0.01)]))
        try parameters.map { $0.2 }.withTensorViews(names: parameters.map(\.0)) { try reference.setParameters($0) }
        for (step, body) in bodies.enumerated() {
            let sent = try safetensors(body)
            let rounded = try Self.shapes.map { try sent.floats(named: $0.name) }
            try rounded.withTensorViews(names: Self.shapes.map(\.name)) { try reference.step(StepInput(gradients: $0)) }
            let expected = reference.parameters.map { $0.values.map(\.bitPattern) }
            #expect(answers[step] == expected, "step \(step + 1)")
        }
    }
}

extension [[Float]] {
    /// Calls `body` with these arrays as tensor views named `names` (one-dimensional).
    fileprivate func withTensorViews<Result>(names: [String], _ body: ([TensorView]) throws -> Result) throws -> Result {
        var views: [TensorView] = []
        func nest(_ index: Int) throws -> Result {
            guard index < count else { return try body(views) }
            return try self[index].withUnsafeBufferPointer { values in
                views.append(TensorView(name: names[index], shape: TensorShape([values.count]), values: values))
                return try nest(index + 1)
            }
        }
        return try nest(0)
    }
}
