/// When appended log records are forced to stable storage.
public enum FsyncPolicy: Sendable, Hashable {
    /// Before every response: no acknowledged step is lost, even on power loss.
    case always
    /// At most every `interval` (by the server's flusher): up to that much may be lost on power loss.
    case periodic(Duration)
    /// Never explicitly: the operating system decides (a process crash loses nothing, power loss may).
    case never
}

/// What carries a session's steps across a crash.
public enum DurabilityMode: String, Sendable, Hashable, CaseIterable, Codable {
    /// Every step's request is appended to the write-ahead log before it is applied (the default):
    /// recovery replays the log after the newest snapshot, so no acknowledged step is lost (within
    /// the fsync policy). Costs the gradient's bytes on disk per step.
    case log
    /// Steps are applied without a log record; snapshots, written in the background at an interval,
    /// carry durability. Recovery restores the newest complete snapshot: the steps after it are lost,
    /// and `durable_step` says which step that is. Parameter uploads and PATCHes are still logged.
    case snapshot
}

/// How the durable store behaves.
public struct StoreConfiguration: Sendable {
    /// The data directory; sessions live in `<directory>/sessions/<id>/`.
    public var directory: String
    /// When log appends are synced.
    public var fsync: FsyncPolicy
    /// The durability mode of sessions that do not choose one.
    public var durability: DurabilityMode
    /// Write a snapshot (and start a new log) at least every this many steps; 0 = no step count.
    public var snapshotEvery: Int
    /// ``DurabilityMode/log``: the least time between two snapshots while the log stays under
    /// ``maxLogBytesPerSnapshotByte`` times the state. ``DurabilityMode/snapshot``: how often a
    /// snapshot is written while steps arrive.
    public var snapshotInterval: Duration
    /// ``DurabilityMode/log``: a snapshot starts, whatever the time, once the log is this many times
    /// larger than the last snapshot; this bounds both disk use and recovery time.
    public var maxLogBytesPerSnapshotByte: Int
    /// Log records of at least this many bytes are written with `O_DIRECT`, around the page cache
    /// (where the file system allows it); nil: every record goes through the page cache. Large
    /// buffered appends are throttled to the disk's write-back speed once dirty pages pile up.
    public var logDirectMinimum: Int?
    /// The most bytes a background snapshot copies into memory to write them after the session's
    /// lock is released; the rest of its data is written under the lock (the session's steps wait).
    /// Nil: as much as the memory budget allows. 0 keeps a snapshot from needing memory at all.
    public var snapshotCopyLimit: Int?

    /// The default ``logDirectMinimum``: 1 MiB, below which a copy into the page cache is cheaper
    /// than a device write.
    public static let defaultLogDirectMinimum = 1 << 20

    /// Creates a configuration.
    public init(
        directory: String,
        fsync: FsyncPolicy = .periodic(.seconds(1)),
        durability: DurabilityMode = .log,
        snapshotEvery: Int = 1000,
        snapshotInterval: Duration = .seconds(30),
        maxLogBytesPerSnapshotByte: Int = 8,
        logDirectMinimum: Int? = defaultLogDirectMinimum
    ) {
        self.directory = directory
        self.fsync = fsync
        self.durability = durability
        self.snapshotEvery = snapshotEvery
        self.snapshotInterval = snapshotInterval
        self.maxLogBytesPerSnapshotByte = maxLogBytesPerSnapshotByte
        self.logDirectMinimum = logDirectMinimum
    }
}
