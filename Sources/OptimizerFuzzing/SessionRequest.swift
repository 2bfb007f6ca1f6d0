import Foundation
import OptimizerKit
import OptimizerWire

/// The session-creation body, decoded as the daemon's `CreateSessionRequest` does (the strict check
/// of ``OptimizerWire/JSONBody``, Foundation's `JSONDecoder`, then `SessionConfiguration`), minus its
/// refusal of unknown members.
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
    /// - Throws: ``OptimizerWire/JSONBodyError`` for invalid JSON or a duplicate key, `DecodingError`
    ///   for JSON of the wrong shape, ``OptimizerError`` for a bad configuration.
    static func configuration(from body: UnsafeRawBufferPointer) throws -> SessionConfiguration {
        try JSONBody.check(body)
        let request = try JSONDecoder().decode(SessionRequest.self, from: Data(body))
        return try SessionConfiguration(
            optimizer: request.optimizer,
            hyperparameters: request.hyperparameters ?? [:],
            groups: (request.groups ?? []).map { ParameterGroup(parameters: $0.parameters, hyperparameters: $0.hyperparameters ?? [:]) }
        )
    }
}
