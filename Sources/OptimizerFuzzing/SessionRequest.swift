import Foundation
import OptimizerKit

/// The session-creation body, decoded as the daemon's `CreateSessionRequest` does (Foundation's
/// `JSONDecoder`, then `SessionConfiguration`), minus its refusal of unknown members.
struct SessionRequest: Decodable {
    var optimizer: String
    var hyperparameters: Hyperparameters?
    var groups: [Group]?

    struct Group: Decodable {
        var parameters: [String]
        var hyperparameters: Hyperparameters?
    }

    /// Decodes and validates a configuration.
    ///
    /// - Throws: `DecodingError` for bad JSON, ``OptimizerError`` for a bad configuration.
    static func configuration(from body: UnsafeRawBufferPointer) throws -> SessionConfiguration {
        let request = try JSONDecoder().decode(SessionRequest.self, from: Data(body))
        return try SessionConfiguration(
            optimizer: request.optimizer,
            hyperparameters: request.hyperparameters ?? [:],
            groups: (request.groups ?? []).map { ParameterGroup(parameters: $0.parameters, hyperparameters: $0.hyperparameters ?? [:]) }
        )
    }
}

/// The scalars of a step body's `__metadata__` that `prepareStep` takes: `loss` (a number or a
/// JSON list of per-term losses, summed), `term_weights` (a JSON list) and `grad_scale`.
struct StepScalars {
    var loss: Double?
    var termWeights: [Double]?
    var gradScale: Double?

    init(_ metadata: [String: String]) throws {
        loss = try metadata["loss"].map { text in try Self.number(text) ?? Self.list(text, key: "loss").reduce(0, +) }
        termWeights = try metadata["term_weights"].map { try Self.list($0, key: "term_weights") }
        gradScale = try metadata["grad_scale"].map { text in
            guard let value = Self.number(text) else { throw RequestFuzz.InputError(description: "grad_scale \(text)") }
            return value
        }
    }

    /// A number as Python's `str(float)` writes it, `nan` and `inf` included.
    private static func number(_ text: String) -> Double? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        return Double(trimmed) ?? ["nan": .nan, "inf": .infinity, "-inf": -.infinity][trimmed.lowercased()]
    }

    private static func list(_ text: String, key: String) throws -> [Double] {
        guard let values = try? JSONDecoder().decode([Double].self, from: Data(text.utf8)) else {
            throw RequestFuzz.InputError(description: "\(key) \(text)")
        }
        return values
    }
}
