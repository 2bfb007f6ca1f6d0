import OptimizerWire

extension BufferPool {
    /// The float32 scratch of a step's 16-bit (or sparse) gradients, drawn from ``shared``: a step
    /// of the same model finds the previous step's block with its pages resident, instead of
    /// mapping and faulting in a fresh one (800 MB for a 200M-parameter bfloat16 step).
    static let scratchAllocator = FloatScratchAllocator(
        allocate: { BufferPool.shared.allocate($0) },
        deallocate: { BufferPool.shared.deallocate($0) }
    )
}
