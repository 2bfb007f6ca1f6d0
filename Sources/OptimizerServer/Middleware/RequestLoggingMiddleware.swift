import Hummingbird
import Logging
import OptimizerKit

/// Logs each request once it is answered: method, route, status, duration, and the session id when
/// the path names one (`session.id`). Never logs tokens or bodies.
///
/// Routine requests log at `debug`; the interesting events (sessions created or deleted, failed
/// requests with their problem detail) are logged where they happen, at `info` or above.
struct RequestLoggingMiddleware: RouterMiddleware {
    typealias Context = OptimizerRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        let response = try await next(request, context)
        var metadata: Logger.Metadata = [
            "http.request.method": .string(request.method.rawValue),
            "http.route": .string(context.matchedRoute ?? request.uri.path.abbreviated),
            "http.response.status_code": .stringConvertible(response.status.code),
            "http.server.request.duration_ms": .stringConvertible(((ContinuousClock.now - start) / .milliseconds(1)).rounded()),
        ]
        if let id = context.parameters.get("id") { metadata["session.id"] = .string(id.abbreviated) }
        context.logger.debug("request", metadata: metadata)
        return response
    }
}
