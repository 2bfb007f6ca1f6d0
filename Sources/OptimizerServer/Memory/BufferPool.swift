@_spi(CustomByteBufferAllocator) import NIOCore
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Large body buffers, reused from one request to the next instead of freshly mapped each time.
///
/// A request or response body of 1 MiB or more is its own memory mapping in glibc's malloc (the
/// mmap threshold tops out at 32 MiB), so a new one per step costs a page fault per 4 KiB page —
/// ~8000 for an 8M-parameter f32 body, every step, both ways — and unmapping it afterwards. The
/// pool keeps the blocks of bodies that are done (``deallocate(_:)``) and hands them to the next
/// body of a similar size (at least its size, at most twice it), whose pages are then already
/// resident. Smaller buffers go straight to malloc, untracked. Of the blocks that fit, the one
/// whose touched part is closest to the size is taken (fewest pages to fault in or give back), and
/// a block handed to a smaller body than it served before gives its pages past that size back to
/// the system (`madvise(MADV_DONTNEED)`): a 200M-parameter model's 800 MB
/// upload body, reused for its 400 MB step bodies, then holds 400 MB, not 800.
///
/// A step's float32 copy of 16-bit gradients comes from the pool too (``scratchAllocator``): one
/// block for all of a request's conversions, as large as the same model's next step needs again.
///
/// Idle blocks are bounded: at most ``maxIdleBlocks`` (3: a request, its float32 scratch and an
/// answer) are kept, the oldest going first, so the memory they hold is what a recent step took;
/// and ``releaseIdle(afterRounds:)`` — called by ``MemoryTrimService`` every few seconds — frees
/// those that no body has taken for a while (``MemoryTrimService/idleRounds`` trims). So steps of a
/// large model keep their buffers warm even with a long forward and backward pass between them,
/// and a daemon that goes quiet returns them to the system. While in use, every block is counted
/// in the ``MemoryBudget`` by the request it serves (its body, and the step's staging); idle
/// blocks are released at once when the budget's reservations and they together would pass its
/// limit (``MemoryBudget/pool``).
///
/// Thread-safe: the bookkeeping is behind a `Mutex`; malloc and free run outside it.
final class BufferPool: Sendable {
    /// The pool every body buffer of the daemon comes from (``allocator``).
    static let shared = BufferPool()

    /// A `ByteBufferAllocator` drawing from ``shared``.
    static let allocator = ByteBufferAllocator(
        allocate: { BufferPool.shared.allocate($0) },
        reallocate: { BufferPool.shared.reallocate($0, from: $1, to: $2) },
        deallocate: { BufferPool.shared.deallocate($0) },
        copy: { $0.copyMemory(from: $1, byteCount: $2) }
    )

    /// Buffers smaller than this are plain malloc allocations.
    let minimumPooledBytes: Int
    /// How many free blocks are kept at most.
    let maxIdleBlocks: Int

    /// Blocks are kept by address bit pattern: raw pointers are not `Sendable`, so the `Mutex`
    /// could not hold them.
    private struct Block {
        let address: UInt
        let capacity: Int
        /// How many bytes from its start may be resident: the most handed out since it was
        /// allocated or last trimmed.
        let touched: Int
        /// The ``releaseIdle(afterRounds:)`` round in which it was returned.
        let round: Int
    }

    private struct State {
        /// Pooled blocks in use: address → capacity and touched bytes.
        var live: [UInt: (capacity: Int, touched: Int)] = [:]
        /// Free blocks, oldest first.
        var idle: [Block] = []
        var round = 0
    }

    private let state = Mutex(State())

    init(minimumPooledBytes: Int = 1 << 20, maxIdleBlocks: Int = 3) {
        self.minimumPooledBytes = minimumPooledBytes
        self.maxIdleBlocks = maxIdleBlocks
    }

    deinit {
        for block in state.withLock({ $0.idle }) { Self.release(block.address) }
    }

    /// At least `size` bytes: an idle block of `size`…`2 × size` bytes if there is one, else new.
    ///
    /// Of the fitting idle blocks, the one whose touched bytes are closest to `size` is taken (the
    /// fewest pages to fault in or give back; then the smallest). The pages of a block past `size`
    /// are given back when more than ``trimmedBytes`` of them were touched before.
    func allocate(_ size: Int) -> UnsafeMutableRawPointer {
        guard size >= minimumPooledBytes else { return Self.systemAllocate(size) }
        let reused = state.withLock { state -> (address: UInt, touched: Int)? in
            let fitting = state.idle.indices.filter { state.idle[$0].capacity >= size && state.idle[$0].capacity / 2 <= size }
            guard let best = fitting.min(by: { Self.prefers(state.idle[$0], over: state.idle[$1], for: size) }) else { return nil }
            let block = state.idle.remove(at: best)
            let kept = block.touched - size > Self.trimmedBytes ? size : max(block.touched, size)
            state.live[block.address] = (block.capacity, kept)
            return (block.address, block.touched)
        }
        if let (key, touched) = reused {
            let address = UnsafeMutableRawPointer(bitPattern: key)!
            if touched - size > Self.trimmedBytes { Self.discardPages(of: address, from: size, to: touched) }
            return address
        }
        let address = Self.pageAlignedAllocate(size)
        let key = UInt(bitPattern: address)
        state.withLock { $0.live[key] = (size, size) }
        return address
    }

    /// Gives back the pages of a block in use past its first `used` bytes, when an earlier user
    /// touched more than ``trimmedBytes`` beyond them: for a body that turned out smaller than
    /// the block's capacity (a `ByteBuffer` asks for the next power of two). No effect on memory
    /// that is not a pooled block's start.
    func discardPages(of address: UnsafeRawPointer, after used: Int) {
        let key = UInt(bitPattern: address)
        let touched = state.withLock { state -> Int? in
            guard let block = state.live[key], block.touched - used > Self.trimmedBytes else { return nil }
            state.live[key] = (block.capacity, used)
            return block.touched
        }
        if let touched { Self.discardPages(of: UnsafeMutableRawPointer(mutating: address), from: used, to: touched) }
    }

    /// Touched bytes past the size asked for above which a reused block gives its pages back.
    static let trimmedBytes = 1 << 20

    /// Whether `block` serves `size` bytes better than `other` (see ``allocate(_:)``).
    ///
    /// By touched bytes rather than capacity: a `ByteBuffer` asks for the next power of two, so a
    /// 400 MB body asks for 512 MiB and touches 400 MB of it; its block then stays its own, and the
    /// 800 MB scratch block, a closer fit by capacity, stays the scratch's.
    private static func prefers(_ block: Block, over other: Block, for size: Int) -> Bool {
        (abs(block.touched - size), block.capacity) < (abs(other.touched - size), other.capacity)
    }

    /// Gives the whole pages of `address[start..<end]` back to the system (they read as zeros when
    /// touched again). Only memory inside a block this pool handed out, so malloc's own bookkeeping
    /// (before the block, or after its end) is never touched.
    private static func discardPages(of address: UnsafeMutableRawPointer, from start: Int, to end: Int) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let base = Int(bitPattern: address)
        let first = (base + start + page - 1) / page * page
        let last = (base + end) / page * page
        guard last > first else { return }
        _ = madvise(UnsafeMutableRawPointer(bitPattern: first), last - first, Int32(MADV_DONTNEED))
    }

    /// Returns a block to the pool (a pooled one) or to malloc (a small one).
    func deallocate(_ address: UnsafeMutableRawPointer) {
        let key = UInt(bitPattern: address)
        let toFree = state.withLock { state -> UInt? in
            guard let block = state.live.removeValue(forKey: key) else { return key }
            state.idle.append(Block(address: key, capacity: block.capacity, touched: block.touched, round: state.round))
            return state.idle.count > maxIdleBlocks ? state.idle.removeFirst().address : nil
        }
        if let toFree { Self.release(toFree) }
    }

    /// `realloc` semantics: the first `min(old, new)` bytes kept, `address` given up.
    func reallocate(_ address: UnsafeMutableRawPointer?, from oldSize: Int, to newSize: Int) -> UnsafeMutableRawPointer {
        guard let address else { return allocate(newSize) }
        let key = UInt(bitPattern: address)
        let isPooled = state.withLock { $0.live[key] != nil }
        if !isPooled, newSize < minimumPooledBytes {
            guard let moved = realloc(address, max(newSize, 1)) else { fatalError("out of memory: \(newSize) bytes") }
            return moved
        }
        let moved = allocate(newSize)
        moved.copyMemory(from: address, byteCount: min(oldSize, newSize))
        deallocate(address)
        return moved
    }

    /// Ends a round and frees the blocks that stayed idle for `rounds` whole rounds (1: since the
    /// previous call; 0: every idle block, now); returns their bytes.
    @discardableResult
    func releaseIdle(afterRounds rounds: Int = 1) -> Int {
        let stale = state.withLock { state -> [Block] in
            let isStale = { (block: Block) in block.round <= state.round - rounds }
            let stale = state.idle.filter(isStale)
            state.idle.removeAll(where: isStale)
            state.round += 1
            return stale
        }
        for block in stale { Self.release(block.address) }
        return stale.reduce(0) { $0 + $1.capacity }
    }

    /// Bytes in idle blocks, and how many blocks are in use.
    var usage: (idleBytes: Int, liveBlocks: Int) {
        state.withLock { state in (state.idle.reduce(0) { $0 + $1.capacity }, state.live.count) }
    }

    private static func release(_ address: UInt) {
        UnsafeMutableRawPointer(bitPattern: address).map { free($0) }
    }

    /// A pooled block starts at a page boundary, so a body in it can be written to disk with
    /// `O_DIRECT` straight from its memory (``BodySpool``).
    private static func pageAlignedAllocate(_ size: Int) -> UnsafeMutableRawPointer {
        var address: UnsafeMutableRawPointer?
        guard posix_memalign(&address, 4096, size) == 0, let address else { fatalError("out of memory: \(size) bytes") }
        return address
    }

    private static func systemAllocate(_ size: Int) -> UnsafeMutableRawPointer {
        guard let address = malloc(max(size, 1)) else { fatalError("out of memory: \(size) bytes") }
        return address
    }
}
