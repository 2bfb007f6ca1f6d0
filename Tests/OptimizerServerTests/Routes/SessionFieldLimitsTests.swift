import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import OptimizerKit
import OptimizerStore
import Testing

/// The free-form strings a session keeps for life, outside the memory budget, are bounded: its
/// `name` (256 bytes of UTF-8) and its groups' name patterns (1024 bytes each). A longer one is
/// refused with a short 400 naming the field, and nothing is created or changed.
struct SessionFieldLimitsTests {
    static let maxName = 256
    static let maxPattern = 1024

    @Test func aNameOverTheLimitIsRefusedAndNoSessionIsCreated() async throws {
        try await makeApp().test(.router) { client in
            // Bytes of UTF-8 count, not characters: 129 "é" are 129 characters but 258 bytes.
            for name in [String(repeating: "n", count: Self.maxName + 1), String(repeating: "é", count: 129), String(repeating: "n", count: 1_000_000)] {
                let body = try JSONSerialization.data(withJSONObject: ["optimizer": "adam", "name": name])
                let response = try await client.execute(uri: "/v1/sessions", method: .post, body: ByteBuffer(bytes: body))
                #expect(response.status == .badRequest)
                let detail = try problem(response)
                #expect(detail.type == "urn:optimizerd:problem:invalid-json")
                #expect(detail.detail.hasPrefix("name: at most 256 bytes"), "\(detail.detail.prefix(200))")
                #expect(detail.detail.utf8.count < 200)
            }
            let list = try jsonObject(try await client.execute(uri: "/v1/sessions", method: .get))
            #expect((list["sessions"] as? [[String: Any]])?.isEmpty == true)

            // At the limit: accepted and listed as given.
            let longest = String(repeating: "é", count: Self.maxName / 2)
            let body = try JSONSerialization.data(withJSONObject: ["optimizer": "adam", "name": longest])
            let created = try CreatedSession(try await client.execute(uri: "/v1/sessions", method: .post, body: ByteBuffer(bytes: body)))
            let listed = try jsonObject(try await client.execute(uri: "/v1/sessions", method: .get))
            #expect((listed["sessions"] as? [[String: Any]])?.map { $0["name"] as? String } == [longest])

            // PATCH cannot rename: `name` is not one of its members.
            let patch = try await client.execute(
                uri: created.path, method: .patch, headers: created.auth,
                body: ByteBuffer(string: #"{"name":""# + String(repeating: "n", count: 100_000) + #""}"#))
            #expect(patch.status == .badRequest)
            #expect(try problem(patch).detail.hasPrefix("name: unknown field"))
            #expect(try await client.summary(created)["name"] as? String == longest)
        }
    }

    @Test func aGroupPatternOverTheLimitIsRefusedOnCreateAndPatch() async throws {
        try await makeApp().test(.router) { client in
            let long = String(repeating: "p", count: Self.maxPattern + 1)
            let create = try JSONSerialization.data(withJSONObject: ["optimizer": "adam", "groups": [["parameters": ["*.bias", long]]]])
            let refused = try await client.execute(uri: "/v1/sessions", method: .post, body: ByteBuffer(bytes: create))
            #expect(refused.status == .badRequest)
            let detail = try problem(refused)
            #expect(detail.detail.hasPrefix("groups[0].parameters[1]: a pattern is at most 1024 bytes"), "\(detail.detail.prefix(200))")
            #expect(detail.detail.utf8.count < 200)
            let list = try jsonObject(try await client.execute(uri: "/v1/sessions", method: .get))
            #expect((list["sessions"] as? [[String: Any]])?.isEmpty == true)

            let session = try await client.createSession(#"{"optimizer":"adam","groups":[{"parameters":["*.bias"]}]}"#)
            try await client.putParameters(session, try Body.tensors([("w", [2], [1, 2]), ("l.bias", [1], [0])]))
            let before = try await client.summary(session)
            let patch = try JSONSerialization.data(withJSONObject: ["groups": [["parameters": ["w"]], ["parameters": [long]]]])
            let patched = try await client.execute(uri: session.path, method: .patch, headers: session.auth, body: ByteBuffer(bytes: patch))
            #expect(patched.status == .badRequest)
            #expect(try problem(patched).detail.hasPrefix("groups[1].parameters[0]: a pattern is at most 1024 bytes"))
            let after = try await client.summary(session)
            #expect(NSDictionary(dictionary: after).isEqual(to: before))

            // At the limit: accepted.
            let longest = String(repeating: "p", count: Self.maxPattern)
            let accepted = try JSONSerialization.data(withJSONObject: ["groups": [["parameters": [longest]]]])
            let ok = try await client.execute(uri: session.path, method: .patch, headers: session.auth, body: ByteBuffer(bytes: accepted))
            #expect(ok.status == .ok)
        }
    }

    @Test func aCheckpointWithAPatternOverTheLimitIsRefusedAndChangesNothing() async throws {
        try await makeApp().test(.router) { client in
            let session = try await client.createSession(#"{"optimizer":"sgd","groups":[{"parameters":["*.bias"]}]}"#)
            try await client.putParameters(session, try Body.tensors([("w", [2], [1, 2]), ("l.bias", [1], [0])]))
            let download = try await client.execute(uri: session.path + "/checkpoint", method: .get, headers: session.auth)
            #expect(download.status == .ok)
            // A checkpoint re-signed with a group pattern of 1 MB (its checksum is not a secret).
            var snapshot = try SessionSnapshot(decoding: Array(download.body.readableBytesView), origin: "test")
            snapshot.groups = [ParameterGroup(parameters: [String(repeating: "p", count: 1 << 20)], hyperparameters: [:])]
            let crafted = try snapshot.encoded()
            let before = try await client.summary(session)
            let restore = try await client.execute(
                uri: session.path + "/checkpoint", method: .put, headers: session.auth, body: ByteBuffer(bytes: crafted))
            #expect(restore.status == .unprocessableContent)
            let detail = try problem(restore)
            #expect(detail.type == "urn:optimizerd:problem:invalid-checkpoint")
            #expect(detail.detail.contains("groups[0].parameters[0]"), "\(detail.detail.prefix(200))")
            #expect(detail.detail.utf8.count < 200)
            #expect(NSDictionary(dictionary: try await client.summary(session)).isEqual(to: before))
        }
    }
}
