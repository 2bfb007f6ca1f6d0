#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A thin owner of a POSIX file descriptor with the few durable operations the store needs.
///
/// Thread-safety: none; every use is serialised by its owner (a session's lock, or recovery).
final class FileDescriptor {
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
        let length = try size()
        var bytes = [UInt8](repeating: 0, count: length)
        var offset = 0
        try bytes.withUnsafeMutableBytes { buffer in
            while offset < length {
                let count = pread(fd, buffer.baseAddress! + offset, length - offset, off_t(offset))
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

/// Directory and file-level durable operations.
enum Durable {
    /// fsyncs a directory so that a rename or a newly created file inside it survives power loss.
    static func syncDirectory(_ path: String) throws {
        let directory = try FileDescriptor.open(path, O_RDONLY | O_DIRECTORY)
        guard fsync(directory.fd) == 0 else { throw StoreError.system("fsync directory", path: path) }
    }

    /// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsynced, renamed
    /// over `path`, then the directory fsynced. A crash leaves either the old file or the new one.
    static func writeAtomically(_ bytes: UnsafeRawBufferPointer, to path: String, directory: String) throws {
        let temporary = path + ".tmp"
        do {
            let file = try FileDescriptor.open(temporary, O_WRONLY | O_CREAT | O_TRUNC)
            try file.writeAll(bytes)
            try file.sync()
        } catch {
            unlink(temporary)
            throw error
        }
        guard rename(temporary, path) == 0 else {
            let failure = StoreError.system("rename", path: temporary)
            unlink(temporary)
            throw failure
        }
        try syncDirectory(directory)
    }

    /// Creates a directory (and parents) if missing.
    static func makeDirectory(_ path: String) throws {
        var current = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            current += "/" + component
            if mkdir(current, 0o700) != 0, errno != EEXIST {
                throw StoreError.system("mkdir", path: current)
            }
        }
    }

    /// The names in a directory (without `.` and `..`); empty if it does not exist.
    static func list(_ path: String) -> [String] {
        guard let directory = opendir(path) else { return [] }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if name != ".", name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// Whether `path` exists.
    static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// Removes a directory tree (best effort).
    static func removeTree(_ path: String) {
        for name in list(path) {
            let child = path + "/" + name
            var info = stat()
            if lstat(child, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR {
                removeTree(child)
            } else {
                unlink(child)
            }
        }
        rmdir(path)
    }
}
