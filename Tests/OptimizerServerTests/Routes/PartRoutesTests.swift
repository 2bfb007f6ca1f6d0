import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import OptimizerWire
import Testing

/// Steps in parts: staging, commit, retries, expiry, and every bad input of DESIGN §7 as it applies
/// to parts. After each refusal the session is checked to be exactly as before.
struct PartRoutesTests {
    /// A MoMo session (it needs every parameter) with `w = [1, 2, 3, 4]` and `b = [0]`.
    private func momoSession(_ client: some TestClientProtocol) async throws -> CreatedSession {
        let session = try await client.createSession(#"{"optimizer":"momo","hyperparameters":{"lr":0.5}}"#)
        try await client.putParameters(session, try Body.tensors([("w", [2, 2], [1, 2, 3, 4]), ("b", [1], [0])]))
        return session
    }

    private func put(
        _ client: some TestClientProtocol, _ session: CreatedSession, _ path: String, _ body: ByteBuffer
    ) async throws
        -> TestResponse
    {
        try await client.execute(uri: session.path + "/steps/" + path, method: .put, headers: session.auth, body: body)
    }

    private let w = try! Body.tensors([("w", [2, 2], [1, 1, 1, 1])])
    private let b = try! Body.tensors([("b", [1], [2])])
    private let commitBody = ByteBuffer(string: #"{"term_squared_norms":[8],"loss":1.5}"#)

    @Test(arguments: Transport.all)
    func partsAnswerSumsAndTheCommitAppliesThemAsOneStep(over transport: Transport) async throws {
        try await makeApp().test(transport.setup) { client in
            let session = try await momoSession(client)
            let first = try await put(client, session, "1/parts/a", w)
            #expect(first.status == .ok)
            let answer = try jsonObject(first)
            #expect((answer["tensors"] as? [String: [String: Any]])?["w"]?["sum_of_squares"] as? Double == 4)
            #expect((answer["tensors"] as? [String: [String: Any]])?["w"]?["finite"] as? Bool == true)
            // The same part again answers the same and stages nothing more.
            let again = try await put(client, session, "1/parts/a", w)
            #expect(again.status == .ok && again.body == first.body)
            #expect(try await put(client, session, "1/parts/b", b).status == .ok)
            let staged = try #require(try await client.summary(session)["staged_step"] as? [String: Any])
            #expect(staged["step"] as? Int == 1 && staged["parts"] as? [String] == ["a", "b"] && staged["tensors"] as? Int == 2)
            #expect(staged["bytes"] as? Int == 20 && staged["expires_at"] is String)

            let commit = try await PartsClient.commit(client, session, step: 1, body: commitBody)
            #expect(commit.status == .ok, "\(String(buffer: commit.body))")
            #expect(try safetensors(commit.body).metadata["step"] == "1")
            #expect(try await client.summary(session)["step"] as? Int == 1)
            #expect(try await client.summary(session)["staged_step"] == nil)
            // A repeated commit answers the same, and a part of the committed step is refused.
            let retry = try await PartsClient.commit(client, session, step: 1, body: commitBody)
            #expect(retry.status == .ok && retry.body == commit.body)
            let late = try problem(try await put(client, session, "1/parts/a", w))
            #expect(late.status == 409 && late.detail.contains("already committed"))
        }
    }

    @Test(arguments: Transport.all)
    func badPartsAndCommitsAreRefusedAndChangeNothing(over transport: Transport) async throws {
        try await makeApp().test(transport.setup) { client in
            let session = try await momoSession(client)
            let before = try await client.parameterBytes(session)
            // Malformed safetensors → 400.
            let malformed = try problem(try await put(client, session, "1/parts/x", ByteBuffer(bytes: [1, 2, 3])))
            #expect(malformed.status == 400)
            // Unknown tensor → 422 naming it; wrong shape → 422.
            let unknown = try problem(try await put(client, session, "1/parts/x", try Body.tensors([("nope", [1], [1])])))
            #expect(unknown.status == 422 && unknown.detail.contains("nope"))
            let shape = try problem(try await put(client, session, "1/parts/x", try Body.tensors([("w", [4], [1, 1, 1, 1])])))
            #expect(shape.status == 422 && shape.detail.contains("w"))
            // Duplicate across parts → 422 naming the tensor; the same id with other bytes → 409.
            #expect(try await put(client, session, "1/parts/a", w).status == .ok)
            let duplicate = try problem(try await put(client, session, "1/parts/other", w))
            #expect(duplicate.status == 422 && duplicate.detail.contains("\"w\""))
            let conflict = try problem(try await put(client, session, "1/parts/a", b))
            #expect(conflict.status == 409)
            // Other values, an extra tensor or a missing one under the same id → 409 too.
            let otherValues = try Body.tensors([("w", [2, 2], [1, 1, 1, 2])])
            #expect(try problem(try await put(client, session, "1/parts/a", otherValues)).status == 409)
            let extra = try Body.tensors([("w", [2, 2], [1, 1, 1, 1]), ("b", [1], [2])])
            #expect(try problem(try await put(client, session, "1/parts/a", extra)).status == 409)
            #expect(try problem(try await put(client, session, "1/parts/a", try Body.tensors([]))).status == 409)
            // The same values in another dtype are the same part.
            let bf16 = try Body.tensors([("w", [2, 2], [1, 1, 1, 1])], as: .BF16)
            #expect(try await put(client, session, "1/parts/a", bf16).status == .ok)
            // Wrong step → 409 naming the current one; bad part id → 400.
            let wrong = try problem(try await put(client, session, "3/parts/c", b))
            #expect(wrong.status == 409 && wrong.detail.contains("at step 0"))
            #expect(try problem(try await put(client, session, "1/parts/a%20b", b)).status == 400)
            // A commit counting other parts than staged → 422.
            let count = try problem(
                try await PartsClient.commit(client, session, step: 1, body: ByteBuffer(string: #"{"term_squared_norms":[8],"loss":1,"parts":2}"#)))
            #expect(count.status == 422 && count.detail.contains("parts"))
            // Commit with a missing tensor → 422 naming it; bad scalars → 400/422; wrong step → 409.
            let missing = try problem(try await PartsClient.commit(client, session, step: 1, body: commitBody))
            #expect(missing.status == 422 && missing.detail.contains("\"b\""))
            #expect(try await put(client, session, "1/parts/b", b).status == .ok)
            let noLoss = try problem(
                try await PartsClient.commit(client, session, step: 1, body: ByteBuffer(string: #"{"term_squared_norms":[8]}"#)))
            #expect(noLoss.status == 422 && noLoss.detail.contains("loss"))
            let terms = try problem(
                try await PartsClient.commit(client, session, step: 1, body: ByteBuffer(string: #"{"term_squared_norms":[8,1],"loss":1}"#)))
            #expect(terms.status == 422 && terms.detail.contains("term_squared_norms"))
            let negative = try problem(
                try await PartsClient.commit(client, session, step: 1, body: ByteBuffer(string: #"{"term_squared_norms":[-1],"loss":1}"#)))
            #expect(negative.status == 400 && negative.detail.contains("term_squared_norms"))
            let scale = try problem(
                try await PartsClient.commit(
                    client, session, step: 1, body: ByteBuffer(string: #"{"term_squared_norms":[8],"loss":1,"grad_scale":0}"#)))
            #expect(scale.status == 400 && scale.detail.contains("grad_scale"))
            let unknownField = try problem(
                try await PartsClient.commit(client, session, step: 1, body: ByteBuffer(string: #"{"term_squared_norms":[8],"loss":1,"x":1}"#)))
            #expect(unknownField.status == 400 && unknownField.detail.contains("x"))
            let future = try problem(try await PartsClient.commit(client, session, step: 2, body: commitBody))
            #expect(future.status == 409 && future.detail.contains("at step 0"))
            #expect(try await client.parameterBytes(session) == before)
            #expect(try await client.summary(session)["step"] as? Int == 0)
            // After all that the staged parts still commit.
            #expect(try await PartsClient.commit(client, session, step: 1, body: commitBody).status == .ok)
        }
    }

    @Test(arguments: Transport.all)
    func aNonFiniteCommitIsRejectedOrSkippedLikeAPlainStep(over transport: Transport) async throws {
        try await makeApp().test(transport.setup) { client in
            let session = try await client.createSession(#"{"optimizer":"sgd","hyperparameters":{"lr":0.5,"nonfinite":"skip"}}"#)
            try await client.putParameters(session, try Body.tensors([("w", [1], [1])]))
            let part = try await put(client, session, "1/parts/a", try Body.tensors([("w", [1], [.infinity])]))
            let tensors = try #require(try jsonObject(part)["tensors"] as? [String: [String: Any]])
            #expect(tensors["w"]?["finite"] as? Bool == false && tensors["w"]?["sum_of_squares"] is NSNull)
            // Calling the step finite while a staged tensor is not is refused.
            let lie = try problem(
                try await PartsClient.commit(client, session, step: 1, body: ByteBuffer(string: #"{"term_squared_norms":[0]}"#)))
            #expect(lie.status == 422 && lie.detail.contains("\"w\""))
            let skipped = try await PartsClient.commit(
                client, session, step: 1, body: ByteBuffer(string: #"{"term_squared_norms":[0],"nonfinite":"w"}"#))
            #expect(skipped.status == .ok)
            #expect(try safetensors(skipped.body).metadata["skipped"] == "true")
            #expect(try safetensors(try await client.parameterBytes(session)).floats(named: "w") == [1])
        }
    }

    @Test(arguments: Transport.all)
    func deleteDropsStagedPartsAndExpiredPartsAreGone(over transport: Transport) async throws {
        try await makeApp(stagedStepTTL: .milliseconds(1)).test(transport.setup) { client in
            let session = try await momoSession(client)
            #expect(try await put(client, session, "1/parts/a", w).status == .ok)
            try await Task.sleep(for: .milliseconds(20))
            #expect(try await client.summary(session)["staged_step"] == nil)
            // The expired part is gone: staging w again is no duplicate.
            #expect(try await put(client, session, "1/parts/other", w).status == .ok)
        }
        try await makeApp().test(transport.setup) { client in
            let session = try await momoSession(client)
            #expect(try await put(client, session, "1/parts/a", w).status == .ok)
            let drop = try await client.execute(uri: session.path + "/steps/1", method: .delete, headers: session.auth)
            #expect(drop.status == .noContent)
            #expect(try await client.summary(session)["staged_step"] == nil)
            let again = try await client.execute(uri: session.path + "/steps/1", method: .delete, headers: session.auth)
            #expect(try problem(again).status == 404)
            #expect(try await put(client, session, "1/parts/other", w).status == .ok)
        }
        // A part sent again starts the TTL anew: the step stays staged past the first part's expiry.
        try await makeApp(stagedStepTTL: .seconds(3)).test(transport.setup) { client in
            let session = try await momoSession(client)
            #expect(try await put(client, session, "1/parts/a", w).status == .ok)
            try await Task.sleep(for: .milliseconds(1800))
            #expect(try await put(client, session, "1/parts/a", w).status == .ok)
            try await Task.sleep(for: .milliseconds(1800))
            #expect(try await client.summary(session)["staged_step"] != nil)
        }
        // A plain request applying the staged step: its parts can no longer be committed and go.
        try await makeApp().test(transport.setup) { client in
            let session = try await momoSession(client)
            #expect(try await put(client, session, "1/parts/a", w).status == .ok)
            let plain = try await client.execute(
                uri: session.path + "/step", method: .post, headers: session.auth,
                body: try Body.tensors([("w", [2, 2], [1, 1, 1, 1]), ("b", [1], [2])], metadata: ["loss": "1.5", "step": "1"]))
            #expect(plain.status == .ok)
            #expect(try await client.summary(session)["staged_step"] == nil)
        }
    }

    @Test(arguments: Transport.all)
    func aCommitWithoutPartsIsRefusedUnlessItSaysSo(over transport: Transport) async throws {
        try await makeApp().test(transport.setup) { client in
            let session = try await client.createSession(#"{"optimizer":"sgd","hyperparameters":{"lr":0.5}}"#)
            try await client.putParameters(session, try Body.tensors([("w", [1], [1])]))
            let none = try problem(
                try await PartsClient.commit(client, session, step: 1, body: ByteBuffer(string: #"{"term_squared_norms":[0]}"#)))
            #expect(none.status == 422 && none.detail.contains("no parts are staged"))
            #expect(try await client.summary(session)["step"] as? Int == 0)
            let empty = try await PartsClient.commit(
                client, session, step: 1, body: ByteBuffer(string: #"{"term_squared_norms":[0],"parts":0}"#))
            #expect(empty.status == .ok)
            #expect(try await client.summary(session)["step"] as? Int == 1)
        }
    }

    @Test func limitsTellTheBodyLimit() async throws {
        try await makeApp(maxBodyBytes: 262_144).test(.router) { client in
            let limits = try jsonObject(try await client.execute(uri: "/v1/limits", method: .get))
            #expect(limits["max_body_bytes"] as? Int == 262_144)
            #expect(limits["staged_step_ttl_seconds"] as? Double == 600)
        }
    }
}
