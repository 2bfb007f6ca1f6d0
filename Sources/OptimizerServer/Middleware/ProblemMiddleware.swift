import Hummingbird
import Logging
import OptimizerKit

/// Turns every error a route throws into an RFC 9457 problem response (see
/// ``ProblemError/init(mapping:)``) and logs it: client errors at `info` with the problem detail,
/// server errors at `error`. A request no route matched is a 404, or a 405 with `Allow` when its
/// path has routes for other methods.
struct ProblemMiddleware: RouterMiddleware {
    typealias Context = OptimizerRequestContext

    /// Every route's methods: a request the router did not match is a 405 when its path is known.
    let routes: RouteMethods

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            var problem = ProblemError(mapping: error)
            if context.matchedRoute == nil, problem.status == .notFound {
                let allowed = routes.allowed(for: request.uri.path)
                problem =
                    allowed.isEmpty
                    ? .notFound("no route for \(request.method.rawValue) \(request.uri.path.abbreviated)")
                    : .methodNotAllowed(request.method, path: request.uri.path.abbreviated, allowed: allowed)
            }
            var metadata: Logger.Metadata = [
                "http.request.method": .string(request.method.rawValue),
                "http.route": .string(context.matchedRoute ?? request.uri.path.abbreviated),
                "http.response.status_code": .stringConvertible(problem.status.code),
                "problem.type": .string(problem.kind),
                "problem.detail": .string(problem.detail),
            ]
            if let id = context.parameters.get("id") { metadata["session.id"] = .string(id.abbreviated) }
            if problem.kind == ProblemError.memoryBudgetExceeded {
                // The daemon working as configured, but worth an operator's attention.
                context.logger.warning("request refused", metadata: metadata)
            } else if problem.status.code >= 500 {
                metadata["error"] = .string(String(describing: error))
                context.logger.error("request failed", metadata: metadata)
            } else {
                context.logger.info("request refused", metadata: metadata)
            }
            return try problem.response(from: request, context: context)
        }
    }
}
