import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import OptimizerKit
import Testing

/// Health, readiness, Prometheus metrics and the OpenAPI document.
struct ServiceRoutesTests {
    @Test func healthAndReadiness() async throws {
        try await makeApp().test(.router) { client in
            let health = try await client.execute(uri: "/healthz", method: .get)
            #expect(health.status == .ok && String(buffer: health.body) == #"{"status":"ok"}"#)
            let ready = try jsonObject(try await client.execute(uri: "/readyz", method: .get))
            #expect(ready["status"] as? String == "ready")
            #expect(ready["durability"] is [String: Any], "the documented key (openapi.yaml ReadyStatus)")
        }
    }

    @Test func limitsNameTheKernelVariantInUse() async throws {
        try await makeApp().test(.router) { client in
            let limits = try jsonObject(try await client.execute(uri: "/v1/limits", method: .get))
            #expect(limits["kernels"] as? String == KernelVariant.active.rawValue)
            #expect(KernelVariant.active.isSupportedByThisCPU)
        }
    }

    @Test func metricsCountRequestsStepsBytesSessionsAndErrorsWithoutSessionLabelsOnDaemonWideSeries() async throws {
        try await makeApp().test(.router) { client in
            let session = try await client.createSession(#"{"optimizer":"sgd"}"#)
            try await client.putParameters(session, try Body.tensors([("w", [2], [1, 2])]))
            _ = try await client.execute(
                uri: session.path + "/step", method: .post, headers: session.auth, body: try Body.tensors([("w", [2], [1, 1])]))
            _ = try await client.execute(uri: session.path, method: .get)  // 401

            let response = try await client.execute(uri: "/metrics", method: .get)
            #expect(response.headers[.contentType]?.hasPrefix("text/plain") == true)
            let text = String(buffer: response.body)
            #expect(
                text.contains(#"optimizerd_http_requests{http_route="/v1/sessions/{id}/step",http_request_method="POST",http_response_status_code="200"} 1"#),
                "\(text)")
            #expect(text.contains(#"optimizerd_http_errors{http_response_status_code="401"} 1"#))
            #expect(text.contains("optimizerd_sessions 1"))
            #expect(text.contains("optimizerd_steps 1"))
            #expect(text.contains("optimizerd_step_duration_bucket"))
            #expect(text.contains("optimizerd_http_request_body_bytes"))
            #expect(text.contains("optimizerd_http_response_body_bytes"))
            // Daemon-wide series never name a session (per-session ones are in SessionMetricsTests).
            #expect(!text.split(separator: "\n").contains { !$0.hasPrefix("optimizerd_session_") && $0.contains(session.id) })
        }
    }

    @Test func servesTheOpenAPIDocumentWhenThereIsOne() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("openapi-\(UUID()).yaml")
        try Data("openapi: 3.1.0\n".utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        try await makeApp(openAPIPath: file.path).test(.router) { client in
            let response = try await client.execute(uri: "/openapi.yaml", method: .get)
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "application/yaml")
            #expect(String(buffer: response.body) == "openapi: 3.1.0\n")
        }
        try await makeApp(openAPIPath: "/nonexistent/openapi.yaml").test(.router) { client in
            let response = try await client.execute(uri: "/openapi.yaml", method: .get)
            #expect(response.status == .notFound)
        }
    }
}
