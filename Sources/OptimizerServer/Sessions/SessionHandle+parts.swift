import Foundation
import OptimizerKit

extension SessionHandle {
    /// Stages one part of step `n` (see ``SessionState/stagePart(step:part:payload:ttl:budget:parallelism:)``).
    func stagePart(step n: Int, part: String, payload: TensorPayload, ttl: Duration) async throws -> PartAnswer {
        let parallelism = self.parallelism
        return try await withState { [memory] state in
            try state.stagePart(step: n, part: part, payload: payload, ttl: ttl, budget: memory.budget, parallelism: parallelism)
        }
    }

    /// Commits step `n` (see ``SessionState/commit(step:scalars:parts:options:parallelism:)``).
    func commit(step n: Int, scalars: StepScalars, parts: Int?, options: ResponseOptions) async throws -> StepOutcome {
        let parallelism = self.parallelism
        let queued = ContinuousClock.now
        return try await withState { [memory] state in
            var outcome = try state.commit(step: n, scalars: scalars, parts: parts, options: options, parallelism: parallelism)
            // The state the step created was admitted with the parameters; a kept delta is new.
            memory.force(to: state.memoryFootprint())
            var timing = ServerTiming()
            timing.record("wait", ContinuousClock.now - queued - outcome.timing.phases.reduce(.zero) { $0 + $1.duration })
            timing.append(outcome.timing)
            outcome.timing = timing
            return outcome
        }
    }

    /// The MoMo sums of staged step `n` (see ``SessionState/momoSums(step:scalars:parts:parallelism:)``).
    func momoSums(step n: Int, scalars: StepScalars, parts: Int?) async throws -> MomoSumsAnswer {
        let parallelism = self.parallelism
        return try await withState { state in
            try state.momoSums(step: n, scalars: scalars, parts: parts, parallelism: parallelism)
        }
    }

    /// Drops the staged parts of step `n`; false when none were staged.
    func dropStagedStep(_ n: Int) async throws -> Bool {
        try await withState { state in state.dropStagedStep(n) }
    }
}
