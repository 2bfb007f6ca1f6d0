import Hummingbird
import Logging
import OptimizerKit

/// Resolves `{id}` and authorises the request for it: the session's own bearer token or the admin
/// token.
///
/// Order of checks: no bearer token → 401; unknown id → 404; a token that is neither this session's
/// nor the admin token (another session's, or garbage) → 403. Session ids are random UUIDs, so a 404
/// before the token check reveals nothing that could be guessed.
struct SessionAuthMiddleware: RouterMiddleware {
    typealias Context = OptimizerRequestContext

    let registry: SessionRegistry
    let admin: TokenDigest?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let token = request.bearerToken else {
            throw ProblemError.unauthorized("this route needs \"Authorization: Bearer <token>\" with the session's token")
        }
        guard let id = context.parameters.get("id"), let session = registry.session(id: id) else {
            throw ProblemError.notFound("no session with id \"\((context.parameters.get("id") ?? "").abbreviated)\"")
        }
        guard session.isAuthorized(byToken: token) || admin?.matches(token) == true else {
            throw ProblemError.forbidden("the bearer token is not valid for session \(id)")
        }
        var context = context
        context.session = session
        context.logger[metadataKey: "session.id"] = .string(id)
        return try await next(request, context)
    }
}
