/// The eight optimizers, by their API names.
public enum OptimizerKind: String, CaseIterable, Sendable, Codable {
    case adam
    case adamw
    case sgd
    case adafactor
    case momo
    case momoAdam = "momo_adam"
    case mtadam
    case acclip

    /// Parses an API name, or throws an error listing the known ones.
    public init(name: String) throws {
        guard let kind = OptimizerKind(rawValue: name) else {
            throw OptimizerError.unknownOptimizer(name, known: OptimizerKind.allCases.map(\.rawValue))
        }
        self = kind
    }

    /// Whether one step couples all tensors (so every parameter's gradient is required).
    public var isCoupled: Bool { self == .momo || self == .momoAdam }

    /// Whether a step needs the batch loss.
    public var needsLoss: Bool { isCoupled }

    /// Whether every parameter must have a gradient in every step.
    public var needsEveryParameter: Bool { isCoupled || self == .mtadam }
}
