/// When appended log records are forced to stable storage.
public enum FsyncPolicy: Sendable, Hashable {
    /// Before every response: no acknowledged step is lost, even on power loss.
    case always
    /// At most every `interval` (by the server's flusher): up to that much may be lost on power loss.
    case periodic(Duration)
    /// Never explicitly: the operating system decides (a process crash loses nothing, power loss may).
    case never
}

/// How the durable store behaves.
public struct StoreConfiguration: Sendable {
    /// The data directory; sessions live in `<directory>/sessions/<id>/`.
    public var directory: String
    /// When log appends are synced.
    public var fsync: FsyncPolicy
    /// Write a snapshot (and start a new log) every this many steps; 0 = only on shutdown and when
    /// the log outgrows ``maxLogBytesPerSnapshotByte`` times the snapshot.
    public var snapshotEvery: Int
    /// Also snapshot once the log is this many times larger than the last snapshot, which bounds both
    /// disk use and recovery time.
    public var maxLogBytesPerSnapshotByte: Int

    /// Creates a configuration.
    public init(directory: String, fsync: FsyncPolicy = .periodic(.seconds(1)), snapshotEvery: Int = 1000, maxLogBytesPerSnapshotByte: Int = 4) {
        self.directory = directory
        self.fsync = fsync
        self.snapshotEvery = snapshotEvery
        self.maxLogBytesPerSnapshotByte = maxLogBytesPerSnapshotByte
    }
}
