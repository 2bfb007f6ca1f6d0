import Hummingbird

/// Guards the admin routes (create and list sessions) when an admin token is configured: no token →
/// 401, another token → 403. Without an admin token these routes are open (the daemon then binds to
/// loopback unless told otherwise).
struct AdminAuthMiddleware: RouterMiddleware {
    typealias Context = OptimizerRequestContext

    let admin: TokenDigest?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let admin {
            guard let token = request.bearerToken else {
                throw ProblemError.unauthorized("creating and listing sessions needs \"Authorization: Bearer <admin token>\"")
            }
            guard admin.matches(token) else {
                throw ProblemError.forbidden("the bearer token is not the admin token")
            }
        }
        return try await next(request, context)
    }
}
