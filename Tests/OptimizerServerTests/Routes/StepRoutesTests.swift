import CompressNIO
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import OptimizerWire
import Testing

/// The step route: gradients in, parameters or deltas out; retries, conflicts, dtypes, sparse, gzip.
/// Each test runs twice: through the router (no socket) and against a live server on loopback.
struct StepRoutesTests {
    /// An SGD session (lr 0.5, so a step is w − 0.5·g) with `w = [1, 2, 3, 4]` and `b = [0]`.
    private func sgdSession(_ client: some TestClientProtocol) async throws -> CreatedSession {
        let session = try await client.createSession(#"{"optimizer":"sgd","hyperparameters":{"lr":0.5}}"#)
        try await client.putParameters(session, try Body.tensors([("w", [2, 2], [1, 2, 3, 4]), ("b", [1], [0])]))
        return session
    }

    private func step(
        _ client: some TestClientProtocol, _ session: CreatedSession, _ body: ByteBuffer, query: String = "",
        headers: HTTPFields = [:]
    ) async throws -> TestResponse {
        try await client.execute(uri: session.path + "/step" + query, method: .post, headers: session.auth.merging(headers), body: body)
    }

    @Test(arguments: Transport.all)
    func stepReturnsSteppedParametersAndTelemetry(over transport: Transport) async throws {
        try await makeApp().test(transport.setup) { client in
            let session = try await sgdSession(client)
            let response = try await step(client, session, try Body.tensors([("w", [2, 2], [2, 2, 2, 2])], metadata: ["loss": "1.5"]))
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "application/octet-stream")
            let result = try safetensors(response.body)
            #expect(result.tensors.map(\.name) == ["w"])  // only the parameters that had gradients
            #expect(try result.floats(named: "w") == [0, 1, 2, 3])
            #expect(result.metadata["step"] == "1")
            #expect(result.metadata["skipped"] == "false")
            #expect(result.metadata["lr"] == "0.5")
            #expect(result.metadata["loss"] == "1.5")
            #expect(Double(result.metadata["grad_norm"] ?? "") == 4)
            #expect(Double(result.metadata["update_norm"] ?? "") == 2)
        }
    }

    @Test(arguments: Transport.all)
    func serverTimingSplitsTheStepIntoItsPhases(over transport: Transport) async throws {
        try await makeApp().test(transport.setup) { client in
            let session = try await sgdSession(client)
            let response = try await step(client, session, try Body.tensors([("w", [2, 2], [2, 2, 2, 2])]))
            let value = try #require(response.headers[HTTPField.Name("Server-Timing")!])
            let phases = value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            #expect(phases.map { String($0.prefix { $0 != ";" }) } == ["receive", "decode", "wait", "validate", "log", "apply", "encode"])
            for phase in phases {
                let duration = try #require(phase.split(separator: "=").last.flatMap { Double($0) }, "\(phase)")
                #expect(duration >= 0)
            }
        }
    }

    @Test(arguments: Transport.all)
    func retryOfTheCurrentStepReturnsTheSameBytesWithoutApplyingAgain(over transport: Transport) async throws {
        try await makeApp().test(transport.setup) { client in
            let session = try await sgdSession(client)
            let body = try Body.tensors([("w", [2, 2], [2, 2, 2, 2])], metadata: ["step": "1"])
            let first = try await step(client, session, body)
            let again = try await step(client, session, body)
            #expect(first.status == .ok && again.status == .ok)
            #expect(again.body == first.body)
            #expect(again.headers[HTTPField.Name("Optimizerd-Retry")!] == "true")
            #expect(try safetensors(try await client.parameterBytes(session)).floats(named: "w") == [0, 1, 2, 3])
            #expect(try await client.summary(session)["step"] as? Int == 1)

            let second = try await step(client, session, try Body.tensors([("w", [2, 2], [2, 2, 2, 2])], metadata: ["step": "2"]))
            #expect(try safetensors(second.body).floats(named: "w") == [-1, 0, 1, 2])
        }
    }

    @Test(arguments: Transport.all, ["0", "3", "7"])
    func anyOtherStepIs409NamingTheCurrentStep(over transport: Transport, requested: String) async throws {
        try await makeApp().test(transport.setup) { client in
            let session = try await sgdSession(client)
            _ = try await step(client, session, try Body.tensors([("w", [2, 2], [2, 2, 2, 2])]))
            let before = try await client.parameterBytes(session)
            let response = try await step(client, session, try Body.tensors([("w", [2, 2], [2, 2, 2, 2])], metadata: ["step": requested]))
            let detail = try problem(response)
            #expect(response.status == .conflict)
            #expect(detail.detail.contains("session is at step 1"), "\(detail.detail)")
            #expect(try await client.parameterBytes(session) == before)
        }
    }

    @Test(arguments: Transport.all)
    func deltaAndHalfPrecisionResponses(over transport: Transport) async throws {
        try await makeApp().test(transport.setup) { client in
            let session = try await sgdSession(client)
            let delta = try await step(client, session, try Body.tensors([("w", [2, 2], [2, 2, 2, 4])]), query: "?return=delta")
            #expect(try safetensors(delta.body).floats(named: "w") == [-1, -1, -1, -2])
            let retried = try await step(
                client, session, try Body.tensors([("w", [2, 2], [0, 0, 0, 0])], metadata: ["step": "1"]), query: "?return=delta")
            #expect(retried.body == delta.body)

            let half = try await step(client, session, try Body.tensors([("w", [2, 2], [1, 1, 1, 1])]), query: "?dtype=bf16")
            let file = try safetensors(half.body)
            #expect(file.entry(named: "w")?.dtype == .BF16)
            #expect(try file.floats(named: "w") == [-0.5, 0.5, 1.5, 1.5])

            let none = try await step(client, session, try Body.tensors([("w", [2, 2], [0, 0, 0, 0])]), query: "?return=none")
            let empty = try safetensors(none.body)
            #expect(empty.tensors.isEmpty && empty.metadata["step"] == "3")

            let f16 = try await client.execute(uri: session.path + "/parameters?dtype=f16", method: .get, headers: session.auth)
            #expect(try safetensors(f16.body).entry(named: "w")?.dtype == .F16)
            #expect(try safetensors(f16.body).floats(named: "w") == [-0.5, 0.5, 1.5, 1.5])
        }
    }

    @Test(arguments: Transport.all, [DType.F16, DType.BF16])
    func halfPrecisionGradientsAndParameters(over transport: Transport, dtype: DType) async throws {
        try await makeApp().test(transport.setup) { client in
            let session = try await client.createSession(#"{"optimizer":"sgd","hyperparameters":{"lr":1}}"#)
            try await client.putParameters(session, try Body.tensors([("w", [3], [1, 2, 3])], as: dtype))
            let response = try await step(client, session, try Body.tensors([("w", [3], [0.5, 0.25, -1])], as: dtype))
            #expect(try safetensors(response.body).floats(named: "w") == [0.5, 1.75, 4])
        }
    }

    @Test(arguments: Transport.all)
    func sparseGradientsAreScatteredIntoZeros(over transport: Transport) async throws {
        try await makeApp().test(transport.setup) { client in
            let session = try await sgdSession(client)
            let body = try Body().int64("w.indices", [3, 0]).float("w.values", [2], [2, 4]).buffer
            let response = try await step(client, session, body)
            #expect(response.status == .ok, "\(String(buffer: response.body))")
            #expect(try safetensors(response.body).floats(named: "w") == [-1, 2, 3, 3])
        }
    }

    @Test(arguments: Transport.all)
    func gzipAndDeflateRequestsAndGzipResponses(over transport: Transport) async throws {
        try await makeApp().test(transport.setup) { client in
            let session = try await sgdSession(client)
            let gradient = try Body.tensors([("w", [2, 2], [2, 2, 2, 2])])
            let gzipped = try await step(client, session, try compressed(gradient, .gzip), headers: [.contentEncoding: "gzip"])
            #expect(try safetensors(gzipped.body).floats(named: "w") == [0, 1, 2, 3])
            let deflated = try await step(client, session, try compressed(gradient, .zlib), headers: [.contentEncoding: "deflate"])
            #expect(try safetensors(deflated.body).floats(named: "w") == [-1, 0, 1, 2])
            let raw = try await step(client, session, try compressed(gradient, .deflate), headers: [.contentEncoding: "deflate"])
            #expect(try safetensors(raw.body).floats(named: "w") == [-2, -1, 0, 1])

            // A large, very compressible upload comes back gzip-compressed when asked.
            let big = try await client.createSession(#"{"optimizer":"sgd","hyperparameters":{"lr":0}}"#)
            try await client.putParameters(big, try Body.tensors([("w", [65536], [Float](repeating: 1, count: 65536))]))
            let response = try await client.execute(
                uri: big.path + "/parameters", method: .get, headers: big.auth.merging([.acceptEncoding: "gzip, deflate"]))
            #expect(response.headers[.contentEncoding] == "gzip")
            #expect(response.body.readableBytes < 65536)
            #expect(try safetensors(try decompressed(response.body)).floats(named: "w").allSatisfy { $0 == 1 })
        }
    }

    /// An uncompressed body's gradients are summed while it arrives (ArrivingSums), a gzip body's by
    /// the step: the same bits either way, with clipping (which uses the sums), and a NaN in the
    /// last chunk of a large tensor is still refused before anything changes.
    @Test(arguments: Transport.all)
    func stepsSummedOnArrivalMatchStepsSummedByTheStep(over transport: Transport) async throws {
        try await makeApp().test(transport.setup) { client in
            // A bfloat16 gradient of odd length in the middle: summed from its float32 conversion, and
            // the float32 one after it unaligned.
            let sizes = [3 * 65536 + 5, 70001, 3]
            let dtypes: [DType] = [.F32, .BF16, .F32]
            let parameters = try Body.tensors(sizes.enumerated().map { ("p\($0)", [$1], (0..<$1).map { Float($0 % 97) / 50 - 1 }) })
            let gradients = sizes.enumerated().map { index, size in ("p\(index)", [size], (0..<size).map { Float(($0 * 31 + index) % 89) / 40 - 1.1 }) }
            func encoded(_ tensors: [(String, [Int], [Float])]) throws -> ByteBuffer {
                var body = Body()
                for ((name, shape, values), dtype) in zip(tensors, dtypes) { body = try body.float(name, shape, values, as: dtype) }
                return body.buffer
            }
            var answers: [ByteBuffer] = []
            for coding in ["identity", "gzip"] {
                let session = try await client.createSession(#"{"optimizer":"adam","hyperparameters":{"lr":0.01,"clip_grad_norm":1}}"#)
                try await client.putParameters(session, parameters)
                var body = try encoded(gradients)
                if coding == "gzip" { body = try compressed(body, .gzip) }
                let response = try await step(client, session, body, headers: coding == "gzip" ? [.contentEncoding: "gzip"] : [:])
                #expect(response.status == .ok, "\(coding)")
                answers.append(response.body)

                var poisoned = gradients
                poisoned[0].2[sizes[0] - 2] = .nan
                let refused = try await step(client, session, try encoded(poisoned))
                #expect(refused.status == .unprocessableContent, "\(coding)")
                #expect(String(buffer: refused.body).contains("p0"))
                let current = try await client.execute(uri: session.path + "/parameters", method: .get, headers: session.auth)
                #expect(try safetensors(current.body).floats(named: "p0") == (try safetensors(response.body).floats(named: "p0")))
            }
            #expect(try safetensors(answers[0]).metadata["grad_norm"] == (try safetensors(answers[1]).metadata["grad_norm"]))
            for name in ["p0", "p1", "p2"] {
                #expect(
                    try safetensors(answers[0]).floats(named: name).map(\.bitPattern) == (try safetensors(answers[1]).floats(named: name)).map(\.bitPattern))
            }
        }
    }

    @Test(arguments: Transport.all)
    func historyKeepsTelemetryAfterSince(over transport: Transport) async throws {
        try await makeApp().test(transport.setup) { client in
            let session = try await sgdSession(client)
            for loss in ["3", "2", "1"] {
                _ = try await step(client, session, try Body.tensors([("w", [2, 2], [1, 1, 1, 1])], metadata: ["loss": loss]))
            }
            let page = try jsonObject(try await client.execute(uri: session.path + "/history?since=1", method: .get, headers: session.auth))
            let records = try #require(page["records"] as? [[String: Any]])
            #expect(records.compactMap { $0["step"] as? Int } == [2, 3])
            #expect(records.compactMap { $0["loss"] as? Double } == [2, 1])
            #expect(page["step"] as? Int == 3)
            let bad = try await client.execute(uri: session.path + "/history?since=x", method: .get, headers: session.auth)
            #expect(bad.status == .badRequest)
        }
    }

    @Test(arguments: Transport.all)
    func nonfiniteSkipReportsASkippedStepAndLeavesParameters(over transport: Transport) async throws {
        try await makeApp().test(transport.setup) { client in
            let session = try await client.createSession(#"{"optimizer":"adam","hyperparameters":{"nonfinite":"skip"}}"#)
            try await client.putParameters(session, try Body.tensors([("w", [2], [1, 2])]))
            let before = try await client.parameterBytes(session)
            let response = try await step(client, session, try Body.tensors([("w", [2], [.nan, 1])]))
            #expect(response.status == .ok)
            #expect(try safetensors(response.body).metadata["skipped"] == "true")
            #expect(try safetensors(try await client.parameterBytes(session)).floats(named: "w") == [1, 2])
            _ = before
        }
    }
}

extension HTTPFields {
    func merging(_ other: HTTPFields) -> HTTPFields {
        var result = self
        for field in other { result[field.name] = field.value }
        return result
    }
}
