import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// Every JSON body route (create, PATCH, commit, momo-sums) refuses a body with the same key twice
/// in one object, at any depth, with 400 `duplicate-key` naming the member: before, the first value
/// silently won (`{"lr":0.1,"lr":-5}` made a session with lr 0.1). Nothing changes.
struct DuplicateKeyTests {
    static let type = "urn:optimizerd:problem:duplicate-key"

    /// Expects a short 400 `duplicate-key` naming `field`.
    static func expectDuplicate(_ response: TestResponse, naming field: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(response.status == .badRequest, sourceLocation: sourceLocation)
        let detail = try problem(response)
        #expect(detail.status == 400 && detail.type == type, "\(detail)", sourceLocation: sourceLocation)
        #expect(detail.detail.hasPrefix("\(field): duplicate key"), "\(detail.detail.prefix(200))", sourceLocation: sourceLocation)
        #expect(detail.detail.utf8.count < 300, sourceLocation: sourceLocation)
    }

    @Test(arguments: [
        (#"{"optimizer":"adam","optimizer":"sgd"}"#, "optimizer"),
        (#"{"optimizer":"adam","hyperparameters":{"lr":0.1,"lr":-5}}"#, "hyperparameters.lr"),
        (#"{"optimizer":"adam","name":"a","name":"b"}"#, "name"),
        (#"{"optimizer":"adam","groups":[{"parameters":["a"]},{"parameters":["b"],"parameters":["c"]}]}"#, "groups[1].parameters"),
        (#"{"optimizer":"mtadam","hyperparameters":{"terms":2,"term_weights":[1,1],"terms":3}}"#, "hyperparameters.terms"),
    ])
    func createRefusesADuplicateKeyAndCreatesNothing(body: String, field: String) async throws {
        try await makeApp().test(.router) { client in
            let response = try await client.execute(uri: "/v1/sessions", method: .post, body: ByteBuffer(string: body))
            try Self.expectDuplicate(response, naming: field)
            let list = try jsonObject(try await client.execute(uri: "/v1/sessions", method: .get))
            #expect((list["sessions"] as? [[String: Any]])?.isEmpty == true)
        }
    }

    @Test func patchRefusesADuplicateKeyAndChangesNothing() async throws {
        try await makeApp().test(.router) { client in
            let session = try await client.createSession(#"{"optimizer":"adam","groups":[{"parameters":["*.bias"]}]}"#)
            try await client.putParameters(session, try Body.tensors([("w", [2], [1, 2]), ("l.bias", [1], [0])]))
            let before = try await client.summary(session)
            for (body, field) in [
                (#"{"hyperparameters":{"betas":[0.5,0.5]},"hyperparameters":{"betas":[2,2]}}"#, "hyperparameters"),
                (#"{"hyperparameters":{"lr":0.5,"weight_decay":0.1,"lr":0.2}}"#, "hyperparameters.lr"),
                (#"{"groups":[{"parameters":["w"],"hyperparameters":{"lr":1,"lr":2}}]}"#, "groups[0].hyperparameters.lr"),
            ] {
                let response = try await client.execute(uri: session.path, method: .patch, headers: session.auth, body: ByteBuffer(string: body))
                try Self.expectDuplicate(response, naming: field)
            }
            #expect(NSDictionary(dictionary: try await client.summary(session)).isEqual(to: before))
        }
    }

    @Test func commitAndMomoSumsRefuseADuplicateKeyAndKeepTheStagedStep() async throws {
        try await makeApp().test(.router) { client in
            let session = try await client.createSession(#"{"optimizer":"momo"}"#)
            try await client.putParameters(session, try Body.tensors([("w", [2], [1, 2])]))
            let before = try await client.parameterBytes(session)
            let part = try await client.execute(
                uri: session.path + "/steps/1/parts/a", method: .put, headers: session.auth, body: try Body.tensors([("w", [2], [1, 1])]))
            #expect(part.status == .ok)
            for (route, body, field) in [
                ("commit", #"{"term_squared_norms":[2],"loss":1,"loss":-1}"#, "loss"),
                ("commit", #"{"term_squared_norms":[2],"loss":1,"momo_totals":{"gamma":1,"gamma":2}}"#, "momo_totals.gamma"),
                ("momo-sums", #"{"term_squared_norms":[2],"term_squared_norms":[3],"loss":1}"#, "term_squared_norms"),
            ] {
                let response = try await client.execute(
                    uri: session.path + "/steps/1/\(route)", method: .post, headers: session.auth, body: ByteBuffer(string: body))
                try Self.expectDuplicate(response, naming: field)
            }
            #expect(try await client.parameterBytes(session) == before)
            let summary = try await client.summary(session)
            #expect(summary["step"] as? Int == 0)
            #expect((summary["staged_step"] as? [String: Any])?["parts"] as? [String] == ["a"])
            // The same commit without the duplicate goes through.
            let commit = try await client.execute(
                uri: session.path + "/steps/1/commit", method: .post, headers: session.auth,
                body: ByteBuffer(string: #"{"term_squared_norms":[2],"loss":1,"parts":1}"#))
            #expect(commit.status == .ok, "\(String(buffer: commit.body))")
        }
    }

    /// Invalid JSON is refused by the same strict reading: `JSONDecoder` took a trailing comma.
    @Test func aTrailingCommaIsInvalidJSON() async throws {
        try await makeApp().test(.router) { client in
            let response = try await client.execute(uri: "/v1/sessions", method: .post, body: ByteBuffer(string: #"{"optimizer":"adam",}"#))
            #expect(response.status == .badRequest)
            let detail = try problem(response)
            #expect(detail.type == "urn:optimizerd:problem:invalid-json")
            #expect(detail.detail.hasPrefix("body: not valid JSON"), "\(detail.detail)")
        }
    }
}
