/// An error about bad input to the optimizer library: a configuration or a step request.
///
/// The library never mentions HTTP; the server maps ``Code-swift.struct`` to a status
/// (configuration problems are 400, tensor problems 422). Every message names the field or tensor.
public struct OptimizerError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of problem this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        enum Base: String, Hashable, Sendable {
            case unknownOptimizer, unknownHyperparameter, invalidHyperparameter, invalidConfiguration
            case unknownTensor, shapeMismatch, missingTensor, duplicateTensor, nonFiniteValue, invalidStepInput
        }
        let base: Base

        /// An optimizer name that is not one of the eight.
        public static let unknownOptimizer = Code(base: .unknownOptimizer)
        /// A hyperparameter the optimizer does not have.
        public static let unknownHyperparameter = Code(base: .unknownHyperparameter)
        /// A hyperparameter of the wrong type or out of range.
        public static let invalidHyperparameter = Code(base: .invalidHyperparameter)
        /// A session configuration that does not hold together (groups, terms, ...).
        public static let invalidConfiguration = Code(base: .invalidConfiguration)
        /// A tensor name the session does not have.
        public static let unknownTensor = Code(base: .unknownTensor)
        /// A tensor whose shape differs from the parameter's.
        public static let shapeMismatch = Code(base: .shapeMismatch)
        /// A required tensor, term or value (e.g. the loss) is missing.
        public static let missingTensor = Code(base: .missingTensor)
        /// The same tensor was given twice.
        public static let duplicateTensor = Code(base: .duplicateTensor)
        /// NaN or infinity where a finite value is required.
        public static let nonFiniteValue = Code(base: .nonFiniteValue)
        /// A step input that is not a tensor is wrong (loss, term weights, gradient scale).
        public static let invalidStepInput = Code(base: .invalidStepInput)

        /// Whether the problem is in the configuration (as opposed to the tensors of a request).
        public var isConfigurationError: Bool {
            switch base {
            case .unknownOptimizer, .unknownHyperparameter, .invalidHyperparameter, .invalidConfiguration: return true
            default: return false
            }
        }

        public var description: String { base.rawValue }
    }

    /// The kind of problem.
    public let code: Code
    /// The offending field (e.g. `hyperparameters.lr`) or tensor name.
    public let subject: String
    /// A sentence that says what is wrong, naming `subject`.
    public let message: String

    public var description: String { message }

    static func unknownOptimizer(_ name: String, known: [String]) -> OptimizerError {
        OptimizerError(
            code: .unknownOptimizer,
            subject: "optimizer",
            message: "optimizer: unknown optimizer \"\(name.abbreviated)\"; expected one of \(known.joined(separator: ", "))"
        )
    }

    static func unknownHyperparameter(field: String, optimizer: String) -> OptimizerError {
        OptimizerError(
            code: .unknownHyperparameter,
            subject: field,
            message: "\(field.abbreviated): \(optimizer) has no hyperparameter of that name"
        )
    }

    static func invalidHyperparameter(field: String, _ detail: String) -> OptimizerError {
        OptimizerError(code: .invalidHyperparameter, subject: field, message: "\(field): \(detail)")
    }

    static func invalidConfiguration(field: String, _ detail: String) -> OptimizerError {
        OptimizerError(code: .invalidConfiguration, subject: field, message: "\(field): \(detail)")
    }

    /// A problem with one tensor of a request, named in the message.
    public static func tensor(_ code: Code, _ name: String, _ detail: String) -> OptimizerError {
        OptimizerError(code: code, subject: name, message: "tensor \"\(name)\": \(detail)")
    }

    static func stepInput(_ field: String, _ detail: String) -> OptimizerError {
        OptimizerError(code: .invalidStepInput, subject: field, message: "\(field): \(detail)")
    }
}
