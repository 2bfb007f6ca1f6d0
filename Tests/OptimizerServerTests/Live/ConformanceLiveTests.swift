import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import OptimizerKit
import OptimizerTestSupport
import OptimizerWire
import Testing

/// Every conformance case replayed end to end over real HTTP on loopback: the session is created
/// from the case's metadata, `init/*` PUT, every step's gradients POSTed (with `step` and `loss`
/// metadata), and the returned parameters checked against `expect/*` at every step with the
/// README's criterion. Cases come from the folder (OptimizerTestSupport), so a new file is picked up.
struct ConformanceLiveTests {
    @Test func casesArePresent() {
        #expect(!ConformanceCase.caseNames().isEmpty, "no conformance cases in \(ConformanceCase.directory.path)")
    }

    @Test("conformance case over HTTP", arguments: ConformanceCase.caseNames())
    func replay(caseName: String) async throws {
        let golden = try ConformanceCase(named: caseName)
        try await makeApp().test(.live) { client in
            let create = CreateBody(optimizer: golden.optimizer, hyperparameters: golden.hyperparameters, name: golden.name)
            let created = try await client.execute(
                uri: "/v1/sessions", method: .post, body: ByteBuffer(bytes: try JSONEncoder().encode(create)))
            let session = try CreatedSession(created)

            var initial = Body()
            for tensor in try golden.initialParameters() { initial = try initial.float(tensor.name, tensor.shape, tensor.values) }
            try await client.putParameters(session, initial.buffer)

            for step in 1...golden.steps {
                var metadata = ["step": String(step)]
                if let loss = golden.losses?[step - 1] { metadata["loss"] = String(loss) }
                var body = Body(metadata: metadata)
                for tensor in try golden.gradients(step: step) { body = try body.float(tensor.name, tensor.shape, tensor.values) }
                let response = try await client.execute(
                    uri: session.path + "/step", method: .post, headers: session.auth, body: body.buffer)
                try #require(response.status == .ok, "\(golden.name) step \(step): \(String(buffer: response.body))")
                let result = try safetensors(response.body)
                #expect(result.metadata["step"] == String(step))
                for name in golden.parameters {
                    let failure = try golden.failure(step: step, parameter: name, got: try result.floats(named: name))
                    #expect(failure == nil, "\(failure ?? "")")
                    if failure != nil { return }
                }
            }
        }
    }

    private struct CreateBody: Encodable {
        var optimizer: String
        var hyperparameters: Hyperparameters
        var name: String
    }
}
