import Foundation

/// bitsandbytes' CPU `Adam8bit`/`AdamW8bit` step (0.50.2) on block-wise quantized moments: per block
/// of 256 elements the codes are dequantized, the moments and the parameters updated, and the new
/// moments quantized back with their new absmax — one pass, no float32 copy of the whole state.
///
/// The float operations are bitsandbytes' (docs/lowbit-state.md): m = fma(g, 1−β1, m·β1),
/// v = fma((1−β2)·g, g, v·β2), θ = θ·(1 − lr·wd), θ = θ + (−lr/(1−β1^t))·m / (√v/√(1−β2^t) + ε).
/// The SIMD and scalar versions perform the same IEEE operations lane by lane (bit-identical).
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

    /// Runs the SIMD kernel over `count` elements in fixed chunks (whole blocks) on up to
    /// `parallelism.threads` threads and returns ‖Δθ‖².
    static func run(_ buffers: Buffers, count: Int, _ c: Coefficients, parallelism: Parallelism) -> Double {
        Chunking.sum(count: count, parallelism: parallelism) { range in
            simd(buffers.offset(by: range.lowerBound), count: range.count, c)
        }
    }

    /// The plain scalar loop over whole blocks; the reference for ``simd(_:count:_:)``.
    static func scalar(_ b: Buffers, count: Int, _ c: Coefficients) -> Double {
        forEachBlock(b, count: count, vector: false) { block, n, m, v in
            scalarBlock(block, count: n, c, m: m, v: v)
        }
    }

    /// The SIMD loop (8 lanes for the arithmetic), block by block.
    static func simd(_ b: Buffers, count: Int, _ c: Coefficients) -> Double {
        forEachBlock(b, count: count, vector: true) { block, n, m, v in
            simdBlock(block, count: n, c, m: m, v: v)
        }
    }

    /// Calls `body` for each block with two 256-float scratch buffers for the new moments, then
    /// quantizes them back (with ``quantize(_:count:map:codes:absmax:)`` if `vector`, else
    /// ``quantizeScalar(_:count:map:codes:absmax:)``); returns the sum of `body`'s ‖Δθ‖².
    @inline(__always)
    private static func forEachBlock(
        _ b: Buffers,
        count: Int,
        vector: Bool,
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
                if vector {
                    quantize(m, count: n, map: DynamicMap.signed, codes: block.codes1, absmax: block.absmax1)
                    quantize(v, count: n, map: DynamicMap.unsigned, codes: block.codes2, absmax: block.absmax2)
                } else {
                    quantizeScalar(m, count: n, map: DynamicMap.signed, codes: block.codes1, absmax: block.absmax1)
                    quantizeScalar(v, count: n, map: DynamicMap.unsigned, codes: block.codes2, absmax: block.absmax2)
                }
                start += n
            }
            return total
        }
    }

    /// bitsandbytes' `quantize_cpu` for one block, as written: absmax = max |x| (NaN never wins; 0
    /// gives all-zero codes), each value multiplied by 1/absmax and looked up in the map's table.
    /// The reference for ``quantize(_:count:map:codes:absmax:)``.
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

    /// ``quantizeScalar(_:count:map:codes:absmax:)`` with the maximum and the table cells computed
    /// 8 lanes at a time by the same IEEE operations as ``DynamicMap/cell(_:scale:)`` (the same
    /// bits: the maximum of non-negative non-NaN floats does not depend on the order, and NaN lands
    /// in cell 0 in both).
    @inline(__always)
    static func quantize(_ x: UnsafePointer<Float>, count: Int, map: DynamicMap, codes: UnsafeMutablePointer<UInt8>, absmax: UnsafeMutablePointer<Float>) {
        typealias V = SIMD8<Float>
        let raw = UnsafeRawPointer(x)
        var lanes = V()
        var i = 0
        while i + 8 <= count {
            let magnitude = unsafeBitCast(unsafeBitCast(raw.loadUnaligned(fromByteOffset: i * 4, as: V.self), to: SIMD8<UInt32>.self) & 0x7FFF_FFFF, to: V.self)
            lanes.replace(with: magnitude, where: magnitude .> lanes)
            i += 8
        }
        var largest = lanes.max()
        for j in i..<count where abs(x[j]) > largest { largest = abs(x[j]) }
        absmax.pointee = largest
        guard largest != 0 else {
            codes.update(repeating: 0, count: count)
            return
        }
        let scale = 1 / largest
        map.table.withUnsafeBufferPointer { table in
            let scales = V(repeating: scale), one = V(repeating: 1), half = V(repeating: 0.5), cells = V(repeating: 65535)
            var i = 0
            while i + 8 <= count {
                var y = raw.loadUnaligned(fromByteOffset: i * 4, as: V.self) * scales
                y.replace(with: -one, where: y .< -one)
                y.replace(with: one, where: y .> one)
                var position = fusedMultiplyAdd((one + y) * half, cells, half)
                position.replace(with: 0, where: position .!= position)
                // ⌊position⌋ (0 … 65535) as the low bits of an exact float: truncate, then add 2^23.
                let exact = position.rounded(.towardZero) + V(repeating: 8_388_608)
                let cell = unsafeBitCast(exact, to: SIMD8<UInt32>.self) & 0xFFFF
                for lane in 0..<8 { codes[i + lane] = table[Int(cell[lane])] }
                i += 8
            }
            for j in i..<count { codes[j] = table[DynamicMap.cell(x[j], scale: scale)] }
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

    /// One block, 8 lanes at a time (the code lookups lane by lane), the scalar loop for the tail.
    private static func simdBlock(
        _ b: Buffers, count: Int, _ c: Coefficients, m newM: UnsafeMutablePointer<Float>, v newV: UnsafeMutablePointer<Float>
    ) -> Double {
        typealias V = SIMD8<Float>
        let signed = DynamicMap.signed.codes, unsigned = DynamicMap.unsigned.codes
        let absmax1 = V(repeating: b.absmax1.pointee), absmax2 = V(repeating: b.absmax2.pointee)
        let beta1 = V(repeating: c.beta1), beta2 = V(repeating: c.beta2)
        let oneMinusBeta1 = V(repeating: c.oneMinusBeta1), oneMinusBeta2 = V(repeating: c.oneMinusBeta2)
        let stepValue = V(repeating: c.stepValue), sqrtBC2 = V(repeating: c.sqrtBiasCorrection2)
        let eps = V(repeating: c.eps), decay = V(repeating: c.decay), scale = V(repeating: c.gradientScale)
        var lanes = SIMD8<Double>()
        var i = 0
        signed.withUnsafeBufferPointer { signed in
            unsigned.withUnsafeBufferPointer { unsigned in
                while i + 8 <= count {
                    var m = V(), v = V()
                    for lane in 0..<8 {
                        m[lane] = signed[Int(b.codes1[i + lane])]
                        v[lane] = unsigned[Int(b.codes2[i + lane])]
                    }
                    let g = UnsafeRawPointer(b.gradient + i).loadUnaligned(as: V.self) * scale
                    m = fusedMultiplyAdd(g, oneMinusBeta1, m * absmax1 * beta1)
                    v = fusedMultiplyAdd(oneMinusBeta2 * g, g, v * absmax2 * beta2)
                    let denom = squareRoot(v) / sqrtBC2 + eps
                    let pointer = UnsafeMutableRawPointer(b.parameter + i)
                    let old = pointer.loadUnaligned(as: V.self)
                    let p = old * decay + (stepValue * m) / denom
                    pointer.storeBytes(of: p, as: V.self)
                    UnsafeMutableRawPointer(newM + i).storeBytes(of: m, as: V.self)
                    UnsafeMutableRawPointer(newV + i).storeBytes(of: v, as: V.self)
                    let delta = widen(p - old)
                    lanes += delta * delta
                    i += 8
                }
            }
        }
        let tail = scalarBlock(
            Buffers(
                parameter: b.parameter + i,
                gradient: b.gradient + i,
                codes1: b.codes1 + i,
                codes2: b.codes2 + i,
                absmax1: b.absmax1,
                absmax2: b.absmax2
            ),
            count: count - i,
            c,
            m: newM + i,
            v: newV + i
        )
        return lanes.sum() + tail
    }
}
