/// Reads hyperparameters by name with defaults and range checks, and records the effective values.
///
/// Every read removes the key from the pending set; ``finish()`` rejects whatever is left, so a typo
/// such as `weight_decy` is an error rather than silently ignored.
struct HyperparameterReader {
    private var pending: Hyperparameters
    /// The effective values (given or defaulted) of everything read so far.
    private(set) var effective: Hyperparameters = [:]
    /// Prefix for field names in errors, e.g. `groups[1].hyperparameters.`.
    let fieldPrefix: String
    /// The optimizer name, for error messages.
    let optimizer: String

    init(_ values: Hyperparameters, optimizer: String, fieldPrefix: String = "hyperparameters.") {
        self.pending = values
        self.optimizer = optimizer
        self.fieldPrefix = fieldPrefix
    }

    /// Whether `key` was given explicitly (and not yet read).
    func has(_ key: String) -> Bool {
        if case .some(.null) = pending[key] { return false }
        return pending[key] != nil
    }

    private func field(_ key: String) -> String { fieldPrefix + key }

    private func invalid(_ key: String, _ message: String) -> OptimizerError {
        .invalidHyperparameter(field: field(key), message)
    }

    /// A number with a default and an allowed range.
    mutating func double(_ key: String, default value: Double, _ range: ValueRange = .any) throws -> Double {
        let result = try optionalDouble(key, range) ?? value
        effective[key] = .number(result)
        return result
    }

    /// A number that may be absent (`null` or omitted), e.g. Adafactor's `lr` and `beta1`.
    mutating func optionalDouble(_ key: String, _ range: ValueRange = .any) throws -> Double? {
        guard let raw = pending.removeValue(forKey: key) else {
            effective[key] = HyperparameterValue.null
            return nil
        }
        switch raw {
        case .null:
            effective[key] = .null
            return nil
        case .number(let value):
            guard range.contains(value) else {
                throw invalid(key, "must be \(range.text(refusing: value)) for \(optimizer), got \(raw)")
            }
            effective[key] = .number(value)
            return value
        default:
            throw invalid(key, "must be a number (\(range.text)), got \(raw)")
        }
    }

    /// A whole number with a default and an allowed range.
    mutating func integer(_ key: String, default value: Int, _ range: ValueRange = .any) throws -> Int {
        let result = try double(key, default: Double(value), range)
        guard result == result.rounded() else { throw invalid(key, "must be a whole number, got \(result)") }
        return Int(result)
    }

    /// A flag with a default.
    mutating func bool(_ key: String, default value: Bool) throws -> Bool {
        let result: Bool
        switch pending.removeValue(forKey: key) {
        case nil, .some(.null): result = value
        case .some(.bool(let flag)): result = flag
        case .some(let other): throw invalid(key, "must be true or false, got \(other)")
        }
        effective[key] = .bool(result)
        return result
    }

    /// A string from a fixed set, with a default.
    mutating func choice(_ key: String, default value: String, among choices: [String]) throws -> String {
        let result: String
        switch pending.removeValue(forKey: key) {
        case nil, .some(.null): result = value
        case .some(.string(let text)) where choices.contains(text): result = text
        case .some(let other):
            throw invalid(key, "must be one of \(choices.map { "\"\($0)\"" }.joined(separator: ", ")), got \(other)")
        }
        effective[key] = .string(result)
        return result
    }

    /// A fixed-length list of numbers (e.g. `betas`), each checked against its own range.
    mutating func doubles(_ key: String, default values: [Double], _ ranges: [ValueRange]) throws -> [Double] {
        precondition(values.count == ranges.count)
        let result: [Double]
        switch pending.removeValue(forKey: key) {
        case nil, .some(.null): result = values
        case .some(.list(let items)):
            guard items.count == values.count else {
                throw invalid(key, "must be a list of \(values.count) numbers, got \(items.count)")
            }
            result = try items.enumerated().map { index, item in
                guard case .number(let value) = item else {
                    throw invalid("\(key)[\(index)]", "must be a number, got \(item)")
                }
                guard ranges[index].contains(value) else {
                    throw invalid("\(key)[\(index)]", "must be \(ranges[index].text(refusing: value)) for \(optimizer), got \(item)")
                }
                return value
            }
        case .some(let other):
            throw invalid(key, "must be a list of \(values.count) numbers, got \(other)")
        }
        effective[key] = .list(result.map { .number($0) })
        return result
    }

    /// An optional list of numbers of a given length (e.g. MTAdam's `term_weights`).
    mutating func optionalDoubles(_ key: String, count: Int, _ range: ValueRange = .any) throws -> [Double]? {
        switch pending[key] {
        case nil, .some(.null):
            pending[key] = nil
            effective[key] = .null
            return nil
        default:
            return try doubles(key, default: Array(repeating: 0, count: count), Array(repeating: range, count: count))
        }
    }

    /// Fails if any key was given but never read.
    func finish() throws {
        if let unknown = pending.keys.sorted().first {
            throw OptimizerError.unknownHyperparameter(field: field(unknown), optimizer: optimizer)
        }
    }
}
