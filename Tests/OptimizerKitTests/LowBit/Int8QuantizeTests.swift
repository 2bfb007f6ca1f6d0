import Testing

@testable import OptimizerKit

/// The block quantizer's vector form (C, every variant this CPU runs) against the scalar definition
/// (bitsandbytes' `quantize_cpu`): the same absmax bits (NaN ignored) and, value by value, the code
/// of ``DynamicMap/cell(_:scale:)``
/// — on random blocks salted with NaN, ±0, ±∞, subnormals and values on the table's cell edges,
/// at every block length the kernel meets (whole blocks and a tensor's partial last block).
struct Int8QuantizeTests {
    /// NaNs whose payload bits would pick a cell if they reached the table index unchecked.
    static let payloadNaN = Float(bitPattern: 0x7FC0_1234), signalingNaN = Float(bitPattern: 0xFF80_0F01)

    /// Block lengths: full, one short, around the 8-lane boundary, and tiny partial blocks.
    static let counts = [256, 255, 249, 248, 100, 17, 16, 9, 8, 7, 1]

    @Test(arguments: counts)
    func vectorQuantizerIsTheScalarDefinition(count: Int) {
        var rng = SeededRandom(seed: UInt64(count))
        for round in 0..<300 {
            var x = (0..<count).map { _ in Float.random(in: -1...1, using: &rng) * Float(round % 7 + 1) }
            switch round % 6 {
            case 0: salt(&x, with: [.nan, 0, -0.0, -.nan, Self.payloadNaN, Self.signalingNaN], rng: &rng)
            case 1: salt(&x, with: [.infinity], rng: &rng)
            case 2: salt(&x, with: [-.infinity, .nan], rng: &rng)
            case 3: x = x.map { $0 * Float.leastNormalMagnitude / 16 }  // all subnormal: 1/absmax near or past the float range
            case 4: salt(&x, with: cellEdges(absmax: x.map(abs).max()!, rng: &rng), rng: &rng)
            default: salt(&x, with: [Float.leastNonzeroMagnitude, -Float.leastNormalMagnitude, 1e-30], rng: &rng)
            }
            var largest: Float = 0
            for value in x where abs(value) > largest { largest = abs(value) }
            for map in [DynamicMap.signed, DynamicMap.unsigned] {
                let expected = x.map { largest == 0 ? 0 : map.table[DynamicMap.cell($0, scale: 1 / largest)] }
                for variant in KernelVariant.supported {
                    let (codes, absmax) = quantized(x, map: map, variant: variant)
                    #expect(absmax.bitPattern == largest.bitPattern, "\(variant) round \(round)")
                    #expect(codes == expected, "\(variant) round \(round)")
                }
            }
        }
    }

    /// The scalar kernel's quantizer agrees with the vector one on the same blocks.
    @Test func scalarReferenceAgrees() {
        var rng = SeededRandom(seed: 7)
        for count in Self.counts {
            var x = (0..<count).map { _ in Float.random(in: -3...3, using: &rng) }
            salt(&x, with: [.nan, .infinity, -0.0, Self.payloadNaN], rng: &rng)
            for map in [DynamicMap.signed, DynamicMap.unsigned] {
                var codes = [UInt8](repeating: 0, count: count)
                var absmax: Float = -1
                x.withUnsafeBufferPointer { x in
                    codes.withUnsafeMutableBufferPointer { codes in
                        Int8AdamKernel.quantizeScalar(x.baseAddress!, count: count, map: map, codes: codes.baseAddress!, absmax: &absmax)
                    }
                }
                for variant in KernelVariant.supported {
                    let (vectorCodes, vectorAbsmax) = quantized(x, map: map, variant: variant)
                    #expect(codes == vectorCodes && absmax.bitPattern == vectorAbsmax.bitPattern, "\(variant)")
                }
            }
        }
    }

    @Test(arguments: [Float(0), -0.0])
    func allZeroBlockHasZeroCodesAndScale(zero: Float) {
        for count in Self.counts {
            for variant in KernelVariant.supported {
                let (codes, absmax) = quantized([Float](repeating: zero, count: count), map: .signed, variant: variant, fill: 9)
                #expect(absmax.bitPattern == 0 && codes.allSatisfy { $0 == 0 }, "\(variant)")
            }
        }
    }

    @Test func nanOnlyBlockIsAllZero() {
        for variant in KernelVariant.supported {
            let (codes, absmax) = quantized([Float](repeating: .nan, count: 256), map: .unsigned, variant: variant, fill: 9)
            #expect(absmax.bitPattern == 0 && codes.allSatisfy { $0 == 0 }, "\(variant)")
        }
    }

    /// Runs the vector quantizer on `x`; codes start as `fill` so that unwritten ones show.
    private func quantized(_ x: [Float], map: DynamicMap, variant: KernelVariant = .active, fill: UInt8 = 77) -> ([UInt8], Float) {
        var codes = [UInt8](repeating: fill, count: x.count)
        var absmax: Float = -1
        x.withUnsafeBufferPointer { x in
            codes.withUnsafeMutableBufferPointer { codes in
                Int8AdamKernel.quantize(x.baseAddress!, count: x.count, map: map, codes: codes.baseAddress!, absmax: &absmax, variant: variant)
            }
        }
        return (codes, absmax)
    }

    /// Values whose scaled form lies on, or one ulp either side of, an edge between two table
    /// cells (fma(t, 65535, 0.5) an integer), and ±absmax itself and its neighbours (the clamp).
    private func cellEdges(absmax: Float, rng: inout SeededRandom) -> [Float] {
        var values: [Float] = [absmax, -absmax, absmax.nextDown, -absmax.nextDown]
        for _ in 0..<6 {
            let k = Float(Int.random(in: 1...65535, using: &rng))
            let edge = absmax * ((k - 0.5) / 65535 * 2 - 1)
            values += [edge, edge.nextUp, edge.nextDown]
        }
        return values
    }

    /// Writes `specials` at random places of `x` (as many as fit).
    private func salt(_ x: inout [Float], with specials: [Float], rng: inout SeededRandom) {
        for special in specials.prefix(x.count) { x[Int.random(in: 0..<x.count, using: &rng)] = special }
    }
}
