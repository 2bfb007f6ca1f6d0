import CChecksum

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An append-only log of ``LogRecord``s in one file.
///
/// Records of at least ``directMinimum`` bytes are written around the page cache from a block
/// boundary (``AlignedAppend``): zeros fill the file up to the boundary before such a record and
/// after it up to the next one. So a record may be followed by zero bytes up to the next multiple
/// of ``AlignedAppend/blockSize``; ``scan(_:_:)`` skips them (a record never starts with a zero byte).
///
/// A body spooled while it arrived (``BodySpool``) is not copied: its file is renamed to
/// `<log name>.<record offset>.body` beside the log, and a version 2 record naming it is appended.
/// The body file is written (and, when the record is synced, synced) before the record, so a record
/// whose body file is missing or short is the tail of a crash, and ``scan(_:_:)`` stops there.
///
/// Appends either complete or are cut back: if a write fails (disk full), the file is truncated to
/// its previous length, so the log never holds a record that was not acknowledged as written.
/// Thread-safety: none; a session's lock serialises appends, and ``sync()`` may be called from the
/// periodic flusher while holding the same lock.
final class WriteAheadLog {
    let path: String
    private let file: FileDescriptor
    /// Records of at least this many bytes go through ``aligned``; nil: every record is buffered.
    let directMinimum: Int?
    private var aligned: AlignedAppend?
    /// The byte length of the complete records (and their padding) in the file.
    private(set) var length: Int
    /// Whether records were appended since the last ``sync()``.
    private(set) var isDirty = false
    /// Body files adopted since the last ``sync()`` whose data and names ``sync()`` makes durable.
    private var unsyncedBodies: [FileDescriptor] = []

    /// Opens (creating if needed) the log at `path` for appending after `validLength` bytes, cutting
    /// anything beyond them (a torn tail found by ``scan(_:_:)``). Records of at least
    /// `directMinimum` bytes are written with `O_DIRECT` where the file system allows it.
    init(path: String, validLength: Int = 0, directMinimum: Int? = nil) throws {
        self.path = path
        self.directMinimum = directMinimum
        file = try FileDescriptor.open(path, O_WRONLY | O_CREAT)
        let hadTail = try file.size() != validLength
        try file.truncate(to: validLength)
        if hadTail { try file.sync() }
        length = validLength
        removeBodyFiles(from: validLength)
    }

    /// Deletes this log's body files of records at `offset` or later: those of a cut tail, and one
    /// renamed for a record that a crash kept from being appended. (A later record at the same
    /// offset would replace it anyway; until then it would only take disk space.)
    private func removeBodyFiles(from offset: Int) {
        let log = Self.baseName(path)
        for name in FileSystem.list(directory) {
            guard let file = Self.bodyFile(named: name), file.log == log, file.offset >= offset else { continue }
            unlink(directory + "/" + name)
        }
    }

    /// Whether large records really bypass the page cache (false until the first one, and where
    /// the file system refuses `O_DIRECT`).
    var writesDirect: Bool { aligned?.isDirect ?? false }

    /// Appends `record`; with `sync`, returns only after it is on stable storage.
    ///
    /// - Throws: ``StoreError`` (``StoreError/Code-swift.struct/noSpace`` when the disk is full); the
    ///   log is then as it was before the call.
    func append(_ record: LogRecord, sync: Bool) throws {
        try record.body.withUnsafeBytes {
            try append(kind: record.kind, step: record.step, contentEncoding: record.contentEncoding, body: $0, sync: sync)
        }
    }

    /// Appends a record whose body is `body` (not copied, except in slices for a direct write).
    func append(kind: LogRecord.Kind, step: UInt64, contentEncoding: String?, body: UnsafeRawBufferPointer, sync: Bool) throws {
        let prefix = LogRecord.payloadPrefix(contentEncoding: contentEncoding)
        let header = LogRecord.header(kind: kind, step: step, prefix: prefix, body: body)
        let recordLength = header.count + prefix.count + body.count
        let newLength: Int
        do {
            newLength = try header.withUnsafeBytes { header in
                try prefix.withUnsafeBytes { prefix in
                    if let directMinimum, recordLength >= directMinimum { return try appendAligned([header, prefix, body]) }
                    var end = length
                    for piece in [header, prefix, body] where piece.count > 0 {
                        try file.writeAll(piece, at: end)
                        end += piece.count
                    }
                    return end
                }
            }
            if sync { try file.sync() }
        } catch {
            try? file.truncate(to: length)
            throw error
        }
        length = newLength
        isDirty = !sync
    }

    /// Appends a record for a body spooled while it arrived: the spool file becomes the log's
    /// (renamed beside it) and the record names it. With `sync`, the body, its name and the record
    /// are on stable storage when this returns; with `deferSync`, the next ``sync()`` makes them so.
    ///
    /// - Throws: ``StoreError``; the log is then as before the call and the body file is removed.
    func append(kind: LogRecord.Kind, step: UInt64, spooled: SpooledBody, sync: Bool, deferSync: Bool) throws {
        let name = bodyFileName(at: length)
        let target = directory + "/" + name
        if sync { try spooled.file.sync() }
        guard spooled.adopt() else { preconditionFailure("a spooled body is logged at most once") }
        guard rename(spooled.path, target) == 0 else {
            let error = StoreError.system("rename", path: spooled.path)
            unlink(spooled.path)
            throw error
        }
        let prefix = LogRecord.payloadPrefix(contentEncoding: nil)
        let reference = BodyReference(length: spooled.length, crc: spooled.crc, fileName: name).encoded
        let payload = prefix + reference
        let header = payload.withUnsafeBytes {
            LogRecord.header(kind: kind, step: step, prefix: [], body: $0, version: LogRecord.referenceVersion)
        }
        do {
            if sync { try FileSystem.syncDirectory(directory) }
            try (header + payload).withUnsafeBytes { try file.writeAll($0, at: length) }
            if sync { try file.sync() }
        } catch {
            unlink(target)
            try? file.truncate(to: length)
            throw error
        }
        length += header.count + payload.count
        if deferSync { unsyncedBodies.append(spooled.file) }
        isDirty = deferSync
    }

    /// The directory the log is in.
    private var directory: String { Self.directory(of: path) }

    /// The name of the body file of the record at `offset`: the log's name without `.log`, then the offset.
    private func bodyFileName(at offset: Int) -> String {
        Self.baseName(path) + "." + String(offset) + ".body"
    }

    /// The log (its name without `.log`) and record offset a body file name (`<log>.<offset>.body`,
    /// see ``bodyFileName(at:)``) stands for; nil for any other name.
    static func bodyFile(named name: String) -> (log: String, offset: Int)? {
        guard name.hasSuffix(".body"), let dot = name.dropLast(5).lastIndex(of: "."),
            let offset = Int(name[name.index(after: dot)..<name.index(name.endIndex, offsetBy: -5)])
        else { return nil }
        return (String(name[..<dot]), offset)
    }

    /// The log's file name without its directory and `.log`.
    private static func baseName(_ path: String) -> String {
        let name = path.split(separator: "/").last ?? Substring(path)
        return name.hasSuffix(".log") ? String(name.dropLast(4)) : String(name)
    }

    /// Writes a record's pieces from the next block boundary (zeros fill the gap), padded to the
    /// boundary after it, and returns the log's new length. On failure ``length`` is unchanged.
    private func appendAligned(_ pieces: [UnsafeRawBufferPointer]) throws -> Int {
        let start = AlignedAppend.padded(length)
        if start > length {
            let zeros = [UInt8](repeating: 0, count: start - length)
            try zeros.withUnsafeBytes { try file.writeAll($0, at: length) }
        }
        if aligned == nil { aligned = AlignedAppend(path: path) }
        return start + (try aligned!.write(pieces, at: start, buffered: file))
    }

    /// Flushes appended records to stable storage.
    func sync() throws {
        guard isDirty else { return }
        if !unsyncedBodies.isEmpty {
            for body in unsyncedBodies { try body.sync() }
            try FileSystem.syncDirectory(directory)
            unsyncedBodies = []
        }
        try file.sync()
        isDirty = false
    }

    /// The outcome of reading a log.
    struct ScanResult {
        /// Bytes of complete, valid records from the start.
        var validLength: Int
        /// The file's length.
        var fileLength: Int
        /// Why reading stopped before the end, if it did.
        var problem: String?
        /// Whether the invalid part is just an incomplete final record (a torn write).
        var isTornTail: Bool
    }

    /// Reads every valid record from the start of the log at `path`, calling `body` for each, and
    /// stops at the first incomplete or corrupt one, or at the first one `body` refuses (returns
    /// false for): that one is reported as the start of a tail to cut.
    static func scan(_ path: String, _ body: (LogRecord) throws -> Bool) throws -> ScanResult {
        guard FileSystem.exists(path) else { return ScanResult(validLength: 0, fileLength: 0, problem: nil, isTornTail: false) }
        let file = try FileDescriptor.open(path, O_RDONLY)
        let fileLength = try file.size()
        var offset = 0
        while offset < fileLength {
            let remaining = fileLength - offset
            let headerBytes = try read(file, offset: offset, count: min(remaining, LogRecord.headerSize))
            if headerBytes[0] == 0, let paddingEnd = try paddingEnd(file, from: offset, fileLength: fileLength) {
                offset = paddingEnd
                continue
            }
            if remaining < LogRecord.headerSize {
                return ScanResult(validLength: offset, fileLength: fileLength, problem: "incomplete record header", isTornTail: true)
            }
            let header: LogRecord.Header
            switch LogRecord.parseHeader(headerBytes) {
            case .success(let parsed): header = parsed
            case .failure(let reason):
                // An all-zero header is what a torn append on some file systems leaves behind.
                let torn = headerBytes.allSatisfy { $0 == 0 }
                return ScanResult(validLength: offset, fileLength: fileLength, problem: reason.description, isTornTail: torn)
            }
            if header.payloadLength > remaining - LogRecord.headerSize {
                return ScanResult(validLength: offset, fileLength: fileLength, problem: "incomplete record payload", isTornTail: true)
            }
            let payload = try read(file, offset: offset + LogRecord.headerSize, count: header.payloadLength)
            var bodyMissing = false
            let decoded = LogRecord.decode(header, payload: payload) { reference in
                let body = readBody(reference, directory: directory(of: path))
                if case .failure = body { bodyMissing = true }
                return body
            }
            switch decoded {
            case .success(let record):
                guard try body(record) else {
                    let problem = "a record of step \(record.step) follows steps that were not logged"
                    return ScanResult(validLength: offset, fileLength: fileLength, problem: problem, isTornTail: true)
                }
            case .failure(let reason):
                // A body file is written before its record, and synced before it when the record is:
                // a record whose body file is not all there is the tail of a crash.
                let isLast = offset + LogRecord.headerSize + header.payloadLength == fileLength
                return ScanResult(
                    validLength: offset, fileLength: fileLength, problem: reason.description, isTornTail: isLast || bodyMissing)
            }
            offset += LogRecord.headerSize + header.payloadLength
        }
        return ScanResult(validLength: offset, fileLength: fileLength, problem: nil, isTornTail: false)
    }

    private static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return String(path[..<slash])
    }

    /// The body a version 2 record refers to, checked against its length and CRC-32C.
    private static func readBody(_ reference: BodyReference, directory: String) -> Result<[UInt8], RecordProblem> {
        let path = directory + "/" + reference.fileName
        guard let file = try? FileDescriptor.open(path, O_RDONLY) else {
            return .failure(RecordProblem("body file \(reference.fileName) is missing"))
        }
        guard let size = try? file.size(), size >= reference.length,
            let body = try? read(file, offset: 0, count: reference.length)
        else { return .failure(RecordProblem("body file \(reference.fileName) is incomplete")) }
        let crc = body.withUnsafeBytes { optimizerd_crc32c(0, $0.baseAddress, $0.count) }
        guard crc == reference.crc else { return .failure(RecordProblem("body file \(reference.fileName) checksum mismatch")) }
        return .success(body)
    }

    /// The end of the zero fill starting at `offset`: the next block boundary, if `offset` is not one,
    /// the boundary is within the file, and every byte up to it is zero; otherwise nil.
    private static func paddingEnd(_ file: FileDescriptor, from offset: Int, fileLength: Int) throws -> Int? {
        let end = AlignedAppend.padded(offset)
        guard end > offset, end <= fileLength else { return nil }
        return try read(file, offset: offset, count: end - offset).allSatisfy { $0 == 0 } ? end : nil
    }

    private static func read(_ file: FileDescriptor, offset: Int, count: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        try bytes.withUnsafeMutableBytes { buffer in
            while done < count {
                let n = pread(file.fd, buffer.baseAddress! + done, count - done, off_t(offset + done))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw StoreError.system("read", path: file.path)
                }
                if n == 0 { throw StoreError.corrupt(file.path, "file shrank while reading") }
                done += n
            }
        }
        return bytes
    }
}
