/// How a session stores its optimizer moments (DESIGN §10): float32, bfloat16, or bitsandbytes'
/// block-wise 8-bit codes. Parameters are float32 in every case.
public enum StateDType: String, Sendable, Codable, CaseIterable {
    /// Float32 moments (the default).
    case f32
    /// Bfloat16 moments: each step widens them to float32, updates, and rounds back to nearest even.
    case bf16
    /// bitsandbytes 0.50.2's `Adam8bit` state: per moment one code per element and one float32 absmax
    /// per block of 256; tensors below ``Int8AdamKernel/minimumSize`` elements keep float32 moments.
    case int8

    /// Parses the `state_dtype` option.
    ///
    /// - Throws: ``OptimizerError`` naming `state_dtype` for an unknown value.
    public init(option value: String) throws {
        guard let dtype = StateDType(rawValue: value) else {
            throw OptimizerError.invalidConfiguration(
                field: "state_dtype",
                "unknown state dtype \"\(value.abbreviated)\"; expected one of \(StateDType.allCases.map(\.rawValue).joined(separator: ", "))"
            )
        }
        self = dtype
    }

    /// The optimizers that can keep their state in this dtype.
    public var optimizers: [OptimizerKind] {
        switch self {
        case .f32: OptimizerKind.allCases
        case .bf16, .int8: [.adam, .adamw]
        }
    }

    /// Bytes of optimizer state per element of a two-moment parameter of `count` elements
    /// (Adam's `exp_avg` and `exp_avg_sq`), the absmax blocks included.
    public func momentBytes(count: Int) -> Int {
        switch self {
        case .f32: return 8 * count
        case .bf16: return 4 * count
        case .int8:
            guard count >= Int8AdamKernel.minimumSize else { return 8 * count }
            return 2 * count + 2 * 4 * Int8AdamKernel.blockCount(count)
        }
    }
}

extension SessionConfiguration {
    /// Checks a `state_dtype` given with a change (PATCH): it may only repeat the session's own.
    ///
    /// - Throws: ``OptimizerError`` naming `state_dtype` when `requested` differs.
    public func checkStateDType(unchangedBy requested: StateDType?) throws {
        guard let requested, requested != stateDType else { return }
        throw OptimizerError.invalidConfiguration(
            field: "state_dtype",
            "the state dtype of a session cannot change (it is \(stateDType.rawValue)); restore a checkpoint into a new \(requested.rawValue) session instead"
        )
    }
}
