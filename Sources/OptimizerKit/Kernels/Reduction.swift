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
    public static func sumOfSquares(_ x: UnsafeBufferPointer<Float>, parallelism: Parallelism = .serial) -> Double {
        guard let base = x.baseAddress else { return 0 }
        return Chunking.sum(count: x.count, parallelism: parallelism) { range in
            sumOfSquaresKernel(base + range.lowerBound, count: range.count)
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
