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

    /// The temporary file of the background snapshot that becomes `path`: a name of its own, since a
    /// checkpoint restore to the same step writes `path` (through `path.tmp`) while this one, cancelled,
    /// may still be writing; sharing the file, it could have written into the restore's snapshot.
    /// Recovery deletes both (`.tmp`).
    static func temporaryPath(for path: String) -> String { path + ".background.tmp" }

    /// The bytes written under the session's lock (the head that had no room in memory), or 0.
    public var writtenUnderLock: Int { staged.head?.byteCount ?? 0 }

    /// Writes the snapshot durably: its header (checksummed now) and staged data to a temporary
    /// file (after the head already there, if any), fsynced, renamed into place, the directory fsynced.
    ///
    /// The bytes go with `O_DIRECT` where the file system allows it (``AlignedAppend``): buffered,
    /// a snapshot of a few GB filled the page cache and was throttled to the write-back speed once
    /// dirty pages piled up (measured at 200M parameters: 9.3–9.7 s for 2.4 GB, while its staged
    /// copy held that much memory), and dirty pages count against a container's memory limit.
    ///
    /// - Throws: ``StoreError`` (also when the write was cancelled); the session's log still holds
    ///   everything then, so nothing is lost.
    public func write() throws {
        let header = try staged.header()
        let temporary = staged.head?.temporary ?? Self.temporaryPath(for: path)
        do {
            let file = try FileDescriptor.open(temporary, O_RDWR | O_CREAT | (staged.head == nil ? O_TRUNC : 0))
            var direct = AlignedAppend(path: temporary)
            if let head = staged.head {
                guard header.count == head.headerByteCount else {
                    throw StoreError(code: .io, message: "snapshot \(path): the header changed size (\(head.headerByteCount) → \(header.count) bytes)")
                }
                // The tail continues the head's last block, read back, so that it too goes in whole blocks.
                let end = header.count + head.byteCount
                let start = end / AlignedAppend.blockSize * AlignedAppend.blockSize
                let continued = try file.read(end - start, at: start)
                _ = try continued.withUnsafeBytes { try direct.write([$0, staged.stagedBytes], at: start, buffered: file) }
                try header.withUnsafeBytes { try file.writeAll($0, at: 0) }
            } else {
                _ = try header.withUnsafeBytes { try direct.write([$0, staged.stagedBytes], at: 0, buffered: file) }
            }
            // Direct writes end padded to a block boundary: cut the file to its size.
            try file.truncate(to: header.count + staged.dataByteCount)
            try file.sync()
        } catch {
            unlink(temporary)
            throw error
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
