import NIOCore
import OptimizerKit
import OptimizerStore
import OptimizerWire

extension SessionHandle {
    /// Applies one optimizer step, or answers a retry of the last one.
    ///
    /// This is the only way a session's step advances: the step is validated (`prepareStep`),
    /// appended to the write-ahead log, and only then applied (`apply`), before the response is sent.
    ///
    /// - Throws: ``ProblemError`` (409 step mismatch, 422 unknown sparse tensor),
    ///   ``OptimizerError`` (422 tensor problems), ``SafetensorsError`` (400 bad dtypes),
    ///   ``StoreError`` (507 disk full, 503 data directory unavailable), ``MemoryBudgetExceeded``
    ///   (507: the step's transient copies do not fit). The session is unchanged whenever this throws.
    func step(_ request: StepRequest) async throws -> StepOutcome {
        let parallelism = self.parallelism
        let queued = ContinuousClock.now
        return try await withState { [memory] state in
            let staging = try memory.budget.reserve(
                state.stepStaging(request), for: .staging, purpose: "this step", isStep: true, alongside: request.bodyBytes)
            defer { staging.release() }
            var outcome = try state.step(request, parallelism: parallelism)
            // The state the step created was admitted with the parameters; a kept delta is new.
            memory.force(to: state.memoryFootprint())
            var timing = ServerTiming()
            timing.record("wait", ContinuousClock.now - queued - outcome.timing.phases.reduce(.zero) { $0 + $1.duration })
            timing.append(outcome.timing)
            outcome.timing = timing
            return outcome
        }
    }
}
