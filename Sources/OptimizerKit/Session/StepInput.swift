/// A step request: gradients plus the scalar inputs some optimizers need.
public struct StepInput {
    /// The gradients. Per-tensor optimizers may omit parameters; MoMo, MoMo-Adam and MTAdam need all
    /// of them (and every term).
    public var gradients: [TensorView]
    /// The batch loss at the pre-step parameters (required by `momo` and `momo_adam`; recorded otherwise).
    public var loss: Double?
    /// MTAdam term weights for this step only, overriding the session's.
    public var termWeights: [Double]?
    /// Divide every gradient by this first (fp16 loss scaling).
    public var gradScale: Double?
    /// Sums of squares already known, by gradient name (computed while the request body arrived,
    /// ``Reduction/ArrivingSumOfSquares``): the step does not read those gradients for them again.
    /// Each must be ``Reduction/sumOfSquares(_:parallelism:)`` of that gradient's values.
    public var knownSumsOfSquares: [String: Double]

    /// Creates a step request.
    public init(
        gradients: [TensorView], loss: Double? = nil, termWeights: [Double]? = nil, gradScale: Double? = nil,
        knownSumsOfSquares: [String: Double] = [:]
    ) {
        self.gradients = gradients
        self.loss = loss
        self.termWeights = termWeights
        self.gradScale = gradScale
        self.knownSumsOfSquares = knownSumsOfSquares
    }
}

/// What one step did: the numbers people chart while training.
public struct StepTelemetry: Sendable, Hashable, Codable {
    /// The session step this was (1-based; counts skipped steps too).
    public var step: Int
    /// The batch loss, if the request carried one (MTAdam: the sum of the terms' losses if given).
    public var loss: Double?
    /// The learning rate used: the default group's `lr`, Adafactor's relative step, or MoMo's step size τ.
    public var lr: Double?
    /// Global L2 norm of the (unscaled, unclipped) gradient; for MTAdam over all terms.
    public var gradNorm: Double
    /// Global L2 norm of the parameter change.
    public var updateNorm: Double
    /// Whether the step was skipped (non-finite gradient under `nonfinite: skip`).
    public var skipped: Bool
    /// The factor global-norm clipping applied (1 when it did not clip), if clipping is configured.
    public var clipCoefficient: Double?
    /// MTAdam: per-term gradient norms over all layers.
    public var termGradNorms: [Double]?
    /// MTAdam: the effective weight of each term, per layer (parameter name → one weight per term).
    public var termWeights: [String: [Double]]?

    enum CodingKeys: String, CodingKey {
        case step, loss, lr, skipped
        case gradNorm = "grad_norm"
        case updateNorm = "update_norm"
        case clipCoefficient = "clip_coefficient"
        case termGradNorms = "term_grad_norms"
        case termWeights = "term_weights"
    }
}
