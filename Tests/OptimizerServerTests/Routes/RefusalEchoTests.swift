import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import InMemoryLogging
import Logging
import NIOCore
import Testing

/// A refusal quotes the client's input abbreviated (`String.abbreviated`): a megabyte value, key,
/// id or path gives a problem detail and a log line of a few hundred bytes, still naming the
/// field, and the request changes nothing.
struct RefusalEchoTests {
    /// Far longer than any detail may be.
    static let huge = String(repeating: "z", count: 900_000)
    /// The most a detail quoting client input may take.
    static let maxDetailBytes = 400

    /// Expects a problem of `status` whose detail starts with `field` and is short.
    static func expectShortRefusal(
        _ response: TestResponse, _ status: HTTPResponse.Status, naming field: String, sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        #expect(response.status == status, sourceLocation: sourceLocation)
        let detail = try problem(response).detail
        #expect(detail.hasPrefix(field), "\(detail.prefix(200))", sourceLocation: sourceLocation)
        #expect(detail.utf8.count < maxDetailBytes, "a detail of \(detail.utf8.count) bytes", sourceLocation: sourceLocation)
        #expect(detail.contains("…"), sourceLocation: sourceLocation)
    }

    @Test func stepMetadataValuesAreAbbreviated() async throws {
        try await makeApp().test(.router) { client in
            let session = try await client.createSession(#"{"optimizer":"sgd","hyperparameters":{"lr":0.1}}"#)
            try await client.putParameters(session, try Body.tensors([("w", [2], [1, 2])]))
            let before = try await client.parameterBytes(session)
            for key in ["step", "loss", "term_weights", "grad_scale"] {
                let body = try Body.tensors([("w", [2], [1, 1])], metadata: [key: String(repeating: "1x", count: 500_000)])
                let response = try await client.execute(uri: session.path + "/step", method: .post, headers: session.auth, body: body)
                try Self.expectShortRefusal(response, .badRequest, naming: "__metadata__.\(key)")
            }
            #expect(try await client.parameterBytes(session) == before)
            #expect(try await client.summary(session)["step"] as? Int == 0)
        }
    }

    @Test(arguments: [
        (#"{"optimizer":"HUGE"}"#, "optimizer"),
        (#"{"optimizer":"adam","HUGE":1}"#, "zzz"),
        (#"{"optimizer":"adam","hyperparameters":{"HUGE":1}}"#, "hyperparameters.zzz"),
        (#"{"optimizer":"adam","groups":[{"parameters":["x"],"hyperparameters":{"HUGE":1}}]}"#, "groups[0].hyperparameters.zzz"),
        (#"{"optimizer":"adam","hyperparameters":{"lr":"HUGE"}}"#, "hyperparameters.lr"),
        (#"{"optimizer":"adam","hyperparameters":{"betas":[0.9,"HUGE"]}}"#, "hyperparameters.betas[1]"),
        (#"{"optimizer":"adam","hyperparameters":{"nonfinite":"HUGE"}}"#, "hyperparameters.nonfinite"),
        (#"{"optimizer":"adam","hyperparameters":{"amsgrad":"HUGE"}}"#, "hyperparameters.amsgrad"),
        (#"{"optimizer":"adam","durability":"HUGE"}"#, "durability"),
        (#"{"optimizer":"adam","state_dtype":"HUGE"}"#, "state_dtype"),
    ])
    func createBodyValuesAndKeysAreAbbreviated(template: String, field: String) async throws {
        try await makeApp().test(.router) { client in
            let body = template.replacingOccurrences(of: "HUGE", with: Self.huge)
            let response = try await client.execute(uri: "/v1/sessions", method: .post, body: ByteBuffer(string: body))
            try Self.expectShortRefusal(response, .badRequest, naming: field)
            let list = try jsonObject(try await client.execute(uri: "/v1/sessions", method: .get))
            #expect((list["sessions"] as? [[String: Any]])?.isEmpty == true)
        }
    }

    @Test func aLongListIsAbbreviatedToo() async throws {
        try await makeApp().test(.router) { client in
            let list = "[" + Array(repeating: "1", count: 20_000).joined(separator: ",") + "]"
            let response = try await client.execute(
                uri: "/v1/sessions", method: .post, body: ByteBuffer(string: #"{"optimizer":"adam","hyperparameters":{"lr":\#(list)}}"#))
            try Self.expectShortRefusal(response, .badRequest, naming: "hyperparameters.lr")
        }
    }

    @Test func patchAndCommitValuesAreAbbreviated() async throws {
        try await makeApp().test(.router) { client in
            let session = try await client.createSession(#"{"optimizer":"adam"}"#)
            try await client.putParameters(session, try Body.tensors([("w", [2], [1, 2])]))
            let before = try await client.summary(session)
            for (body, field) in [
                (#"{"hyperparameters":{"lr":"HUGE"}}"#, "hyperparameters.lr"),
                (#"{"hyperparameters":{"HUGE":1}}"#, "hyperparameters.zzz"),
                (#"{"state_dtype":"HUGE"}"#, "state_dtype"),
            ] {
                let response = try await client.execute(
                    uri: session.path, method: .patch, headers: session.auth,
                    body: ByteBuffer(string: body.replacingOccurrences(of: "HUGE", with: Self.huge)))
                try Self.expectShortRefusal(response, .badRequest, naming: field)
            }
            #expect(NSDictionary(dictionary: try await client.summary(session)).isEqual(to: before))

            let staged = try await client.execute(
                uri: session.path + "/steps/1/parts/a", method: .put, headers: session.auth, body: try Body.tensors([("w", [2], [1, 1])]))
            #expect(staged.status == .ok)
            for (body, field, status) in [
                (#"{"term_squared_norms":[2],"loss":"HUGE"}"#, "loss", HTTPResponse.Status.badRequest),
                (#"{"term_squared_norms":[2],"parts":1,"HUGE":1}"#, "zzz", .badRequest),
            ] {
                let response = try await client.execute(
                    uri: session.path + "/steps/1/commit", method: .post, headers: session.auth,
                    body: ByteBuffer(string: body.replacingOccurrences(of: "HUGE", with: Self.huge)))
                try Self.expectShortRefusal(response, status, naming: field)
            }
            // `nonfinite` names a tensor: one longer than a tensor name may be is refused unquoted.
            let nonfinite = try await client.execute(
                uri: session.path + "/steps/1/commit", method: .post, headers: session.auth,
                body: ByteBuffer(string: #"{"term_squared_norms":[2],"nonfinite":"\#(Self.huge)"}"#))
            #expect(nonfinite.status == .badRequest)
            #expect(try problem(nonfinite).detail.hasPrefix("nonfinite: a tensor name of at most 1024 bytes"))
            #expect(try await client.summary(session)["step"] as? Int == 0)
        }
    }

    @Test func checkpointMetadataIsAbbreviated() async throws {
        try await makeApp().test(.router) { client in
            let session = try await client.createSession(#"{"optimizer":"sgd"}"#)
            try await client.putParameters(session, try Body.tensors([("w", [2], [1, 2])]))
            let before = try await client.parameterBytes(session)
            let body = try Body.tensors([("param/w", [2], [3, 4])], metadata: ["format": Self.huge])
            let response = try await client.execute(uri: session.path + "/checkpoint", method: .put, headers: session.auth, body: body)
            try Self.expectShortRefusal(response, .unprocessableContent, naming: "checkpoint: not an optimizerd checkpoint")
            #expect(try await client.parameterBytes(session) == before)
        }
    }

    @Test func idsAndValuesInTheURLAndHeadersAreAbbreviated() async throws {
        let long = String(repeating: "z", count: 20_000)
        try await makeApp().test(.router) { client in
            let session = try await client.createSession(#"{"optimizer":"sgd"}"#)
            try await client.putParameters(session, try Body.tensors([("w", [2], [1, 2])]))
            let gradients = try Body.tensors([("w", [2], [1, 1])])
            let cases: [(String, HTTPRequest.Method, HTTPFields, HTTPResponse.Status, String)] = [
                ("/v1/sessions/\(long)", .get, session.auth, .notFound, "no session with id"),
                ("/v1/sessions/\(long)/step", .post, session.auth, .notFound, "no session with id"),
                ("/v2/\(long)", .get, [:], .notFound, "no route for GET /v2/zzz"),
                (session.path + "/steps/1/parts/\(long)", .put, session.auth, .badRequest, "part id"),
                (session.path + "/steps/\(long)/commit", .post, session.auth, .badRequest, "step \"zzz"),
                (session.path + "/step?return=\(long)", .post, session.auth, .badRequest, "query parameter return"),
                (session.path + "/step?dtype=\(long)", .post, session.auth, .badRequest, "query parameter dtype"),
                (session.path + "/history?since=\(long)", .get, session.auth, .badRequest, "query parameter since"),
            ]
            for (uri, method, headers, status, field) in cases {
                let response = try await client.execute(uri: uri, method: method, headers: headers, body: gradients)
                try Self.expectShortRefusal(response, status, naming: field)
            }
            var headers = session.auth
            headers[.contentEncoding] = long
            let encoding = try await client.execute(uri: session.path + "/step", method: .post, headers: headers, body: gradients)
            try Self.expectShortRefusal(encoding, .unsupportedMediaType, naming: "Content-Encoding")
            #expect(try await client.summary(session)["step"] as? Int == 0)
        }
    }

    @Test func theLogLineOfARefusalIsShortToo() async throws {
        let handler = InMemoryLogHandler()
        var logger = Logger(label: "optimizerd-test") { _ in handler }
        logger.logLevel = .debug
        let long = String(repeating: "z", count: 20_000)
        try await makeApp(logger: logger).test(.router) { client in
            let session = try await client.createSession(#"{"optimizer":"sgd"}"#)
            try await client.putParameters(session, try Body.tensors([("w", [2], [1, 2])]))
            let body = try Body.tensors([("w", [2], [1, 1])], metadata: ["step": Self.huge])
            _ = try await client.execute(uri: session.path + "/step", method: .post, headers: session.auth, body: body)
            _ = try await client.execute(uri: "/v1/sessions/\(long)", method: .get, headers: session.auth)
            _ = try await client.execute(uri: "/v2/\(long)", method: .get)
        }
        let refusals = handler.entries.filter { $0.message.description == "request refused" }
        #expect(refusals.count == 3)
        for entry in handler.entries {
            let line = "\(entry.message) \(entry.metadata)"
            #expect(line.utf8.count < 1000, "a log line of \(line.utf8.count) bytes: \(line.prefix(200))")
        }
    }
}
