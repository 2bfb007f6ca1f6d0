import CoreMetrics
import HTTPTypes
import Metrics
import Synchronization

/// The daemon's metrics, through swift-metrics with an explicit factory (no global bootstrap, so
/// every application, including each test's, has its own).
///
/// Exported at `/metrics` (Prometheus text). The daemon-wide series are labelled by route template,
/// method and status only; the per-session series live in ``bySession`` (at most
/// ``SessionMetrics/limit`` session labels plus `other`), so the number of series stays bounded.
///
/// What a request did inside its handlers (body bytes read, a step applied) also goes to the
/// request's ``RequestMeter``, which ``MetricsMiddleware`` attributes to the request's session.
final class ServerMetrics: Sendable {
    /// Session labels at most, by default.
    static let defaultSessionLabelLimit = 100
    /// Buckets of the step histograms: from small models (well under 5 ms) to large ones.
    static let stepDurationBuckets: [Duration] = [
        .microseconds(500), .milliseconds(1), .microseconds(2500), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .microseconds(2_500_000),
        .seconds(5), .seconds(10), .seconds(30),
    ]
    static let stepDurationLabel = "optimizerd.step.duration"
    static let sessionStepDurationLabel = "optimizerd.session.step.duration"

    /// The per-session series.
    let bySession: SessionMetrics
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
    private let memoryBudget: Gauge
    private let memoryUsed: Gauge
    private let memoryUsedByKind: [MemoryBudget.Kind: Gauge]

    /// - Parameters:
    ///   - factory: Where the series go. A `PrometheusMetricsFactory` gets ``stepDurationBuckets``
    ///     for the step histograms (its defaults start at 5 ms, too coarse for small models).
    ///   - sessionLabelLimit: Sessions that get a label of their own at most.
    init(factory: any MetricsFactory, sessionLabelLimit: Int = ServerMetrics.defaultSessionLabelLimit) {
        let factory = Self.withStepBuckets(factory)
        self.factory = factory
        bySession = SessionMetrics(factory: factory, limit: sessionLabelLimit)
        bytesIn = Counter(label: "optimizerd.http.request.body.bytes", factory: factory)
        bytesOut = Counter(label: "optimizerd.http.response.body.bytes", factory: factory)
        stepDuration = Timer(label: Self.stepDurationLabel, dimensions: [], preferredDisplayUnit: .seconds, factory: factory)
        steps = Counter(label: "optimizerd.steps", factory: factory)
        sessions = Gauge(label: "optimizerd.sessions", factory: factory)
        memoryBudget = Gauge(label: "optimizerd.memory.budget.bytes", factory: factory)
        memoryUsed = Gauge(label: "optimizerd.memory.used.bytes", factory: factory)
        memoryUsedByKind = Dictionary(
            uniqueKeysWithValues: MemoryBudget.Kind.allCases.map {
                ($0, Gauge(label: "optimizerd.memory.used.by.kind.bytes", dimensions: [("kind", $0.rawValue)], factory: factory))
            })
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

    /// Counts request body bytes as received (before decompression), also for the current request's
    /// session (through ``RequestMeter``).
    func recordBytesIn(_ count: Int) {
        bytesIn.increment(by: count)
        RequestMeter.current?.addBytesIn(count)
    }

    /// Counts response body bytes as sent (after compression).
    func recordBytesOut(_ count: Int) { bytesOut.increment(by: count) }

    /// Records the duration of one applied step (decoding, the optimizer and encoding), and counts it
    /// for the current request's session (through ``RequestMeter``).
    func recordStep(duration: Duration) {
        RequestMeter.current?.addStep()
        steps.increment()
        stepDuration.record(duration: duration)
    }

    /// Sets the number of live sessions.
    func setSessionCount(_ count: Int) { sessions.record(count) }

    /// Sets the memory budget's gauges: the limit, the bytes in use, and in use by kind.
    func recordMemory(_ budget: MemoryBudget) {
        memoryBudget.record(budget.limit)
        memoryUsed.record(budget.used)
        for (kind, gauge) in memoryUsedByKind { gauge.record(budget.used(kind)) }
    }
}
