import CLowBit
import Foundation

/// bitsandbytes' CPU `Adam8bit`/`AdamW8bit` step (0.50.2) on block-wise quantized moments: per block
/// of 256 elements the codes are dequantized, the moments and the parameters updated, and the new
/// moments quantized back with their new absmax — one pass, no float32 copy of the whole state.
///
/// The float operations are bitsandbytes' (docs/lowbit-state.md): m = fma(g, 1−β1, m·β1),
/// v = fma((1−β2)·g, g, v·β2), θ = θ·(1 − lr·wd), θ = θ + (−lr/(1−β1^t))·m / (√v/√(1−β2^t) + ε).
/// The vector (C) and scalar versions perform the same IEEE operations lane by lane (bit-identical).
public enum Int8AdamKernel {
    /// Elements per quantization block (bitsandbytes' CPU optimizer block size).
    static let blockSize = 256
    /// bitsandbytes' `min_8bit_size`: smaller tensors keep float32 moments (``float32(parameter:gradient:expAvg:expAvgSq:count:_:epsTimesSqrtBiasCorrection2:stepSize:)``).
    public static let minimumSize = 4096

    /// The number of blocks (absmax values per moment) of a tensor of `count` elements.
    public static func blockCount(_ count: Int) -> Int { (count + blockSize - 1) / blockSize }

    /// Per-step constants, computed in Double and rounded once to Float, as torch passes them.
    struct Coefficients {
        var beta1: Float
        var beta2: Float
        var oneMinusBeta1: Float
        var oneMinusBeta2: Float
        /// −lr / (1 − β1^t)
        var stepValue: Float
        /// √(1 − β2^t)
        var sqrtBiasCorrection2: Float
        var eps: Float
        /// 1 − lr·wd (1 without weight decay).
        var decay: Float
        /// Gradient multiplier (clip, maximize sign).
        var gradientScale: Float

        init(lr: Double, beta1: Double, beta2: Double, eps: Double, weightDecay: Double, step t: Double, gradientScale: Float) {
            self.beta1 = Float(beta1)
            self.beta2 = Float(beta2)
            oneMinusBeta1 = Float(1 - beta1)
            oneMinusBeta2 = Float(1 - beta2)
            stepValue = Float(-lr / (1 - pow(beta1, t)))
            sqrtBiasCorrection2 = Float((1 - pow(beta2, t)).squareRoot())
            self.eps = Float(eps)
            decay = weightDecay > 0 ? Float(1 - lr * weightDecay) : 1
            self.gradientScale = gradientScale
        }
    }

    /// The tensors of one parameter: codes one byte per element, absmax one float per block.
    struct Buffers {
        var parameter: UnsafeMutablePointer<Float>
        var gradient: UnsafePointer<Float>
        var codes1: UnsafeMutablePointer<UInt8>
        var codes2: UnsafeMutablePointer<UInt8>
        var absmax1: UnsafeMutablePointer<Float>
        var absmax2: UnsafeMutablePointer<Float>

        /// The buffers from element `n` on (`n` a multiple of the block size).
        func offset(by n: Int) -> Self {
            Self(
                parameter: parameter + n,
                gradient: gradient + n,
                codes1: codes1 + n,
                codes2: codes2 + n,
                absmax1: absmax1 + n / Int8AdamKernel.blockSize,
                absmax2: absmax2 + n / Int8AdamKernel.blockSize
            )
        }
    }

    /// Runs the vector kernel over `count` elements in fixed chunks (whole blocks) on up to
    /// `parallelism.threads` threads and returns ‖Δθ‖².
    static func run(_ buffers: Buffers, count: Int, _ c: Coefficients, parallelism: Parallelism) -> Double {
        Chunking.sum(count: count, parallelism: parallelism) { range in
            simd(buffers.offset(by: range.lowerBound), count: range.count, c)
        }
    }

    /// The plain scalar loop over whole blocks; the reference for ``simd(_:count:_:variant:)``.
    static func scalar(_ b: Buffers, count: Int, _ c: Coefficients) -> Double {
        forEachBlock(b, count: count) { block, n, m, v in
            scalarBlock(block, count: n, c, m: m, v: v)
        }
    }

    /// The vector loop, `optimizerd_int8_adam` in C (`Sources/CLowBit/int8_adam_kernel.c`), compiled
    /// for every ``KernelVariant``: per block the same operations as ``scalar(_:count:_:)`` on 16 or
    /// 8 lanes (the code lookups lane by lane), the new moments in a scratch block, then both
    /// quantized as ``quantize(_:count:map:codes:absmax:variant:)`` does. ‖Δθ‖² per block: 8 Double
    /// lanes (element i in lane i mod 8), then the block's tail.
    ///
    /// In C for the reasons ``AdamKernel/simd(_:count:_:variant:)`` is; the Swift loop ran this step
    /// at 0.2× the float32 step (BENCHMARKS.md, Low-bit state).
    static func simd(_ b: Buffers, count: Int, _ c: Coefficients, variant: KernelVariant = .active) -> Double {
        var buffers = optimizerd_int8_adam_buffers(
            parameter: b.parameter, gradient: b.gradient, codes1: b.codes1, codes2: b.codes2, absmax1: b.absmax1, absmax2: b.absmax2
        )
        var coefficients = optimizerd_int8_adam_coefficients(
            beta1: c.beta1, beta2: c.beta2, one_minus_beta1: c.oneMinusBeta1, one_minus_beta2: c.oneMinusBeta2,
            step_value: c.stepValue, sqrt_bias_correction2: c.sqrtBiasCorrection2, eps: c.eps, decay: c.decay,
            gradient_scale: c.gradientScale
        )
        return DynamicMap.withCMaps { maps in optimizerd_int8_adam(variant.code, &buffers, count, &coefficients, maps) }
    }

    /// Calls `body` for each block with two 256-float scratch buffers for the new moments, then
    /// quantizes them back with ``quantizeScalar(_:count:map:codes:absmax:)``; returns the sum of
    /// `body`'s ‖Δθ‖².
    private static func forEachBlock(
        _ b: Buffers,
        count: Int,
        _ body: (Buffers, Int, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> Double
    ) -> Double {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * blockSize) { scratch in
            let m = scratch.baseAddress!
            let v = m + blockSize
            var total = 0.0
            var start = 0
            while start < count {
                let n = min(blockSize, count - start)
                let block = b.offset(by: start)
                total += body(block, n, m, v)
                quantizeScalar(m, count: n, map: DynamicMap.signed, codes: block.codes1, absmax: block.absmax1)
                quantizeScalar(v, count: n, map: DynamicMap.unsigned, codes: block.codes2, absmax: block.absmax2)
                start += n
            }
            return total
        }
    }

    /// bitsandbytes' `quantize_cpu` for one block, as written: absmax = max |x| (NaN never wins; 0
    /// gives all-zero codes), each value multiplied by 1/absmax and looked up in the map's table.
    /// The reference for ``quantize(_:count:map:codes:absmax:variant:)``.
    static func quantizeScalar(_ x: UnsafePointer<Float>, count: Int, map: DynamicMap, codes: UnsafeMutablePointer<UInt8>, absmax: UnsafeMutablePointer<Float>)
    {
        var largest: Float = 0
        for i in 0..<count where abs(x[i]) > largest { largest = abs(x[i]) }
        absmax.pointee = largest
        guard largest != 0 else {
            codes.update(repeating: 0, count: count)
            return
        }
        let scale = 1 / largest
        for i in 0..<count { codes[i] = map.quantize(x[i], scale: scale) }
    }

    /// ``quantizeScalar(_:count:map:codes:absmax:)`` in C (`optimizerd_int8_quantize`, the
    /// quantizer of ``simd(_:count:_:variant:)``): the maximum and the table cells 16 lanes at a
    /// time by the same IEEE operations as ``DynamicMap/cell(_:scale:)``, the same bits (the maximum
    /// of non-negative non-NaN floats does not depend on the order; NaN lands in cell 0 in both).
    static func quantize(
        _ x: UnsafePointer<Float>, count: Int, map: DynamicMap, codes: UnsafeMutablePointer<UInt8>,
        absmax: UnsafeMutablePointer<Float>, variant: KernelVariant = .active
    ) {
        map.table.withUnsafeBufferPointer { table in
            map.search.withUnsafeBufferPointer { search in
                optimizerd_int8_quantize(variant.code, x, count, table.baseAddress!, search.baseAddress!, codes, absmax)
            }
        }
    }

    /// One block, scalar: dequantize, update θ, leave the new m and v in `m` and `v`.
    private static func scalarBlock(
        _ b: Buffers, count: Int, _ c: Coefficients, m newM: UnsafeMutablePointer<Float>, v newV: UnsafeMutablePointer<Float>
    ) -> Double {
        let signed = DynamicMap.signed.codes, unsigned = DynamicMap.unsigned.codes
        let absmax1 = b.absmax1.pointee, absmax2 = b.absmax2.pointee
        var update = 0.0
        for i in 0..<count {
            let g = b.gradient[i] * c.gradientScale
            let m = (signed[Int(b.codes1[i])] * absmax1 * c.beta1).addingProduct(g, c.oneMinusBeta1)
            let v = (unsigned[Int(b.codes2[i])] * absmax2 * c.beta2).addingProduct(c.oneMinusBeta2 * g, g)
            let denom = v.squareRoot() / c.sqrtBiasCorrection2 + c.eps
            let old = b.parameter[i]
            let p = old * c.decay + (c.stepValue * m) / denom
            b.parameter[i] = p
            newM[i] = m
            newV[i] = v
            let delta = Double(p - old)
            update += delta * delta
        }
        return update
    }
}
