#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An error from the durable store.
///
/// The server maps ``Code-swift.struct/noSpace`` to 507 and ``Code-swift.struct/unavailable`` to 503;
/// everything else is an internal error. Messages name the file and the system error.
public struct StoreError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of problem this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        enum Base: String, Hashable, Sendable {
            case noSpace, unavailable, corrupt, io, inUse
        }
        let base: Base

        /// The disk is full (ENOSPC, EDQUOT): retry when space returns.
        public static let noSpace = Code(base: .noSpace)
        /// The data directory cannot be written (read-only file system, permissions).
        public static let unavailable = Code(base: .unavailable)
        /// A file failed its checksum or framing.
        public static let corrupt = Code(base: .corrupt)
        /// Any other I/O failure.
        public static let io = Code(base: .io)
        /// Another process holds the data directory.
        public static let inUse = Code(base: .inUse)

        public var description: String { base.rawValue }
    }

    /// The kind of problem.
    public let code: Code
    /// What happened, naming the file.
    public let message: String

    public var description: String { message }

    /// An error for a failed system call on `path`, classified by `errno`.
    static func system(_ operation: String, path: String, errno number: Int32 = errno) -> StoreError {
        let reason = String(cString: strerror(number))
        let code: Code
        switch number {
        case ENOSPC, EDQUOT, EFBIG: code = .noSpace
        case EROFS, EACCES, EPERM: code = .unavailable
        default: code = .io
        }
        return StoreError(code: code, message: "\(operation) \(path): \(reason)")
    }

    /// A file (or an uploaded checkpoint) that is damaged or does not fit; `origin` names it.
    public static func corrupt(_ path: String, _ detail: String) -> StoreError {
        StoreError(code: .corrupt, message: "\(path): \(detail)")
    }
}
