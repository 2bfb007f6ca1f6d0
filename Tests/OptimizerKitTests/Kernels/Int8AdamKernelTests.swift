import Testing

@testable import OptimizerKit

struct Int8AdamKernelTests {
    /// The SIMD and scalar kernels, and the parallel run on 3 threads, give the same parameters, codes
    /// and absmax bit for bit on many blocks and a partial one (‖Δθ‖² is summed in another order).
    @Test func simdAndParallelMatchScalar() {
        let count = 256 * 300 + 77
        var random = SeededRandom(seed: 7)
        let parameter = random.floats(count)
        let gradient = random.floats(count).enumerated().map { $1 * [1, 1e-3, 1e-6][$0 % 3] }
        let codes = [(0..<count).map { _ in UInt8.random(in: 0...255, using: &random) }, (0..<count).map { _ in UInt8.random(in: 0...255, using: &random) }]
        let absmax = random.floats((count + 255) / 256, in: 0...0.1)
        let c = Int8AdamKernel.Coefficients(lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step: 5, gradientScale: 0.5)
        func run(_ kernel: (Int8AdamKernel.Buffers, Int, Int8AdamKernel.Coefficients) -> Double) -> [[UInt32]] {
            let p = TensorBuffer(shape: TensorShape([count]), values: parameter)
            let g = TensorBuffer(shape: TensorShape([count]), values: gradient)
            let a1 = TensorBuffer(shape: TensorShape([absmax.count]), values: absmax)
            let a2 = TensorBuffer(shape: TensorShape([absmax.count]), values: absmax.map { $0 * $0 })
            var q1 = codes[0], q2 = codes[1]
            q1.withUnsafeMutableBufferPointer { q1 in
                q2.withUnsafeMutableBufferPointer { q2 in
                    let buffers = Int8AdamKernel.Buffers(
                        parameter: p.pointer, gradient: UnsafePointer(g.pointer), codes1: q1.baseAddress!,
                        codes2: q2.baseAddress!, absmax1: a1.pointer, absmax2: a2.pointer
                    )
                    _ = kernel(buffers, count, c)
                }
            }
            return [p.values.map(\.bitPattern), q1.map(UInt32.init), q2.map(UInt32.init), a1.values.map(\.bitPattern), a2.values.map(\.bitPattern)]
        }
        let scalar = run { Int8AdamKernel.scalar($0, count: $1, $2) }
        #expect(scalar == run { Int8AdamKernel.simd($0, count: $1, $2) })
        #expect(scalar == run { Int8AdamKernel.run($0, count: $1, $2, parallelism: Parallelism(threads: 3)) })
        #expect(scalar[1] != codes[0].map(UInt32.init), "the step changed the codes")
    }

    /// An all-zero block quantizes to codes 0 and absmax 0, as bitsandbytes' memset does.
    @Test func zeroBlockQuantizesToZeroCodes() {
        let values = [Float](repeating: 0, count: 256)
        var codes = [UInt8](repeating: 9, count: 256)
        var absmax: Float = 5
        values.withUnsafeBufferPointer { x in
            codes.withUnsafeMutableBufferPointer { q in
                Int8AdamKernel.quantize(x.baseAddress!, count: 256, map: DynamicMap.signed, codes: q.baseAddress!, absmax: &absmax)
            }
        }
        #expect(codes.allSatisfy { $0 == 0 })
        #expect(absmax == 0)
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
