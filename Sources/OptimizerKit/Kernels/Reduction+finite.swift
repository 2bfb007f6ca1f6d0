extension Reduction {
    /// The index of the first NaN or infinity in `x`, or nil when every value is finite.
    ///
    /// Looks at 64 values per round (a value is not finite when its exponent bits are all ones: the
    /// largest masked exponent of the round tells), and value by value only from the round that has
    /// one. `firstIndex(where: { !$0.isFinite })` tested one value per iteration: ~14 % of a large
    /// parameter upload's daemon time.
    public static func firstNonFinite(_ x: UnsafeBufferPointer<Float>) -> Int? {
        typealias Bits = SIMD16<UInt32>
        let exponent = Bits(repeating: 0x7F80_0000)
        var start = 0
        if let base = x.baseAddress {
            let raw = UnsafeRawPointer(base)
            let stride = MemoryLayout<Bits>.size
            while start + 64 <= x.count {
                let offset = start * MemoryLayout<Float>.size
                var largest = raw.loadUnaligned(fromByteOffset: offset, as: Bits.self) & exponent
                for block in 1..<4 {
                    let bits = raw.loadUnaligned(fromByteOffset: offset + block * stride, as: Bits.self) & exponent
                    largest = pointwiseMax(largest, bits)
                }
                if largest.max() == 0x7F80_0000 { break }
                start += 64
            }
        }
        return x[start...].firstIndex { !$0.isFinite }
    }
}
