import Logging
import NIOPosix

/// Writes sessions' background snapshots on a thread of its own, so that no step waits for a
/// snapshot's disk writes and no compute thread is tied up by them.
///
/// One thread: snapshots are written one at a time (they share the disk anyway), which also bounds
/// the memory their encoded copies take to one session's size at a time. A session schedules itself
/// when its journal wants a snapshot (``SessionState/scheduleSnapshotIfDue()``); the thread then
/// copies the session into memory it prepared beforehand, under the session's lock, and checksums
/// and writes the copy without the lock while the session steps on. At graceful shutdown ``drain()`` waits for the queue before the final
/// snapshots are written.
final class SnapshotWriter: Sendable {
    private let pool = NIOThreadPool(numberOfThreads: 1)
    private let logger: Logger

    init(logger: Logger) {
        self.logger = logger
        pool.start()
    }

    /// Queues a snapshot of `session`.
    func schedule(_ session: SessionHandle) {
        let logger = self.logger
        pool.submit { state in
            guard state == .active, let report = session.writeScheduledSnapshot() else { return }
            if let error = report.error {
                logger.error(
                    "snapshot failed",
                    metadata: ["session.id": .string(session.id), "snapshot.step": .stringConvertible(report.step), "error": .string("\(error)")])
            } else {
                logger.info(
                    "snapshot written",
                    metadata: [
                        "session.id": .string(session.id), "snapshot.step": .stringConvertible(report.step),
                        "snapshot.bytes": .stringConvertible(report.bytes),
                        "snapshot.written_under_lock_bytes": .stringConvertible(report.writtenUnderLock),
                        "snapshot.copy_ms": .stringConvertible(report.copy.milliseconds),
                        "snapshot.write_ms": .stringConvertible(report.write.milliseconds),
                    ])
            }
        }
    }

    /// Waits until every snapshot queued so far is written.
    func drain() async {
        _ = try? await pool.runIfActive {}
    }

    /// Stops the thread (after ``drain()``).
    func shutdown() async {
        try? await pool.shutdownGracefully()
    }
}

/// What one background snapshot did, for the log.
struct SnapshotReport: Sendable {
    var step: Int
    var bytes: Int
    /// The bytes written to the file under the session's lock (no room in memory for their copy).
    var writtenUnderLock: Int
    /// Time under the session's lock: copying the session, and writing what had no room in memory
    /// (what its steps may wait for).
    var copy: Duration
    /// Time without the lock: checksumming, writing, fsyncing and renaming the file.
    var write: Duration
    var error: (any Error)?
}

extension Duration {
    /// The duration in milliseconds, to 0.1 ms.
    fileprivate var milliseconds: Double {
        let (seconds, attoseconds) = components
        return ((Double(seconds) * 1e3 + Double(attoseconds) * 1e-15) * 10).rounded() / 10
    }
}
