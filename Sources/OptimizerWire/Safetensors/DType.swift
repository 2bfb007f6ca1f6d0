/// The element type of a tensor in a safetensors buffer.
///
/// The raw value is the string that appears in the `"dtype"` field of the header, so
/// `DType(rawValue: "BF16")` parses a header value. Every dtype that the reference
/// implementation (Rust `safetensors`) knows is listed, so a header that names a real but
/// unsupported dtype (say `F8_E4M3`) can be told apart from one that names garbage.
///
/// The optimizer daemon accepts ``F32``, ``F16`` and ``BF16`` for gradients and parameters
/// (see ``isWireFloat``); ``I32`` and ``I64`` carry sparse indices; ``F64`` and
/// ``I64`` appear in checkpoints.
public enum DType: String, Sendable, Hashable, CaseIterable {
    /// Boolean, one byte per element.
    case BOOL
    /// 4-bit float (E2M1), two elements per byte.
    case F4
    /// 6-bit float (E2M3).
    case F6_E2M3
    /// 6-bit float (E3M2).
    case F6_E3M2
    /// Unsigned 8-bit integer.
    case U8
    /// Signed 8-bit integer.
    case I8
    /// 8-bit float with 5 exponent and 2 mantissa bits.
    case F8_E5M2
    /// 8-bit float with 4 exponent and 3 mantissa bits.
    case F8_E4M3
    /// 8-bit exponent-only scale (E8M0).
    case F8_E8M0
    /// 8-bit float E4M3, no negative zero, no infinities.
    case F8_E4M3FNUZ
    /// 8-bit float E5M2, no negative zero, no infinities.
    case F8_E5M2FNUZ
    /// Signed 16-bit integer.
    case I16
    /// Unsigned 16-bit integer.
    case U16
    /// IEEE 754 half precision (binary16).
    case F16
    /// bfloat16: the upper 16 bits of an IEEE 754 single.
    case BF16
    /// Signed 32-bit integer.
    case I32
    /// Unsigned 32-bit integer.
    case U32
    /// IEEE 754 single precision.
    case F32
    /// Complex number made of two `F32`.
    case C64
    /// IEEE 754 double precision.
    case F64
    /// Signed 64-bit integer.
    case I64
    /// Unsigned 64-bit integer.
    case U64

    /// The size of one element in bits.
    ///
    /// Unlike ``byteSize`` this is defined for the sub-byte dtypes (`F4` is 4, `F6_*` are 6).
    public var bitWidth: Int {
        switch self {
        case .F4: 4
        case .F6_E2M3, .F6_E3M2: 6
        case .BOOL, .U8, .I8, .F8_E5M2, .F8_E4M3, .F8_E8M0, .F8_E4M3FNUZ, .F8_E5M2FNUZ: 8
        case .I16, .U16, .F16, .BF16: 16
        case .I32, .U32, .F32: 32
        case .C64, .F64, .I64, .U64: 64
        }
    }

    /// The size of one element in bytes, or `nil` for the sub-byte dtypes (`F4`, `F6_*`).
    public var byteSize: Int? {
        bitWidth % 8 == 0 ? bitWidth / 8 : nil
    }

    /// Whether this is one of the float dtypes the optimizer reads and writes: `F32`, `F16`, `BF16`.
    public var isWireFloat: Bool {
        self == .F32 || self == .F16 || self == .BF16
    }

    /// Whether this is a signed or unsigned integer dtype (`I8`…`I64`, `U8`…`U64`); `BOOL` is not.
    public var isInteger: Bool {
        switch self {
        case .I8, .I16, .I32, .I64, .U8, .U16, .U32, .U64: true
        default: false
        }
    }
}
