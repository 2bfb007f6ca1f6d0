import NIOCore
import Testing

@testable import OptimizerServer

#if canImport(Glibc)
import Glibc
#endif

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

    @Test func aBlockCoveringTheSizeWithFewerTouchedPagesIsPreferred() {
        let pool = BufferPool()
        let wide = pool.allocate(8 * megabyte)
        pool.deallocate(wide)
        let trimmed = pool.allocate(5 * megabyte)  // the 8 MiB block, its pages past 5 MiB given back
        let narrow = pool.allocate(6 * megabyte)
        #expect(trimmed == wide && narrow != wide)
        pool.deallocate(trimmed)
        pool.deallocate(narrow)
        // Both fit 5 MiB; the 8 MiB one has 5 MiB touched, the 6 MiB one 6: no faults either way,
        // and the one holding less memory is taken (the smallest capacity would have been the other).
        let taken = [pool.allocate(5 * megabyte), pool.allocate(6 * megabyte)]
        #expect(taken == [wide, narrow])
        for block in taken { pool.deallocate(block) }
    }

    @Test func aBlockReusedForLessGivesBackThePagesPastTheNewSize() throws {
        let pool = BufferPool()
        let block = returnedFullyTouched(pool)
        let reused = pool.allocate(9 * megabyte)
        #expect(reused == block)
        try expectResident(reused, through: 9)
        #expect(reused.load(fromByteOffset: 9 * megabyte - 1, as: UInt8.self) == 1)
        pool.deallocate(reused)
    }

    @Test func aBodySmallerThanItsBlockGivesBackWhatAnEarlierBodyTouchedPastIt() throws {
        let pool = BufferPool()
        _ = returnedFullyTouched(pool)
        let reused = pool.allocate(16 * megabyte)
        pool.discardPages(of: reused, after: 3 * megabyte)
        try expectResident(reused, through: 3)
        pool.discardPages(of: UnsafeRawPointer(reused) + 4096, after: 0)  // not a block's start: nothing happens
        #expect(try residentPages(reused, bytes: 3 * megabyte).allSatisfy { $0 })
        pool.deallocate(reused)
    }

    /// A 16 MiB block of `pool`, every page written, returned to the pool.
    private func returnedFullyTouched(_ pool: BufferPool) -> UnsafeMutableRawPointer {
        let block = pool.allocate(16 * megabyte)
        block.initializeMemory(as: UInt8.self, repeating: 1, count: 16 * megabyte)
        pool.deallocate(block)
        return block
    }

    /// Expects the first `mebibytes` MiB of a 16 MiB block resident and its pages from one MiB
    /// further on given back (but the last, which reaches past the block).
    private func expectResident(_ block: UnsafeMutableRawPointer, through mebibytes: Int) throws {
        let pages = try residentPages(block, bytes: 16 * megabyte)
        let perMebibyte = pages.count / 16
        #expect(pages[..<(mebibytes * perMebibyte)].allSatisfy { $0 })
        #expect(pages[((mebibytes + 1) * perMebibyte)...].dropLast().allSatisfy { !$0 })
    }

    /// Which pages of `bytes` bytes from `address` (rounded out to whole pages) are resident (`mincore`).
    private func residentPages(_ address: UnsafeMutableRawPointer, bytes: Int) throws -> [Bool] {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = Int(bitPattern: address) / page * page
        let count = (Int(bitPattern: address) + bytes - start + page - 1) / page
        var vector = [UInt8](repeating: 0, count: count)
        let status = mincore(UnsafeMutableRawPointer(bitPattern: start), count * page, &vector)
        try #require(status == 0)
        return vector.map { $0 & 1 == 1 }
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
