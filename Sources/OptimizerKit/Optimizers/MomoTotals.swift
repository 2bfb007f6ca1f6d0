/// The sums over tensors that MoMo's and MoMo-Adam's step size τ needs (algorithms.md §5.1, §5.2).
///
/// A step computes one value per tensor (pass 1, θ before the step, the new averages) and folds
/// them with ``add(_:)`` from zero in the session's parameter order. A session spread over several
/// daemons gets each tensor's value from the daemon that holds it (`POST …/steps/{n}/momo-sums`),
/// and the caller folds them the same way in the global parameter order and sends the totals with
/// the commit: every shard then computes the same τ, bit for bit, as one daemon holding every tensor.
public struct MomoTotals: Sendable, Equatable, Codable {
    /// S_dot = Σ ⟨θ, d⟩ (MoMo) or Σ ⟨θ, m⟩ (MoMo-Adam).
    public var parameterDotAverage: Double
    /// S_γ = Σ γ, with each tensor's γ (`grad_dot_w`) after this step's update.
    public var gamma: Double
    /// N = Σ ‖d‖² (MoMo) or Σ ⟨m, m/P⟩ (MoMo-Adam).
    public var averageSquaredNorm: Double

    /// Zero sums, or the given ones.
    public init(parameterDotAverage: Double = 0, gamma: Double = 0, averageSquaredNorm: Double = 0) {
        self.parameterDotAverage = parameterDotAverage
        self.gamma = gamma
        self.averageSquaredNorm = averageSquaredNorm
    }

    /// One tensor's values: its kernel sums and its new γ.
    init(_ sums: MomoKernel.Sums, gamma: Double) {
        self.init(parameterDotAverage: sums.parameterDotAverage, gamma: gamma, averageSquaredNorm: sums.averageSquaredNorm)
    }

    /// Adds one tensor's values, member by member (the fold step of the contract above).
    public mutating func add(_ tensor: MomoTotals) {
        parameterDotAverage += tensor.parameterDotAverage
        gamma += tensor.gamma
        averageSquaredNorm += tensor.averageSquaredNorm
    }

    /// Whether every member is a finite number.
    public var isFinite: Bool { parameterDotAverage.isFinite && gamma.isFinite && averageSquaredNorm.isFinite }

    /// The JSON names of the members.
    public enum CodingKeys: String, CodingKey, CaseIterable {
        case gamma
        case parameterDotAverage = "parameter_dot_average"
        case averageSquaredNorm = "average_squared_norm"
    }
}
