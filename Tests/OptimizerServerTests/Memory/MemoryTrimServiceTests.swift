import Synchronization
import Testing

@testable import OptimizerServer

/// Freed memory goes back to the system every interval until the service stops.
struct MemoryTrimServiceTests {
    @Test func trimsEveryIntervalUntilCancelled() async throws {
        let trims = Atomic<Int>(0)
        let service = MemoryTrimService(interval: .milliseconds(20)) { trims.add(1, ordering: .relaxed) }
        let running = Task { try await service.run() }
        while trims.load(ordering: .relaxed) < 3 { try await Task.sleep(for: .milliseconds(10)) }
        running.cancel()
        try await running.value  // returns once cancelled, without an error
        let stopped = trims.load(ordering: .relaxed)
        try await Task.sleep(for: .milliseconds(100))
        #expect(trims.load(ordering: .relaxed) == stopped)
    }

    @Test func releasingFreedMemoryIsSafeToCallAnyTime() {
        let buffers = (0..<64).map { _ in [UInt8](repeating: 1, count: 1 << 16) }
        #expect(buffers.count == 64)
        MemoryTrimService.releaseFreedMemory()
        MemoryTrimService.releaseFreedMemory()
    }
}
