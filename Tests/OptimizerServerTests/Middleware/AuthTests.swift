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
