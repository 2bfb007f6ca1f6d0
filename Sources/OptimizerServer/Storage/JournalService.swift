import Logging
import ServiceLifecycle

/// Runs for the daemon's lifetime: flushes write-ahead logs every `--fsync-interval` (periodic
/// policy), and on graceful shutdown, once the HTTP server has finished its requests, waits for the
/// background snapshots under way and writes a snapshot of every session.
struct JournalService: Service {
    let sessions: SessionRegistry
    let logger: Logger

    func run() async throws {
        let interval = sessions.storage.flushInterval
        if let interval {
            try? await cancelWhenGracefulShutdown {
                while true {
                    try await Task.sleep(for: interval)
                    await sessions.flushAll(logger: logger)
                }
            }
        } else {
            try? await gracefulShutdown()
        }
        guard sessions.storage.store != nil else { return }
        await sessions.storage.snapshots?.drain()
        await sessions.flushAll(logger: logger)
        await sessions.snapshotAll(logger: logger)
        await sessions.storage.snapshots?.shutdown()
        logger.info("sessions snapshotted for shutdown", metadata: ["sessions.count": .stringConvertible(sessions.count)])
    }
}
