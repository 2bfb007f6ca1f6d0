import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import OptimizerKit
import Prometheus

/// `/healthz`, `/readyz`, `/v1/limits`, `/metrics` and `/openapi.yaml`: no authentication, no session work.
struct ServiceRoutes {
    typealias Context = OptimizerRequestContext

    let dependencies: RouteDependencies
    let registry: PrometheusCollectorRegistry
    /// The OpenAPI document read at startup, if the file exists.
    let openAPI: ByteBuffer?

    func add(to router: some RouterMethods<Context>) {
        router.get("healthz") { _, _ in try JSONCoding.response(["status": "ok"]) }
        router.get("v1/limits") { _, _ in
            try JSONCoding.response(
                ServiceLimits(
                    maxBodyBytes: dependencies.bodies.maxBytes,
                    stagedStepTTLSeconds: Double(dependencies.stagedStepTTL.components.seconds)
                        + Double(dependencies.stagedStepTTL.components.attoseconds) * 1e-18,
                    kernels: KernelVariant.active.rawValue))
        }
        router.get("readyz") { _, _ in
            let storage = dependencies.sessions.storage
            let ready = storage.unavailableReason == nil
            return try JSONCoding.response(
                ReadyStatus(
                    status: ready ? "ready" : "unavailable",
                    sessions: dependencies.sessions.count,
                    storage: .init(
                        dataDirectory: storage.directory,
                        problem: storage.unavailableReason,
                        recovery: storage.recoveryReport
                    )
                ),
                status: ready ? .ok : .serviceUnavailable
            )
        }
        router.get("metrics") { _, _ in
            dependencies.metrics.recordMemory(dependencies.sessions.memory)
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

    /// `/readyz`: ready unless the data directory is unusable; reports what recovery found (sessions
    /// that could not be loaded, torn log tails cut, corrupt files set aside).
    /// `/v1/limits`: what a client must know to size its requests.
    private struct ServiceLimits: Encodable {
        /// `--max-body-bytes`: the largest request body, before and after decompression.
        var maxBodyBytes: Int
        /// `--staged-step-ttl` in seconds.
        var stagedStepTTLSeconds: Double
        /// The instruction-set variant of the optimizer kernels (``KernelVariant``).
        var kernels: String

        enum CodingKeys: String, CodingKey {
            case maxBodyBytes = "max_body_bytes"
            case stagedStepTTLSeconds = "staged_step_ttl_seconds"
            case kernels
        }
    }

    private struct ReadyStatus: Encodable {
        var status: String
        var sessions: Int
        var storage: DurabilityStatus

        enum CodingKeys: String, CodingKey {
            case status, sessions
            case storage = "durability"  // the documented key (openapi.yaml, ReadyStatus)
        }

        struct DurabilityStatus: Encodable {
            var dataDirectory: String?
            var problem: String?
            var recovery: SessionStorage.RecoveryReport

            enum CodingKeys: String, CodingKey {
                case problem, recovery
                case dataDirectory = "data_directory"
            }
        }
    }
}
