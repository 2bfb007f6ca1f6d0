/// Everything a session-coupled optimizer (MoMo, MoMo-Adam) gets for one step: every tensor at once.
struct CoupledStepInput {
    /// The parameters, updated in place, in session order.
    let parameters: [TensorBuffer]
    /// One gradient per parameter (all are present).
    let gradients: [UnsafeBufferPointer<Float>]
    /// Multiply every gradient by this first.
    let gradientScale: Float
    /// Per-parameter optimizer state.
    let states: [StateSlots]
    /// Session-wide optimizer state (loss average, lower bound, step count).
    let global: StateSlots
    /// The batch loss at the pre-step parameters.
    let loss: Double
    /// The session-wide sums from the caller, when the session's tensors are spread over daemons;
    /// nil: this session's own (it holds every tensor).
    let totals: MomoTotals?
    /// Threads available.
    let parallelism: Parallelism
}

/// What a coupled step reports back.
struct CoupledStepResult {
    /// ‖θ_after − θ_before‖² over all tensors.
    var updateSquaredNorm: Double
    /// The step size actually used (MoMo's τ).
    var learningRate: Double
}

/// An optimizer whose step couples all tensors of a session through global sums.
protocol CoupledOptimizer: Sendable {
    /// Parses and validates the session's hyperparameters.
    init(_ reader: inout HyperparameterReader) throws
    /// Applies one step to every tensor.
    func step(_ input: CoupledStepInput) -> CoupledStepResult
    /// Each tensor's contribution to the step's sums, in session order, as ``step(_:)`` would compute
    /// it (the same bits); changes nothing.
    func tensorTotals(_ input: CoupledStepInput) -> [MomoTotals]
    /// The float elements of the tensor slots a step creates for a parameter of `shape`.
    func stateElements(for shape: TensorShape) -> Int
}
