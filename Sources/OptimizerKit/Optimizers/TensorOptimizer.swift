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
    /// The float elements of the tensor slots a step creates for a parameter of `shape`, with
    /// `terms` loss terms: what the session's memory budget admits before the first step.
    func stateElements(for shape: TensorShape, terms: Int) -> Int
    /// The bytes of those slots (compact state counts its compact size); 4 per element by default.
    func stateBytes(for shape: TensorShape, terms: Int) -> Int
}

extension TensorOptimizer {
    /// The bytes of the tensor slots a step creates for a parameter of `shape`: float32 elements
    /// unless the optimizer keeps compact state (Adam with `state_dtype`).
    func stateBytes(for shape: TensorShape, terms: Int) -> Int { 4 * stateElements(for: shape, terms: terms) }
}
