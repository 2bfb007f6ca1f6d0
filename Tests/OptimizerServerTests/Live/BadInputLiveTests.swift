import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import OptimizerWire
import Testing

/// Every row of DESIGN §7 over a real socket: the right status and a problem naming the culprit,
/// the session's parameters byte-identical and its state unchanged afterwards, and the same
/// keep-alive connection still serving requests.
struct BadInputLiveTests {
    /// The body limit of these tests: 256 KiB.
    static let limit = 256 << 10

    @Test(arguments: BadInput.rows)
    func refusedWithoutChangingTheSession(row: BadInput) async throws {
        try await makeApp(maxBodyBytes: Self.limit).test(.live) { client in
            let session = try await client.createSession(row.createBody)
            try await client.putParameters(session, try Body.tensors([("w", [2, 2], [1, 2, 3, 4]), ("b", [2], [0.5, -0.5])]))
            let first = try await client.execute(
                uri: session.path + "/step", method: .post, headers: session.auth, body: try row.validStep(1))
            try #require(first.status == .ok, "\(String(buffer: first.body))")
            let parametersBefore = try await client.parameterBytes(session)
            let summaryBefore = try await client.summary(session)

            let request = try row.request(session)
            let response = try await client.execute(uri: request.uri, method: request.method, headers: request.headers, body: request.body)
            #expect(response.status.code == row.status, "\(row.name): \(String(buffer: response.body))")
            if row.status >= 400 {
                let detail = try problem(response)
                #expect(detail.status == row.status)
                #expect(detail.detail.contains(row.detailContains), "\(row.name): \(detail.detail)")
            }

            // Same connection: still usable, and the session is exactly as it was.
            #expect(try await client.execute(uri: "/healthz", method: .get).status == .ok)
            let parametersAfter = try await client.parameterBytes(session)
            if row.stepAdvance == 0 {
                #expect(parametersAfter == parametersBefore, "\(row.name)")
            } else {  // a skipped step: same values, only the `step` metadata moved
                for name in ["w", "b"] {
                    #expect(try safetensors(parametersAfter).floats(named: name) == safetensors(parametersBefore).floats(named: name))
                }
            }
            let summaryAfter = try await client.summary(session)
            #expect(summaryAfter["step"] as? Int == (summaryBefore["step"] as? Int ?? 0) + row.stepAdvance)
            if row.stepAdvance == 0 {
                let before = try JSONSerialization.data(withJSONObject: summaryBefore["parameters"] ?? [], options: .sortedKeys)
                let after = try JSONSerialization.data(withJSONObject: summaryAfter["parameters"] ?? [], options: .sortedKeys)
                #expect(before == after, "\(row.name): optimizer state changed")
            }
            let next = try await client.execute(
                uri: session.path + "/step", method: .post, headers: session.auth, body: try row.validStep(2 + row.stepAdvance))
            #expect(next.status == .ok, "\(row.name): \(String(buffer: next.body))")
        }
    }
}
