import NIOCore
import Testing

@testable import OptimizerServer

/// Large body buffers are reused for bodies of a similar size, bounded, and released when idle.
struct BufferPoolTests {
    private let megabyte = 1 << 20

    @Test func aReturnedBlockServesTheNextBodyOfASimilarSize() {
        let pool = BufferPool()
        let first = pool.allocate(8 * megabyte)
        pool.deallocate(first)
        #expect(pool.usage == (idleBytes: 8 * megabyte, liveBlocks: 0))
        let second = pool.allocate(5 * megabyte)  // 8 MiB is at most twice 5 MiB: reused
        #expect(second == first)
        #expect(pool.usage == (idleBytes: 0, liveBlocks: 1))
        pool.deallocate(second)
    }

    @Test func blocksTooSmallOrMoreThanTwiceTheSizeAreNotTaken() {
        let pool = BufferPool()
        let small = pool.allocate(2 * megabyte)
        let large = pool.allocate(16 * megabyte)
        pool.deallocate(small)
        pool.deallocate(large)
        let middle = pool.allocate(4 * megabyte)  // 2 MiB is too small, 16 MiB wastes over half
        #expect(middle != small && middle != large)
        #expect(pool.usage == (idleBytes: 18 * megabyte, liveBlocks: 1))
        pool.deallocate(middle)
    }

    @Test func theSmallestFittingBlockIsTaken() {
        let pool = BufferPool()
        let blocks = [6, 4, 5].map { pool.allocate($0 * megabyte) }
        for block in blocks { pool.deallocate(block) }
        let taken = [pool.allocate(4 * megabyte), pool.allocate(4 * megabyte)]
        #expect(taken == [blocks[1], blocks[2]])
        for block in taken { pool.deallocate(block) }
    }

    @Test func smallBuffersAreNotPooled() {
        let pool = BufferPool()
        let small = pool.allocate(4096)
        #expect(pool.usage.liveBlocks == 0)
        pool.deallocate(small)
        #expect(pool.usage == (idleBytes: 0, liveBlocks: 0))
    }

    @Test func atMostMaxIdleBlocksAreKeptOldestFreedFirst() {
        let pool = BufferPool(maxIdleBlocks: 2)
        let blocks = (1...3).map { pool.allocate($0 * megabyte) }
        for block in blocks { pool.deallocate(block) }
        #expect(pool.usage.idleBytes == 5 * megabyte)  // the 1 MiB block, returned first, went
    }

    @Test func blocksIdleForAWholeRoundAreReleased() {
        let pool = BufferPool()
        pool.deallocate(pool.allocate(3 * megabyte))
        #expect(pool.releaseIdle() == 0)  // returned during this round: kept
        let reused = pool.allocate(3 * megabyte)  // taken and returned again: a fresh round
        pool.deallocate(reused)
        #expect(pool.releaseIdle() == 0)
        #expect(pool.releaseIdle() == 3 * megabyte)  // nobody took it for a whole round
        #expect(pool.usage == (idleBytes: 0, liveBlocks: 0))
    }

    @Test func aLongerIdleSpanKeepsBlocksThatManyRounds() {
        let pool = BufferPool()
        pool.deallocate(pool.allocate(2 * megabyte))
        for _ in 1...3 { #expect(pool.releaseIdle(afterRounds: 3) == 0) }  // returned, then idle for 2 rounds
        #expect(pool.releaseIdle(afterRounds: 3) == 2 * megabyte)
        pool.deallocate(pool.allocate(2 * megabyte))
        #expect(pool.releaseIdle(afterRounds: 0) == 2 * megabyte)  // pressure: every idle block, now
    }

    @Test func aRequestItsScratchAndAnAnswerStayIdleTogether() {
        let pool = BufferPool()
        let blocks = [4, 8, 4].map { pool.allocate($0 * megabyte) }
        for block in blocks { pool.deallocate(block) }
        #expect(pool.usage.idleBytes == 16 * megabyte)
    }

    @Test func reallocationKeepsTheBytesAcrossThePooledThreshold() {
        let pool = BufferPool()
        var address = pool.allocate(1000)
        address.storeBytes(of: 0xABCD_EF01, toByteOffset: 996, as: UInt32.self)
        address = pool.reallocate(address, from: 1000, to: 3 * megabyte)  // small → pooled
        #expect(address.load(fromByteOffset: 996, as: UInt32.self) == 0xABCD_EF01)
        #expect(pool.usage.liveBlocks == 1)
        address.storeBytes(of: 0x1234_5678, toByteOffset: 3 * megabyte - 4, as: UInt32.self)
        address = pool.reallocate(address, from: 3 * megabyte, to: 7 * megabyte)  // pooled → bigger pooled
        #expect(address.load(fromByteOffset: 996, as: UInt32.self) == 0xABCD_EF01)
        #expect(address.load(fromByteOffset: 3 * megabyte - 4, as: UInt32.self) == 0x1234_5678)
        #expect(pool.usage == (idleBytes: 3 * megabyte, liveBlocks: 1))
        pool.deallocate(address)
    }

    @Test func byteBuffersFromTheSharedAllocatorGrowAndKeepTheirContent() {
        var buffer = BufferPool.allocator.buffer(capacity: 16)
        let pattern = (0..<(3 * megabyte)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        buffer.writeBytes(pattern)  // grows past the pooled threshold
        var copy = buffer  // copy-on-write through the allocator's copy function
        copy.setInteger(UInt8(7), at: 0)
        #expect(Array(buffer.readableBytesView) == pattern)
        #expect(copy.getInteger(at: 0, as: UInt8.self) == 7)
        #expect(copy.readableBytes == pattern.count)
    }
}
