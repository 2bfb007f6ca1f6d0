#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A thin owner of a POSIX file descriptor with the few durable operations the store needs.
///
/// Thread-safety: the descriptor and path never change and each operation is one system call (or a
/// loop of them on disjoint bytes), so it may be handed between threads; callers serialise what
/// must not interleave (a session's lock, recovery, a spool's queue).
final class FileDescriptor: @unchecked Sendable {
    let fd: Int32
    let path: String

    private init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    deinit { close(fd) }

    /// Opens `path` with `flags` (O_CLOEXEC is added).
    static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o600) throws -> FileDescriptor {
        let fd = Glibc.open(path, flags | O_CLOEXEC, mode)
        guard fd >= 0 else { throw StoreError.system("open", path: path) }
        return FileDescriptor(fd: fd, path: path)
    }

    /// Writes all of `bytes` at the current offset, retrying short writes and EINTR.
    func writeAll(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let written = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                throw StoreError.system("write", path: path)
            }
            offset += written
        }
    }

    /// Writes all of `bytes` at `offset` (the file's position does not move), retrying short writes
    /// and EINTR.
    func writeAll(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws {
        let failure = positionalWrite(bytes, at: offset)
        guard failure == 0 else { throw StoreError.system("write", path: path, errno: failure) }
    }

    /// Writes all of `bytes` at `offset`, retrying short writes and EINTR: 0, or the `errno` of the
    /// write that failed (for callers that react to one in particular).
    func positionalWrite(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> Int32 {
        var done = 0
        while done < bytes.count {
            let written = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            if written < 0 {
                if errno == EINTR { continue }
                return errno
            }
            done += written
        }
        return 0
    }

    /// Flushes file data (and the size) to stable storage.
    func sync() throws {
        guard fdatasync(fd) == 0 else { throw StoreError.system("fsync", path: path) }
    }

    /// The current size of the file.
    func size() throws -> Int {
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw StoreError.system("stat", path: path) }
        return Int(info.st_size)
    }

    /// Truncates the file to `length` bytes and moves the offset to its end.
    func truncate(to length: Int) throws {
        guard ftruncate(fd, off_t(length)) == 0 else { throw StoreError.system("truncate", path: path) }
        guard lseek(fd, off_t(length), SEEK_SET) >= 0 else { throw StoreError.system("seek", path: path) }
    }

    /// Reads the whole file from the start.
    func readAll() throws -> [UInt8] {
        try read(try size(), at: 0)
    }

    /// Reads up to `length` bytes from `offset` (fewer at the end of the file).
    func read(_ length: Int, at start: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: length)
        var offset = 0
        try bytes.withUnsafeMutableBytes { buffer in
            while offset < length {
                let count = pread(fd, buffer.baseAddress! + offset, length - offset, off_t(start + offset))
                if count < 0 {
                    if errno == EINTR { continue }
                    throw StoreError.system("read", path: path)
                }
                if count == 0 { break }
                offset += count
            }
        }
        return offset == length ? bytes : Array(bytes[..<offset])
    }
}
