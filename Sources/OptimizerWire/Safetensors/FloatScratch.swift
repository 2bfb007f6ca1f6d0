import Dispatch
import OptimizerKit

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where ``SafetensorsHeader/withFloatTensors(in:sparseShape:scratch:parallelism:_:)`` takes the
/// memory of the float32 copies it makes (float16/bfloat16 tensors, unaligned float32, sparse
/// pairs made dense).
///
/// ``system`` is plain malloc. A server passes memory that outlives one request instead (the
/// daemon's body buffer pool), so that the pages of a large conversion are faulted in once and then
/// reused by every step of the same size, rather than mapped, faulted and unmapped each step (a
/// 200M-parameter bfloat16 step converts into 800 MB).
public struct FloatScratchAllocator: Sendable {
    /// Returns at least the given number of bytes, aligned for `Float`.
    public var allocate: @Sendable (Int) -> UnsafeMutableRawPointer
    /// Gives back memory from ``allocate``.
    public var deallocate: @Sendable (UnsafeMutableRawPointer) -> Void

    /// An allocator from two functions.
    public init(
        allocate: @escaping @Sendable (Int) -> UnsafeMutableRawPointer,
        deallocate: @escaping @Sendable (UnsafeMutableRawPointer) -> Void
    ) {
        self.allocate = allocate
        self.deallocate = deallocate
    }

    /// malloc and free.
    public static let system = FloatScratchAllocator(
        allocate: { bytes in
            guard let address = malloc(max(bytes, 1)) else { fatalError("out of memory: \(bytes) bytes") }
            return address
        },
        deallocate: { free($0) }
    )
}

/// The float32 copies of one ``SafetensorsHeader/withFloatTensors(in:sparseShape:scratch:parallelism:_:)``
/// call: the dense conversions are slices of one block of the size the header asks for (so a pool
/// can hand the same block to the next request of that size), sparse pairs get a block each.
struct FloatScratch {
    private let allocator: FloatScratchAllocator
    /// The shared block of the dense conversions, taken on first use, and how much of it is handed out.
    private let denseCapacity: Int
    private var dense: UnsafeMutablePointer<Float>?
    private var denseUsed = 0
    private var blocks: [UnsafeMutableRawPointer] = []

    /// Scratch whose dense conversions total at most `denseCapacity` floats.
    init(allocator: FloatScratchAllocator, denseCapacity: Int) {
        self.allocator = allocator
        self.denseCapacity = denseCapacity
    }

    /// `count` floats for a dense tensor's conversion, a slice of the shared block.
    mutating func dense(_ count: Int) -> UnsafeMutableBufferPointer<Float> {
        precondition(denseUsed + count <= denseCapacity, "FloatScratch: more dense conversions than planned")
        if dense == nil {
            let block = allocator.allocate(max(denseCapacity, 1) * MemoryLayout<Float>.stride)
            blocks.append(block)
            dense = block.bindMemory(to: Float.self, capacity: max(denseCapacity, 1))
        }
        defer { denseUsed += count }
        return UnsafeMutableBufferPointer(start: dense! + denseUsed, count: count)
    }

    /// `count` floats in a block of their own.
    mutating func separate(_ count: Int) -> UnsafeMutableBufferPointer<Float> {
        let block = allocator.allocate(max(count, 1) * MemoryLayout<Float>.stride)
        blocks.append(block)
        return UnsafeMutableBufferPointer(start: block.bindMemory(to: Float.self, capacity: max(count, 1)), count: count)
    }

    /// Gives every block back.
    func release() {
        for block in blocks { allocator.deallocate(block) }
    }
}

extension FloatConversion {
    /// ``decode(_:from:into:)`` split over up to `parallelism.threads` threads in contiguous ranges
    /// (element-wise, so the result does not depend on the split). Small tensors stay on the
    /// calling thread.
    static func decode(
        _ bytes: UnsafeRawBufferPointer,
        from dtype: DType,
        into destination: UnsafeMutableBufferPointer<Float>,
        parallelism: Parallelism
    ) {
        let count = destination.count
        let workers = min(parallelism.threads, count / parallelGrain)
        guard workers > 1, let source = bytes.baseAddress, let target = destination.baseAddress else {
            decode(bytes, from: dtype, into: destination)
            return
        }
        let width = dtype.bitWidth / 8
        // Both pointers are used only until concurrentPerform returns; workers write disjoint ranges.
        let shared = Pointers(source: source, target: target)
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            let (source, target) = (shared.source, shared.target)
            let start = worker * count / workers
            let end = (worker + 1) * count / workers
            decode(
                UnsafeRawBufferPointer(start: source + start * width, count: (end - start) * width), from: dtype,
                into: UnsafeMutableBufferPointer(start: target + start, count: end - start)
            )
        }
    }

    /// The two pointers of one parallel decode, carried into `concurrentPerform`'s workers (which
    /// it joins before returning).
    private struct Pointers: @unchecked Sendable {
        let source: UnsafeRawPointer
        let target: UnsafeMutablePointer<Float>
    }

    /// Elements below which a thread more does not pay for itself (1 Mi floats: 4 MiB written).
    private static let parallelGrain = 1 << 20
}
