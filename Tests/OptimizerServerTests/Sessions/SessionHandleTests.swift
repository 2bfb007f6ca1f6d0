import Foundation
import OptimizerKit
import Synchronization
import Testing

@testable import OptimizerServer

/// The concurrency contract: operations on one session run one at a time in arrival order, and a
/// busy session never holds compute threads that other sessions need.
struct SessionHandleTests {
    private func registry(threads: Int) -> (SessionRegistry, ComputePool) {
        let pool = ComputePool(threads: threads)
        return (SessionRegistry(pool: pool, historyCapacity: 16), pool)
    }

    @Test func operationsOnOneSessionAreSerialisedInOrder() async throws {
        let (sessions, pool) = registry(threads: 4)
        defer { Task { try await pool.shutdownForTests() } }
        let session = try await sessions.create(configuration: try SessionConfiguration(optimizer: "sgd"), name: nil).session
        let events = EventLog()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<6 {
                group.addTask {
                    try await session.withState { _ in
                        events.append("begin \(index)")
                        Thread.sleep(forTimeInterval: 0.02)
                        events.append("end \(index)")
                    }
                }
                try await Task.sleep(for: .milliseconds(5))  // arrival order
            }
            try await group.waitForAll()
        }
        let log = events.entries
        #expect(log == (0..<6).flatMap { ["begin \($0)", "end \($0)"] })
    }

    @Test func aBusySessionDoesNotStallOtherSessions() async throws {
        let (sessions, pool) = registry(threads: 2)
        defer { Task { try await pool.shutdownForTests() } }
        let busy = try await sessions.create(configuration: try SessionConfiguration(optimizer: "sgd"), name: nil).session
        let other = try await sessions.create(configuration: try SessionConfiguration(optimizer: "sgd"), name: nil).session
        let longStep = Task { try await busy.withState { _ in Thread.sleep(forTimeInterval: 1.0) } }
        try await Task.sleep(for: .milliseconds(50))
        // More work for the busy session queues at its gate without taking a pool thread...
        let queued = (0..<3).map { _ in Task { try await busy.summary() } }
        try await Task.sleep(for: .milliseconds(50))
        // ...so the other session still gets the second thread at once.
        let start = ContinuousClock.now
        _ = try await other.summary()
        let waited = ContinuousClock.now - start
        #expect(waited < .milliseconds(400), "the other session waited \(waited)")
        try await longStep.value
        for task in queued { _ = try await task.value }
    }
}

/// Strings appended from several threads.
private final class EventLog: Sendable {
    private let storage = Mutex<[String]>([])
    func append(_ entry: String) { storage.withLock { $0.append(entry) } }
    var entries: [String] { storage.withLock { $0 } }
}

extension ComputePool {
    /// Stops the pool's threads in a test that never runs the pool as a service.
    func shutdownForTests() async throws {
        let task = Task { try await self.run() }
        task.cancel()
        try await task.value
    }
}
