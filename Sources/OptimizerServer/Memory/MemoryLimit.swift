import Foundation

/// How much memory the daemon may use, and where that number came from: the `--max-memory` value,
/// or the default derived from the machine and its cgroup (a container's memory limit).
public struct MemoryLimit: Sendable, Equatable {
    /// The budget in bytes.
    public var bytes: Int
    /// Where it came from, for the start-up log.
    public var source: String

    public init(bytes: Int, source: String) {
        self.bytes = bytes
        self.source = source
    }

    /// The share of the available memory the default budget takes: 80 %. The rest is for what the
    /// budget does not count: the binary and its libraries, thread stacks, allocator slack and
    /// fragmentation, the page cache of the write-ahead logs, and small per-request buffers.
    public static let defaultFraction = 0.8

    /// v1 reports "no limit" as a huge number (`9223372036854771712`): anything from 2^60 bytes (1 EiB) up.
    static let cgroupV1Unlimited = 1 << 60

    /// The default budget: ``defaultFraction`` of the smaller of the machine's memory and the
    /// cgroup's limit.
    ///
    /// - Parameters:
    ///   - cgroupRoot: Where the cgroup file system is mounted (`/sys/fs/cgroup`; tests point it at a
    ///     directory of their own).
    ///   - physicalMemory: The machine's memory in bytes.
    public static func defaultBudget(
        cgroupRoot: String = "/sys/fs/cgroup",
        physicalMemory: Int = Int(clamping: ProcessInfo.processInfo.physicalMemory)
    ) -> MemoryLimit {
        let available = available(cgroupRoot: cgroupRoot, physicalMemory: physicalMemory)
        let percent = Int((defaultFraction * 100).rounded())
        return MemoryLimit(bytes: Int(Double(available.bytes) * defaultFraction), source: "\(percent) % of \(available.source)")
    }

    /// The smaller of the machine's memory and the cgroup's limit, and which one it is.
    static func available(cgroupRoot: String, physicalMemory: Int) -> MemoryLimit {
        let machine = MemoryLimit(bytes: physicalMemory, source: "the machine's memory, \(ByteCount(physicalMemory))")
        guard let cgroup = cgroupLimit(root: cgroupRoot), cgroup.bytes < physicalMemory else {
            return machine
        }
        return cgroup
    }

    /// The memory limit of the cgroup mounted at `root`: cgroup v2's `memory.max`, else v1's
    /// `memory/memory.limit_in_bytes`; nil when neither exists or it says there is no limit.
    static func cgroupLimit(root: String) -> MemoryLimit? {
        let v2 = root + "/memory.max"
        if let text = read(v2) {
            guard text != "max", let bytes = Int(text), bytes > 0 else { return nil }
            return MemoryLimit(bytes: bytes, source: "the cgroup v2 limit \(ByteCount(bytes)) (\(v2))")
        }
        let v1 = root + "/memory/memory.limit_in_bytes"
        guard let text = read(v1), let bytes = Int(text), bytes > 0, bytes < cgroupV1Unlimited else { return nil }
        return MemoryLimit(bytes: bytes, source: "the cgroup v1 limit \(ByteCount(bytes)) (\(v1))")
    }

    private static func read(_ path: String) -> String? {
        FileManager.default.contents(atPath: path).map {
            String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }
}
