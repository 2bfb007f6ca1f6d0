/// A hyperparameter value as it arrives in JSON: a number, a flag, a list (e.g. `betas`), a string or null.
public enum HyperparameterValue: Sendable, Hashable, Codable, CustomStringConvertible {
    case number(Double)
    case bool(Bool)
    case string(String)
    case list([HyperparameterValue])
    case null

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let flag = try? container.decode(Bool.self) {
            self = .bool(flag)
        } else if let number = try? container.decode(Double.self) {
            self = .number(number)
        } else if let text = try? container.decode(String.self) {
            self = .string(text)
        } else if let list = try? container.decode([HyperparameterValue].self) {
            self = .list(list)
        } else {
            throw DecodingError.dataCorruptedError(
                in: container,
                debugDescription: "a hyperparameter must be a number, a boolean, a string, a list or null"
            )
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .number(let value): try container.encode(value)
        case .bool(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .list(let value): try container.encode(value)
        case .null: try container.encodeNil()
        }
    }

    /// The value as an error message quotes it: JSON-like, strings and lists abbreviated
    /// (``Swift/String/abbreviated``), so a hostile value cannot make a message long.
    public var description: String {
        switch self {
        case .number(let value): return value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : "\(value)"
        case .bool(let value): return String(value)
        case .string(let value): return "\"\(value.abbreviated)\""
        case .list(let values): return ("[" + values.prefix(101).map(\.description).joined(separator: ", ") + "]").abbreviated
        case .null: return "null"
        }
    }
}

/// Hyperparameters by their reference names (`lr`, `betas`, `weight_decay`, ...).
public typealias Hyperparameters = [String: HyperparameterValue]
