#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes one large log record around the page cache (`O_DIRECT`), from a block boundary, padded
/// with zeros to the next one.
///
/// A buffered write of a large record copies it into the page cache, and once the dirty pages pass
/// the kernel's threshold the writer is throttled to the write-back speed: measured here, a 32 MB
/// append took 8 ms while the cache absorbed it and then 80 ms per append (400 MB/s) for as long as
/// appends kept coming, where `O_DIRECT` writes of the same bytes went on at 20 ms each. The record
/// is copied in slices through one aligned buffer (the body's own memory need not be aligned), and
/// each slice is written before the next is copied.
///
/// File systems that refuse `O_DIRECT` (at open or at the first write) get the same bytes by plain
/// writes, so the file's layout does not depend on where it lives.
struct AlignedAppend {
    /// The alignment of a direct write's offset, length and memory.
    static let blockSize = 4096
    /// The bytes copied and written per `pwrite`.
    static let sliceSize = 1 << 20

    /// The file opened with `O_DIRECT`, or nil when the file system refused it.
    private(set) var direct: FileDescriptor?

    /// Opens `path` a second time with `O_DIRECT` if the file system allows it.
    init(path: String) {
        direct = Self.directFlag.flatMap { try? FileDescriptor.open(path, O_WRONLY | $0) }
    }

    /// Linux's `O_DIRECT`, which Swift's Glibc module does not export (it needs `_GNU_SOURCE`):
    /// 0o40000 on x86 (asm-generic), 0o200000 on arm64. Nil where there is none (Darwin).
    static var directFlag: Int32? {
        #if os(Linux) && (arch(x86_64) || arch(i386))
        return 0o40000
        #elseif os(Linux) && arch(arm64)
        return 0o200000
        #else
        return nil
        #endif
    }

    /// Whether records are really written around the page cache (false after a refusal).
    var isDirect: Bool { direct != nil }

    /// `length` rounded up to a block boundary.
    static func padded(_ length: Int) -> Int { (length + blockSize - 1) / blockSize * blockSize }

    /// Writes `pieces` one after the other from `offset` (a block boundary), then zeros up to the
    /// next boundary, through `direct` or, without it, through `buffered`. Returns the bytes written.
    ///
    /// - Parameter eachSlice: Sees the pieces' bytes slice by slice, in order, while they are in
    ///   cache (without the padding), before each is written: to checksum them on the way.
    mutating func write(
        _ pieces: [UnsafeRawBufferPointer], at offset: Int, buffered: FileDescriptor,
        eachSlice: (UnsafeRawBufferPointer) -> Void = { _ in }
    ) throws -> Int {
        precondition(offset % Self.blockSize == 0, "a direct record starts at a block boundary")
        guard let slice = UnsafeMutableRawBufferPointer.allocate(alignedTo: Self.blockSize, count: Self.sliceSize) else {
            throw StoreError.system("posix_memalign", path: buffered.path)
        }
        defer { slice.deallocate() }
        var written = 0
        var filled = 0
        func flush(final: Bool) throws {
            eachSlice(UnsafeRawBufferPointer(rebasing: slice[..<filled]))
            var count = filled
            if final {
                count = Self.padded(filled)
                (slice.baseAddress! + filled).initializeMemory(as: UInt8.self, repeating: 0, count: count - filled)
            }
            guard count > 0 else { return }
            try writeSlice(UnsafeRawBufferPointer(rebasing: slice[..<count]), at: offset + written, buffered: buffered)
            written += count
            filled = 0
        }
        for piece in pieces {
            var consumed = 0
            while consumed < piece.count {
                let take = min(piece.count - consumed, Self.sliceSize - filled)
                (slice.baseAddress! + filled).copyMemory(from: piece.baseAddress! + consumed, byteCount: take)
                filled += take
                consumed += take
                if filled == Self.sliceSize { try flush(final: false) }
            }
        }
        try flush(final: true)
        return written
    }

    /// Writes one aligned slice; a direct write refused as invalid (the file system's alignment is
    /// larger, or it takes `O_DIRECT` at open but not at write) turns direct writes off for good.
    private mutating func writeSlice(_ bytes: UnsafeRawBufferPointer, at offset: Int, buffered: FileDescriptor) throws {
        if let file = direct {
            let failure = file.positionalWrite(bytes, at: offset)
            if failure == 0 { return }
            guard failure == EINVAL else { throw StoreError.system("write", path: file.path, errno: failure) }
            direct = nil
        }
        try buffered.writeAll(bytes, at: offset)
    }
}

extension UnsafeMutableRawBufferPointer {
    /// `count` bytes aligned to `alignment` (free with `deallocate()`), or nil if there is no memory.
    static func allocate(alignedTo alignment: Int, count: Int) -> UnsafeMutableRawBufferPointer? {
        var address: UnsafeMutableRawPointer?
        guard posix_memalign(&address, alignment, count) == 0, let address else { return nil }
        return UnsafeMutableRawBufferPointer(start: address, count: count)
    }
}
