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
    /// What carries this session's steps across a crash (kept in its snapshots).
    public let durability: DurabilityMode
    private var log: WriteAheadLog
    /// Logs before the current one whose tail may not be synced yet (a background snapshot that
    /// covers them is being written); ``sync()`` flushes them.
    private var retiredLogs: [WriteAheadLog] = []
    /// The step the current log starts at: that of the newest snapshot begun.
    public private(set) var logStep: Int
    /// The step of the newest complete snapshot.
    public private(set) var snapshotStep: Int
    private var snapshotBytes: Int
    private var snapshotBegan: ContinuousClock.Instant
    private var inFlight: SnapshotWrite?
    /// The session step covered by log records already on stable storage (or written, with `fsync never`).
    private var loggedStep: Int
    private var appendedStep: Int

    init(
        directory: String, configuration: StoreConfiguration, durability: DurabilityMode, log: WriteAheadLog, snapshotStep: Int,
        snapshotBytes: Int, step: Int
    ) {
        self.directory = directory
        self.configuration = configuration
        self.durability = durability
        self.log = log
        self.logStep = snapshotStep
        self.snapshotStep = snapshotStep
        self.snapshotBytes = snapshotBytes
        self.snapshotBegan = .now
        self.loggedStep = step
        self.appendedStep = step
    }

    /// The step that survives a crash. ``DurabilityMode/log``: the last step whose record is on
    /// stable storage (every appended one with `fsync always` or `never`, the last flushed one with
    /// `periodic`). ``DurabilityMode/snapshot``: the step of the newest complete snapshot.
    public var durableStep: Int {
        durability == .snapshot ? snapshotStep : max(loggedStep, snapshotStep)
    }

    /// Whether step requests are appended to the log (``DurabilityMode/log``).
    public var logsSteps: Bool { durability == .log }

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
        if syncNow || configuration.fsync == .never { loggedStep = step }
    }

    /// Appends a record whose body was spooled while it arrived (``BodySpool``): the spool file
    /// becomes the log's, and only a small record naming it is written now. Falls back to writing
    /// `body` (the same bytes, in memory) when the spool is not this body's.
    ///
    /// - Throws: ``StoreError``; the log is unchanged then, and the caller must not apply the change.
    public func append(
        kind: LogRecord.Kind, step: Int, contentEncoding: String?, body: UnsafeRawBufferPointer, spooled: SpooledBody?
    ) throws {
        guard let spooled, contentEncoding == nil, spooled.length == body.count,
            spooled.path.hasPrefix(directory + "/")
        else { return try append(kind: kind, step: step, contentEncoding: contentEncoding, body: body) }
        let syncNow = configuration.fsync == .always
        try log.append(
            kind: kind, step: UInt64(step), spooled: spooled, sync: syncNow, deferSync: configuration.fsync != .always && configuration.fsync != .never)
        appendedStep = step
        if syncNow || configuration.fsync == .never { loggedStep = step }
    }

    /// Where this session's large request bodies (steps, when they are logged, and parameter
    /// uploads) may be spooled while they arrive: in its directory, from the log's direct-write
    /// minimum; nil when direct writes are off (`--log-direct-io off`: every record is written
    /// through the page cache).
    public var spoolTarget: SpoolTarget? {
        guard let minimum = configuration.logDirectMinimum else { return nil }
        return SpoolTarget(directory: directory, minimumBytes: minimum)
    }

    /// Forces appended records to stable storage (the periodic flusher calls this).
    public func sync() throws {
        for retired in retiredLogs { try retired.sync() }
        retiredLogs = []
        try log.sync()
        loggedStep = appendedStep
    }

    /// Whether a snapshot is due at `step` (see ``SnapshotPolicy``); never while one is being written.
    public func wantsSnapshot(atStep step: Int, now: ContinuousClock.Instant = .now) -> Bool {
        guard inFlight == nil else { return false }
        return SnapshotPolicy(configuration: configuration, mode: durability).isDue(
            steps: step - logStep, logBytes: log.length, stateBytes: snapshotBytes, elapsed: now - snapshotBegan)
    }

    /// The most bytes a background snapshot may copy into memory (``StoreConfiguration/snapshotCopyLimit``).
    public var snapshotCopyLimit: Int? { configuration.snapshotCopyLimit }

    /// Starts a background snapshot: `snapshot`'s data is copied into `staging` now (a fresh one
    /// when nil; pass one made off the session's lock so the copy runs at memcpy speed; the head of
    /// the data that does not fit in it is written to the snapshot's file now, see
    /// ``SessionSnapshot/stage(into:writingHeadTo:)``), so the caller may change the session as soon as this returns, and a new log starts at
    /// its step, so every later record lands after it. Write it with ``SnapshotWrite/write()`` off the session's lock,
    /// then report with ``finishSnapshot(_:error:)``. Until it is complete, recovery uses the previous
    /// snapshot and the logs that follow it, which still hold every step.
    ///
    /// - Precondition: no snapshot is being written, and `snapshot.step` is past ``logStep``.
    /// - Throws: ``StoreError`` when the new log cannot be created; nothing changed then.
    public func beginSnapshot(
        _ snapshot: SessionSnapshot, staging: SnapshotStaging? = nil, now: ContinuousClock.Instant = .now
    ) throws -> SnapshotWrite {
        precondition(inFlight == nil && snapshot.step > logStep, "a snapshot is being written, or no step since the last one")
        let path = directory + "/" + Self.snapshotName(snapshot.step)
        let staged = try snapshot.stage(into: staging, writingHeadTo: SnapshotWrite.temporaryPath(for: path))
        let write = SnapshotWrite(staged: staged, path: path, directory: directory)
        let newLog: WriteAheadLog
        do {
            newLog = try WriteAheadLog(
                path: directory + "/" + Self.logName(snapshot.step), directMinimum: configuration.logDirectMinimum)
            do {
                try FileSystem.syncDirectory(directory)
            } catch {
                unlink(newLog.path)
                throw error
            }
        } catch {
            staged.discard()
            throw error
        }
        if log.isDirty { retiredLogs.append(log) }
        log = newLog
        logStep = snapshot.step
        snapshotBegan = now
        inFlight = write
        return write
    }

    /// Records how a background snapshot ended. Once complete it is the newest snapshot: the
    /// generations before the previous one are deleted. A failed write changes nothing (the logs
    /// still chain from the previous snapshot); a cancelled one is ignored.
    public func finishSnapshot(_ write: SnapshotWrite, error: (any Error)?) {
        guard inFlight === write else { return }
        inFlight = nil
        guard error == nil else { return }
        let previous = snapshotStep
        snapshotStep = write.step
        snapshotBytes = write.byteCount
        retiredLogs = []
        removeGenerations(before: previous, keeping: [Self.snapshotName(logStep), Self.logName(logStep)])
    }

    /// Cancels a background snapshot before the journal's files are replaced.
    private func cancelSnapshot() {
        inFlight?.cancel()
        inFlight = nil
    }

    /// Starts a journal with a first generation: `snapshot` written durably and an empty log after it.
    static func start(directory: String, configuration: StoreConfiguration, snapshot: SessionSnapshot) throws -> SessionJournal {
        let (log, bytes) = try writeGeneration(snapshot, in: directory, logDirectMinimum: configuration.logDirectMinimum)
        return SessionJournal(
            directory: directory, configuration: configuration, durability: snapshot.durability ?? .log, log: log,
            snapshotStep: snapshot.step, snapshotBytes: bytes, step: snapshot.step
        )
    }

    /// Writes `snapshot-<step>` atomically and opens an empty `wal-<step>` beside it, both durable.
    private static func writeGeneration(
        _ snapshot: SessionSnapshot, in directory: String, logDirectMinimum: Int?
    ) throws -> (WriteAheadLog, Int) {
        let bytes = try snapshot.encoded()
        try bytes.withUnsafeBytes {
            try FileSystem.writeAtomically($0, to: directory + "/" + snapshotName(snapshot.step), directory: directory)
        }
        let log = try WriteAheadLog(path: directory + "/" + logName(snapshot.step), directMinimum: logDirectMinimum)
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
        cancelSnapshot()
        let (newLog, byteCount) = try Self.writeGeneration(snapshot, in: directory, logDirectMinimum: configuration.logDirectMinimum)
        let previous = keepPrevious ? snapshotStep : Int.max
        log = newLog
        retiredLogs = []
        logStep = snapshot.step
        snapshotStep = snapshot.step
        snapshotBytes = byteCount
        snapshotBegan = .now
        loggedStep = snapshot.step
        appendedStep = snapshot.step
        removeGenerations(before: previous, keeping: [Self.snapshotName(snapshot.step), Self.logName(snapshot.step)])
        if !keepPrevious { try FileSystem.syncDirectory(directory) }
    }

    /// Deletes the snapshots and logs of steps before `step`, except `kept`.
    private func removeGenerations(before step: Int, keeping kept: [String]) {
        // Highest steps first, so a crash midway never leaves an older generation as the newest.
        let doomed = FileSystem.list(directory).compactMap { name in Self.step(inFileName: name).map { (name, $0) } }
            .filter { !kept.contains($0.0) && $0.1 < step }
            .sorted { $0.1 > $1.1 }
        for (name, _) in doomed { unlink(directory + "/" + name) }
    }

    /// The step in a snapshot or log file name, if it is one.
    static func step(inFileName name: String) -> Int? {
        for (prefix, suffix) in [("snapshot-", ".safetensors"), ("wal-", ".log")] where name.hasPrefix(prefix) && name.hasSuffix(suffix) {
            return Int(name.dropFirst(prefix.count).dropLast(suffix.count))
        }
        return bodyFileLogStep(name)
    }

    /// The step of the log a body file (`wal-<step>.<offset>.body`) belongs to, if it is one: it is
    /// removed with that log.
    static func bodyFileLogStep(_ name: String) -> Int? {
        guard let log = WriteAheadLog.bodyFile(named: name)?.log, log.hasPrefix("wal-") else { return nil }
        return Int(log.dropFirst(4))
    }
}
