import Synchronization

/// What one request did that only the handlers see: the body bytes they read and whether they
/// applied a step.
///
/// ``MetricsMiddleware`` binds a fresh meter to the request's task (``current``) around the rest of
/// the chain; ``ServerMetrics`` adds to it whenever it records body bytes or a step, and the
/// middleware reads it once the response is ready to attribute them to the request's session. So
/// the routes keep calling ``ServerMetrics`` as they always did, without knowing about sessions'
/// series. Work that leaves the task (the compute pool) records nothing here; the routes record
/// from the task itself.
///
/// Thread-safety: atomics; a meter may be touched from child tasks of the request.
final class RequestMeter: Sendable {
    /// The meter of the request the current task serves, if ``MetricsMiddleware`` set one.
    @TaskLocal static var current: RequestMeter?

    private let bodyBytes = Atomic<Int>(0)
    private let stepCount = Atomic<Int>(0)

    /// Request body bytes read so far, as received (before decompression).
    var bytesIn: Int { bodyBytes.load(ordering: .relaxed) }
    /// Steps applied by this request (0 or 1; a retry of an applied step applies nothing).
    var steps: Int { stepCount.load(ordering: .relaxed) }

    func addBytesIn(_ count: Int) { bodyBytes.add(count, ordering: .relaxed) }
    func addStep() { stepCount.add(1, ordering: .relaxed) }
}
