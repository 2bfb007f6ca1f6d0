import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Prometheus

/// `/healthz`, `/readyz`, `/metrics` and `/openapi.yaml`: no authentication, no session work.
struct ServiceRoutes {
    typealias Context = OptimizerRequestContext

    let dependencies: RouteDependencies
    let registry: PrometheusCollectorRegistry
    /// The OpenAPI document read at startup, if the file exists.
    let openAPI: ByteBuffer?

    func add(to router: Router<Context>) {
        router.get("healthz") { _, _ in try JSONCoding.response(["status": "ok"]) }
        router.get("readyz") { _, _ in
            try JSONCoding.response(ReadyStatus(status: "ready", sessions: dependencies.sessions.count))
        }
        router.get("metrics") { _, _ in
            var text: [UInt8] = []
            registry.emit(into: &text)
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: text)))
        }
        router.get("openapi.yaml") { _, _ in
            guard let openAPI else { throw ProblemError.notFound("this daemon was started without an openapi.yaml") }
            return Response(status: .ok, headers: [.contentType: "application/yaml"], body: .init(byteBuffer: openAPI))
        }
    }

    private struct ReadyStatus: Encodable {
        var status: String
        var sessions: Int
    }
}
