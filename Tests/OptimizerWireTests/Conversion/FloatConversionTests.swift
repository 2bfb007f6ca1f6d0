import Testing

@testable import OptimizerWire

/// F16 is checked against hand-picked values and against Swift's `Float16` (itself checked by the
/// hand-picked values); BF16 against an independent rounding reference.
struct FloatConversionTests {
    typealias Conv = FloatConversion

    static func f16(_ x: Float) -> UInt16 { Conv.float16Bits(from: x) }
    static func bf16(_ x: Float) -> UInt16 { Conv.bfloat16Bits(from: x) }

    // MARK: F16 known values

    @Test func f16RoundsHalfwayCasesToEven() {
        #expect(Self.f16(1 + 0x1p-11) == 0x3C00)  // tie between 1 and 1+2^-10: keep even 1
        #expect(Self.f16(1 + 3 * 0x1p-11) == 0x3C02)  // tie between 1+2^-10 and 1+2^-9: round up to even
        #expect(Self.f16((1 + 0x1p-11).nextUp) == 0x3C01)  // just past the tie
        #expect(Self.f16(-(1 + 0x1p-11)) == 0xBC00)
    }

    @Test func f16OverflowsToInfinityAndKeepsMaxFinite() {
        #expect(Self.f16(65504) == 0x7BFF)
        #expect(Self.f16(65519.996) == 0x7BFF)  // below the tie with 65536
        #expect(Self.f16(65520) == 0x7C00)  // the tie rounds to even: infinity
        #expect(Self.f16(1e6) == 0x7C00)
        #expect(Self.f16(-.greatestFiniteMagnitude) == 0xFC00)
        #expect(Self.f16(.infinity) == 0x7C00 && Self.f16(-.infinity) == 0xFC00)
    }

    @Test func f16HandlesSubnormalsAndUnderflow() {
        #expect(Self.f16(0x1p-24) == 0x0001)  // smallest subnormal
        #expect(Self.f16(0x1p-25) == 0x0000)  // tie with zero: even is zero
        #expect(Self.f16(Float(0x1p-25).nextUp) == 0x0001)
        #expect(Self.f16(3 * 0x1p-25) == 0x0002)  // tie between 1 and 2 subnormal ulps: even is 2
        #expect(Self.f16(0x1p-14 - 0x1p-24) == 0x03FF)  // largest subnormal
        #expect(Self.f16(0x1p-14) == 0x0400)  // smallest normal
        #expect(Self.f16(-0x1p-30) == 0x8000)  // underflow keeps the sign
        #expect(Self.f16(.leastNonzeroMagnitude) == 0x0000)
        #expect(Conv.float(fromFloat16Bits: 0x0001) == 0x1p-24)
        #expect(Conv.float(fromFloat16Bits: 0x83FF) == -(0x1p-14 - 0x1p-24))
    }

    @Test func f16KeepsNaNQuietWithItsSign() {
        let negativeNaN = Float(bitPattern: 0xFFC0_0001)
        #expect(Self.f16(.nan) == 0x7E00)
        #expect(Self.f16(negativeNaN) == 0xFE00)
        #expect(Self.f16(.signalingNaN) & 0x7E00 == 0x7E00)
        #expect(Self.f16(Float(bitPattern: 0x7F80_0001)) == 0x7E00)  // tiny payload is still NaN, not Inf
        let widened = Conv.float(fromFloat16Bits: 0xFC01)  // signaling F16 NaN
        #expect(widened.isNaN && !widened.isSignalingNaN && widened.sign == .minus)
    }

    // MARK: F16 sweeps

    @Test func everyF16BitPatternWidensExactlyAndRoundTrips() {
        for bits in UInt16.min...UInt16.max {
            let mine = Conv.float(fromFloat16Bits: bits)
            let reference = Float(Float16(bitPattern: bits))
            if reference.isNaN {
                #expect(mine.isNaN && mine.sign == reference.sign, "bits 0x\(String(bits, radix: 16))")
                #expect(Self.f16(mine) & 0x7FFF > 0x7C00)
            } else {
                #expect(mine.bitPattern == reference.bitPattern, "bits 0x\(String(bits, radix: 16))")
                #expect(Self.f16(mine) == bits, "bits 0x\(String(bits, radix: 16))")
            }
        }
    }

    @Test func f16RoundingMatchesFloat16AtEveryTieAndItsNeighbours() {
        var mismatches = 0
        for bits in UInt16(0)..<0x7C00 {
            let low = Conv.float(fromFloat16Bits: bits)
            let high = bits == 0x7BFF ? Float(65536) : Conv.float(fromFloat16Bits: bits + 1)
            let tie = (low + high) / 2  // exact: both are F16 values, far from Float's limits
            for x in [tie, tie.nextUp, tie.nextDown, low.nextUp, high.nextDown] {
                for signed in [x, -x] where Self.f16(signed) != Float16(signed).bitPattern {
                    mismatches += 1
                }
            }
        }
        #expect(mismatches == 0)
    }

    @Test func f16RoundingMatchesFloat16OnAStridedSweepOfAllFloats() {
        var mismatches = 0
        for step in 0..<(1 << 20) {
            let x = Float(bitPattern: UInt32(truncatingIfNeeded: UInt64(step) &* 4093 &+ UInt64(step >> 3)))
            let reference = Float16(x)
            if x.isNaN { continue }
            if Self.f16(x) != reference.bitPattern { mismatches += 1 }
        }
        #expect(mismatches == 0)
    }

    // MARK: BF16

    /// Round to nearest even by comparing distances in `Double` (independent of the bit trick).
    static func referenceBF16(_ x: Float) -> UInt16 {
        let truncated = UInt16(x.bitPattern >> 16)
        let low = Double(Float(bitPattern: UInt32(truncated) << 16))
        let ulp = Double(
            Float(bitPattern: (x.bitPattern & 0x7F80_0000) | 0x1_0000) - Float(bitPattern: x.bitPattern & 0x7F80_0000)
        )
        let step = x.bitPattern & 0x7F80_0000 == 0 ? 0x1p-133 : ulp  // subnormals: fixed spacing 2^-133
        let distanceBelow = abs(Double(x) - low)
        let distanceAbove = step - distanceBelow
        if distanceBelow < distanceAbove { return truncated }
        if distanceAbove < distanceBelow { return truncated &+ 1 }
        return truncated & 1 == 0 ? truncated : truncated &+ 1
    }

    @Test func everyBF16BitPatternRoundTrips() {
        for bits in UInt16.min...UInt16.max {
            let value = Conv.float(fromBFloat16Bits: bits)
            #expect(value.bitPattern == UInt32(bits) << 16)
            if value.isNaN {
                #expect(Self.bf16(value) & 0x7FFF > 0x7F80 && Self.bf16(value) & 0x8000 == bits & 0x8000)
            } else {
                #expect(Self.bf16(value) == bits, "bits 0x\(String(bits, radix: 16))")
            }
        }
    }

    @Test func bf16RoundingMatchesTheReferenceAtEveryTieAndItsNeighbours() {
        var mismatches = 0
        for bits in UInt16(0)..<0x7F80 {
            let base = UInt32(bits) << 16
            for offset: UInt32 in [0x7FFF, 0x8000, 0x8001, 0x0001, 0xFFFF, 0x4321] {
                let x = Float(bitPattern: base | offset)
                for signed in [x, -x] where !signed.isInfinite && Self.bf16(signed) != Self.referenceBF16(signed) {
                    mismatches += 1
                }
            }
        }
        #expect(mismatches == 0)
    }

    @Test func bf16SpecialValues() {
        #expect(Self.bf16(1 + 0x1p-8) == 0x3F80)  // tie: keep even
        #expect(Self.bf16(1 + 3 * 0x1p-8) == 0x3F82)  // tie: round up to even
        #expect(Self.bf16(.greatestFiniteMagnitude) == 0x7F80)  // above the largest BF16 tie: infinity
        #expect(Self.bf16(Float(bitPattern: 0x7F7F_7FFF)) == 0x7F7F)  // just below: largest finite
        #expect(Self.bf16(-.infinity) == 0xFF80)
        #expect(Self.bf16(Float(bitPattern: 0x0000_8000)) == 0x0000)  // subnormal tie to even zero
        #expect(Self.bf16(Float(bitPattern: 0x0001_8000)) == 0x0002)  // subnormal tie to even
        #expect(Self.bf16(Float(bitPattern: 0x7F80_0001)) == 0x7FC0)  // NaN with low payload stays NaN
        #expect(Self.bf16(Float(bitPattern: 0xFFC1_2345)) == 0xFFC1)  // sign and top payload kept
    }

    // MARK: Bulk

    @Test(arguments: [DType.F32, .F16, .BF16], [0, 1, 7, 33, 1000])
    func bulkConversionMatchesScalarAtAnyAlignment(dtype: DType, count: Int) {
        let values = SafetensorsWriterTests.sampleValues(count: count, seed: UInt64(count)) + []
        let size = dtype.byteSize! * count
        var raw = [UInt8](repeating: 0, count: size + 3)
        for misalignment in 0..<3 {
            raw.withUnsafeMutableBytes { buffer in
                let target = UnsafeMutableRawBufferPointer(rebasing: buffer[misalignment..<(misalignment + size)])
                values.withUnsafeBufferPointer { Conv.encode($0, as: dtype, into: target) }
                var decoded = [Float](repeating: .nan, count: count)
                decoded.withUnsafeMutableBufferPointer {
                    Conv.decode(UnsafeRawBufferPointer(target), from: dtype, into: $0)
                }
                for (i, value) in values.enumerated() {
                    let expected: Float =
                        switch dtype {
                        case .F16: Conv.float(fromFloat16Bits: Self.f16(value))
                        case .BF16: Conv.float(fromBFloat16Bits: Self.bf16(value))
                        default: value
                        }
                    #expect(decoded[i] == expected)
                }
            }
        }
    }
}
