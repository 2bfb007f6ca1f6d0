import Foundation
import Testing

@testable import OptimizerServer

/// The default budget: 80 % of the smallest of the machine's memory, the cgroup's limit and the address-space limit (ulimit -v) less 1 GiB, read
/// from a cgroup directory made here (v2 `memory.max`, v1 `memory/memory.limit_in_bytes`).
struct MemoryLimitTests {
    static let gib = 1 << 30

    /// A fresh directory holding `files` (path → content), removed after `body`.
    func withCgroup(_ files: [String: String], _ body: (String) throws -> Void) throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cgroup-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        for (path, content) in files {
            let file = root.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
            try content.write(to: file, atomically: true, encoding: .utf8)
        }
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        try body(root.path)
    }

    @Test func cgroupV2LimitBelowTheMachine() throws {
        try withCgroup(["memory.max": "1073741824\n"]) { root in
            let limit = MemoryLimit.defaultBudget(cgroupRoot: root, physicalMemory: 16 * Self.gib, addressSpaceLimit: nil)
            #expect(limit.bytes == Int(Double(Self.gib) * 0.8))
            #expect(limit.source == "80 % of the cgroup v2 limit 1.0 GiB (\(root)/memory.max)")
        }
    }

    @Test func cgroupV1LimitBelowTheMachine() throws {
        try withCgroup(["memory/memory.limit_in_bytes": "2147483648"]) { root in
            let limit = MemoryLimit.defaultBudget(cgroupRoot: root, physicalMemory: 16 * Self.gib, addressSpaceLimit: nil)
            #expect(limit.bytes == Int(Double(2 * Self.gib) * 0.8))
            #expect(limit.source.contains("cgroup v1 limit 2.0 GiB"))
        }
    }

    @Test(arguments: [
        ["memory.max": "max\n"],
        ["memory/memory.limit_in_bytes": "9223372036854771712\n"],
        ["memory/memory.limit_in_bytes": "garbage"],
        [:],
    ])
    func noLimitMeansTheMachine(files: [String: String]) throws {
        try withCgroup(files) { root in
            let limit = MemoryLimit.defaultBudget(cgroupRoot: root, physicalMemory: 16 * Self.gib, addressSpaceLimit: nil)
            #expect(limit.bytes == Int(Double(16 * Self.gib) * 0.8))
            #expect(limit.source == "80 % of the machine's memory, 16 GiB")
        }
    }

    @Test func aCgroupLimitAboveTheMachineMeansTheMachine() throws {
        try withCgroup(["memory.max": "\(64 * Self.gib)"]) { root in
            #expect(
                MemoryLimit.defaultBudget(cgroupRoot: root, physicalMemory: 16 * Self.gib, addressSpaceLimit: nil).bytes == Int(Double(16 * Self.gib) * 0.8))
        }
    }

    @Test func theTightestLimitWins() throws {
        try withCgroup(["memory.max": "\(Self.gib)", "memory/memory.limit_in_bytes": "\(2 * Self.gib)"]) { root in
            #expect(MemoryLimit.cgroupLimit(root: root, membership: "0::/\n")?.bytes == Self.gib)
        }
    }

    /// On a host: the process's own cgroup (a systemd service's `MemoryMax=`) and its ancestors.
    @Test func theProcessOwnCgroupAndItsAncestorsCount() throws {
        let files = [
            "system.slice/optimizerd.service/memory.max": "\(2 * Self.gib)\n", "system.slice/memory.max": "max\n",
            "user.slice/memory.max": "\(Self.gib / 4)",
        ]
        try withCgroup(files) { root in
            let limit = MemoryLimit.cgroupLimit(root: root, membership: "0::/system.slice/optimizerd.service\n")
            #expect(limit?.bytes == 2 * Self.gib)
            #expect(limit?.source == "the cgroup v2 limit 2.0 GiB (\(root)/system.slice/optimizerd.service/memory.max)")
        }
        try withCgroup(["system.slice/memory.max": "\(Self.gib)", "system.slice/optimizerd.service/memory.max": "max"]) { root in
            #expect(MemoryLimit.cgroupLimit(root: root, membership: "0::/system.slice/optimizerd.service")?.bytes == Self.gib)
        }
        let v1 = ["memory/batch/job/memory.limit_in_bytes": "\(3 * Self.gib)", "memory/memory.limit_in_bytes": "9223372036854771712"]
        try withCgroup(v1) { root in
            let membership = "12:pids:/batch/job\n4:cpu,memory:/batch/job\n1:name=systemd:/batch/job\n"
            #expect(MemoryLimit.cgroupLimit(root: root, membership: membership)?.bytes == 3 * Self.gib)
        }
    }

    /// In a container the process's cgroup path is the host's, but its own cgroup is mounted at the root.
    @Test func aPathMissingUnderTheRootFallsBackToTheRoot() throws {
        try withCgroup(["memory/memory.limit_in_bytes": "\(Self.gib)"]) { root in
            let membership = "9:memory:/docker/0123abcd\n0::/\n"
            #expect(MemoryLimit.cgroupLimit(root: root, membership: membership)?.bytes == Self.gib)
        }
    }

    /// `prlimit --as` / `ulimit -v`: the address space, less what the process maps for itself, when it is the tightest.
    @Test func anAddressSpaceLimitBelowTheOthersWins() throws {
        try withCgroup(["memory.max": "\(6 * Self.gib)"]) { root in
            let limit = MemoryLimit.defaultBudget(cgroupRoot: root, physicalMemory: 16 * Self.gib, addressSpaceLimit: 4 * Self.gib)
            #expect(limit.bytes == Int(Double(3 * Self.gib) * 0.8))
            #expect(limit.source == "80 % of the address-space limit (RLIMIT_AS) 4.0 GiB less 1.0 GiB for the process itself")
            let loose = MemoryLimit.defaultBudget(cgroupRoot: root, physicalMemory: 16 * Self.gib, addressSpaceLimit: 64 * Self.gib)
            #expect(loose.bytes == Int(Double(6 * Self.gib) * 0.8))
        }
        // A limit smaller than the process's own mappings leaves nothing: every session is refused, none crashes it.
        #expect(MemoryLimit.available(cgroupRoot: "/nonexistent", physicalMemory: Self.gib, addressSpaceLimit: Self.gib / 2).bytes == 0)
    }
}
