import CChecksum
import OptimizerKit
import OptimizerWire

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Memory for a snapshot's data section, its pages touched when it is made.
///
/// Made off the session's lock (``init(byteCount:)`` faults every page in), so that copying the
/// session into it under the lock runs at memcpy speed (``SessionSnapshot/stage(into:)``). Freed
/// when the last reference goes, so a session's resident memory grows only while a snapshot is
/// being written.
///
/// `@unchecked Sendable`: written once, by ``SessionSnapshot/stage(into:)`` before the staged
/// snapshot is handed on, and only read afterwards.
public final class SnapshotStaging: @unchecked Sendable {
    /// The size in bytes.
    public let byteCount: Int
    let base: UnsafeMutableRawPointer

    /// Allocates `byteCount` bytes and writes every page once.
    public init(byteCount: Int) {
        self.byteCount = byteCount
        base = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: 64)
        memset(base, 0, max(byteCount, 1))
    }

    deinit { base.deallocate() }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: byteCount) }
}

/// A snapshot copied out of its session: the metadata and tensor index, and the data section in a
/// ``SnapshotStaging``. The checksum and the header are made later, off the session's lock
/// (``header()``); the file is the header followed by the data section.
///
/// When the staging holds only the data section's tail (the memory budget had no room for a whole
/// copy), the head was written under the session's lock straight from its tensors into the
/// snapshot's temporary file (``WrittenHead``), after room for a header padded to a 4 KiB boundary.
public struct StagedSnapshot: Sendable {
    struct Entry: Sendable {
        var name: String
        var dtype: DType
        var shape: [Int]
        var offset: Int
        var byteCount: Int
    }

    /// The head of the data section, written to the temporary file under the session's lock.
    struct WrittenHead: Sendable {
        /// The temporary file (``SnapshotWrite/temporaryPath(for:)`` of the snapshot's path).
        let temporary: String
        /// The header's size: the data section starts here.
        let headerByteCount: Int
        /// The head's size, from the start of the data section.
        let byteCount: Int
        /// CRC-32C of the head.
        let crc: UInt32
    }

    /// The session step.
    public let step: Int
    let metadata: [String: String]
    let entries: [Entry]
    /// The data section from `head.byteCount` (all of it without a head), at the start of `data`.
    let data: SnapshotStaging
    /// The head written under the lock, or nil when `data` holds the whole data section.
    var head: WrittenHead?

    /// The size of the whole data section.
    var dataByteCount: Int { entries.last.map { $0.offset + $0.byteCount } ?? 0 }

    /// The staged bytes: the data section after the head.
    var stagedBytes: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: data.base, count: dataByteCount - (head?.byteCount ?? 0))
    }

    /// The header (length prefix, padded JSON) with the checksum over the data section: CRC-32C
    /// over all of it, as ``SessionSnapshot/init(decoding:origin:)`` verifies it. Nil `dataCRC`: the
    /// head's CRC continued over the staged bytes.
    func header(dataCRC: UInt32? = nil) throws -> [UInt8] {
        let dataCRC = dataCRC ?? optimizerd_crc32c(head?.crc ?? 0, stagedBytes.baseAddress, stagedBytes.count)
        var metadata = metadata
        metadata["checksum"] = SessionSnapshot.checksum(
            metadata: metadata, index: entries.map { ($0.name, $0.dtype.rawValue, $0.shape) }, dataCRC: dataCRC)
        var writer = SafetensorsWriter(metadata: metadata)
        for entry in entries { try writer.addExternal(entry.name, shape: entry.shape, dtype: entry.dtype) }
        return writer.headerBytes(alignedTo: head == nil ? 8 : AlignedAppend.blockSize)
    }

    /// Removes the head's temporary file (a snapshot abandoned before ``SnapshotWrite/write()``).
    func discard() {
        if let head { unlink(head.temporary) }
    }
}

extension SessionSnapshot {
    /// The size of the file's data section: 8 bytes per scalar, 4 per float32 tensor element, 2 or 1
    /// per compact one.
    public var dataByteCount: Int { Self.byteCount(of: dataEntries()) }

    private static func byteCount(of entries: [(name: String, value: StateSlot.Value)]) -> Int {
        entries.reduce(0) { total, entry in
            switch entry.value {
            case .scalar: total + 8
            case .tensor(let tensor): total + tensor.count * 4
            case .packed(let tensor): total + tensor.byteCount
            }
        }
    }

    /// Copies the snapshot's data into `staging` (one memcpy per tensor) and captures its metadata,
    /// so the session may change as soon as this returns.
    ///
    /// - Parameters:
    ///   - staging: Memory for the copy. Nil, or too small without `temporary`: a new staging of
    ///     the data section's size.
    ///   - temporary: Where to write the head of the data section that does not fit in `staging`
    ///     (whole tensors, from the first; `O_DIRECT` where the file system allows it), so that the
    ///     copy needs no more memory than `staging` has. The steps waiting on the caller's lock
    ///     wait for that write.
    /// - Throws: ``StoreError`` when the head cannot be written (the temporary file is removed).
    public func stage(into staging: SnapshotStaging?, writingHeadTo temporary: String? = nil) throws -> StagedSnapshot {
        let entries = dataEntries()
        let scalars = entries.compactMap { entry -> UInt64? in
            guard case .scalar(let scalar) = entry.value else { return nil }
            return scalar.bitPattern.littleEndian
        }
        return try scalars.withUnsafeBytes { scalarBytes in
            // Each entry's place in the data section and its bytes (scalars from `scalars`).
            var index: [StagedSnapshot.Entry] = []
            var pieces: [UnsafeRawBufferPointer] = []
            var offset = 0, scalar = 0
            for (name, value) in entries {
                let entry: StagedSnapshot.Entry
                switch value {
                case .scalar:
                    entry = .init(name: name, dtype: .F64, shape: [], offset: offset, byteCount: 8)
                    pieces.append(UnsafeRawBufferPointer(rebasing: scalarBytes[8 * scalar..<8 * scalar + 8]))
                    scalar += 1
                case .tensor(let tensor):
                    entry = .init(name: name, dtype: .F32, shape: tensor.shape.dimensions, offset: offset, byteCount: tensor.count * 4)
                    pieces.append(UnsafeRawBufferPointer(start: tensor.pointer, count: entry.byteCount))
                case .packed(let tensor):
                    entry = .init(name: name, dtype: tensor.dtype, shape: tensor.shape.dimensions, offset: offset, byteCount: tensor.byteCount)
                    pieces.append(UnsafeRawBufferPointer(start: tensor.pointer, count: entry.byteCount))
                }
                index.append(entry)
                offset += entry.byteCount
            }
            let size = offset
            // The first entry of the staged tail: the head before it is written to the file instead.
            var first = 0
            if let staging, temporary != nil, staging.byteCount < size {
                first = index.firstIndex { size - $0.offset <= staging.byteCount } ?? index.count
            }
            let headBytes = first < index.count ? index[first].offset : size
            let data =
                first > 0 ? staging! : staging.flatMap { $0.byteCount >= size ? $0 : nil } ?? SnapshotStaging(byteCount: size)
            for position in first..<index.count {
                UnsafeMutableRawBufferPointer(start: data.base + index[position].offset - headBytes, count: pieces[position].count)
                    .copyMemory(from: pieces[position])
            }
            var staged = StagedSnapshot(step: step, metadata: try metadataWithoutChecksum(), entries: index, data: data, head: nil)
            if first > 0, let temporary {
                staged.head = try Self.writeHead(Array(pieces[..<first]), byteCount: headBytes, of: staged, to: temporary)
            }
            return staged
        }
    }

    /// Writes the head's `pieces` (`byteCount` in all) to `temporary` after room for `staged`'s
    /// header, padded to a block boundary, taking their CRC-32C from the slices as they are written.
    private static func writeHead(
        _ pieces: [UnsafeRawBufferPointer], byteCount: Int, of staged: StagedSnapshot, to temporary: String
    ) throws -> StagedSnapshot.WrittenHead {
        // The header's size does not depend on the checksum's value (eight hex digits).
        var sized = staged
        sized.head = .init(temporary: temporary, headerByteCount: 0, byteCount: byteCount, crc: 0)
        let headerByteCount = try sized.header(dataCRC: 0).count
        var crc: UInt32 = 0
        do {
            let file = try FileDescriptor.open(temporary, O_WRONLY | O_CREAT | O_TRUNC)
            var direct = AlignedAppend(path: temporary)
            _ = try direct.write(pieces, at: headerByteCount, buffered: file) { crc = optimizerd_crc32c(crc, $0.baseAddress, $0.count) }
        } catch {
            unlink(temporary)
            throw error
        }
        return .init(temporary: temporary, headerByteCount: headerByteCount, byteCount: byteCount, crc: crc)
    }
}
