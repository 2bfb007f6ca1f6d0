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
/// (``header()``); the file is the header followed by the staged bytes.
public struct StagedSnapshot: Sendable {
    struct Entry: Sendable {
        var name: String
        var dtype: DType
        var shape: [Int]
        var offset: Int
        var byteCount: Int
    }

    /// The session step.
    public let step: Int
    let metadata: [String: String]
    let entries: [Entry]
    /// The data section.
    let data: SnapshotStaging

    /// The header (length prefix, padded JSON) with the checksum over the staged data: CRC-32C
    /// over the whole data section, as ``SessionSnapshot/init(decoding:origin:)`` verifies it.
    func header() throws -> [UInt8] {
        let dataCRC = optimizerd_crc32c(0, data.base, data.byteCount)
        var metadata = metadata
        metadata["checksum"] = SessionSnapshot.checksum(
            metadata: metadata, index: entries.map { ($0.name, $0.dtype.rawValue, $0.shape) }, dataCRC: dataCRC)
        var writer = SafetensorsWriter(metadata: metadata)
        for entry in entries {
            let start = data.base + entry.offset
            if entry.dtype == .F64 {
                try writer.add(entry.name, shape: entry.shape, doubles: [start.loadUnaligned(as: Double.self)])
            } else if entry.dtype != .F32 {
                try writer.add(entry.name, shape: entry.shape, bytes: UnsafeRawBufferPointer(start: start, count: entry.byteCount), as: entry.dtype)
            } else {
                let floats = UnsafeBufferPointer(start: start.assumingMemoryBound(to: Float.self), count: entry.byteCount / 4)
                try writer.add(entry.name, shape: entry.shape, floats: floats)
            }
        }
        return writer.headerBytes()
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

    /// Copies the snapshot's data into `staging` (one memcpy per tensor; a new staging when its
    /// size does not match, say after an upload changed a shape) and captures its metadata, so the
    /// session may change as soon as this returns.
    public func stage(into staging: SnapshotStaging?) throws -> StagedSnapshot {
        let entries = dataEntries()
        let size = Self.byteCount(of: entries)
        let data = staging.flatMap { $0.byteCount == size ? $0 : nil } ?? SnapshotStaging(byteCount: size)
        var index: [StagedSnapshot.Entry] = []
        var offset = 0
        for (name, value) in entries {
            switch value {
            case .scalar(let scalar):
                (data.base + offset).storeBytes(of: scalar.bitPattern.littleEndian, as: UInt64.self)
                index.append(.init(name: name, dtype: .F64, shape: [], offset: offset, byteCount: 8))
            case .tensor(let tensor):
                let byteCount = tensor.count * 4
                (data.base + offset).copyMemory(from: tensor.pointer, byteCount: byteCount)
                index.append(.init(name: name, dtype: .F32, shape: tensor.shape.dimensions, offset: offset, byteCount: byteCount))
            case .packed(let tensor):
                (data.base + offset).copyMemory(from: tensor.pointer, byteCount: tensor.byteCount)
                index.append(.init(name: name, dtype: tensor.dtype, shape: tensor.shape.dimensions, offset: offset, byteCount: tensor.byteCount))
            }
            offset = index.last!.offset + index.last!.byteCount
        }
        return StagedSnapshot(step: step, metadata: try metadataWithoutChecksum(), entries: index, data: data)
    }
}
