import OptimizerKit

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The data directory: creates, recovers and deletes the durable files of every session.
///
/// Recovery of a session = its newest valid snapshot + replay of the valid prefix of the logs that
/// follow it. A torn log tail is cut off; a corrupt snapshot or log is renamed with a `.corrupt`
/// suffix and reported, and recovery falls back to the previous generation. One broken session never
/// stops the others from loading.
public struct DataDirectory: Sendable {
    /// The configuration.
    public let configuration: StoreConfiguration

    /// Opens (creating if needed) the data directory, and locks it for this process
    /// (``lockFileName``): two daemons appending to the same logs would mix their sessions' states.
    ///
    /// - Throws: ``StoreError`` if the directory cannot be created or written, or
    ///   (``StoreError/Code-swift.struct/inUse``) if another process holds it.
    public init(configuration: StoreConfiguration) throws {
        self.configuration = configuration
        try FileSystem.makeDirectory(sessionsDirectory)
        guard access(sessionsDirectory, W_OK) == 0 else { throw StoreError.system("write to", path: sessionsDirectory) }
        try Self.lock(configuration.directory)
    }

    /// The file at the data directory's root that the daemon holds a write lock on while it runs
    /// (it also holds the daemon's process id, for the message another daemon gives).
    public static let lockFileName = "optimizerd.lock"

    /// Takes a POSIX record lock on the directory's lock file. The descriptor stays open for the
    /// process's life: the lock goes with the process (also after kill -9), and another process
    /// asking for it fails at once. (Such locks are per process: the same process may open the
    /// directory again, as tests do.) Where the file system has no such locks, nothing is locked.
    private static func lock(_ directory: String) throws {
        let path = directory + "/" + lockFileName
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw StoreError.system("open", path: path) }
        var request = flock()
        request.l_type = Int16(F_WRLCK)
        request.l_whence = Int16(SEEK_SET)
        guard fcntl(descriptor, F_SETLK, &request) == 0 else {
            let number = errno
            var holder = request
            let owner = fcntl(descriptor, F_GETLK, &holder) == 0 && holder.l_type != Int16(F_UNLCK) ? " (process \(holder.l_pid))" : ""
            close(descriptor)
            // A file system without record locks (some network mounts: ENOLCK) is used unlocked,
            // as before the lock existed, rather than refused.
            guard number == EAGAIN || number == EACCES else { return }
            throw StoreError(code: .inUse, message: "the data directory \(directory) is in use by another optimizerd\(owner); one daemon per data directory")
        }
        let pid = Array("\(getpid())\n".utf8)
        if ftruncate(descriptor, 0) == 0 { _ = pid.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) } }
    }

    var sessionsDirectory: String { configuration.directory + "/sessions" }

    /// Makes a new session durable: its directory and first snapshot, before the creation is acknowledged.
    public func create(_ snapshot: SessionSnapshot) throws -> SessionJournal {
        guard let id = snapshot.id else { preconditionFailure("a durable session needs an id") }
        let directory = sessionsDirectory + "/" + id
        do {
            try FileSystem.makeDirectory(directory)
            try FileSystem.syncDirectory(sessionsDirectory)
            return try SessionJournal.start(directory: directory, configuration: configuration, snapshot: snapshot)
        } catch {
            // A refused creation leaves nothing behind (a directory without a snapshot would be
            // reported by every later recovery).
            FileSystem.removeTree(directory)
            throw error
        }
    }

    /// Deletes a session's files. The directory is renamed away first, so a crash midway never leaves
    /// a half-deleted session that would be recovered.
    public func delete(id: String) throws {
        let directory = sessionsDirectory + "/" + id
        let doomed = sessionsDirectory + "/.deleted-" + id
        guard rename(directory, doomed) == 0 else { throw StoreError.system("rename", path: directory) }
        try FileSystem.syncDirectory(sessionsDirectory)
        FileSystem.removeTree(doomed)
    }

    /// A session brought back from disk.
    public struct Recovered {
        /// The snapshot's identity fields (id, name, token hash) and configuration.
        public var snapshot: SessionSnapshot
        /// The live session, with every valid logged record replayed.
        public var session: OptimizerSession
        /// Its journal, ready for appends.
        public var journal: SessionJournal
        /// What was noticed on the way (a torn tail cut, a corrupt file set aside).
        public var notes: [String]
    }

    /// A session that could not be recovered.
    public struct Failure: Sendable {
        /// The session id (the directory name).
        public var id: String
        /// Why.
        public var reason: String
    }

    /// Recovers every session in the data directory.
    ///
    /// - Parameter replay: applies one logged record to a session (the server decodes the request
    ///   exactly as it did when it was received).
    public func recoverAll(replay: (LogRecord, OptimizerSession) throws -> Void) -> (sessions: [Recovered], failures: [Failure]) {
        var sessions: [Recovered] = []
        var failures: [Failure] = []
        for name in FileSystem.list(sessionsDirectory) {
            if name.hasPrefix(".deleted-") {
                FileSystem.removeTree(sessionsDirectory + "/" + name)
                continue
            }
            do {
                sessions.append(try recover(id: name, replay: replay))
            } catch {
                failures.append(Failure(id: name, reason: "\(error)"))
            }
        }
        return (sessions, failures)
    }

    func recover(id: String, replay: (LogRecord, OptimizerSession) throws -> Void) throws -> Recovered {
        let directory = sessionsDirectory + "/" + id
        var notes: [String] = []
        let names = FileSystem.list(directory)
        for name in names where name.hasSuffix(".tmp") { unlink(directory + "/" + name) }
        let snapshots = names.filter { $0.hasPrefix("snapshot-") && $0.hasSuffix(".safetensors") }
            .compactMap { name in SessionJournal.step(inFileName: name).map { (step: $0, name: name) } }
            .sorted { $0.step > $1.step }
        let logs = names.filter { $0.hasPrefix("wal-") && $0.hasSuffix(".log") }
            .compactMap { name in SessionJournal.step(inFileName: name).map { (step: $0, name: name) } }
            .sorted { $0.step < $1.step }

        for candidate in snapshots {
            let path = directory + "/" + candidate.name
            let snapshot: SessionSnapshot
            let session: OptimizerSession
            let snapshotBytes: Int
            do {
                let file = try FileDescriptor.open(path, O_RDONLY)
                let bytes = try file.readAll()
                snapshotBytes = bytes.count
                snapshot = try SessionSnapshot(decoding: bytes, origin: path)
                session = try snapshot.makeSession(checkingValues: false)
                guard snapshot.id == id else { throw StoreError.corrupt(path, "belongs to session \(snapshot.id ?? "none")") }
            } catch {
                quarantine(path)
                notes.append("snapshot \(candidate.name) is unreadable (\(error)); moved aside as \(candidate.name).corrupt")
                continue
            }
            // Replay the logs from this snapshot on, in order, while they continue each other.
            var appendTo: (path: String, validLength: Int)?
            var chainBroken = false
            let durability = snapshot.durability ?? .log
            for log in logs where log.step >= candidate.step {
                let logPath = directory + "/" + log.name
                if chainBroken || session.step != log.step {
                    if durability == .snapshot, !chainBroken, log.step > session.step {
                        // Expected: the steps before this log were not logged, and its snapshot is incomplete.
                        notes.append("log \(log.name) follows steps after \(session.step) that were not logged (durability snapshot); removed")
                        unlink(logPath)
                    } else {
                        notes.append("log \(log.name) does not continue step \(session.step); moved aside")
                        quarantine(logPath)
                    }
                    chainBroken = true
                    continue
                }
                let result = try WriteAheadLog.scan(logPath) { record in
                    // A record continues the session: a step leads to the next step, uploads and
                    // configuration changes happen at the current one. Anything else follows steps
                    // that were not logged (durability snapshot), and is cut with them.
                    guard Int(record.step) == session.step + (record.kind.advancesStep ? 1 : 0) else { return false }
                    try replay(record, session)
                    return true
                }
                appendTo = (logPath, result.validLength)
                if let problem = result.problem {
                    if result.isTornTail {
                        notes.append("log \(log.name): cut a torn tail of \(result.fileLength - result.validLength) bytes (\(problem))")
                    } else {
                        notes.append("log \(log.name) is corrupt at byte \(result.validLength) (\(problem)); recovered the steps before it")
                        copyAside(logPath)
                        chainBroken = true
                    }
                }
            }
            let journal: SessionJournal
            if let appendTo, !chainBroken, appendTo.path.hasSuffix(SessionJournal.logName(logs.last!.step)) {
                let log = try WriteAheadLog(
                    path: appendTo.path, validLength: appendTo.validLength, directMinimum: configuration.logDirectMinimum)
                journal = SessionJournal(
                    directory: directory, configuration: configuration, durability: durability, log: log,
                    snapshotStep: candidate.step, snapshotBytes: snapshotBytes, step: session.step
                )
            } else {
                // The chain of logs broke: start a clean generation from what was recovered.
                let fresh = SessionSnapshot(
                    session: session, id: snapshot.id, name: snapshot.name, tokenHash: snapshot.tokenHash, createdAt: snapshot.createdAt,
                    durability: snapshot.durability
                )
                journal = try SessionJournal.start(directory: directory, configuration: configuration, snapshot: fresh)
            }
            return Recovered(snapshot: snapshot, session: session, journal: journal, notes: notes)
        }
        throw StoreError.corrupt(directory, snapshots.isEmpty ? "no snapshot" : "no readable snapshot: " + notes.joined(separator: "; "))
    }

    /// Renames a bad file to `<name>.corrupt` so it is kept for inspection but never read again.
    private func quarantine(_ path: String) {
        rename(path, path + ".corrupt")
    }

    /// Keeps a copy of a partly corrupt log for inspection (the original is cut back by the journal).
    private func copyAside(_ path: String) {
        guard let source = try? FileDescriptor.open(path, O_RDONLY), let bytes = try? source.readAll(),
            let copy = try? FileDescriptor.open(path + ".corrupt", O_WRONLY | O_CREAT | O_TRUNC)
        else { return }
        try? bytes.withUnsafeBytes { try copy.writeAll($0) }
    }
}
