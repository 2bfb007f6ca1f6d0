extension TensorBuffer {
    /// A new tensor holding a copy of `values`, or nil when one of them is NaN or infinite.
    ///
    /// One pass over `values`: each ``Chunking`` range is checked, then copied while it is still in
    /// the cache, on up to `parallelism.threads` threads (a parameter upload reads its 800 MB once
    /// instead of twice, and faults in the new tensor's pages on every thread).
    static func finiteCopy(of values: UnsafeBufferPointer<Float>, shape: TensorShape, parallelism: Parallelism) -> TensorBuffer? {
        precondition(values.count == shape.elementCount, "\(values.count) values for shape \(shape)")
        let tensor = TensorBuffer(uninitialized: shape)
        guard let source = values.baseAddress, !values.isEmpty else { return tensor }
        let target = tensor.pointer
        let nonFiniteRanges = Chunking.sum(count: values.count, parallelism: parallelism) { range in
            let chunk = UnsafeBufferPointer(rebasing: values[range])
            guard Reduction.firstNonFinite(chunk) == nil else { return 1 }
            (target + range.lowerBound).update(from: source + range.lowerBound, count: range.count)
            return 0
        }
        return nonFiniteRanges == 0 ? tensor : nil
    }
}

extension Reduction {
    /// Whether every value of `x` is finite, checked on up to `parallelism.threads` threads.
    static func allFinite(_ x: UnsafeBufferPointer<Float>, parallelism: Parallelism) -> Bool {
        Chunking.sum(count: x.count, parallelism: parallelism) { range in
            firstNonFinite(UnsafeBufferPointer(rebasing: x[range])) == nil ? 0 : 1
        } == 0
    }
}
