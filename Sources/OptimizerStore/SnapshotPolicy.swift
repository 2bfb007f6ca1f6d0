/// When a session's next snapshot is due: a pure function of what its journal knows, so that it can
/// be tested without a clock.
///
/// - ``DurabilityMode/log``: the snapshot's job is to bound the log. One starts once the log has
///   outgrown the state (at least 1 MiB) and ``StoreConfiguration/snapshotInterval`` has passed
///   since the last one, or, whatever the time, once the log reaches
///   ``StoreConfiguration/maxLogBytesPerSnapshotByte`` times the state. So a large session is not
///   rewritten every few steps, and a snapshot costs at most the log bytes written since the last.
/// - ``DurabilityMode/snapshot``: snapshots carry durability, so one starts every
///   ``StoreConfiguration/snapshotInterval`` while steps arrive.
/// - Both: also every ``StoreConfiguration/snapshotEvery`` steps (when not 0), and never without a
///   step since the last one (the new log starts at the snapshot's step).
struct SnapshotPolicy {
    let configuration: StoreConfiguration
    let mode: DurabilityMode

    /// Whether a snapshot is due.
    ///
    /// - Parameters:
    ///   - steps: Steps since the last snapshot began.
    ///   - logBytes: Bytes of the log since then.
    ///   - stateBytes: The last snapshot's size.
    ///   - elapsed: Time since the last snapshot began.
    func isDue(steps: Int, logBytes: Int, stateBytes: Int, elapsed: Duration) -> Bool {
        guard steps > 0 else { return false }
        if configuration.snapshotEvery > 0, steps >= configuration.snapshotEvery { return true }
        switch mode {
        case .snapshot:
            return elapsed >= configuration.snapshotInterval
        case .log:
            let state = max(stateBytes, 1 << 20)
            if logBytes >= configuration.maxLogBytesPerSnapshotByte * state { return true }
            return logBytes >= state && elapsed >= configuration.snapshotInterval
        }
    }
}
