import Logging
import ServiceLifecycle

/// Runs for the daemon's lifetime: flushes write-ahead logs every `--fsync-interval` (periodic
/// policy), starts the snapshots that fall due while sessions are idle (``SessionStorage/snapshotCheckInterval``),
/// drops staged parts whose `--staged-step-ttl` passed (every second, so that their memory comes
/// back although no request names their session again), and on graceful shutdown, once the HTTP server has finished its requests, waits for the
/// background snapshots under way and writes a snapshot of every session.
struct JournalService: Service {
    let sessions: SessionRegistry
    let logger: Logger

    func run() async throws {
        let flushInterval = sessions.storage.flushInterval
        let checkInterval = sessions.storage.snapshotCheckInterval
        try? await cancelWhenGracefulShutdown {
            try await withThrowingDiscardingTaskGroup { group in
                if let flushInterval {
                    group.addTask { try await every(flushInterval) { await sessions.flushAll(logger: logger) } }
                }
                if let checkInterval {
                    group.addTask { try await every(checkInterval) { sessions.scheduleDueSnapshots() } }
                }
                group.addTask { try await every(.seconds(1)) { sessions.dropExpiredStages() } }
                group.addTask { try await gracefulShutdown() }
            }
        }
        guard sessions.storage.store != nil else { return }
        await sessions.storage.snapshots?.drain()
        await sessions.flushAll(logger: logger)
        await sessions.snapshotAll(logger: logger)
        await sessions.storage.snapshots?.shutdown()
        logger.info("sessions snapshotted for shutdown", metadata: ["sessions.count": .stringConvertible(sessions.count)])
    }
}

/// Runs `body` every `interval` until the task is cancelled.
private func every(_ interval: Duration, _ body: () async -> Void) async throws {
    while true {
        try await Task.sleep(for: interval)
        await body()
    }
}
