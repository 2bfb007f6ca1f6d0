#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Directory and file-level durable operations.
enum FileSystem {
    /// fsyncs a directory so that a rename or a newly created file inside it survives power loss.
    static func syncDirectory(_ path: String) throws {
        let directory = try FileDescriptor.open(path, O_RDONLY | O_DIRECTORY)
        guard fsync(directory.fd) == 0 else { throw StoreError.system("fsync directory", path: path) }
    }

    /// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsynced, renamed
    /// over `path`, then the directory fsynced. A crash leaves either the old file or the new one.
    static func writeAtomically(_ bytes: UnsafeRawBufferPointer, to path: String, directory: String) throws {
        let temporary = try writeTemporary(bytes, for: path)
        try commit(temporary, to: path, directory: directory)
    }

    /// The first half of ``writeAtomically(_:to:directory:)``: `bytes` written and fsynced to
    /// `<path>.tmp`, whose path is returned. Recovery deletes `.tmp` files.
    static func writeTemporary(_ bytes: UnsafeRawBufferPointer, for path: String) throws -> String {
        try writeTemporary([bytes], for: path)
    }

    /// ``writeTemporary(_:for:)`` of `parts` written one after the other (not joined in memory first).
    static func writeTemporary(_ parts: [UnsafeRawBufferPointer], for path: String) throws -> String {
        let temporary = path + ".tmp"
        do {
            let file = try FileDescriptor.open(temporary, O_WRONLY | O_CREAT | O_TRUNC)
            for part in parts { try file.writeAll(part) }
            try file.sync()
        } catch {
            unlink(temporary)
            throw error
        }
        return temporary
    }

    /// The second half of ``writeAtomically(_:to:directory:)``: `temporary` renamed over `path`, then
    /// the directory fsynced.
    static func commit(_ temporary: String, to path: String, directory: String) throws {
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
            if mkdir(current, 0o700) != 0 {
                guard errno == EEXIST else { throw StoreError.system("mkdir", path: current) }
                // Something is there already: it must be a directory (or a link to one).
                var status = stat()
                guard stat(current, &status) == 0 else { throw StoreError.system("stat", path: current) }
                guard status.st_mode & S_IFMT == S_IFDIR else { throw StoreError.system("mkdir", path: current, errno: ENOTDIR) }
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
