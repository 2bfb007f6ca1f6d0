import Foundation

/// The `__metadata__` of a step request: all values are strings, some of them JSON.
struct StepMetadata: Sendable, Equatable {
    /// The step this request makes (current + 1), or the current step for a retry.
    var step: Int?
    /// The batch loss (MTAdam: a JSON list of per-term losses is accepted and summed for telemetry).
    var loss: Double?
    /// MTAdam term weights for this step.
    var termWeights: [Double]?
    /// Divide every gradient by this first.
    var gradScale: Double?

    /// Parses the known keys; other keys are ignored (clients may label their requests).
    ///
    /// - Throws: ``ProblemError`` (400) naming the metadata key.
    init(_ metadata: [String: String]) throws {
        if let text = metadata["step"] {
            guard let value = Int(text.trimmingCharacters(in: .whitespaces)), value >= 0 else {
                throw Self.invalid("step", "must be a non-negative integer, got \"\(text)\"")
            }
            step = value
        }
        if let text = metadata["loss"] {
            if let value = Self.number(text) {
                loss = value
            } else if let values = Self.numbers(text) {
                loss = values.reduce(0, +)
            } else {
                throw Self.invalid("loss", "must be a number (or a JSON list of per-term losses), got \"\(text)\"")
            }
        }
        if let text = metadata["term_weights"] {
            guard let values = Self.numbers(text) else {
                throw Self.invalid("term_weights", "must be a JSON list of numbers, got \"\(text)\"")
            }
            termWeights = values
        }
        if let text = metadata["grad_scale"] {
            guard let value = Self.number(text) else {
                throw Self.invalid("grad_scale", "must be a number, got \"\(text)\"")
            }
            gradScale = value
        }
    }

    init() {}

    private static func invalid(_ key: String, _ detail: String) -> ProblemError {
        .badRequest("invalid-metadata", "__metadata__.\(key): \(detail)")
    }

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
