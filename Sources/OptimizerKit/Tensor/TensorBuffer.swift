/// A fixed-size, heap-allocated float32 tensor with a shape.
///
/// A reference type so that several buffers can be mutated through raw pointers at the same time
/// inside one kernel without Swift exclusivity conflicts. The memory is 64-byte aligned, so SIMD loads
/// never straddle cache lines at the start.
///
/// Thread-safety: none. A buffer belongs to one session, and the session's owner serialises access
/// (the server holds a per-session lock while it steps).
public final class TensorBuffer {
    /// The shape of the tensor; `count == shape.elementCount`.
    public let shape: TensorShape
    /// The number of float elements.
    public let count: Int
    /// The elements, row-major. Valid for the lifetime of the buffer.
    public let pointer: UnsafeMutablePointer<Float>

    /// Creates a tensor whose elements the caller writes before reading any (a float has no
    /// invalid bit patterns; this only skips a fill that would be overwritten).
    init(uninitialized shape: TensorShape) {
        self.shape = shape
        self.count = shape.elementCount
        let raw = UnsafeMutableRawPointer.allocate(
            byteCount: max(count, 1) * MemoryLayout<Float>.stride,
            alignment: 64
        )
        self.pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        if count == 0 { pointer.initialize(to: 0) }  // the one placeholder element, never written
    }

    /// Creates a zero-filled tensor.
    public convenience init(zeros shape: TensorShape) {
        self.init(uninitialized: shape)
        pointer.initialize(repeating: 0, count: max(count, 1))
    }

    /// Creates a tensor holding a copy of `values`, which must have `shape.elementCount` elements.
    public convenience init(shape: TensorShape, copying values: UnsafeBufferPointer<Float>) {
        precondition(values.count == shape.elementCount, "\(values.count) values for shape \(shape)")
        self.init(uninitialized: shape)
        if let base = values.baseAddress, count > 0 { pointer.update(from: base, count: count) }
    }

    /// Creates a tensor holding a copy of `values`, which must have `shape.elementCount` elements.
    public convenience init(shape: TensorShape, values: [Float]) {
        self.init(zeros: shape)
        precondition(values.count == count, "\(values.count) values for shape \(shape)")
        values.withUnsafeBufferPointer { if let base = $0.baseAddress, count > 0 { pointer.update(from: base, count: count) } }
    }

    /// Creates an independent copy.
    public func copy() -> TensorBuffer {
        TensorBuffer(shape: shape, copying: UnsafeBufferPointer(start: pointer, count: count))
    }

    deinit {
        UnsafeMutableRawPointer(pointer).deallocate()
    }

    /// The elements as a mutable buffer.
    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: pointer, count: count) }

    /// The elements as a read-only buffer.
    public var readOnly: UnsafeBufferPointer<Float> { UnsafeBufferPointer(start: pointer, count: count) }

    /// A copy of the elements as an array.
    public var values: [Float] { Array(readOnly) }

    /// Overwrites every element with `values`, which must have `count` elements, on up to
    /// `parallelism.threads` threads.
    public func assign(_ values: UnsafeBufferPointer<Float>, parallelism: Parallelism = .serial) {
        precondition(values.count == count)
        guard let source = values.baseAddress, count > 0 else { return }
        let target = pointer
        Chunking.forEach(count: count, parallelism: parallelism) { range in
            (target + range.lowerBound).update(from: source + range.lowerBound, count: range.count)
        }
    }

    /// The L2 norm of all elements, accumulated in Double in a fixed order.
    public var norm: Double { Reduction.sumOfSquares(readOnly).squareRoot() }
}
