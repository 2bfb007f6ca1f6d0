import OptimizerKit

extension SessionState {
    /// The first round of a MoMo / MoMo-Adam step sharded over daemons: each staged tensor's
    /// contribution to the step size sums, for the caller to fold in the global parameter order and
    /// send with the commit (``StepScalars/momoTotals``). Read-only: the staged parts stay, a repeat
    /// answers the same, and the session changes in no way.
    ///
    /// - Throws: ``ProblemError`` (409 when the session is not at step `n` − 1; 422 parts missing),
    ///   ``OptimizerError`` (422: not a MoMo session, bad scalars, a gradient missing, a skipped step).
    mutating func momoSums(step n: Int, scalars: StepScalars, parts: Int?, parallelism: Parallelism) throws -> MomoSumsAnswer {
        dropExpiredStage()
        let current = session.step
        guard n == current + 1 else {
            let state = n <= current ? " (step \(n) is already committed; its sums are not kept)" : ""
            throw ProblemError.conflict(
                "step-mismatch", "momo-sums of step \(n) but the session is at step \(current): ask for step \(current + 1)\(state)")
        }
        let staged = try stagedStep(n, parts: parts, purpose: "momo-sums request")
        let totals = try session.momoTotals(staged, scalars: scalars, parallelism: parallelism)
        return MomoSumsAnswer(step: n, tensors: Dictionary(totals.map { ($0.name, $0.totals) }, uniquingKeysWith: { first, _ in first }))
    }
}

/// The answer of `POST /v1/sessions/{id}/steps/{n}/momo-sums`.
struct MomoSumsAnswer: Encodable, Sendable, Equatable {
    /// The step the sums belong to.
    var step: Int
    /// Per parameter name: its contribution (`parameter_dot_average`, `gamma`, `average_squared_norm`,
    /// float64; a non-finite value as the string `"NaN"`, `"Infinity"` or `"-Infinity"`).
    var tensors: [String: MomoTotals]
}
