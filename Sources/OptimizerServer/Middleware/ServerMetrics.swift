import CoreMetrics
import Metrics
import HTTPTypes
import Synchronization

/// The daemon's metrics, through swift-metrics with an explicit factory (no global bootstrap, so
/// every application, including each test's, has its own).
///
/// Exported at `/metrics` (Prometheus text). Labels never include session ids, so the number of
/// series stays bounded by routes × methods × statuses.
final class ServerMetrics: Sendable {
    private struct RequestKey: Hashable {
        var route: String
        var method: String
        var status: Int
    }

    private struct RequestSeries: Sendable {
        var count: Counter
        var duration: Timer
    }

    private let factory: any MetricsFactory
    private let requestSeries = Mutex<[RequestKey: RequestSeries]>([:])
    private let errorSeries = Mutex<[Int: Counter]>([:])
    private let bytesIn: Counter
    private let bytesOut: Counter
    private let stepDuration: Timer
    private let steps: Counter
    private let sessions: Gauge

    init(factory: any MetricsFactory) {
        self.factory = factory
        bytesIn = Counter(label: "optimizerd.http.request.body.bytes", factory: factory)
        bytesOut = Counter(label: "optimizerd.http.response.body.bytes", factory: factory)
        stepDuration = Timer(label: "optimizerd.step.duration", dimensions: [], preferredDisplayUnit: .seconds, factory: factory)
        steps = Counter(label: "optimizerd.steps", factory: factory)
        sessions = Gauge(label: "optimizerd.sessions", factory: factory)
    }

    /// Counts a finished request and its duration, and errors by status.
    func recordRequest(route: String, method: HTTPRequest.Method, status: HTTPResponse.Status, duration: Duration) {
        let key = RequestKey(route: route, method: method.rawValue, status: status.code)
        let series = requestSeries.withLock { all in
            if let existing = all[key] { return existing }
            let dimensions = [
                ("http.route", route), ("http.request.method", method.rawValue), ("http.response.status_code", String(status.code)),
            ]
            let created = RequestSeries(
                count: Counter(label: "optimizerd.http.requests", dimensions: dimensions, factory: factory),
                duration: Timer(
                    label: "optimizerd.http.request.duration", dimensions: dimensions, preferredDisplayUnit: .seconds,
                    factory: factory
                )
            )
            all[key] = created
            return created
        }
        series.count.increment()
        series.duration.record(duration: duration)
        if status.code >= 400 {
            let counter = errorSeries.withLock { all in
                if let existing = all[status.code] { return existing }
                let created = Counter(
                    label: "optimizerd.http.errors", dimensions: [("http.response.status_code", String(status.code))],
                    factory: factory
                )
                all[status.code] = created
                return created
            }
            counter.increment()
        }
    }

    /// Counts request body bytes as received (before decompression).
    func recordBytesIn(_ count: Int) { bytesIn.increment(by: count) }

    /// Counts response body bytes as sent (after compression).
    func recordBytesOut(_ count: Int) { bytesOut.increment(by: count) }

    /// Records the duration of one applied step (decoding, the optimizer and encoding).
    func recordStep(duration: Duration) {
        steps.increment()
        stepDuration.record(duration: duration)
    }

    /// Sets the number of live sessions.
    func setSessionCount(_ count: Int) { sessions.record(count) }
}
