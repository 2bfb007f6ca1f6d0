/// Float32 ↔ bfloat16 for compact optimizer state: bfloat16 is the upper half of a float32, and
/// rounding is to nearest, ties to even (NaN stays a quiet NaN). The C kernels' vector forms
/// (`Sources/CLowBit/bf16_adam_kernel.c`) give the same bits.
enum BFloat16 {
    /// The bfloat16 bits nearest to `value`.
    @inline(__always)
    static func bits(_ value: Float) -> UInt16 {
        guard !value.isNaN else { return 0x7FC0 }
        let bits = value.bitPattern
        return UInt16(truncatingIfNeeded: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
    }

    /// The float32 value of bfloat16 `bits` (exact).
    @inline(__always)
    static func float(_ bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }
}

extension PackedTensor {
    /// The L2 norm of a bfloat16 tensor, accumulated in Double in element order (NaN for 8-bit codes,
    /// whose values need the block scales: ``StateSlots/norm(of:)``).
    public var norm: Double {
        guard element == .bfloat16 else { return .nan }
        let bits = bfloat16Bits
        var sum = 0.0
        for i in 0..<count {
            let x = Double(BFloat16.float(bits[i]))
            sum += x * x
        }
        return sum.squareRoot()
    }
}
