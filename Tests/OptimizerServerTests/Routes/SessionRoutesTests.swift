import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import OptimizerWire
import Testing

/// Create, list, summarise, reconfigure and delete sessions, without a socket.
struct SessionRoutesTests {
    @Test func createReturnsTokenEffectiveHyperparametersAndLocation() async throws {
        try await makeApp().test(.router) { client in
            let response = try await client.execute(
                uri: "/v1/sessions", method: .post,
                body: ByteBuffer(string: #"{"optimizer":"adamw","hyperparameters":{"lr":0.01},"name":"run-1"}"#))
            let session = try CreatedSession(response)
            let object = try jsonObject(response)
            #expect(object["optimizer"] as? String == "adamw")
            #expect(object["step"] as? Int == 0)
            #expect(object["name"] as? String == "run-1")
            #expect(session.token.hasPrefix("ozt_") && session.token.count == 68)
            let hyperparameters = try #require(object["hyperparameters"] as? [String: Any])
            #expect(hyperparameters["lr"] as? Double == 0.01)
            #expect(hyperparameters["weight_decay"] as? Double == 0.01)  // AdamW's default, filled in
            #expect(hyperparameters["betas"] as? [Double] == [0.9, 0.999])
        }
    }

    @Test func summaryShowsParametersStateAndLastStep() async throws {
        try await makeApp().test(.router) { client in
            let session = try await client.createSession(
                #"{"optimizer":"adam","groups":[{"parameters":["*.bias"],"hyperparameters":{"weight_decay":0.5}}]}"#)
            try await client.putParameters(session, try Body.tensors([("w", [2, 2], [3, 0, 0, 4]), ("l.bias", [2], [0, 0])]))
            _ = try await client.execute(
                uri: session.path + "/step", method: .post, headers: session.auth,
                body: try Body.tensors([("w", [2, 2], [1, 1, 1, 1])], metadata: ["loss": "2.5"]))
            let summary = try await client.summary(session)
            #expect(summary["step"] as? Int == 1)
            #expect(summary["durable_step"] as? Int == 0)
            #expect(summary["parameter_count"] as? Int == 6)
            let parameters = try #require(summary["parameters"] as? [[String: Any]])
            #expect(parameters.map { $0["name"] as? String } == ["w", "l.bias"])
            #expect(parameters[0]["shape"] as? [Int] == [2, 2])
            #expect(parameters[0]["numel"] as? Int == 4)
            #expect(parameters[1]["group"] as? Int == 1)
            let slots = try #require(parameters[0]["state"] as? [[String: Any]])
            #expect(slots.compactMap { $0["name"] as? String } == ["step", "exp_avg", "exp_avg_sq"])
            let groups = try #require(summary["groups"] as? [[String: Any]])
            #expect(groups.first?["members"] as? [String] == ["l.bias"])
            #expect((groups.first?["hyperparameters"] as? [String: Any])?["weight_decay"] as? Double == 0.5)
            let state = try #require(summary["state"] as? [String: Any])
            #expect((state["norms"] as? [String: Double])?["exp_avg"] != nil)
            let last = try #require(summary["last_step"] as? [String: Any])
            #expect(last["loss"] as? Double == 2.5)
            #expect(last["step"] as? Int == 1)
        }
    }

    @Test func patchChangesHyperparametersAndKeepsState() async throws {
        try await makeApp().test(.router) { client in
            let session = try await client.createSession(#"{"optimizer":"sgd","hyperparameters":{"lr":0.1}}"#)
            try await client.putParameters(session, try Body.tensors([("w", [1], [1])]))
            let patched = try await client.execute(
                uri: session.path, method: .patch, headers: session.auth, body: ByteBuffer(string: #"{"hyperparameters":{"lr":0.5}}"#))
            #expect(patched.status == .ok)
            #expect((try jsonObject(patched)["hyperparameters"] as? [String: Any])?["lr"] as? Double == 0.5)
            let step = try await client.execute(
                uri: session.path + "/step", method: .post, headers: session.auth, body: try Body.tensors([("w", [1], [1])]))
            #expect(try safetensors(step.body).floats(named: "w") == [0.5])

            let bad = try await client.execute(
                uri: session.path, method: .patch, headers: session.auth, body: ByteBuffer(string: #"{"hyperparameters":{"lr":-1}}"#))
            let detail = try problem(bad)
            #expect(detail.status == 400 && detail.detail.contains("hyperparameters.lr"))
        }
    }

    @Test func listAndDelete() async throws {
        try await makeApp().test(.router) { client in
            let first = try await client.createSession(#"{"optimizer":"adam","name":"a"}"#)
            let second = try await client.createSession(#"{"optimizer":"sgd","name":"b"}"#)
            let list = try jsonObject(try await client.execute(uri: "/v1/sessions", method: .get))
            let sessions = try #require(list["sessions"] as? [[String: Any]])
            #expect(sessions.compactMap { $0["id"] as? String } == [first.id, second.id])
            #expect(sessions.allSatisfy { $0["token"] == nil })

            let deleted = try await client.execute(uri: first.path, method: .delete, headers: first.auth)
            #expect(deleted.status == .noContent)
            let gone = try await client.execute(uri: first.path, method: .get, headers: first.auth)
            #expect(gone.status == .notFound)
            let remaining = try jsonObject(try await client.execute(uri: "/v1/sessions", method: .get))
            #expect((remaining["sessions"] as? [[String: Any]])?.count == 1)
        }
    }

    @Test(arguments: [
        (#"{"optimizer":"adamx"}"#, "optimizer"),
        (#"{"optimizer":"adam","hyperparameters":{"lr":"fast"}}"#, "hyperparameters.lr"),
        (#"{"optimizer":"adam","hyperparameters":{"betas":[0.9, 1.5]}}"#, "hyperparameters.betas[1]"),
        (#"{"optimizer":"adam","hyperparameters":{"weight_decy":0.1}}"#, "hyperparameters.weight_decy"),
        (#"{"optimizer":"sgd","hyperparameters":{"nesterov":true}}"#, "hyperparameters.nesterov"),
        (#"{"optimizer":"mtadam"}"#, "hyperparameters.terms"),
        (#"{"optimizer":"adam","groups":[{"parameters":[],"hyperparameters":{}}]}"#, "groups[0].parameters"),
        (#"{"optimizer":"adam","groups":[{"parameters":["x"],"hyperparameters":{"nonfinite":"skip"}}]}"#, "groups[0].hyperparameters.nonfinite"),
        (#"{"optimizer":"adam","hyperparameters":{"nonfinite":"ignore"}}"#, "hyperparameters.nonfinite"),
        (#"{"optimizer":"adam","hyperparameters":{"clip_grad_norm":0}}"#, "hyperparameters.clip_grad_norm"),
        (#"{"optimizer":"adam","extra":1}"#, "extra"),
        (#"{"hyperparameters":{}}"#, "optimizer"),
        (#"{"optimizer":3}"#, "optimizer"),
        (#"{"optimizer":"adam""#, "body"),
        (#"[1,2]"#, "body"),
    ])
    func badCreateBodiesAre400NamingTheField(body: String, field: String) async throws {
        try await makeApp().test(.router) { client in
            let response = try await client.execute(uri: "/v1/sessions", method: .post, body: ByteBuffer(string: body))
            let detail = try problem(response)
            #expect(response.status == .badRequest)
            #expect(detail.status == 400)
            #expect(detail.detail.hasPrefix(field), "\(detail.detail)")
        }
    }

    @Test func jsonBodiesMayBeCompressedAndAreLimitedToOneMebibyte() async throws {
        try await makeApp().test(.router) { client in
            let body = try compressed(ByteBuffer(string: #"{"optimizer":"sgd","name":"zipped"}"#))
            let created = try await client.execute(uri: "/v1/sessions", method: .post, headers: [.contentEncoding: "gzip"], body: body)
            #expect(created.status == .created)
            let huge = #"{"optimizer":"sgd","name":""# + String(repeating: "x", count: 1 << 20) + #""}"#
            let refused = try await client.execute(uri: "/v1/sessions", method: .post, body: ByteBuffer(string: huge))
            #expect(refused.status == .contentTooLarge)
            #expect(try problem(refused).detail.contains("1048576"))
        }
    }

    @Test func unknownRouteIsProblemJSON404() async throws {
        try await makeApp().test(.router) { client in
            let response = try await client.execute(uri: "/v2/nothing", method: .get)
            #expect(response.status == .notFound)
            let detail = try problem(response)
            #expect(detail.status == 404 && detail.detail == "no route for GET /v2/nothing")
        }
    }
}
