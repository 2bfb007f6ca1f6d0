import Foundation
import Testing

@testable import OptimizerKit

/// The bfloat16-state Adam kernel against a float64 reference that rounds at the same points: each
/// step starts from the kernel's own state (bfloat16 moments, float32 θ), updates in Double, and
/// rounds the moments to the nearest bfloat16 (ties to even) with a search of its own.
struct BF16AdamKernelTests {
    /// The bfloat16 value nearest to `x` (ties to even), found by comparing the two neighbours.
    static func referenceBF16(_ x: Double) -> UInt16 {
        let f = Float(x)
        let truncated = f.bitPattern & 0xFFFF_0000
        let lower = Float(bitPattern: truncated), upper = Float(bitPattern: truncated &+ 0x1_0000)
        let dl = abs(x - Double(lower)), du = abs(x - Double(upper))
        if dl < du { return UInt16(truncated >> 16) }
        if du < dl { return UInt16((truncated &+ 0x1_0000) >> 16) }
        return (truncated >> 16) & 1 == 0 ? UInt16(truncated >> 16) : UInt16((truncated &+ 0x1_0000) >> 16)
    }

    @Test func roundingMatchesTheReferenceSearch() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<100_000 {
            let x = Float(bitPattern: UInt32.random(in: 0..<0x7F7F_0000, using: &rng)) * (Bool.random(using: &rng) ? 1 : -1)
            #expect(BFloat16.bits(x) == Self.referenceBF16(Double(x)), "\(x)")
        }
        #expect(BFloat16.bits(Float(bitPattern: 0x3F80_8000)) == 0x3F80)  // tie, even stays
        #expect(BFloat16.bits(Float(bitPattern: 0x3F81_8000)) == 0x3F82)  // tie, odd rounds up
        #expect(BFloat16.bits(.nan) == 0x7FC0)
    }

    /// The vector kernel of every variant this CPU runs (and the AVX-512 variant's rounding with
    /// AVX-512 BF16, where the CPU has it) gives the scalar kernel's θ and moments bit for bit, at
    /// every length around the 16- and 8-lane blocks, with each weight-decay form, on gradients
    /// salted with NaN, ±∞, subnormals and values that round to bfloat16 ties, and on moments salted
    /// with NaN and subnormals (and gradients that make new moments subnormal), the values that
    /// instruction rounds differently; ‖Δθ‖² is the same bits in every variant.
    @Test(arguments: [0, 1, 7, 8, 9, 15, 16, 17, 24, 31, 40, 1003])
    func everyVariantMatchesScalarBitForBit(count: Int) {
        var random = SeededRandom(seed: UInt64(count) + 1)
        var gradient = random.floats(count)
        let specials: [Float] = [.nan, .infinity, -.infinity, Float.leastNonzeroMagnitude, Float(bitPattern: 0x3F81_8000), 0, 1e-38, -3e-39]
        for (k, special) in specials.enumerated() where k * 5 < count { gradient[k * 5] = special }
        let parameter = random.floats(count)
        var moments = [random.floats(count, in: -0.1...0.1).map(BFloat16.bits), random.floats(count, in: 0...0.01).map(BFloat16.bits)]
        // NaN moments (2: v only, 3: m only) and, beside the zero and tiny gradients, moments whose
        // update is subnormal (25: v only, 30 and 35: both); later 16-lane blocks have none of these.
        let momentSpecials: [(Int, UInt16, UInt16)] = [
            (1, 0x0001, 0x0040), (2, 0x807F, 0x7FC0), (3, 0x7FC0, 0x0001), (25, 0x3C00, 0x0040), (30, 0, 0x0040), (35, 0x8001, 0x0001),
        ]
        for (index, m, v) in momentSpecials where index < count { (moments[0][index], moments[1][index]) = (m, v) }
        for (l2, decay) in [(Float(0), Float(1)), (0.01, 1), (0, 0.999), (0.01, 0.999)] {
            let c = AdamKernel.Coefficients(
                beta1: 0.9, beta2: 0.999, oneMinusBeta1: 0.1, oneMinusBeta2: 0.001,
                stepSize: 0.003, sqrtBiasCorrection2: 0.07, eps: 1e-8, decay: decay, l2: l2, gradientScale: 0.5
            )
            func run(_ kernel: (BF16AdamKernel.Buffers) -> Double) -> ([UInt32], [UInt16], [UInt16], Double) {
                var p = parameter, m = moments[0], v = moments[1]
                let update = p.withUnsafeMutableBufferPointer { p in
                    m.withUnsafeMutableBufferPointer { m in
                        v.withUnsafeMutableBufferPointer { v in
                            gradient.withUnsafeBufferPointer { g in
                                kernel(
                                    BF16AdamKernel.Buffers(
                                        parameter: p.baseAddress!, gradient: g.baseAddress!, expAvg: m.baseAddress!, expAvgSq: v.baseAddress!))
                            }
                        }
                    }
                }
                return (p.map(\.bitPattern), m, v, update)
            }
            let scalar = run { BF16AdamKernel.scalar($0, count: count, c) }
            var variants = KernelVariant.supported.map { variant in
                ("\(variant)", run { BF16AdamKernel.simd($0, count: count, c, variant: variant, converting: false) })
            }
            if BF16AdamKernel.cpuConverts {
                variants.append(("avx512 with AVX-512 BF16", run { BF16AdamKernel.simd($0, count: count, c, variant: .avx512, converting: true) }))
            }
            for (variant, outcome) in variants {
                let label = "\(variant), l2 \(l2), decay \(decay)"
                #expect(outcome.0 == scalar.0 && outcome.1 == scalar.1 && outcome.2 == scalar.2, "\(label)")
                #expect(outcome.3.bitPattern == variants[0].1.3.bitPattern, "\(label) ‖Δθ‖²")
            }
            if count > 0 { #expect(scalar.1.contains(0x7FC0), "a NaN gradient gives a NaN moment") }
            if count > 30, l2 == 0 {
                let subnormal = { (bits: UInt16) in bits & 0x7F80 == 0 && bits & 0x7F != 0 }
                #expect(subnormal(scalar.2[25]) && subnormal(scalar.1[30]) && subnormal(scalar.2[30]), "subnormal moments in a 16-lane block")
            }
        }
    }

    @Test(arguments: [(0.0, 0.0), (0.01, 0.0), (0.0, 0.05)])
    func stepsFollowTheFloat64Reference(weightDecayL2: Double, decoupled: Double) {
        let count = 1003
        let lr = 1e-2, beta1 = 0.9, beta2 = 0.999, eps = 1e-8
        var parameter = (0..<count).map { Float(sin(Double($0))) }
        var m = [UInt16](repeating: 0, count: count), v = m
        var identical = 0, compared = 0
        for t in 1...10 {
            let gradient = (0..<count).map { Float(cos(Double($0 * t)) * 0.1) }
            let bc1 = 1 - pow(beta1, Double(t)), bc2 = 1 - pow(beta2, Double(t))
            let c = AdamKernel.Coefficients(
                beta1: Float(beta1), beta2: Float(beta2), oneMinusBeta1: Float(1 - beta1), oneMinusBeta2: Float(1 - beta2),
                stepSize: Float(lr / bc1), sqrtBiasCorrection2: Float(bc2.squareRoot()), eps: Float(eps),
                decay: decoupled != 0 ? Float(1 - lr * decoupled) : 1, l2: Float(weightDecayL2), gradientScale: 1
            )
            let before = (parameter, m, v)
            var scalarCopy = (parameter, m, v)
            runKernel(&parameter, &m, &v, gradient, c, simd: true)
            runKernel(&scalarCopy.0, &scalarCopy.1, &scalarCopy.2, gradient, c, simd: false)
            #expect(parameter.map(\.bitPattern) == scalarCopy.0.map(\.bitPattern) && m == scalarCopy.1 && v == scalarCopy.2)
            for i in 0..<count {
                let p0 = Double(before.0[i])
                let g = Double(gradient[i]) + weightDecayL2 * p0
                let m0 = Double(BFloat16.float(before.1[i])), v0 = Double(BFloat16.float(before.2[i]))
                let mNew = m0 + (1 - beta1) * (g - m0)
                let vNew = v0 * beta2 + (1 - beta2) * g * g
                let p = p0 * (1 - lr * decoupled) - lr / bc1 * mNew / (vNew.squareRoot() / bc2.squareRoot() + eps)
                #expect(abs(Double(parameter[i]) - p) <= 4e-7 * max(1, abs(p)), "step \(t) θ[\(i)]")
                for (got, want) in [(m[i], Self.referenceBF16(mNew)), (v[i], Self.referenceBF16(vNew))] {
                    compared += 1
                    if got == want { identical += 1 }
                    #expect(abs(Int(got) - Int(want)) <= 1, "step \(t) element \(i): bfloat16 \(got) vs \(want)")
                }
            }
        }
        // float32 arithmetic vs float64 only decides a rounding differently right at a tie.
        #expect(Double(identical) >= 0.999 * Double(compared), "\(compared - identical) of \(compared) moments differ by one bfloat16 ulp")
    }

    private func runKernel(
        _ parameter: inout [Float], _ m: inout [UInt16], _ v: inout [UInt16], _ gradient: [Float], _ c: AdamKernel.Coefficients, simd: Bool
    ) {
        let count = parameter.count
        parameter.withUnsafeMutableBufferPointer { p in
            m.withUnsafeMutableBufferPointer { m in
                v.withUnsafeMutableBufferPointer { v in
                    gradient.withUnsafeBufferPointer { g in
                        let b = BF16AdamKernel.Buffers(parameter: p.baseAddress!, gradient: g.baseAddress!, expAvg: m.baseAddress!, expAvgSq: v.baseAddress!)
                        _ = simd ? BF16AdamKernel.simd(b, count: count, c) : BF16AdamKernel.scalar(b, count: count, c)
                    }
                }
            }
        }
    }
}
