/// Where a request's time went, sent back as a `Server-Timing` header (W3C Server Timing: browsers'
/// developer tools and `curl -v` show it) so a client can split a step's round trip into upload,
/// decode, step and encode without a profiler. Phases are in milliseconds, in the order they ran.
struct ServerTiming: Sendable {
    private(set) var phases: [(name: String, duration: Duration)] = []

    mutating func record(_ name: String, _ duration: Duration) {
        phases.append((name, duration))
    }

    /// Runs `body` and records its duration under `name`.
    mutating func measure<T>(_ name: String, _ body: () throws -> T) rethrows -> T {
        let start = ContinuousClock.now
        defer { record(name, ContinuousClock.now - start) }
        return try body()
    }

    mutating func append(_ other: ServerTiming) {
        phases += other.phases
    }

    /// `receive;dur=12.345, decode;dur=0.021, ...`
    var headerValue: String {
        phases.map { phase in
            let (seconds, attoseconds) = phase.duration.components
            let milliseconds = Double(seconds) * 1e3 + Double(attoseconds) * 1e-15
            return "\(phase.name);dur=\((milliseconds * 1000).rounded() / 1000)"
        }.joined(separator: ", ")
    }
}
