import Foundation
import OptimizerKit

/// A step in parts as the server keeps it between its parts and its commit: the library's
/// ``StagedStep``, what each part answered (for idempotent retries), when it expires, and the memory
/// its copies hold in the daemon's budget.
struct StagedStepState {
    /// The staged gradients.
    let staged: StagedStep
    /// Per part id: its answer (its tensors are compared with the staged copies on a retry).
    var parts: [String: StagedPart] = [:]
    /// The part ids in the order they were staged.
    var order: [String] = []
    /// When the parts are dropped unless committed.
    var expiresAt: Date
    /// The staged copies' bytes in the memory budget (nil while replaying the log).
    let memory: MemoryReservation?

    /// One accepted part.
    struct StagedPart {
        /// What the part answered.
        var answer: PartAnswer
    }
}

/// The answer to one part: per tensor its float64 sum of squares and whether it is finite.
struct PartAnswer: Codable, Sendable, Equatable {
    /// The step the part belongs to.
    var step: Int
    /// The part id.
    var part: String
    /// Per tensor name as sent: its statistics.
    var tensors: [String: Statistics]
    /// The tensors and bytes staged for the step so far (this part included).
    var staged: Totals

    /// One tensor's statistics. `sum_of_squares` is null when not finite (JSON has no NaN).
    struct Statistics: Codable, Sendable, Equatable {
        var sumOfSquares: Double?
        var finite: Bool

        enum CodingKeys: String, CodingKey {
            case finite
            case sumOfSquares = "sum_of_squares"
        }

        /// Writes `sum_of_squares` as null, not leaves it out, when it is not finite.
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(sumOfSquares, forKey: .sumOfSquares)
            try container.encode(finite, forKey: .finite)
        }
    }

    /// Counts of a staged step.
    struct Totals: Codable, Sendable, Equatable {
        var parts: Int
        var tensors: Int
        var bytes: Int
    }
}

/// What the session summary shows of a staged step.
struct StagedStepSummary: Codable, Sendable, Equatable {
    var step: Int
    var parts: [String]
    var tensors: Int
    var bytes: Int
    var expiresAt: String

    enum CodingKeys: String, CodingKey {
        case step, parts, tensors, bytes
        case expiresAt = "expires_at"
    }
}

extension StagedStepState {
    /// The summary of this staged step.
    var summary: StagedStepSummary {
        StagedStepSummary(
            step: staged.step, parts: order, tensors: staged.tensors.count, bytes: staged.byteCount,
            expiresAt: expiresAt.formatted(.iso8601))
    }
}
