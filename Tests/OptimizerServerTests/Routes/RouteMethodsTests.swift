import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import OptimizerServer

/// A known path asked with a method it does not have: 405 with `Allow`, as problem+json.
struct RouteMethodsTests {
    @Test func tableMatchesLiteralsCapturesAndWildcards() {
        let table = RouteMethods()
        table.record("/healthz", .get)
        table.record("/v1/sessions/{id}", .get)
        table.record("/v1/sessions/{id}", .patch)
        table.record("/v1/sessions/{id}", .get)  // recorded twice, listed once
        table.record("/v1/sessions/{id}/step", .post)
        table.record("/files/**", .get)
        #expect(table.allowed(for: "/healthz") == [.get])
        #expect(table.allowed(for: "/v1/sessions/abc") == [.get, .patch])
        #expect(table.allowed(for: "/v1/sessions/abc/") == [.get, .patch])
        #expect(table.allowed(for: "/v1/sessions/abc/step") == [.post])
        #expect(table.allowed(for: "/files/a/b/c") == [.get])
        #expect(table.allowed(for: "/v1/sessions/abc/steps").isEmpty)
        #expect(table.allowed(for: "/v1/sessions/abc/step/more").isEmpty)
        #expect(table.allowed(for: "/").isEmpty)
    }

    @Test(arguments: [
        ("/healthz", HTTPRequest.Method.delete, "GET"),
        ("/v1/sessions", .put, "POST, GET"),
        ("{session}", .put, "GET, PATCH, DELETE"),
        ("{session}/step", .put, "POST"),
        ("{session}/step", .get, "POST"),
        ("{session}/parameters", .post, "PUT, GET"),
        ("{session}/history", .post, "GET"),
        ("{session}/checkpoint", .delete, "GET, PUT"),
        ("/", .post, "GET"),
    ])
    func wrongMethodOnAKnownPathIs405WithAllow(path: String, method: HTTPRequest.Method, allow: String) async throws {
        try await makeApp().test(.router) { client in
            let session = try await client.createSession(#"{"optimizer":"sgd"}"#)
            let uri = path.replacingOccurrences(of: "{session}", with: session.path)
            let response = try await client.execute(uri: uri, method: method, headers: session.auth, body: ByteBuffer(string: "{}"))
            #expect(response.status == .methodNotAllowed, "\(method) \(uri)")
            #expect(response.headers[.allow] == allow)
            let detail = try problem(response)
            #expect(detail.type == "urn:optimizerd:problem:method-not-allowed")
            #expect(detail.detail == "\(method.rawValue) is not allowed on \(uri); allowed: \(allow)")
        }
    }

    @Test func unknownPathsStay404() async throws {
        try await makeApp().test(.router) { client in
            for uri in ["/v2/nothing", "/v1/sessions/x/steps", "/healthz/more"] {
                let response = try await client.execute(uri: uri, method: .put)
                #expect(response.status == .notFound, "\(uri)")
                #expect(response.headers[.allow] == nil)
            }
        }
    }

    /// The table is filled by the same calls that register the routes: every method it lists for a
    /// path is routed (never a 405 or the router's own 404), so it cannot drift from the router.
    @Test func everyMethodTheTableListsIsRouted() async throws {
        let table = RouteMethods()
        let router = RecordingRouter(router: Router(context: OptimizerRequestContext.self), methods: table)
        router.get("/a") { _, _ in "a" }
        router.group("/g/{id}").post("x") { _, _ in "x" }.delete { _, _ in "deleted" }
        #expect(table.allowed(for: "/a") == [.get])
        #expect(table.allowed(for: "/g/7/x") == [.post])
        #expect(table.allowed(for: "/g/7") == [.delete])
        let app = Application(router: router.router)
        try await app.test(.router) { client in
            for (uri, method) in [("/a", HTTPRequest.Method.get), ("/g/7/x", .post), ("/g/7", .delete)] {
                let response = try await client.execute(uri: uri, method: method)
                #expect(response.status == .ok, "\(method) \(uri)")
            }
        }
    }

    @Test func methodsInTheDaemonsTableAreAnsweredOverASocket() async throws {
        try await makeApp().test(.live) { client in
            let session = try await client.createSession(#"{"optimizer":"sgd"}"#)
            let response = try await client.execute(uri: session.path + "/step", method: .put, headers: session.auth)
            #expect(response.status == .methodNotAllowed)
            #expect(response.headers[.allow] == "POST")
            // The connection stays usable.
            #expect(try await client.execute(uri: "/healthz", method: .get).status == .ok)
        }
    }
}
