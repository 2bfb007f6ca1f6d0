import Testing

@testable import OptimizerKit

/// ``Reduction/sumOfSquares(_:parallelism:)`` sums full chunks four at a time; it must give exactly
/// the chunk-by-chunk sum of ``Reduction/sumOfSquaresKernel(_:count:)`` added in chunk order.
struct ReductionTests {
    static let grain = Chunking.grain

    @Test(arguments: [0, 5, grain, 3 * grain + 7, 4 * grain, 4 * grain + 1, 9 * grain, 13 * grain - 3])
    func sumOfSquaresMatchesChunkOrderBitForBit(count: Int) {
        var random = SeededRandom(seed: UInt64(count) + 7)
        let values = random.floats(count, in: -3...3)
        values.withUnsafeBufferPointer { x in
            var expected = 0.0
            var start = 0
            while start < count {
                let end = min(start + Self.grain, count)
                expected += Reduction.sumOfSquaresKernel(x.baseAddress! + start, count: end - start)
                start = end
            }
            for threads in [1, 2, 3] {
                let sum = Reduction.sumOfSquares(x, parallelism: Parallelism(threads: threads))
                #expect(sum.bitPattern == expected.bitPattern)
            }
        }
    }

    /// A tensor summed while it arrives, in pieces of any size, gives the whole-tensor sum's bits.
    @Test(arguments: [0, 5, grain, 3 * grain + 7, 4 * grain, 4 * grain + 1, 9 * grain, 13 * grain - 3])
    func arrivingSumMatchesTheWholeSumBitForBit(count: Int) {
        var random = SeededRandom(seed: UInt64(count) + 11)
        let values = random.floats(count, in: -3...3)
        values.withUnsafeBufferPointer { x in
            let expected = Reduction.sumOfSquares(x)
            for pieces in [1, 3, 97] {
                var arriving = Reduction.ArrivingSumOfSquares(count: count)
                var available = 0
                while available < count {
                    #expect(arriving.total == nil)
                    available = min(count, available + max(1, Int.random(in: 1...(2 * count / pieces + 1), using: &random)))
                    arriving.advance(UnsafeRawPointer(x.baseAddress!), available: available)
                }
                arriving.advance(UnsafeRawPointer(x.baseAddress ?? UnsafePointer(bitPattern: 4)!), available: count)
                #expect(arriving.total?.bitPattern == expected.bitPattern, "\(pieces) pieces")
            }
        }
    }
}
