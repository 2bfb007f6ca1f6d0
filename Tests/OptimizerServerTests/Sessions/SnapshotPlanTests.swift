import Foundation
import OptimizerKit
import OptimizerStore
import Testing

@testable import OptimizerServer

/// A background snapshot takes two short stays under the session's lock: ``SessionState/planSnapshot()``
/// reserves its copy's room, then (its memory faulted in without the lock)
/// ``SessionState/beginSnapshot(_:staging:)`` copies the session. The session may change in between.
struct SnapshotPlanTests {
    private let directory = NSTemporaryDirectory() + "snapshot-plan-" + UUID().uuidString
    private let gradient = TensorBuffer(shape: TensorShape([4]), values: [1, -2, 3, -4])

    private func state(budget: MemoryBudget) throws -> SessionState {
        let session = OptimizerSession(configuration: try SessionConfiguration(optimizer: "sgd", hyperparameters: ["lr": .number(0.5)]))
        let w = TensorBuffer(shape: TensorShape([4]), values: [1, 2, 3, 4])
        try session.setParameters([TensorView(name: "w", shape: w.shape, values: w.readOnly)])
        var state = SessionState(
            session: session, identity: SessionIdentity(id: "s1", name: nil, token: TokenDigest(of: "t"), createdAt: Date()), historyCapacity: 4)
        let store = try DataDirectory(configuration: StoreConfiguration(directory: directory, fsync: .always, snapshotEvery: 0))
        state.journal = try store.create(state.snapshot)
        state.memory = budget
        state.isSnapshotPending = true
        return state
    }

    /// A session one step in, with its snapshot planned.
    private func planAfterOneStep(budget: MemoryBudget) throws -> (SessionState, SessionState.SnapshotPlan) {
        var state = try state(budget: budget)
        try step(state)
        let planned = state.planSnapshot()
        return (state, try #require(planned))
    }

    private func step(_ state: SessionState) throws {
        _ = try state.session.step(StepInput(gradients: [TensorView(name: "w", shape: gradient.shape, values: gradient.readOnly)]))
    }

    @Test func theSnapshotHoldsTheSessionAsOfItsCopyNotItsPlan() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let budget = MemoryBudget(limit: 1 << 30, source: "test")
        var (state, plan) = try planAfterOneStep(budget: budget)
        #expect(budget.used > 0)
        try step(state)  // a step between the plan and the copy
        let begun = try state.beginSnapshot(plan, staging: SnapshotStaging(byteCount: plan.byteCount))
        let pending = try #require(begun)
        try step(state)  // and one while the copy is written
        try pending.write.write()
        state.finishSnapshot(pending, error: nil)
        #expect(budget.used == 0 && !state.isSnapshotPending && state.snapshotProblem == nil)
        #expect(state.journal?.snapshotStep == 2)
        let path = directory + "/sessions/s1/snapshot-0000000000000002.safetensors"
        let written = try SessionSnapshot(decoding: Array(try Data(contentsOf: URL(fileURLWithPath: path))), origin: path)
        #expect(written.step == 2 && written.parameters[0].values == [0, 4, 0, 8])
    }

    @Test func aCheckpointRestoreBetweenPlanAndCopyCancelsTheSnapshotAndFreesItsRoom() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let budget = MemoryBudget(limit: 1 << 30, source: "test")
        var (state, plan) = try planAfterOneStep(budget: budget)
        // A restore replaces the journal's files with a generation at the current step.
        try state.journal?.replaceAll(with: state.snapshot)
        let begun = try state.beginSnapshot(plan, staging: SnapshotStaging(byteCount: plan.byteCount))
        #expect(begun == nil)
        #expect(budget.used == 0 && !state.isSnapshotPending)
    }
}
