import Hummingbird
import Logging

/// `GET` and `PUT /v1/sessions/{id}/checkpoint`: the whole session as one safetensors file, to keep,
/// move to another daemon, or roll back to.
struct CheckpointRoutes {
    typealias Context = OptimizerRequestContext

    let dependencies: RouteDependencies

    func add(to router: some RouterMethods<Context>) {
        let session = router.group("v1/sessions/{id}").add(
            middleware: SessionAuthMiddleware(registry: dependencies.sessions, admin: dependencies.admin))
        session.get("checkpoint", use: download)
        session.put("checkpoint", use: restore)
    }

    /// `GET …/checkpoint` → safetensors: `param/<name>`, `state/<name>/<slot>`, `global/<slot>`, and
    /// the configuration and step in `__metadata__`.
    @Sendable func download(_ request: Request, context: Context) async throws -> Response {
        let body = try await context.requireSession().checkpoint()
        return try await dependencies.binaryResponse(body, for: request)
    }

    /// `PUT …/checkpoint` (a file from `GET …/checkpoint`, from this daemon or another) → the summary.
    @Sendable func restore(_ request: Request, context: Context) async throws -> Response {
        let session = try context.requireSession()
        let payload = try await dependencies.bodies.readTensors(request, purpose: "this checkpoint restore")
        // The body leaves the memory budget before the answer goes out, not whenever the compute
        // thread lets go of the closure that held it (as for parameter uploads).
        defer { payload.memory?.release() }
        let summary = try await session.restore(checkpoint: payload.bytes)
        context.logger.info(
            "checkpoint restored",
            metadata: ["session.id": .string(session.id), "session.step": .stringConvertible(summary.step)]
        )
        return try JSONCoding.response(summary)
    }
}
