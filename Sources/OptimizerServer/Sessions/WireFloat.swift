import OptimizerWire

/// The float formats tensors can be sent back in.
enum WireFloat: String, Sendable, CaseIterable {
    case f32, f16, bf16

    /// The safetensors dtype.
    var dtype: DType {
        switch self {
        case .f32: return .F32
        case .f16: return .F16
        case .bf16: return .BF16
        }
    }
}
