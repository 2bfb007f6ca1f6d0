import HTTPTypes
import Hummingbird
import OptimizerKit

/// Records every request in ``ServerMetrics``: count and duration by route template, method and
/// status; errors by status; response bytes. Outermost middleware, so it sees final statuses.
///
/// Requests whose path names an existing session (`{id}`) are also recorded in that session's
/// series (``SessionMetrics``), with the body bytes and step the handlers reported through the
/// request's ``RequestMeter``. An id that names no session adds nothing per session, so made-up
/// ids cannot grow the label set. A `DELETE` that removed its session removes the session's
/// series, and each scrape of `/metrics` first drops the series of sessions that no longer exist.
struct MetricsMiddleware: RouterMiddleware {
    typealias Context = OptimizerRequestContext

    let metrics: ServerMetrics
    let sessions: SessionRegistry

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        if context.matchedRoute == "/metrics" {
            metrics.bySession.retain { sessions.session(id: $0) != nil }
        }
        let meter = RequestMeter()
        do {
            let response = try await RequestMeter.$current.withValue(meter) { try await next(request, context) }
            record(request, context: context, status: response.status, bytesOut: response.body.contentLength, meter: meter, since: start)
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status ?? .internalServerError
            record(request, context: context, status: status, bytesOut: nil, meter: meter, since: start)
            throw error
        }
    }

    private func record(
        _ request: Request, context: Context, status: HTTPResponse.Status, bytesOut: Int?, meter: RequestMeter, since start: ContinuousClock.Instant
    ) {
        let duration = ContinuousClock.now - start
        metrics.recordRequest(route: context.matchedRoute ?? "unmatched", method: request.method, status: status, duration: duration)
        if let bytesOut { metrics.recordBytesOut(bytesOut) }

        guard let id = context.parameters.get("id") else { return }
        guard let session = sessions.session(id: id) else {
            // Deleted by this request (or another one meanwhile): its series go with it.
            metrics.bySession.remove(id: id)
            return
        }
        let progress = session.progress
        metrics.bySession.record(
            .init(
                sessionID: session.id, sessionName: session.name, optimizer: session.optimizer.rawValue,
                stateDType: session.stateDType.rawValue, step: progress.step, durableStep: progress.durableStep,
                stateBytes: progress.stateBytes,
                status: status.code, duration: duration, bytesIn: meter.bytesIn,
                bytesOut: bytesOut ?? 0, steps: meter.steps
            )
        )
    }
}
