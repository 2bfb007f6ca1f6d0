import CChecksum
import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where a session's large request bodies may be written while they arrive: its directory, and the
/// size from which a body is worth it (the log's direct-write minimum).
public struct SpoolTarget: Sendable, Equatable {
    /// The session's directory (the spool file is made there, so the log can adopt it by a rename).
    public let directory: String
    /// Bodies smaller than this are logged the ordinary way.
    public let minimumBytes: Int

    public init(directory: String, minimumBytes: Int) {
        self.directory = directory
        self.minimumBytes = minimumBytes
    }
}

/// Writes a request body to a file in the session's directory while the body is still arriving, so
/// that logging it costs nothing once the last byte is in: the write-ahead log then adopts the file
/// (``WriteAheadLog/append(kind:step:spooled:sync:)``) and appends a small record naming it.
///
/// Without this, a step's log phase starts only after its body arrived and writes every byte of it
/// then (24–28 ms for 32 MB here, 0.2–0.5 s for 400 MB), one after the other. The receiver calls
/// ``received(_:)`` with the body so far after each chunk; whole slices are written from the body's
/// own memory on a background queue, around the page cache (`O_DIRECT`) where the memory and the
/// file system allow it, and their CRC-32C is computed there. ``finish(_:)`` writes the rest and
/// waits for the queue.
///
/// The body's memory must stay where it is until ``finish(_:)`` or ``abandon()`` returned (the queue
/// reads it): the receiver calls ``abandon()`` before it lets the body go or move.
///
/// A spool that failed (disk full, a file system refusing the writes) answers nil from
/// ``finish(_:)``: the body is then logged the ordinary way, which reports the problem.
public final class BodySpool: Sendable {
    /// The bytes written per background write.
    static let sliceSize = 4 << 20

    /// The spool file (`spool-….tmp`: recovery deletes what a crash left behind).
    let path: String
    /// The body's declared length.
    let length: Int
    private let file: FileDescriptor
    private let queue = DispatchQueue(label: "optimizerd.body-spool")
    /// Written by the queue only: the writes' state.
    private let written: Mutex<Progress>
    /// Touched by the receiver only (one task at a time): bytes handed to the queue, and where the body is.
    private let scheduled: Mutex<(bytes: Int, base: UInt)>

    private struct Progress {
        var crc: UInt32 = 0
        var failed = false
        var direct: FileDescriptor?
    }

    /// A spool for a body of `length` bytes, or nil when it is too small for `target` or its file
    /// cannot be made (the body is then logged the ordinary way).
    public init?(target: SpoolTarget, length: Int) {
        guard length >= target.minimumBytes, length > 0 else { return nil }
        let path = target.directory + "/spool-" + Self.uniqueSuffix() + ".tmp"
        guard let file = try? FileDescriptor.open(path, O_WRONLY | O_CREAT | O_EXCL) else { return nil }
        self.path = path
        self.length = length
        self.file = file
        written = Mutex(Progress(direct: AlignedAppend.directFlag.flatMap { try? FileDescriptor.open(path, O_WRONLY | $0) }))
        scheduled = Mutex((0, 0))
    }

    private static func uniqueSuffix() -> String {
        var generator = SystemRandomNumberGenerator()
        return String(generator.next(), radix: 16) + String(generator.next(), radix: 16)
    }

    /// Hands the whole slices of `body` (the bytes received so far, from the body's start) that are
    /// not written yet to the background queue.
    public func received(_ body: UnsafeRawBufferPointer) {
        guard let base = body.baseAddress else { return }
        let end = body.count / Self.sliceSize * Self.sliceSize
        let range = scheduled.withLock { scheduled -> Range<Int>? in
            if scheduled.base == 0 { scheduled.base = UInt(bitPattern: base) }
            guard scheduled.base == UInt(bitPattern: base), end > scheduled.bytes else { return nil }
            defer { scheduled.bytes = end }
            return scheduled.bytes..<end
        }
        if let range { schedule(UnsafeRawBufferPointer(rebasing: body[range]), at: range.lowerBound) }
    }

    /// Writes the rest of `body` (all of it, `length` bytes, at the same address as before), waits
    /// for every write, and returns the spooled body; nil when the body is not the one declared or
    /// a write failed (the spool file is gone then).
    public func finish(_ body: UnsafeRawBufferPointer) async -> SpooledBody? {
        let (start, base) = scheduled.withLock { ($0.bytes, $0.base) }
        guard body.count == length, let address = body.baseAddress, base == 0 || base == UInt(bitPattern: address) else {
            await abandon()
            return nil
        }
        if start < body.count { schedule(UnsafeRawBufferPointer(rebasing: body[start...]), at: start) }
        let outcome = await withCheckedContinuation { continuation in
            queue.async { continuation.resume(returning: self.written.withLock { ($0.crc, $0.failed) }) }
        }
        guard !outcome.1 else {
            unlink(path)
            return nil
        }
        return SpooledBody(path: path, length: length, crc: outcome.0, file: file)
    }

    /// Waits until the queue no longer reads the body, and removes the spool file.
    public func abandon() async {
        await withCheckedContinuation { continuation in
            queue.async {
                unlink(self.path)
                continuation.resume()
            }
        }
    }

    /// Queues the write of `bytes`, the body's bytes from `offset`.
    private func schedule(_ bytes: UnsafeRawBufferPointer, at offset: Int) {
        let slice = UncheckedBytes(bytes: bytes)
        queue.async {
            self.written.withLock { progress in
                guard !progress.failed else { return }
                progress.crc = optimizerd_crc32c(progress.crc, slice.bytes.baseAddress, slice.bytes.count)
                progress.failed = !self.write(slice.bytes, at: offset, direct: &progress.direct)
            }
        }
    }

    /// Writes `bytes` at `offset`: the part that is whole blocks from aligned memory through
    /// `direct` (dropped for good if refused), everything else through the buffered descriptor.
    private func write(_ bytes: UnsafeRawBufferPointer, at offset: Int, direct: inout FileDescriptor?) -> Bool {
        let block = AlignedAppend.blockSize
        var done = 0
        if let file = direct, offset % block == 0, Int(bitPattern: bytes.baseAddress) % block == 0 {
            let whole = bytes.count / block * block
            if whole > 0 {
                switch file.positionalWrite(UnsafeRawBufferPointer(rebasing: bytes[..<whole]), at: offset) {
                case 0: done = whole
                case EINVAL: direct = nil
                default: return false
                }
            }
        }
        guard done < bytes.count else { return true }
        return self.file.positionalWrite(UnsafeRawBufferPointer(rebasing: bytes[done...]), at: offset + done) == 0
    }
}

/// The body bytes a queued write reads (the receiver keeps them alive and in place until it waited).
private struct UncheckedBytes: @unchecked Sendable {
    let bytes: UnsafeRawBufferPointer
}

/// A request body written in full to a spool file, ready to be adopted by the write-ahead log.
/// Unless adopted, the file is removed when this is let go of (the step was refused or a retry).
public final class SpooledBody: Sendable {
    /// Where the file is now.
    let path: String
    /// The body's length and CRC-32C.
    let length: Int
    let crc: UInt32
    let file: FileDescriptor
    private let adopted = Atomic<Bool>(false)

    init(path: String, length: Int, crc: UInt32, file: FileDescriptor) {
        self.path = path
        self.length = length
        self.crc = crc
        self.file = file
    }

    /// Marks the file as the log's (it was renamed away); false if it was adopted before.
    func adopt() -> Bool { !adopted.exchange(true, ordering: .relaxed) }

    deinit {
        if !adopted.load(ordering: .relaxed) { unlink(path) }
    }
}
