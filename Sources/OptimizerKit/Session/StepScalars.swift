/// The global scalars of one step: what all of its gradients together say, however they arrived.
///
/// A one-request step computes them itself (``combine(sumsOfSquares:names:loss:termWeights:gradScale:needsLoss:)``);
/// a step in parts, or over shards, gets them from the caller, who folds the per-tensor statistics
/// of every part the same way. The reduction order is the contract that makes both give the same
/// bits:
///
/// - each tensor contributes `s · u · u`, where `s` is the float64 sum of squares of its gradient as
///   sent and `u = 1 / grad_scale` (1 without `grad_scale`);
/// - `termSquaredNorms[k]` is the left fold from 0.0 of term k's contributions in the session's
///   parameter order (absent tensors contribute nothing);
/// - the global gradient norm is √(left fold from 0.0 of `termSquaredNorms`), and term k's clip
///   coefficient is `min(1, clip_grad_norm / (√termSquaredNorms[k] + 1e-6))`;
/// - `nonfinite` is the first tensor, terms first then parameter order, whose sum of squares is
///   not finite (or `"loss"` when the loss of MoMo/MoMo-Adam is not);
/// - MoMo's and MoMo-Adam's `momoTotals` (only from a caller whose session is spread over daemons)
///   fold each tensor's ``MomoTotals`` from zero in the parameter order; without them a session
///   folds its own tensors' values the same way.
public struct StepScalars: Sendable, Equatable, Codable {
    /// Per loss term, the squared gradient norm over every parameter of the session (see above).
    public var termSquaredNorms: [Double]
    /// nil, or the name of the first non-finite gradient (or `"loss"`).
    public var nonfinite: String?
    /// The batch loss (required by MoMo and MoMo-Adam).
    public var loss: Double?
    /// MTAdam term weights for this step only.
    public var termWeights: [Double]?
    /// Divide every gradient by this first.
    public var gradScale: Double?
    /// MoMo / MoMo-Adam over shards: the session-wide sums of the step size (nil: this session's own).
    public var momoTotals: MomoTotals?

    /// Creates scalars.
    public init(
        termSquaredNorms: [Double], nonfinite: String? = nil, loss: Double? = nil, termWeights: [Double]? = nil,
        gradScale: Double? = nil, momoTotals: MomoTotals? = nil
    ) {
        self.termSquaredNorms = termSquaredNorms
        self.nonfinite = nonfinite
        self.loss = loss
        self.termWeights = termWeights
        self.gradScale = gradScale
        self.momoTotals = momoTotals
    }

    /// The JSON names of the members.
    public enum CodingKeys: String, CodingKey {
        case nonfinite, loss
        case termSquaredNorms = "term_squared_norms"
        case termWeights = "term_weights"
        case gradScale = "grad_scale"
        case momoTotals = "momo_totals"
    }

    /// The scalars of a step whose every gradient is at hand, in the contract's order.
    ///
    /// - Parameters:
    ///   - sumsOfSquares: `[term][parameter]` float64 sums of squares (0 where absent).
    ///   - names: `[term][parameter]` the names the gradients came under ("" where absent).
    ///   - needsLoss: Whether a non-finite loss counts as a non-finite step (MoMo, MoMo-Adam).
    public static func combine(
        sumsOfSquares: [[Double]], names: [[String]], loss: Double?, termWeights: [Double]?, gradScale: Double?,
        needsLoss: Bool
    ) -> StepScalars {
        let unscale = gradScale.map { 1 / $0 } ?? 1
        var nonfinite: String?
        var norms = [Double]()
        for (term, sums) in sumsOfSquares.enumerated() {
            var total = 0.0
            for (index, sum) in sums.enumerated() where !names[term][index].isEmpty {
                if !sum.isFinite, nonfinite == nil { nonfinite = names[term][index] }
                total += contribution(sumOfSquares: sum, unscale: unscale)
            }
            norms.append(total)
        }
        if nonfinite == nil, needsLoss, let loss, !loss.isFinite { nonfinite = "loss" }
        return StepScalars(termSquaredNorms: norms, nonfinite: nonfinite, loss: loss, termWeights: termWeights, gradScale: gradScale)
    }

    /// One tensor's term of ``termSquaredNorms``: `s · u · u`, in that order.
    public static func contribution(sumOfSquares: Double, unscale: Double) -> Double {
        sumOfSquares * unscale * unscale
    }
}
