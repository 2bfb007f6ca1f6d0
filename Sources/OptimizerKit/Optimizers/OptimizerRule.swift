/// What one parameter tensor gets for one step of a per-tensor optimizer.
struct TensorStepInput {
    /// The parameter, updated in place.
    let parameter: TensorBuffer
    /// The raw gradient of each loss term (one for single-term optimizers), same count as `parameter`.
    let gradients: [UnsafeBufferPointer<Float>]
    /// Multiply each term's gradient by this before use (gradient unscaling and clipping, folded).
    let gradientScales: [Float]
    /// ‖scale·g‖ of each term for this tensor.
    let gradientNorms: [Double]
    /// MTAdam's term weights λ (one per term); `[1]` for single-term optimizers.
    let termWeights: [Double]
    /// Threads available for this tensor.
    let parallelism: Parallelism

    /// The start of term `term`'s gradient (never nil, also for empty tensors).
    func gradientPointer(_ term: Int = 0) -> UnsafePointer<Float> {
        gradients[term].baseAddress ?? UnsafePointer(parameter.pointer)
    }
}

/// What one per-tensor step reports back.
struct TensorStepResult {
    /// ‖θ_after − θ_before‖², for telemetry.
    var updateSquaredNorm: Double
    /// The learning rate this tensor used (Adafactor's relative step, for instance), if meaningful.
    var learningRate: Double?
    /// MTAdam's effective per-term weights for this layer.
    var termWeights: [Double]? = nil
}

/// A per-tensor optimizer configured for one parameter group (Adam, AdamW, SGD, Adafactor, ACClip, MTAdam).
///
/// A value type holding validated hyperparameters; all mutable state lives in the `StateSlots` passed
/// to ``step(_:state:)``. The step never fails: inputs were validated before it is called.
protocol TensorOptimizer: Sendable {
    /// Parses and validates one group's hyperparameters; `terms` is the session's loss-term count.
    init(_ reader: inout HyperparameterReader, terms: Int) throws
    /// Applies one step to one tensor.
    func step(_ input: TensorStepInput, state: StateSlots) -> TensorStepResult
}

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
}
