import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import OptimizerWire
import Testing

/// `POST …/steps/{n}/momo-sums` and the commit's `momo_totals`: the answer per tensor, a read-only
/// route that repeats the same answer, a commit with the folded totals that steps exactly as one
/// without them (one daemon holds every tensor here), and every bad input refused naming its field
/// with nothing changed.
struct MomoSumsRoutesTests {
    private let w = try! Body.tensors([("w", [2, 2], [1, -1, 0.5, 2])])
    private let b = try! Body.tensors([("b", [1], [2])])
    private let scalars = #"{"term_squared_norms":[10.25],"loss":1.5}"#

    private func session(_ client: some TestClientProtocol, _ optimizer: String = "momo") async throws -> CreatedSession {
        let session = try await client.createSession(#"{"optimizer":"\#(optimizer)","hyperparameters":{"lr":0.5,"clip_grad_norm":2}}"#)
        try await client.putParameters(session, try Body.tensors([("w", [2, 2], [1, 2, 3, 4]), ("b", [1], [0])]))
        return session
    }

    private func stage(_ client: some TestClientProtocol, _ session: CreatedSession, step: Int) async throws {
        for (part, body) in [("a", w), ("b", b)] {
            let response = try await client.execute(uri: "\(session.path)/steps/\(step)/parts/\(part)", method: .put, headers: session.auth, body: body)
            #expect(response.status == .ok, "\(String(buffer: response.body))")
        }
    }

    private func sums(_ client: some TestClientProtocol, _ session: CreatedSession, step: Int, _ body: String) async throws -> TestResponse {
        try await client.execute(
            uri: "\(session.path)/steps/\(step)/momo-sums", method: .post,
            headers: session.auth.merging([.contentType: "application/json"]), body: ByteBuffer(string: body))
    }

    @Test(arguments: ["momo", "momo_adam"], Transport.all)
    func theSumsAreReadOnlyAndTheirFoldStepsLikeTheDaemonsOwn(_ optimizer: String, over transport: Transport) async throws {
        try await makeApp().test(transport.setup) { client in
            let sharded = try await session(client, optimizer)
            let plain = try await session(client, optimizer)
            for step in 1...3 {
                try await stage(client, sharded, step: step)
                try await stage(client, plain, step: step)
                let before = try await client.parameterBytes(sharded)
                let first = try await sums(client, sharded, step: step, scalars)
                #expect(first.status == .ok, "\(String(buffer: first.body))")
                let answer = try jsonObject(first)
                #expect(answer["step"] as? Int == step)
                let tensors = try #require(answer["tensors"] as? [String: [String: Double]])
                #expect(Set(tensors.keys) == ["w", "b"])
                #expect(tensors.values.allSatisfy { Set($0.keys) == ["parameter_dot_average", "gamma", "average_squared_norm"] })
                // Read-only: the same answer again, the parts still staged, nothing applied.
                #expect(try await sums(client, sharded, step: step, scalars).body == first.body)
                #expect(try await client.parameterBytes(sharded) == before)
                #expect(try await client.summary(sharded)["step"] as? Int == step - 1)
                // The fold in parameter order (w, then b), sent with the commit.
                var totals = [String: Double]()
                for name in ["w", "b"] { for (key, value) in tensors[name]! { totals[key, default: 0] += value } }
                let json = String(decoding: try JSONSerialization.data(withJSONObject: totals), as: UTF8.self)
                let body = scalars.dropLast() + #","momo_totals":\#(json)}"#
                let committed = try await PartsClient.commit(client, sharded, step: step, body: ByteBuffer(string: String(body)))
                #expect(committed.status == .ok, "\(String(buffer: committed.body))")
                #expect(try await PartsClient.commit(client, plain, step: step, body: ByteBuffer(string: scalars)).status == .ok)
                #expect(try await client.parameterBytes(sharded) == client.parameterBytes(plain))
                // A retried commit answers the same; the sums of a committed step are gone.
                let retry = try await PartsClient.commit(client, sharded, step: step, body: ByteBuffer(string: String(body)))
                #expect(retry.status == .ok && retry.body == committed.body)
                let late = try problem(try await sums(client, sharded, step: step, scalars))
                #expect(late.status == 409 && late.detail.contains("already committed"))
            }
        }
    }

    @Test(arguments: Transport.all)
    func badSumsRequestsAndTotalsNameTheirFieldAndChangeNothing(over transport: Transport) async throws {
        try await makeApp().test(transport.setup) { client in
            let momo = try await session(client)
            let before = try await client.parameterBytes(momo)
            let noParts = try problem(try await sums(client, momo, step: 1, scalars))
            #expect(noParts.status == 422 && noParts.detail.contains("parts"))
            let wrongStep = try problem(try await sums(client, momo, step: 2, scalars))
            #expect(wrongStep.status == 409 && wrongStep.detail.contains("at step 0"))
            let first = try await client.execute(uri: "\(momo.path)/steps/1/parts/a", method: .put, headers: momo.auth, body: w)
            #expect(first.status == .ok)
            let missing = try problem(try await sums(client, momo, step: 1, scalars))
            #expect(missing.status == 422 && missing.detail.contains("\"b\""))
            try await stage(client, momo, step: 1)
            let noLoss = try problem(try await sums(client, momo, step: 1, #"{"term_squared_norms":[1]}"#))
            #expect(noLoss.status == 422 && noLoss.detail.contains("loss"))
            let count = try problem(try await sums(client, momo, step: 1, #"{"term_squared_norms":[1],"loss":1,"parts":3}"#))
            #expect(count.status == 422 && count.detail.contains("parts"))
            let given = try problem(
                try await sums(
                    client, momo, step: 1,
                    #"{"term_squared_norms":[1],"loss":1,"momo_totals":{"parameter_dot_average":0,"gamma":0,"average_squared_norm":1}}"#))
            #expect(given.status == 422 && given.detail.contains("momo_totals"))
            // Malformed totals in a commit: 400 naming the member.
            for (totals, field) in [
                (#"{"parameter_dot_average":0,"gamma":0}"#, "average_squared_norm"),
                (#"{"parameter_dot_average":0,"gamma":0,"average_squared_norm":1,"extra":2}"#, "extra"),
                (#"{"parameter_dot_average":"lots","gamma":0,"average_squared_norm":1}"#, "parameter_dot_average"),
                (#"[1,2,3]"#, "momo_totals"),
            ] {
                let response = try await PartsClient.commit(
                    client, momo, step: 1, body: ByteBuffer(string: #"{"term_squared_norms":[1],"loss":1,"momo_totals":\#(totals)}"#))
                let refused = try problem(response)
                #expect(refused.status == 400 && refused.detail.contains(field), "\(refused.detail)")
            }
            #expect(try await client.parameterBytes(momo) == before)
            #expect(try await client.summary(momo)["step"] as? Int == 0)

            // Not a MoMo session: the sums are refused naming the optimizer, totals naming momo_totals.
            let adam = try await session(client, "adam")
            try await stage(client, adam, step: 1)
            let notMomo = try problem(try await sums(client, adam, step: 1, #"{"term_squared_norms":[1]}"#))
            #expect(notMomo.status == 422 && notMomo.detail.contains("optimizer"))
            let adamTotals = try problem(
                try await PartsClient.commit(
                    client, adam, step: 1,
                    body: ByteBuffer(string: #"{"term_squared_norms":[1],"momo_totals":{"parameter_dot_average":0,"gamma":0,"average_squared_norm":1}}"#)))
            #expect(adamTotals.status == 422 && adamTotals.detail.contains("momo_totals"))
            #expect(try await client.summary(adam)["step"] as? Int == 0)

            // A skipped step has no step size.
            let skip = try await client.createSession(#"{"optimizer":"momo","hyperparameters":{"nonfinite":"skip"}}"#)
            try await client.putParameters(skip, try Body.tensors([("w", [2, 2], [1, 2, 3, 4]), ("b", [1], [0])]))
            try await stage(client, skip, step: 1)
            let skipped = try problem(try await sums(client, skip, step: 1, #"{"term_squared_norms":[1],"loss":1,"nonfinite":"w"}"#))
            #expect(skipped.status == 422 && skipped.detail.contains("nonfinite"))
            // After all that the staged parts of the MoMo session still commit.
            #expect(try await PartsClient.commit(client, momo, step: 1, body: ByteBuffer(string: scalars)).status == .ok)
        }
    }
}
