/// Reductions over float tensors, accumulated in Double in a fixed order.
///
/// Kernels here and elsewhere write `lanes += a * b`, never `addingProduct`: the baseline x86-64
/// target has no FMA instruction, so `addingProduct` becomes a libm `fma` call per lane (measured:
/// half the throughput of a plain loop).
///
/// The references compute norms and dot products in float32 or float64; accumulating in Double keeps
/// us at least as accurate, and the fixed chunk order (see ``Chunking``) keeps results bit-identical
/// across thread counts.
public enum Reduction {
    /// Σ x², accumulated in Double.
    ///
    /// The same sum as ``Chunking/sum(count:parallelism:_:)`` over ``sumOfSquaresKernel(_:count:)``
    /// (each chunk's sum, then the chunk sums added in chunk order), but full chunks are summed four at
    /// a time in one loop: a chunk's lanes are one chain of dependent additions, so one chunk at a time
    /// runs at the latency of the adder rather than at the memory bandwidth. Every chunk keeps its own
    /// lanes and order, so the result is bit-identical.
    public static func sumOfSquares(_ x: UnsafeBufferPointer<Float>, parallelism: Parallelism = .serial) -> Double {
        guard let base = x.baseAddress else { return 0 }
        let grain = Chunking.grain
        let chunks = (x.count + grain - 1) / grain
        if chunks < 4 {
            return Chunking.sum(count: x.count, parallelism: parallelism) { range in
                sumOfSquaresKernel(base + range.lowerBound, count: range.count)
            }
        }
        let count = x.count
        return withUnsafeTemporaryAllocation(of: Double.self, capacity: chunks) { partials in
            let partials = partials.baseAddress!
            let quads = (chunks + 3) / 4
            // One Chunking range per group of four chunks: ranges start at multiples of the grain.
            Chunking.forEach(count: quads * grain, parallelism: parallelism) { range in
                let first = range.lowerBound / grain * 4
                if first + 4 <= chunks, (first + 4) * grain <= count {
                    let sums = sumOfSquaresKernel4(base + first * grain, stride: grain, count: grain)
                    for k in 0..<4 { partials[first + k] = sums[k] }
                } else {
                    for chunk in first..<min(first + 4, chunks) {
                        let start = chunk * grain
                        partials[chunk] = sumOfSquaresKernel(base + start, count: min(grain, count - start))
                    }
                }
            }
            var total = 0.0
            for index in 0..<chunks { total += partials[index] }
            return total
        }
    }

    /// Σ x·y, accumulated in Double.
    public static func dot(
        _ x: UnsafeBufferPointer<Float>,
        _ y: UnsafeBufferPointer<Float>,
        parallelism: Parallelism = .serial
    ) -> Double {
        precondition(x.count == y.count)
        guard let xb = x.baseAddress, let yb = y.baseAddress else { return 0 }
        return Chunking.sum(count: x.count, parallelism: parallelism) { range in
            dotKernel(xb + range.lowerBound, yb + range.lowerBound, count: range.count)
        }
    }

    /// Σ x² over one chunk: 8 Double lanes, then the lanes in a fixed order, then the tail.
    @inline(__always)
    static func sumOfSquaresKernel(_ x: UnsafePointer<Float>, count: Int) -> Double {
        var lanes = SIMD8<Double>()
        var index = 0
        let raw = UnsafeRawPointer(x)
        while index + 8 <= count {
            let v = widen(raw.loadUnaligned(fromByteOffset: index * 4, as: SIMD8<Float>.self))
            lanes += v * v
            index += 8
        }
        var total = lanes.sum()
        while index < count {
            let v = Double(x[index])
            total += v * v
            index += 1
        }
        return total
    }

    /// ``sumOfSquaresKernel(_:count:)`` of four ranges of `count` elements (a multiple of 8) starting
    /// `stride` elements apart, in one loop: four independent chains of additions.
    @inline(__always)
    static func sumOfSquaresKernel4(_ x: UnsafePointer<Float>, stride: Int, count: Int) -> SIMD4<Double> {
        var lanes0 = SIMD8<Double>()
        var lanes1 = SIMD8<Double>()
        var lanes2 = SIMD8<Double>()
        var lanes3 = SIMD8<Double>()
        let r0 = UnsafeRawPointer(x)
        let r1 = r0 + 4 * stride
        let r2 = r1 + 4 * stride
        let r3 = r2 + 4 * stride
        let end = (count & ~7) * 4
        var offset = 0
        while offset < end {
            let a = widen(r0.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self))
            let b = widen(r1.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self))
            let c = widen(r2.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self))
            let d = widen(r3.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self))
            lanes0 += a * a
            lanes1 += b * b
            lanes2 += c * c
            lanes3 += d * d
            offset += 32
        }
        precondition(count & 7 == 0, "sumOfSquaresKernel4 takes whole vectors only")
        return SIMD4(lanes0.sum(), lanes1.sum(), lanes2.sum(), lanes3.sum())
    }

    /// Σ x·y over one chunk.
    @inline(__always)
    static func dotKernel(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, count: Int) -> Double {
        var lanes = SIMD8<Double>()
        var index = 0
        let rx = UnsafeRawPointer(x)
        let ry = UnsafeRawPointer(y)
        while index + 8 <= count {
            let a = widen(rx.loadUnaligned(fromByteOffset: index * 4, as: SIMD8<Float>.self))
            let b = widen(ry.loadUnaligned(fromByteOffset: index * 4, as: SIMD8<Float>.self))
            lanes += a * b
            index += 8
        }
        var total = lanes.sum()
        while index < count {
            total += Double(x[index]) * Double(y[index])
            index += 1
        }
        return total
    }
}

extension Reduction {
    /// ``Reduction/sumOfSquares(_:parallelism:)`` of a tensor whose values arrive front to back (a
    /// request body still being received): each chunk of ``Chunking/grain`` elements is summed once
    /// it is whole, while its bytes are still in the cache, and ``total`` adds the chunks in order —
    /// bit-identical to the sum of the whole tensor at once, for any order of arrival sizes.
    public struct ArrivingSumOfSquares: Sendable {
        /// The tensor's element count.
        public let count: Int
        private var partials: [Double] = []

        /// A sum over `count` elements, none of them summed yet.
        public init(count: Int) {
            self.count = count
            partials.reserveCapacity((count + Chunking.grain - 1) / Chunking.grain)
        }

        /// Whether every element was summed.
        public var isComplete: Bool { partials.count * Chunking.grain >= count }

        /// The sum, once every element was given (nil before).
        public var total: Double? {
            guard isComplete else { return nil }
            var total = 0.0
            for partial in partials { total += partial }
            return total
        }

        /// Sums the chunks that `available` elements from the tensor's start, at `values`, complete
        /// (`available` may only grow between calls; the first call's elements may be unaligned).
        public mutating func advance(_ values: UnsafeRawPointer, available: Int) {
            let grain = Chunking.grain
            let whole = min(available, count)
            var chunk = partials.count
            // Four whole chunks at a time, as the whole-tensor sum does (four independent chains).
            while (chunk + 4) * grain <= whole {
                let start = values.assumingMemoryBound(to: Float.self) + chunk * grain
                let sums = sumOfSquaresKernel4(start, stride: grain, count: grain)
                for lane in 0..<4 { partials.append(sums[lane]) }
                chunk += 4
            }
            while chunk * grain < whole, min((chunk + 1) * grain, count) <= whole {
                let start = chunk * grain
                partials.append(sumOfSquaresKernel(values.assumingMemoryBound(to: Float.self) + start, count: min(grain, count - start)))
                chunk += 1
            }
        }
    }
}
