import CoreMetrics
import Metrics
import Synchronization

/// Per-session series, for a Grafana panel per training run, with a bounded number of labels.
///
/// The first ``limit`` sessions that see a request get their own `session.id` label (exported as
/// `session_id`); any further session is counted under `session_id="other"` until a labelled
/// session goes away and frees a slot. Deleting a session removes its series (``remove(id:)``),
/// so a daemon that runs many short sessions never accumulates dead series. With status codes
/// limited to the few the daemon answers and one histogram per session, the whole family stays
/// under a few thousand series.
///
/// Series (Prometheus names; each has `session_id`):
/// - `optimizerd_session_requests` (counter), `optimizerd_session_errors` (counter, also
///   `http_response_status_code`, only statuses ≥ 400)
/// - `optimizerd_session_steps` (counter: applied steps, retries excluded)
/// - `optimizerd_session_step_duration` (histogram, seconds: the whole step request, from routing
///   to the response, as the trainer waits for it minus the network)
/// - `optimizerd_session_request_body_bytes`, `optimizerd_session_response_body_bytes` (counters,
///   bytes on the wire: compressed when the body is)
/// - `optimizerd_session_step` (gauge: the session's current step),
///   `optimizerd_session_durable_step` (gauge: the step a crash keeps, as of the session's last
///   request; standing still while `step` moves means its snapshots fail, see the summary),
///   `optimizerd_session_state_bytes` (gauge: the bytes its optimizer state holds, compact state at
///   its compact size) and `optimizerd_session_info` (gauge, always 1, also `session_name`,
///   `session_optimizer` and `session_state_dtype`, to show names in legends); none exists for
///   `other`.
///
/// Thread-safety: one `Mutex` over the label table; the series themselves are swift-metrics
/// handles, safe to update from any thread.
final class SessionMetrics: Sendable {
    /// The `session.id` label value of the sessions past the limit.
    static let otherLabel = "other"
    /// The longest `session.name` label value; longer names are cut.
    static let maxNameLength = 64

    /// Sessions that get a label of their own at most.
    let limit: Int
    private let factory: any MetricsFactory
    private let table = Mutex<Table>(Table())

    private struct Table: Sendable {
        var labelled: [String: SessionSeries] = [:]
        var other: SessionSeries?
    }

    /// What a finished request did to one session.
    struct Observation: Sendable {
        var sessionID: String
        var sessionName: String?
        var optimizer: String
        /// `f32`, `bf16` or `int8`.
        var stateDType: String
        /// The session's step after the request.
        var step: Int
        /// The step that survives a crash after the request.
        var durableStep: Int
        /// The bytes of its optimizer state after the request.
        var stateBytes: Int
        var status: Int
        var duration: Duration
        var bytesIn: Int
        var bytesOut: Int
        /// Steps the request applied (0 or 1).
        var steps: Int
    }

    init(factory: any MetricsFactory, limit: Int) {
        self.factory = factory
        self.limit = max(0, limit)
    }

    /// Records one request for an existing session.
    func record(_ observation: Observation) {
        let series = table.withLock { table -> SessionSeries in
            if let existing = table.labelled[observation.sessionID] { return existing }
            if table.labelled.count < limit {
                let created = SessionSeries(
                    factory: factory, label: observation.sessionID,
                    info: (
                        name: String((observation.sessionName ?? "").prefix(Self.maxNameLength)), optimizer: observation.optimizer,
                        stateDType: observation.stateDType
                    )
                )
                table.labelled[observation.sessionID] = created
                return created
            }
            if let other = table.other { return other }
            let other = SessionSeries(factory: factory, label: Self.otherLabel, info: nil)
            table.other = other
            return other
        }
        series.record(observation)
    }

    /// Removes the series of a deleted session and frees its label.
    func remove(id: String) {
        table.withLock { $0.labelled.removeValue(forKey: id) }?.destroy()
    }

    /// Removes the series of every labelled session for which `isLive` is false (a session deleted
    /// while one of its requests was still being recorded).
    func retain(where isLive: (String) -> Bool) {
        let dead = table.withLock { table -> [SessionSeries] in
            let ids = table.labelled.keys.filter { !isLive($0) }
            return ids.compactMap { table.labelled.removeValue(forKey: $0) }
        }
        for series in dead { series.destroy() }
    }

    /// The sessions that have a label of their own.
    var labelledSessions: Set<String> { table.withLock { Set($0.labelled.keys) } }
}

/// The series of one session label (a session, or `other`).
private final class SessionSeries: Sendable {
    let label: String
    let requests: Counter
    let steps: Counter
    let stepDuration: Timer
    let bytesIn: Counter
    let bytesOut: Counter
    let step: Gauge?
    let durableStep: Gauge?
    let stateBytes: Gauge?
    let info: Gauge?
    private let factory: any MetricsFactory
    private let errors = Mutex<[Int: Counter]>([:])

    init(factory: any MetricsFactory, label: String, info: (name: String, optimizer: String, stateDType: String)?) {
        self.factory = factory
        self.label = label
        let dimensions = [("session.id", label)]
        requests = Counter(label: "optimizerd.session.requests", dimensions: dimensions, factory: factory)
        steps = Counter(label: "optimizerd.session.steps", dimensions: dimensions, factory: factory)
        stepDuration = Timer(
            label: ServerMetrics.sessionStepDurationLabel, dimensions: dimensions, preferredDisplayUnit: .seconds, factory: factory)
        bytesIn = Counter(label: "optimizerd.session.request.body.bytes", dimensions: dimensions, factory: factory)
        bytesOut = Counter(label: "optimizerd.session.response.body.bytes", dimensions: dimensions, factory: factory)
        if let info {
            step = Gauge(label: "optimizerd.session.step", dimensions: dimensions, factory: factory)
            durableStep = Gauge(label: "optimizerd.session.durable_step", dimensions: dimensions, factory: factory)
            stateBytes = Gauge(label: "optimizerd.session.state.bytes", dimensions: dimensions, factory: factory)
            let infoGauge = Gauge(
                label: "optimizerd.session.info",
                dimensions: dimensions + [
                    ("session.name", info.name), ("session.optimizer", info.optimizer), ("session.state_dtype", info.stateDType),
                ],
                factory: factory
            )
            infoGauge.record(1)
            self.info = infoGauge
        } else {
            step = nil
            durableStep = nil
            stateBytes = nil
            self.info = nil
        }
    }

    func record(_ observation: SessionMetrics.Observation) {
        requests.increment()
        if observation.bytesIn > 0 { bytesIn.increment(by: observation.bytesIn) }
        if observation.bytesOut > 0 { bytesOut.increment(by: observation.bytesOut) }
        if observation.steps > 0 {
            steps.increment(by: observation.steps)
            stepDuration.record(duration: observation.duration)
        }
        step?.record(observation.step)
        durableStep?.record(observation.durableStep)
        stateBytes?.record(observation.stateBytes)
        if observation.status >= 400 {
            let counter = errors.withLock { all in
                if let existing = all[observation.status] { return existing }
                let created = Counter(
                    label: "optimizerd.session.errors",
                    dimensions: [("session.id", label), ("http.response.status_code", String(observation.status))],
                    factory: factory
                )
                all[observation.status] = created
                return created
            }
            counter.increment()
        }
    }

    /// Unregisters every series of this label.
    func destroy() {
        requests.destroy()
        steps.destroy()
        stepDuration.destroy()
        bytesIn.destroy()
        bytesOut.destroy()
        step?.destroy()
        durableStep?.destroy()
        stateBytes?.destroy()
        info?.destroy()
        for counter in errors.withLock({ Array($0.values) }) { counter.destroy() }
    }
}
