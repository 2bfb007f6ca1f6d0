import Hummingbird

/// The request context of the daemon's routes: Hummingbird's core context plus the session and
/// authority that ``SessionAuthMiddleware`` resolved.
public struct OptimizerRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The session named by `{id}` in the path, once authorised.
    var session: SessionHandle?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
    }

    /// The route template that matched (`/v1/sessions/{id}/step`), or nil when no route matched
    /// (Hummingbird then reports the endpoint as `NotFound`).
    var matchedRoute: String? {
        guard let path = endpointPath, path != "NotFound" else { return nil }
        return path
    }

    /// The authorised session; only nil if a route forgot its auth middleware (a programming error).
    func requireSession() throws -> SessionHandle {
        guard let session else {
            throw ProblemError(.internalServerError, kind: "internal", detail: "the route has no session")
        }
        return session
    }
}
