import Foundation
import NIOCore
import OptimizerKit
import OptimizerWire
import Testing

@testable import OptimizerServer

/// A step request lets go of its body once the step is done with it, before the answer is
/// encoded (so the answer can take the body's block from the buffer pool): the body's memory
/// reservation, held as long as any copy of the body exists, is back by the time `step` returns,
/// though the request itself is still alive.
struct StepRequestTests {
    private let budget = MemoryBudget(limit: 1 << 30, source: "test")

    private func state() throws -> SessionState {
        let session = OptimizerSession(configuration: try SessionConfiguration(optimizer: "sgd", hyperparameters: ["lr": .number(0.5)]))
        let w = TensorBuffer(shape: TensorShape([4]), values: [1, 2, 3, 4])
        try session.setParameters([TensorView(name: "w", shape: w.shape, values: w.readOnly)])
        return SessionState(
            session: session, identity: SessionIdentity(id: "s1", name: nil, token: TokenDigest(of: "t"), createdAt: Date()), historyCapacity: 4)
    }

    /// A step request of `gradient` (bfloat16), its body held in a reservation of ``budget``.
    private func request(_ gradient: [Float], shape: [Int] = [4], step: Int = 1) throws -> StepRequest {
        let body = try Body.tensors([("w", shape, gradient)], metadata: ["step": String(step)], as: .BF16)
        let reservation = try budget.reserve(body.readableBytes, for: .bodies, purpose: "this step")
        return try StepRequest(
            payload: TensorPayload(parsing: body, memory: reservation),
            options: ResponseOptions(returnValue: "params", dtypeValue: "bf16"))
    }

    @Test func theBodyIsLetGoOfBeforeTheAnswerIsReturned() throws {
        var state = try state()
        let step = try request([1, -2, 3, -4])
        #expect(budget.used(.bodies) > 0)
        let outcome = try state.step(step, parallelism: .serial)
        withExtendedLifetime(step) { #expect(budget.used(.bodies) == 0) }
        let answer = try safetensors(outcome.body)
        #expect(try answer.floats(named: "w") == [0.5, 3, 1.5, 6])
    }

    @Test func aRefusedStepLetsGoOfItsBodyTooAndChangesNothing() throws {
        var state = try state()
        let step = try request([1, 2], shape: [2])
        #expect(throws: OptimizerError.self) { try state.step(step, parallelism: .serial) }
        withExtendedLifetime(step) { #expect(budget.used(.bodies) == 0) }
        #expect(state.session.step == 0 && state.session.parameters[0].readOnly.elementsEqual([1, 2, 3, 4]))
    }

    @Test func aRetryIsAnsweredWithoutTheBody() throws {
        var state = try state()
        _ = try state.step(try request([1, -2, 3, -4]), parallelism: .serial)
        let retry = try request([9, 9, 9, 9], step: 1)
        let outcome = try state.step(retry, parallelism: .serial)
        #expect(outcome.isRetry)
        #expect(try safetensors(outcome.body).floats(named: "w") == [0.5, 3, 1.5, 6])
        withExtendedLifetime(retry) { #expect(budget.used(.bodies) > 0) }  // not taken: held until the request goes
    }
}
