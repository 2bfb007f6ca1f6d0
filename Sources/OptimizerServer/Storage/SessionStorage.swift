import HTTPTypes
import Logging
import OptimizerStore
import Synchronization

/// Where the daemon keeps sessions durable, and what happened when it opened the data directory.
///
/// ``inMemory`` keeps nothing on disk (tests, and `ServerConfiguration(dataDirectory: nil)`). A data
/// directory that cannot be opened leaves the daemon running but not ready: `/readyz` answers 503
/// with the reason, and creating a session answers 503.
final class SessionStorage: Sendable {
    /// The store; nil in memory, or when the data directory could not be opened.
    let store: DataDirectory?
    /// Whether sessions are meant to be durable (a data directory was configured).
    let isDurable: Bool
    /// The configured data directory, for reports.
    let directory: String?
    /// The flush interval when appends are synced periodically.
    let flushInterval: Duration?
    /// Why the data directory is unusable, if it is.
    let unavailableReason: String?
    /// Writes background snapshots; nil without a usable store.
    let snapshots: SnapshotWriter?
    private let report = Mutex(RecoveryReport())

    /// What opening the data directory found, shown by `/readyz`.
    struct RecoveryReport: Sendable, Encodable {
        var recovered = 0
        var failed: [Failure] = []
        var notes: [String] = []

        struct Failure: Sendable, Encodable {
            var id: String
            var reason: String
        }
    }

    /// No data directory: sessions live in memory only.
    static let inMemory = SessionStorage(store: nil, isDurable: false, directory: nil, flushInterval: nil, unavailableReason: nil)

    private init(
        store: DataDirectory?, isDurable: Bool, directory: String?, flushInterval: Duration?, unavailableReason: String?,
        logger: Logger? = nil
    ) {
        self.snapshots = store == nil ? nil : logger.map(SnapshotWriter.init(logger:))
        self.store = store
        self.isDurable = isDurable
        self.directory = directory
        self.flushInterval = flushInterval
        self.unavailableReason = unavailableReason
    }

    /// How often sessions are checked for a snapshot that is due by time alone (a session gone idle
    /// after its last steps: without the check its steps would wait for the next request to become
    /// durable): an eighth of `--snapshot-interval`, from 20 ms to 1 s. Nil without a store.
    var snapshotCheckInterval: Duration? {
        guard let interval = store?.configuration.snapshotInterval else { return nil }
        return min(max(interval / 8, .milliseconds(20)), .seconds(1))
    }

    /// Opens the data directory; a failure is kept as ``unavailableReason`` rather than thrown (the
    /// daemon serves 503 and `/readyz` says why), except a directory another daemon holds: that one
    /// is thrown, so that this daemon does not start.
    convenience init(configuration: StoreConfiguration, logger: Logger) throws {
        var interval: Duration?
        if case .periodic(let every) = configuration.fsync { interval = every }
        do {
            self.init(
                store: try DataDirectory(configuration: configuration), isDurable: true, directory: configuration.directory,
                flushInterval: interval, unavailableReason: nil, logger: logger
            )
        } catch let error as StoreError where error.code == .inUse {
            throw error
        } catch {
            self.init(store: nil, isDurable: true, directory: configuration.directory, flushInterval: interval, unavailableReason: "\(error)")
        }
    }

    /// The store, or a 503 explaining why there is none.
    func requireStore() throws -> DataDirectory {
        guard let store else {
            throw ProblemError(
                .serviceUnavailable, kind: "storage-unavailable",
                detail: "the data directory \(directory ?? "") is unavailable: \(unavailableReason ?? "not configured")"
            )
        }
        return store
    }

    /// What recovery found.
    var recoveryReport: RecoveryReport { report.withLock { $0 } }

    func record(_ update: (inout RecoveryReport) -> Void) { report.withLock { update(&$0) } }
}
