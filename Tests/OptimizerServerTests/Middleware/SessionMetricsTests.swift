import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import OptimizerServer

/// `/metrics` per session: steps, step latency, bytes and errors under a `session_id` label, for at
/// most ``ServerMetrics/defaultSessionLabelLimit`` sessions (the rest under `other`), removed with
/// the session.
struct SessionMetricsTests {
    @Test func countsEachSessionsStepsLatencyBytesAndErrors() async throws {
        try await makeApp().test(.router) { client in
            let session = try await client.createSession(#"{"optimizer":"sgd","hyperparameters":{"lr":0.1},"name":"run-a"}"#)
            let other = try await client.createSession(#"{"optimizer":"adam"}"#)
            let parameters = try Body.tensors([("w", [2], [1, 2])])
            try await client.putParameters(session, parameters)
            var bodyBytes = parameters.readableBytes
            for step in 1...2 {
                let gradients = try Body.tensors([("w", [2], [1, 1])], metadata: ["step": String(step)])
                bodyBytes += gradients.readableBytes
                let response = try await client.execute(uri: session.path + "/step", method: .post, headers: session.auth, body: gradients)
                #expect(response.status == .ok)
            }
            // A retry applies nothing; a wrong step is a 409; no token is a 401: none is a step.
            let retry = try Body.tensors([("w", [2], [1, 1])], metadata: ["step": "2"])
            let conflict = try Body.tensors([("w", [2], [1, 1])], metadata: ["step": "7"])
            bodyBytes += retry.readableBytes + conflict.readableBytes
            #expect(try await client.execute(uri: session.path + "/step", method: .post, headers: session.auth, body: retry).status == .ok)
            #expect(try await client.execute(uri: session.path + "/step", method: .post, headers: session.auth, body: conflict).status == .conflict)
            #expect(try await client.execute(uri: session.path, method: .get).status == .unauthorized)
            #expect(try await client.execute(uri: other.path, method: .get, headers: other.auth).status == .ok)
            let madeUp = "00000000-0000-0000-0000-000000000000"
            #expect(try await client.execute(uri: "/v1/sessions/\(madeUp)", method: .get, headers: session.auth).status == .notFound)

            let text = try await client.metricsText()
            let id = #"session_id="\#(session.id)""#
            #expect(text.contains(#"optimizerd_session_steps{\#(id)} 2"#), "\(text)")
            #expect(text.contains(#"optimizerd_session_step_duration_count{\#(id)} 2"#))
            #expect(text.contains(#"optimizerd_session_step_duration_bucket{\#(id),le="0.0005"}"#), "sub-millisecond buckets")
            #expect(text.contains(#"optimizerd_session_step{\#(id)} 2"#))
            #expect(text.contains(#"optimizerd_session_durable_step{\#(id)} 0"#), "kept in memory only: nothing survives a crash")
            #expect(text.contains(#"optimizerd_session_requests{\#(id)} 6"#))
            #expect(text.contains(#"optimizerd_session_errors{\#(id),http_response_status_code="401"} 1"#))
            #expect(text.contains(#"optimizerd_session_errors{\#(id),http_response_status_code="409"} 1"#))
            #expect(text.contains(#"optimizerd_session_request_body_bytes{\#(id)} \#(bodyBytes)"#))
            #expect(text.contains(#"optimizerd_session_info{\#(id),session_name="run-a",session_optimizer="sgd",session_state_dtype="f32"} 1"#))
            let responseBytes = try #require(Self.value(of: "optimizerd_session_response_body_bytes{\(id)}", in: text))
            #expect(responseBytes > 0)
            #expect(text.contains(#"optimizerd_session_requests{session_id="\#(other.id)"} 1"#))
            #expect(!text.contains(#"optimizerd_session_steps{session_id="\#(other.id)"} 1"#))
            #expect(!text.contains(madeUp), "an id that names no session gets no series")
            #expect(!text.contains(#"session_id="other""#))
        }
    }

    @Test func sessionsPastTheLimitShareOneLabelAndDeletedSessionsFreeTheirs() async throws {
        let limit = ServerMetrics.defaultSessionLabelLimit
        try await makeApp().test(.router) { client in
            var sessions: [CreatedSession] = []
            for _ in 0..<(limit + 2) {
                let session = try await client.createSession(#"{"optimizer":"sgd"}"#)
                #expect(try await client.execute(uri: session.path, method: .get, headers: session.auth).status == .ok)
                sessions.append(session)
            }
            var text = try await client.metricsText()
            #expect(Self.labels(in: text) == Set(sessions.prefix(limit).map(\.id) + ["other"]))
            #expect(text.contains(#"optimizerd_session_requests{session_id="other"} 2"#))

            // Deleting a session removes its series and frees its label for the next session seen.
            let deleted = sessions[0]
            #expect(try await client.execute(uri: deleted.path, method: .delete, headers: deleted.auth).status == .noContent)
            text = try await client.metricsText()
            #expect(!text.contains(deleted.id))
            let late = sessions[limit]
            #expect(try await client.execute(uri: late.path, method: .get, headers: late.auth).status == .ok)
            text = try await client.metricsText()
            #expect(Self.labels(in: text) == Set(sessions[1...limit].map(\.id) + ["other"]))
            #expect(text.contains(#"optimizerd_session_requests{session_id="\#(late.id)"} 1"#))
            #expect(text.contains(#"optimizerd_session_requests{session_id="other"} 2"#), "counters never go back")
        }
    }

    /// Every `session_id` label value in the text.
    static func labels(in text: String) -> Set<String> {
        var labels: Set<String> = []
        for line in text.split(separator: "\n") where line.hasPrefix("optimizerd_session_requests{") {
            if let start = line.range(of: "session_id=\""), let end = line[start.upperBound...].firstIndex(of: "\"") {
                labels.insert(String(line[start.upperBound..<end]))
            }
        }
        return labels
    }

    /// The value of the series whose line starts with `series`.
    static func value(of series: String, in text: String) -> Double? {
        text.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") }
    }
}

extension TestClientProtocol {
    /// `GET /metrics` as text.
    func metricsText() async throws -> String {
        String(buffer: try await execute(uri: "/metrics", method: .get).body)
    }
}
