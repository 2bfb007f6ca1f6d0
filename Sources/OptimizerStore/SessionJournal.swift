#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The durable files of one session: its snapshots and write-ahead logs.
///
/// Files in `<data>/sessions/<id>/`: `snapshot-<step>.safetensors` and `wal-<step>.log` (the log of
/// what happened after that snapshot), with steps zero-padded so names sort by step. The newest two
/// generations are kept, so a snapshot that rots on disk can be recovered from the previous one plus
/// both logs.
///
/// Thread-safety: none. The owner (the server's per-session handle) serialises every call, including
/// the periodic ``sync()``.
public final class SessionJournal {
    /// The session's directory.
    public let directory: String
    let configuration: StoreConfiguration
    private var log: WriteAheadLog
    /// The step of the newest snapshot.
    public private(set) var snapshotStep: Int
    private var snapshotBytes: Int
    /// The session step covered by records already on stable storage (or written, with `fsync never`).
    public private(set) var durableStep: Int
    private var appendedStep: Int

    init(directory: String, configuration: StoreConfiguration, log: WriteAheadLog, snapshotStep: Int, snapshotBytes: Int, step: Int) {
        self.directory = directory
        self.configuration = configuration
        self.log = log
        self.snapshotStep = snapshotStep
        self.snapshotBytes = snapshotBytes
        self.durableStep = step
        self.appendedStep = step
    }

    static func snapshotName(_ step: Int) -> String { "snapshot-" + padded(step) + ".safetensors" }
    static func logName(_ step: Int) -> String { "wal-" + padded(step) + ".log" }
    static func padded(_ step: Int) -> String {
        let digits = String(step)
        return String(repeating: "0", count: max(0, 16 - digits.count)) + digits
    }

    /// Appends a record before its change is applied in memory.
    ///
    /// - Throws: ``StoreError``; the log is unchanged then, and the caller must not apply the change.
    public func append(_ record: LogRecord) throws {
        try record.body.withUnsafeBytes {
            try append(kind: record.kind, step: Int(record.step), contentEncoding: record.contentEncoding, body: $0)
        }
    }

    /// Appends a record whose body is `body` (written straight from the caller's memory, not copied).
    ///
    /// - Parameter step: the session step once the record is applied (a step record leads to it;
    ///   uploads and configuration changes happen at it).
    /// - Throws: ``StoreError``; the log is unchanged then, and the caller must not apply the change.
    public func append(kind: LogRecord.Kind, step: Int, contentEncoding: String?, body: UnsafeRawBufferPointer) throws {
        let syncNow = configuration.fsync == .always
        try log.append(kind: kind, step: UInt64(step), contentEncoding: contentEncoding, body: body, sync: syncNow)
        appendedStep = step
        if syncNow || configuration.fsync == .never { durableStep = step }
    }

    /// Forces appended records to stable storage (the periodic flusher calls this).
    public func sync() throws {
        try log.sync()
        durableStep = appendedStep
    }

    /// Whether a snapshot is due after a step to `step`.
    public func wantsSnapshot(atStep step: Int) -> Bool {
        if configuration.snapshotEvery > 0, step - snapshotStep >= configuration.snapshotEvery { return true }
        return log.length > max(1 << 20, snapshotBytes * configuration.maxLogBytesPerSnapshotByte)
    }

    /// Starts a journal with a first generation: `snapshot` written durably and an empty log after it.
    static func start(directory: String, configuration: StoreConfiguration, snapshot: SessionSnapshot) throws -> SessionJournal {
        let (log, bytes) = try writeGeneration(snapshot, in: directory)
        return SessionJournal(
            directory: directory, configuration: configuration, log: log, snapshotStep: snapshot.step,
            snapshotBytes: bytes, step: snapshot.step
        )
    }

    /// Writes `snapshot-<step>` atomically and opens an empty `wal-<step>` beside it, both durable.
    private static func writeGeneration(_ snapshot: SessionSnapshot, in directory: String) throws -> (WriteAheadLog, Int) {
        let bytes = try snapshot.encoded()
        try bytes.withUnsafeBytes {
            try FileSystem.writeAtomically($0, to: directory + "/" + snapshotName(snapshot.step), directory: directory)
        }
        let log = try WriteAheadLog(path: directory + "/" + logName(snapshot.step))
        try FileSystem.syncDirectory(directory)
        return (log, bytes.count)
    }

    /// Writes a snapshot of the session's current state, starts a new log, and drops generations
    /// older than the previous one.
    public func writeSnapshot(_ snapshot: SessionSnapshot) throws {
        try writeSnapshot(snapshot, keepPrevious: true)
    }

    /// Makes `snapshot` the session's only generation (a checkpoint restore, whose step may be lower
    /// than the current one): every other snapshot and log is removed once it is durable.
    public func replaceAll(with snapshot: SessionSnapshot) throws {
        try writeSnapshot(snapshot, keepPrevious: false)
    }

    private func writeSnapshot(_ snapshot: SessionSnapshot, keepPrevious: Bool) throws {
        let (newLog, byteCount) = try Self.writeGeneration(snapshot, in: directory)
        let previous = keepPrevious ? snapshotStep : Int.max
        log = newLog
        snapshotStep = snapshot.step
        snapshotBytes = byteCount
        durableStep = snapshot.step
        appendedStep = snapshot.step
        let current = [Self.snapshotName(snapshot.step), Self.logName(snapshot.step)]
        // Highest steps first, so a crash midway never leaves an older generation as the newest.
        let doomed = FileSystem.list(directory).compactMap { name in Self.step(inFileName: name).map { (name, $0) } }
            .filter { !current.contains($0.0) && $0.1 < previous }
            .sorted { $0.1 > $1.1 }
        for (name, _) in doomed { unlink(directory + "/" + name) }
        if !keepPrevious { try FileSystem.syncDirectory(directory) }
    }

    /// The step in a snapshot or log file name, if it is one.
    static func step(inFileName name: String) -> Int? {
        for (prefix, suffix) in [("snapshot-", ".safetensors"), ("wal-", ".log")] where name.hasPrefix(prefix) && name.hasSuffix(suffix) {
            return Int(name.dropFirst(prefix.count).dropLast(suffix.count))
        }
        return nil
    }
}
