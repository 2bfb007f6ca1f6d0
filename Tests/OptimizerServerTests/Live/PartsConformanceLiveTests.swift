import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import OptimizerKit
import OptimizerTestSupport
import OptimizerWire
import Testing

/// Every conformance case stepped in parts (one tensor per part) over real HTTP next to the same
/// case stepped one request per step, in the same daemon: every commit's answer must be the plain
/// step's answer byte for byte (parameters and telemetry), and every part sent twice answers the
/// same. A second variant adds global-norm clipping that clips and `grad_scale`, so the client's
/// fold of the per-tensor sums is what decides the result.
struct PartsConformanceLiveTests {
    @Test("conformance case in parts is bit-identical", arguments: ConformanceCase.caseNames(), [false, true])
    func replay(caseName: String, clipped: Bool) async throws {
        let golden = try ConformanceCase(named: caseName)
        var hyperparameters = golden.hyperparameters
        if clipped { hyperparameters["clip_grad_norm"] = .number(0.05) }
        let gradScale: Double? = clipped ? 8 : nil
        let create = ByteBuffer(bytes: try JSONEncoder().encode(CreateBody(optimizer: golden.optimizer, hyperparameters: hyperparameters)))
        try await makeApp().test(.live) { client in
            let plain = try CreatedSession(try await client.execute(uri: "/v1/sessions", method: .post, body: create))
            let parts = try CreatedSession(try await client.execute(uri: "/v1/sessions", method: .post, body: create))
            var initial = Body()
            let initialTensors = try golden.initialParameters()
            for tensor in initialTensors { initial = try initial.float(tensor.name, tensor.shape, tensor.values) }
            try await client.putParameters(plain, initial.buffer)
            try await client.putParameters(parts, initial.buffer)
            let coordinator = PartsClient(parameterOrder: initialTensors.map(\.name), terms: golden.terms)

            for step in 1...golden.steps {
                let loss = golden.losses?[step - 1]
                var metadata = ["step": String(step)]
                if let loss { metadata["loss"] = String(loss) }
                if let gradScale { metadata["grad_scale"] = String(gradScale) }
                let gradients = try golden.gradients(step: step)
                var body = Body(metadata: metadata)
                for tensor in gradients { body = try body.float(tensor.name, tensor.shape, tensor.values) }
                let expected = try await client.execute(uri: plain.path + "/step", method: .post, headers: plain.auth, body: body.buffer)
                try #require(expected.status == .ok, "\(caseName) step \(step): \(String(buffer: expected.body))")

                var sums: [String: (sum: Double?, finite: Bool)] = [:]
                for (index, tensor) in gradients.enumerated().reversed() {
                    let part = try Body().float(tensor.name, tensor.shape, tensor.values).buffer
                    let answer = try await PartsClient.putPart(client, parts, step: step, part: "t\(index)", body: part)
                    let again = try await PartsClient.putPart(client, parts, step: step, part: "t\(index)", body: part)
                    #expect(answer.mapValues(\.sum) == again.mapValues(\.sum))
                    sums.merge(answer) { a, _ in a }
                }
                let commit = try coordinator.commitBody(sums: sums, loss: loss, gradScale: gradScale)
                let got = try await PartsClient.commit(client, parts, step: step, body: commit)
                try #require(got.status == .ok, "\(caseName) commit \(step): \(String(buffer: got.body))")
                #expect(got.body == expected.body, "\(caseName) step \(step): the commit's answer differs from the plain step's")
                if got.body != expected.body { return }
                let retry = try await PartsClient.commit(client, parts, step: step, body: commit)
                #expect(retry.status == .ok && retry.body == expected.body && retry.headers[HTTPField.Name("Optimizerd-Retry")!] == "true")
            }
            #expect(try await client.parameterBytes(parts) == client.parameterBytes(plain))
        }
    }

    private struct CreateBody: Encodable {
        var optimizer: String
        var hyperparameters: Hyperparameters
    }
}
