import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// Bearer tokens: the session's own, another session's, the admin token, none.
struct AuthTests {
    @Test(arguments: Transport.all)
    func sessionRoutesNeedTheSessionsOwnToken(over transport: Transport) async throws {
        try await makeApp().test(transport.setup) { client in
            let mine = try await client.createSession(#"{"optimizer":"adam"}"#)
            let other = try await client.createSession(#"{"optimizer":"adam"}"#)
            let routes: [(String, HTTPRequest.Method)] = [
                (mine.path, .get), (mine.path, .patch), (mine.path, .delete), (mine.path + "/parameters", .get),
                (mine.path + "/parameters", .put), (mine.path + "/step", .post), (mine.path + "/history", .get),
                (mine.path + "/checkpoint", .get), (mine.path + "/checkpoint", .put),
            ]
            for (uri, method) in routes {
                let missing = try await client.execute(uri: uri, method: method)
                #expect(missing.status == .unauthorized, "\(method) \(uri)")
                #expect(missing.headers[.wwwAuthenticate] == "Bearer")
                let notBearer = try await client.execute(uri: uri, method: method, headers: [.authorization: "Basic \(mine.token)"])
                #expect(notBearer.status == .unauthorized)
                let others = try await client.execute(uri: uri, method: method, headers: other.auth)
                #expect(others.status == .forbidden, "\(method) \(uri)")
                #expect(try problem(others).status == 403)
                let garbage = try await client.execute(uri: uri, method: method, headers: [.authorization: "Bearer ozt_nope"])
                #expect(garbage.status == .forbidden)
            }
            #expect(try await client.execute(uri: mine.path, method: .get, headers: mine.auth).status == .ok)
        }
    }

    /// Well-formed requests that would change a session, sent with another session's token: each is
    /// refused before its body is read, and the session is exactly as it was.
    @Test(arguments: Transport.all)
    func anotherSessionsTokenReadsAndChangesNothing(over transport: Transport) async throws {
        try await makeApp().test(transport.setup) { client in
            let mine = try await client.createSession(#"{"optimizer":"adam"}"#)
            let other = try await client.createSession(#"{"optimizer":"adam"}"#)
            try await client.putParameters(mine, try Body.tensors([("w", [2], [1, 2])]))
            try await client.putParameters(other, try Body.tensors([("w", [2], [5, 6])]))
            let step = try await client.execute(
                uri: mine.path + "/step", method: .post, headers: mine.auth, body: try Body.tensors([("w", [2], [1, 1])]))
            #expect(step.status == .ok)
            let parameters = try await client.parameterBytes(mine)
            let summary = try jsonObject(try await client.execute(uri: mine.path, method: .get, headers: mine.auth))
            let othersCheckpoint = try await client.execute(uri: other.path + "/checkpoint", method: .get, headers: other.auth).body

            let attempts: [(String, HTTPRequest.Method, ByteBuffer?)] = [
                ("", .get, nil), ("/parameters", .get, nil), ("/history", .get, nil), ("/checkpoint", .get, nil),
                ("/step", .post, try Body.tensors([("w", [2], [9, 9])], metadata: ["step": "2"])),
                ("/parameters", .put, try Body.tensors([("w", [2], [0, 0])])),
                ("/checkpoint", .put, othersCheckpoint),
                ("", .patch, ByteBuffer(string: #"{"hyperparameters":{"lr":1000}}"#)),
                ("", .delete, nil),
            ]
            for (suffix, method, body) in attempts {
                let response = try await client.execute(uri: mine.path + suffix, method: method, headers: other.auth, body: body)
                #expect(response.status == .forbidden, "\(method) \(suffix)")
                let detail = try problem(response)
                #expect(!detail.detail.contains("\"w\""), "a refusal must not describe the session's tensors")
            }
            #expect(try await client.parameterBytes(mine) == parameters)
            let after = try jsonObject(try await client.execute(uri: mine.path, method: .get, headers: mine.auth))
            #expect(after["step"] as? Int == 1)
            #expect((after["hyperparameters"] as? [String: Any])?["lr"] as? Double == (summary["hyperparameters"] as? [String: Any])?["lr"] as? Double)
            let history = try jsonObject(try await client.execute(uri: mine.path + "/history", method: .get, headers: mine.auth))
            #expect((history["records"] as? [Any])?.count == 1)
        }
    }

    @Test(arguments: Transport.all)
    func unknownSessionIs404WithAnyToken(over transport: Transport) async throws {
        try await makeApp().test(transport.setup) { client in
            let session = try await client.createSession(#"{"optimizer":"adam"}"#)
            let response = try await client.execute(uri: "/v1/sessions/00000000-0000-0000-0000-000000000000/step", method: .post, headers: session.auth)
            #expect(response.status == .notFound)
            #expect(try problem(response).detail.contains("00000000-0000-0000-0000-000000000000"))
            let anonymous = try await client.execute(uri: "/v1/sessions/00000000-0000-0000-0000-000000000000", method: .get)
            #expect(anonymous.status == .unauthorized)
        }
    }

    @Test(arguments: Transport.all)
    func adminTokenGuardsCreateAndListAndOpensEverySession(over transport: Transport) async throws {
        let admin = "admin-secret"
        try await makeApp(adminToken: admin).test(transport.setup) { client in
            let adminAuth: HTTPFields = [.authorization: "Bearer \(admin)"]
            let body = ByteBuffer(string: #"{"optimizer":"sgd"}"#)
            #expect(try await client.execute(uri: "/v1/sessions", method: .post, body: body).status == .unauthorized)
            #expect(try await client.execute(uri: "/v1/sessions", method: .get).status == .unauthorized)
            let wrong: HTTPFields = [.authorization: "Bearer not-admin"]
            #expect(try await client.execute(uri: "/v1/sessions", method: .post, headers: wrong, body: body).status == .forbidden)

            let session = try await client.createSession(#"{"optimizer":"sgd"}"#, headers: adminAuth)
            #expect(try await client.execute(uri: "/v1/sessions", method: .get, headers: adminAuth).status == .ok)
            #expect(try await client.execute(uri: "/v1/sessions", method: .get, headers: session.auth).status == .forbidden)
            #expect(try await client.execute(uri: session.path, method: .get, headers: adminAuth).status == .ok)
            #expect(try await client.execute(uri: session.path, method: .get, headers: session.auth).status == .ok)
        }
    }

    @Test(arguments: Transport.all)
    func withoutAnAdminTokenCreateAndListAreOpen(over transport: Transport) async throws {
        try await makeApp().test(transport.setup) { client in
            _ = try await client.createSession(#"{"optimizer":"sgd"}"#)
            #expect(try await client.execute(uri: "/v1/sessions", method: .get).status == .ok)
        }
    }
}
