import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A snapshot taken under the session's lock and written without it (``SessionJournal/beginSnapshot(_:staging:now:)``).
///
/// Under the lock the session's data was only copied into a ``SnapshotStaging``; ``write()`` makes
/// the checksum and header and writes them and the staged data. It touches only this snapshot's own file, so it runs on any thread while the session
/// steps on; the journal then learns the outcome through ``SessionJournal/finishSnapshot(_:error:)``
/// under the session's lock again. A journal that replaces its files meanwhile (a checkpoint restore,
/// the shutdown snapshot) cancels the write: it then never appears under its final name.
///
/// `Sendable`: the staged snapshot is never changed after creation, and `cancelled` is behind a `Mutex`
/// that is also held across the rename, so a cancelled write can never publish its file.
public final class SnapshotWrite: Sendable {
    /// The snapshot's session step.
    public var step: Int { staged.step }
    let staged: StagedSnapshot
    let path: String
    let directory: String
    private let cancelled = Mutex(false)

    init(staged: StagedSnapshot, path: String, directory: String) {
        self.staged = staged
        self.path = path
        self.directory = directory
    }

    /// The size of the snapshot's data section in bytes (its header adds a few hundred more).
    public var byteCount: Int { staged.dataByteCount }

    /// The bytes written under the session's lock (the head that had no room in memory), or 0.
    public var writtenUnderLock: Int { staged.head?.byteCount ?? 0 }

    /// Writes the snapshot durably: its header (checksummed now) and staged data to a temporary
    /// file (after the head already there, if any), fsynced, renamed into place, the directory fsynced.
    ///
    /// - Throws: ``StoreError`` (also when the write was cancelled); the session's log still holds
    ///   everything then, so nothing is lost.
    public func write() throws {
        let header = try staged.header()
        let temporary: String
        if let head = staged.head {
            temporary = head.temporary
            do {
                guard header.count == head.headerByteCount else {
                    throw StoreError(code: .io, message: "snapshot \(path): the header changed size (\(head.headerByteCount) → \(header.count) bytes)")
                }
                let file = try FileDescriptor.open(temporary, O_WRONLY)
                try header.withUnsafeBytes { try file.writeAll($0, at: 0) }
                try file.writeAll(staged.stagedBytes, at: header.count + head.byteCount)
                // The head's direct writes are padded to a block boundary: cut what the tail did not cover.
                try file.truncate(to: header.count + staged.dataByteCount)
                try file.sync()
            } catch {
                unlink(temporary)
                throw error
            }
        } else {
            temporary = try header.withUnsafeBytes { try FileSystem.writeTemporary([$0, staged.stagedBytes], for: path) }
        }
        try cancelled.withLock { cancelled in
            guard !cancelled else {
                unlink(temporary)
                throw StoreError(code: .io, message: "snapshot \(path) was superseded before it was written")
            }
            try FileSystem.commit(temporary, to: path, directory: directory)
        }
    }

    /// Makes sure the snapshot never appears under its final name after this returns (unless it already has).
    func cancel() {
        cancelled.withLock { $0 = true }
    }
}
