import Hummingbird

/// Records every request in ``ServerMetrics``: count and duration by route template, method and
/// status; errors by status; response bytes. Outermost middleware, so it sees final statuses.
struct MetricsMiddleware: RouterMiddleware {
    typealias Context = OptimizerRequestContext

    let metrics: ServerMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        do {
            let response = try await next(request, context)
            metrics.recordRequest(
                route: context.matchedRoute ?? "unmatched", method: request.method, status: response.status,
                duration: ContinuousClock.now - start
            )
            if let length = response.body.contentLength { metrics.recordBytesOut(length) }
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status ?? .internalServerError
            metrics.recordRequest(
                route: context.matchedRoute ?? "unmatched", method: request.method, status: status, duration: ContinuousClock.now - start
            )
            throw error
        }
    }
}
