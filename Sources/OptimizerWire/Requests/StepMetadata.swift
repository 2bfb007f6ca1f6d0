import Foundation
import OptimizerKit

/// The `__metadata__` of a step request that the step uses: all values are strings, some of them JSON.
///
/// This is the only parser of these keys: the daemon and the fuzz harness both read a step body's
/// metadata through it.
public struct StepMetadata: Sendable, Equatable {
    /// The step this request makes (current + 1), or the current step for a retry.
    public var step: Int?
    /// The batch loss (MTAdam: a JSON list of per-term losses is accepted and summed for telemetry).
    public var loss: Double?
    /// MTAdam term weights for this step.
    public var termWeights: [Double]?
    /// Divide every gradient by this first.
    public var gradScale: Double?

    /// Parses the known keys; other keys are ignored (clients may label their requests).
    ///
    /// Numbers are read as Python writes them (`str(float)`): `nan`, `inf` and `-inf` included, and
    /// also `infinity` and `+inf` in any case.
    ///
    /// - Throws: ``StepRequestError`` (``StepRequestError/Code-swift.struct/invalidMetadata``) naming the key.
    public init(_ metadata: [String: String]) throws {
        if let text = metadata["step"] {
            guard let value = Int(text.trimmingCharacters(in: .whitespaces)), value >= 0 else {
                throw StepRequestError.invalidMetadata("step", "must be a non-negative integer, got \"\(text.abbreviated)\"")
            }
            step = value
        }
        if let text = metadata["loss"] {
            if let value = Self.number(text) {
                loss = value
            } else if let values = Self.numbers(text) {
                loss = values.reduce(0, +)
            } else {
                throw StepRequestError.invalidMetadata(
                    "loss", "must be a number (or a JSON list of per-term losses), got \"\(text.abbreviated)\"")
            }
        }
        if let text = metadata["term_weights"] {
            guard let values = Self.numbers(text) else {
                throw StepRequestError.invalidMetadata("term_weights", "must be a JSON list of numbers, got \"\(text.abbreviated)\"")
            }
            termWeights = values
        }
        if let text = metadata["grad_scale"] {
            guard let value = Self.number(text) else {
                throw StepRequestError.invalidMetadata("grad_scale", "must be a number, got \"\(text.abbreviated)\"")
            }
            gradScale = value
        }
    }

    /// No metadata: the next step, without a loss, term weights or gradient scale.
    public init() {}

    /// A number as Python writes it (`str(float)`), including `nan`, `inf` and `-inf`.
    private static func number(_ text: String) -> Double? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        switch trimmed.lowercased() {
        case "nan": return .nan
        case "inf", "infinity", "+inf": return .infinity
        case "-inf", "-infinity": return -.infinity
        default: return Double(trimmed)
        }
    }

    private static func numbers(_ text: String) -> [Double]? {
        try? JSONDecoder().decode([Double].self, from: Data(text.utf8))
    }
}
