import HTTPTypes
import Hummingbird
import Logging
import OptimizerKit
import OptimizerWire

/// The binary routes of a session: parameters up and down, the step, and the step history.
struct TensorRoutes {
    typealias Context = OptimizerRequestContext

    let dependencies: RouteDependencies

    func add(to router: some RouterMethods<Context>) {
        let session = router.group("v1/sessions/{id}").add(
            middleware: SessionAuthMiddleware(registry: dependencies.sessions, admin: dependencies.admin))
        session.put("parameters", use: putParameters)
        session.get("parameters", use: getParameters)
        session.post("step", use: step)
        session.get("history", use: history)
    }

    /// `PUT /v1/sessions/{id}/parameters` (safetensors, F32/F16/BF16) → the JSON summary.
    @Sendable func putParameters(_ request: Request, context: Context) async throws -> Response {
        let session = try context.requireSession()
        var timing = ServerTiming()
        let payload = try await dependencies.bodies.readTensors(
            request, purpose: "this upload", spool: session.progress.spool, timing: &timing)
        let summary = try await session.setParameters(payload)
        context.logger.info(
            "parameters uploaded",
            metadata: [
                "session.id": .string(session.id), "parameters.tensors": .stringConvertible(payload.header.tensors.count),
            ]
        )
        return try JSONCoding.response(summary)
    }

    /// `GET /v1/sessions/{id}/parameters?dtype=` → safetensors with every parameter.
    @Sendable func getParameters(_ request: Request, context: Context) async throws -> Response {
        let options = try ResponseOptions(returnValue: nil, dtypeValue: request.uri.queryParameters.get("dtype"))
        let body = try await context.requireSession().parameters(as: options.dtype)
        return try await dependencies.binaryResponse(body, for: request)
    }

    /// `POST /v1/sessions/{id}/step?return=&dtype=` (safetensors gradients) → safetensors result.
    @Sendable func step(_ request: Request, context: Context) async throws -> Response {
        let session = try context.requireSession()
        let query = request.uri.queryParameters
        let options = try ResponseOptions(returnValue: query.get("return"), dtypeValue: query.get("dtype"))
        var timing = ServerTiming()
        let (outcome, duration) = try await session.withStepBodyRoom { stepRoom in
            // The body goes straight into the request, its only holder (see StepRequest).
            let step = try StepRequest(
                payload: await dependencies.bodies.readTensors(
                    request, purpose: "this step", stepRoom: stepRoom, spool: session.progress.stepSpool, summing: true,
                    timing: &timing),
                options: options)
            let start = ContinuousClock.now
            let outcome = try await session.step(step)
            return (outcome, ContinuousClock.now - start)
        }
        if !outcome.isRetry { dependencies.metrics.recordStep(duration: duration) }
        timing.append(outcome.timing)
        return try await dependencies.binaryResponse(
            outcome.body, for: request,
            headers: [
                HTTPField.Name("Optimizerd-Step")!: String(outcome.telemetry.step),
                HTTPField.Name("Optimizerd-Retry")!: String(outcome.isRetry),
                HTTPField.Name("Server-Timing")!: timing.headerValue,
            ]
        )
    }

    /// `GET /v1/sessions/{id}/history?since=N&limit=M` → ``HistoryPage``.
    @Sendable func history(_ request: Request, context: Context) async throws -> Response {
        let query = request.uri.queryParameters
        let since = try Self.integer(query.get("since"), name: "since", default: 0, minimum: 0)
        let limit = try Self.integer(query.get("limit"), name: "limit", default: Int.max, minimum: 1)
        return try JSONCoding.response(try await context.requireSession().history(since: since, limit: limit))
    }

    private static func integer(_ text: String?, name: String, default value: Int, minimum: Int) throws -> Int {
        guard let text else { return value }
        guard let number = Int(text), number >= minimum else {
            throw ProblemError.badRequest("invalid-query", "query parameter \(name): expected an integer ≥ \(minimum), got \"\(text.abbreviated)\"")
        }
        return number
    }
}
