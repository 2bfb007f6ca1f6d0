import OptimizerKit

/// What one applied step did, as a step request's answer needs it.
public struct AppliedStep {
    /// The step's telemetry (also the session's `lastTelemetry`).
    public var telemetry: StepTelemetry
    /// Indices of the parameters that had gradients, ascending: the tensors the answer carries.
    public var parameterIndices: [Int]
    /// θ_after − θ_before for those parameters, when the step was asked to keep it.
    public var delta: [TensorBuffer]?

    public init(telemetry: StepTelemetry, parameterIndices: [Int], delta: [TensorBuffer]?) {
        self.telemetry = telemetry
        self.parameterIndices = parameterIndices
        self.delta = delta
    }
}
