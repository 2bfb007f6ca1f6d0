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

    /// What an address-space limit (`ulimit -v`, `prlimit --as`) must leave for the process's own
    /// mappings before any session exists: the binary and its libraries, thread stacks and the
    /// allocator's arenas reserve about 0.75 GiB of address space in an idle daemon.
    static let addressSpaceOverhead = 1 << 30

    /// The default budget: ``defaultFraction`` of the smallest of the machine's memory, the
    /// cgroup's limit and the address-space limit (less ``addressSpaceOverhead``).
    ///
    /// - Parameters:
    ///   - cgroupRoot: Where the cgroup file system is mounted (`/sys/fs/cgroup`; tests point it at a
    ///     directory of their own).
    ///   - physicalMemory: The machine's memory in bytes.
    ///   - addressSpaceLimit: The process's `RLIMIT_AS` in bytes, nil when unlimited.
    public static func defaultBudget(
        cgroupRoot: String = "/sys/fs/cgroup",
        physicalMemory: Int = Int(clamping: ProcessInfo.processInfo.physicalMemory),
        addressSpaceLimit: Int? = currentAddressSpaceLimit()
    ) -> MemoryLimit {
        let available = available(cgroupRoot: cgroupRoot, physicalMemory: physicalMemory, addressSpaceLimit: addressSpaceLimit)
        let percent = Int((defaultFraction * 100).rounded())
        return MemoryLimit(bytes: Int(Double(available.bytes) * defaultFraction), source: "\(percent) % of \(available.source)")
    }

    /// The smallest of the machine's memory, the cgroup's limit and the usable address space, and
    /// which one it is.
    static func available(cgroupRoot: String, physicalMemory: Int, addressSpaceLimit: Int? = nil) -> MemoryLimit {
        var tightest = MemoryLimit(bytes: physicalMemory, source: "the machine's memory, \(ByteCount(physicalMemory))")
        if let cgroup = cgroupLimit(root: cgroupRoot), cgroup.bytes < tightest.bytes {
            tightest = cgroup
        }
        if let addressSpaceLimit {
            let usable = max(addressSpaceLimit - addressSpaceOverhead, 0)
            if usable < tightest.bytes {
                tightest = MemoryLimit(
                    bytes: usable,
                    source: "the address-space limit (RLIMIT_AS) \(ByteCount(addressSpaceLimit)) less \(ByteCount(addressSpaceOverhead)) for the process itself"
                )
            }
        }
        return tightest
    }

    /// This process's address-space limit (`RLIMIT_AS`, set by `ulimit -v` or `prlimit --as`) in
    /// bytes; nil when there is none.
    public static func currentAddressSpaceLimit() -> Int? {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_AS.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max else { return nil }
        return Int(clamping: limit.rlim_cur)
    }

    /// The tightest memory limit of this process's cgroup and its ancestors (from `membership`,
    /// the text of `/proc/self/cgroup`), under the cgroup file system mounted at `root`: cgroup v2's
    /// `memory.max` and v1's `memory/…/memory.limit_in_bytes` at every level that exists. In a
    /// container, where the process's own cgroup is mounted at `root`, that is `root`'s own file; on
    /// a host, e.g. a systemd service's `MemoryMax=`. Nil when no level sets a limit.
    static func cgroupLimit(root: String, membership: String? = read("/proc/self/cgroup")) -> MemoryLimit? {
        var paths = (v2: "/", v1: "/")
        for line in membership?.split(separator: "\n") ?? [] {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else { continue }
            if fields[0] == "0", fields[1].isEmpty { paths.v2 = String(fields[2]) }
            if fields[1].split(separator: ",").contains("memory") { paths.v1 = String(fields[2]) }
        }
        var tightest: MemoryLimit?
        func consider(_ file: String, version: String, unlimited: (String) -> Bool) {
            guard let text = read(file), !unlimited(text), let bytes = Int(text), bytes > 0 else { return }
            if bytes < tightest?.bytes ?? Int.max {
                tightest = MemoryLimit(bytes: bytes, source: "the cgroup \(version) limit \(ByteCount(bytes)) (\(file))")
            }
        }
        for directory in lineage(of: paths.v2, under: root) {
            consider(directory + "/memory.max", version: "v2") { $0 == "max" }
        }
        for directory in lineage(of: paths.v1, under: root + "/memory") {
            consider(directory + "/memory.limit_in_bytes", version: "v1") { Int($0).map { $0 >= cgroupV1Unlimited } ?? true }
        }
        return tightest
    }

    /// `base` + `path` and each of its ancestors up to `base` itself.
    private static func lineage(of path: String, under base: String) -> [String] {
        let components = path.split(separator: "/").map(String.init)
        return (0...components.count).reversed().map { count in
            ([base] + components.prefix(count)).joined(separator: "/")
        }
    }

    static func read(_ path: String) -> String? {
        FileManager.default.contents(atPath: path).map {
            String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }
}
