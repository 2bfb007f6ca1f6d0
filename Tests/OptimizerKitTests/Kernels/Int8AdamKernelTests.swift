import Testing

@testable import OptimizerKit

struct Int8AdamKernelTests {
    /// The vector kernel of every variant this CPU runs, and the parallel run on 3 threads, give the
    /// scalar kernel's parameters, codes and absmax bit for bit on many blocks and a partial one, with
    /// gradients of every scale and, in some blocks, NaN, ±∞ and zeros (‖Δθ‖² is the same bits in
    /// every variant; the scalar loop sums it in another order).
    @Test(arguments: [256 * 300 + 77, 256 * 17, 4096 + 8, 4096 + 15])
    func everyVariantAndParallelMatchScalar(count: Int) {
        var random = SeededRandom(seed: UInt64(count))
        let parameter = random.floats(count)
        var gradient = random.floats(count).enumerated().map { $1 * [1, 1e-3, 1e-6][$0 % 3] }
        for block in stride(from: 3, to: count / 256, by: 5) {
            let base = block * 256
            gradient[base + 1] = [.nan, .infinity, -.infinity, 0][block % 4]
            if block % 10 == 3 { gradient.replaceSubrange(base..<(base + 256), with: repeatElement(0, count: 256)) }
        }
        let codes = [(0..<count).map { _ in UInt8.random(in: 0...255, using: &random) }, (0..<count).map { _ in UInt8.random(in: 0...255, using: &random) }]
        var absmax = random.floats((count + 255) / 256, in: 0...0.1)
        absmax[absmax.count / 2] = 0
        let c = Int8AdamKernel.Coefficients(lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step: 5, gradientScale: 0.5)
        func run(_ kernel: (Int8AdamKernel.Buffers, Int, Int8AdamKernel.Coefficients) -> Double) -> ([[UInt32]], Double) {
            let p = TensorBuffer(shape: TensorShape([count]), values: parameter)
            let g = TensorBuffer(shape: TensorShape([count]), values: gradient)
            let a1 = TensorBuffer(shape: TensorShape([absmax.count]), values: absmax)
            let a2 = TensorBuffer(shape: TensorShape([absmax.count]), values: absmax.map { $0 * $0 })
            var q1 = codes[0], q2 = codes[1]
            let update = q1.withUnsafeMutableBufferPointer { q1 in
                q2.withUnsafeMutableBufferPointer { q2 in
                    let buffers = Int8AdamKernel.Buffers(
                        parameter: p.pointer, gradient: UnsafePointer(g.pointer), codes1: q1.baseAddress!,
                        codes2: q2.baseAddress!, absmax1: a1.pointer, absmax2: a2.pointer
                    )
                    return kernel(buffers, count, c)
                }
            }
            let state = [p.values.map(\.bitPattern), q1.map(UInt32.init), q2.map(UInt32.init), a1.values.map(\.bitPattern), a2.values.map(\.bitPattern)]
            return (state, update)
        }
        let scalar = run { Int8AdamKernel.scalar($0, count: $1, $2) }
        let variants = KernelVariant.supported.map { variant in (variant, run { Int8AdamKernel.simd($0, count: $1, $2, variant: variant) }) }
        #expect(variants.count >= 1 && variants[0].0 == .baseline)
        for (variant, outcome) in variants {
            for slot in 0..<5 { #expect(outcome.0[slot] == scalar.0[slot], "\(variant) slot \(slot)") }
            #expect(outcome.1.bitPattern == variants[0].1.1.bitPattern, "\(variant) ‖Δθ‖²")
        }
        #expect(run { Int8AdamKernel.run($0, count: $1, $2, parallelism: Parallelism(threads: 3)) }.0 == scalar.0)
        #expect(scalar.0[1] != codes[0].map(UInt32.init), "the step changed the codes")
    }

    /// bitsandbytes' table rounds a value to its cell's nearest code: 0 in a block of absmax 1 is the
    /// signed map's code 131 (2.125e-5) and the unsigned map's code 7 (1.5625e-5); ±1 are the ends.
    @Test func cellRoundingMatchesBitsandbytes() {
        #expect(DynamicMap.signed.quantize(0, scale: 1) == 131)
        #expect(DynamicMap.unsigned.quantize(0, scale: 1) == 7)
        #expect(DynamicMap.signed.quantize(-1, scale: 1) == 0)
        #expect(DynamicMap.signed.quantize(1, scale: 1) == 255)
        #expect(DynamicMap.signed.quantize(0.5, scale: 1) == 219)
        #expect(DynamicMap.signed.quantize(.nan, scale: 1) == DynamicMap.signed.table[0])
    }
}
