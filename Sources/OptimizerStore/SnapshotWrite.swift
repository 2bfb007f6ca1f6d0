import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A snapshot taken under the session's lock and written without it (``SessionJournal/beginSnapshot(_:now:)``).
///
/// ``write()`` touches only this snapshot's own file, so it runs on any thread while the session
/// steps on; the journal then learns the outcome through ``SessionJournal/finishSnapshot(_:error:)``
/// under the session's lock again. A journal that replaces its files meanwhile (a checkpoint restore,
/// the shutdown snapshot) cancels the write: it then never appears under its final name.
///
/// `Sendable`: the encoded bytes are never changed after creation, and `cancelled` is behind a `Mutex`
/// that is also held across the rename, so a cancelled write can never publish its file.
public final class SnapshotWrite: Sendable {
    /// The snapshot's session step.
    public let step: Int
    /// The encoded snapshot.
    let bytes: [UInt8]
    let path: String
    let directory: String
    private let cancelled = Mutex(false)

    init(step: Int, bytes: [UInt8], path: String, directory: String) {
        self.step = step
        self.bytes = bytes
        self.path = path
        self.directory = directory
    }

    /// The snapshot's size in bytes.
    public var byteCount: Int { bytes.count }

    /// Writes the snapshot durably: a temporary file, fsynced, renamed into place, the directory fsynced.
    ///
    /// - Throws: ``StoreError`` (also when the write was cancelled); the session's log still holds
    ///   everything then, so nothing is lost.
    public func write() throws {
        let temporary = try bytes.withUnsafeBytes { try FileSystem.writeTemporary($0, for: path) }
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
