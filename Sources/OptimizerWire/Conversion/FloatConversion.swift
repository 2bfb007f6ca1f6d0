/// Conversions between `Float` and the 16-bit float formats of the wire: IEEE binary16 (`F16`)
/// and bfloat16 (`BF16`), one value at a time (this file) or over whole buffers
/// (`FloatConversion+bulk.swift`).
///
/// Narrowing rounds to nearest, ties to even, as PyTorch and NumPy do. Values too large for the
/// format become infinity of the same sign; values too small become subnormals or signed zero.
/// NaN stays NaN with its sign, quieted (the payload is not kept). Widening is exact.
///
/// The functions are branch-free bit manipulation so that loops over them vectorize; they do not
/// depend on the host having hardware half-precision support, but they do assume the default
/// floating-point environment (round to nearest, no flush-to-zero), as all Swift code does.
public enum FloatConversion {
    // MARK: F16

    /// Rounds a `Float` to the nearest IEEE binary16 value and returns its bit pattern.
    ///
    /// - Parameter value: Any `Float`, including NaN, infinities and subnormals.
    /// - Returns: The binary16 bits; NaN becomes a quiet NaN (`0x7E00`) with the input's sign.
    @inlinable
    public static func float16Bits(from value: Float) -> UInt16 {
        // From Marat Dukhan's FP16 library (MIT): scaling by 2^112 then 2^-110 makes the FPU do the
        // rounding (overflow goes to infinity); adding a bias aligns the mantissa so the FPU also
        // rounds to 10 bits, ties to even, including into the subnormal range.
        let scaleToInfinity = Float(bitPattern: 0x7780_0000)  // 2^112
        let scaleToZero = Float(bitPattern: 0x0880_0000)  // 2^-110
        var base = (abs(value) * scaleToInfinity) * scaleToZero
        let bits = value.bitPattern
        let shiftedBits = bits &+ bits
        let sign = bits & 0x8000_0000
        var bias = shiftedBits & 0xFF00_0000
        if bias < 0x7100_0000 { bias = 0x7100_0000 }
        base = Float(bitPattern: (bias >> 1) &+ 0x0780_0000) + base
        let rounded = base.bitPattern
        let exponentBits = (rounded >> 13) & 0x0000_7C00
        let mantissaBits = rounded & 0x0000_0FFF
        let magnitude = shiftedBits > 0xFF00_0000 ? 0x7E00 : exponentBits &+ mantissaBits
        return UInt16(truncatingIfNeeded: (sign >> 16) | magnitude)
    }

    /// Returns the `Float` equal to an IEEE binary16 value (exact: every binary16 value is a `Float`).
    ///
    /// - Parameter bits: The binary16 bit pattern.
    /// - Returns: The same value; a NaN stays a NaN with its sign and is quieted.
    @inlinable
    public static func float(fromFloat16Bits bits: UInt16) -> Float {
        let word = UInt32(bits) << 16
        let sign = word & 0x8000_0000
        let shiftedWord = word &+ word
        // Normal numbers, infinities and NaN: move exponent and mantissa into place, then rescale.
        let exponentOffset: UInt32 = 0xE0 << 23
        let normalized = Float(bitPattern: (shiftedWord >> 4) &+ exponentOffset) * Float(bitPattern: 0x0780_0000)
        // Subnormals: build 0.5 + mantissa·2^-24 exactly, then subtract the 0.5.
        let denormalized = Float(bitPattern: (shiftedWord >> 17) | (126 << 23)) - 0.5
        let magnitude = shiftedWord < (1 << 27) ? denormalized.bitPattern : normalized.bitPattern
        return Float(bitPattern: sign | magnitude)
    }

    // MARK: BF16

    /// Rounds a `Float` to the nearest bfloat16 value and returns its bit pattern.
    ///
    /// - Parameter value: Any `Float`, including NaN, infinities and subnormals.
    /// - Returns: The bfloat16 bits (the upper half of the rounded `Float`); NaN becomes a quiet NaN
    ///   with the input's sign and the upper bits of its payload.
    @inlinable
    public static func bfloat16Bits(from value: Float) -> UInt16 {
        let bits = value.bitPattern
        let isNaN = bits & 0x7FFF_FFFF > 0x7F80_0000
        // Round to nearest even: add half an ulp of the result, less one unless the kept lsb is odd.
        let rounded = (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16
        let quietNaN = (bits >> 16) | 0x0040
        return UInt16(truncatingIfNeeded: isNaN ? quietNaN : rounded)
    }

    /// Returns the `Float` equal to a bfloat16 value (exact: bfloat16 is the upper half of a `Float`).
    ///
    /// - Parameter bits: The bfloat16 bit pattern.
    @inlinable
    public static func float(fromBFloat16Bits bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }
}
