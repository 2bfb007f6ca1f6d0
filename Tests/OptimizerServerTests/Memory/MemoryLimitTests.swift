import Foundation
import Testing

@testable import OptimizerServer

/// The default budget: 80 % of the smaller of the machine's memory and the cgroup's limit, read
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
            let limit = MemoryLimit.defaultBudget(cgroupRoot: root, physicalMemory: 16 * Self.gib)
            #expect(limit.bytes == Int(Double(Self.gib) * 0.8))
            #expect(limit.source == "80 % of the cgroup v2 limit 1.0 GiB (\(root)/memory.max)")
        }
    }

    @Test func cgroupV1LimitBelowTheMachine() throws {
        try withCgroup(["memory/memory.limit_in_bytes": "2147483648"]) { root in
            let limit = MemoryLimit.defaultBudget(cgroupRoot: root, physicalMemory: 16 * Self.gib)
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
            let limit = MemoryLimit.defaultBudget(cgroupRoot: root, physicalMemory: 16 * Self.gib)
            #expect(limit.bytes == Int(Double(16 * Self.gib) * 0.8))
            #expect(limit.source == "80 % of the machine's memory, 16 GiB")
        }
    }

    @Test func aCgroupLimitAboveTheMachineMeansTheMachine() throws {
        try withCgroup(["memory.max": "\(64 * Self.gib)"]) { root in
            #expect(MemoryLimit.defaultBudget(cgroupRoot: root, physicalMemory: 16 * Self.gib).bytes == Int(Double(16 * Self.gib) * 0.8))
        }
    }

    @Test func v2IsPreferredWhenBothExist() throws {
        try withCgroup(["memory.max": "\(Self.gib)", "memory/memory.limit_in_bytes": "\(2 * Self.gib)"]) { root in
            #expect(MemoryLimit.cgroupLimit(root: root)?.bytes == Self.gib)
        }
    }
}
