import OptimizerKit
import Synchronization
import Testing

@testable import OptimizerWire

/// Where `withFloatTensors` puts its float32 copies: one block from the caller's allocator for all
/// dense conversions (what lets the daemon reuse it from step to step), converted on several
/// threads with the same bits as on one.
struct FloatScratchTests {
    /// An allocator that counts what it hands out and takes back.
    final class CountingAllocator: Sendable {
        let requests = Mutex<[Int]>([])
        let live = Mutex(0)

        var allocator: FloatScratchAllocator {
            FloatScratchAllocator(
                allocate: { bytes in
                    self.requests.withLock { $0.append(bytes) }
                    self.live.withLock { $0 += 1 }
                    return FloatScratchAllocator.system.allocate(bytes)
                },
                deallocate: { address in
                    self.live.withLock { $0 -= 1 }
                    FloatScratchAllocator.system.deallocate(address)
                }
            )
        }
    }

    /// Values covering every bfloat16/float16 case that matters: signs, zeros, subnormals, large
    /// magnitudes, infinities and NaN, repeated to `count`.
    static func values(_ count: Int) -> [Float] {
        let specials: [Float] = [0, -0, 1, -2.5, 1e-40, -3e-39, 65504, 1e38, .infinity, -.infinity, .nan, 0.1]
        return (0..<count).map { $0 % 97 < specials.count ? specials[$0 % 97] : Float($0 % 1013) * 0.37 - 150 }
    }

    @Test func denseConversionsShareOneBlockFromTheAllocatorAndGiveItBack() throws {
        var writer = SafetensorsWriter()
        try writer.add("b", shape: [2], floats: [4, 5], as: .F32)
        try writer.add("a", shape: [3], floats: [1, 2, 3], as: .BF16)
        try writer.add("c", shape: [2, 2], floats: [6, 7, 8, 9], as: .F16)
        let bytes = writer.bytes()
        let header = try parseHeader(bytes)
        let counting = CountingAllocator()
        let tensors = try bytes.withUnsafeBytes { buffer in
            try header.withFloatTensors(in: buffer, sparseShape: nil, scratch: counting.allocator) { tensors in
                #expect(counting.live.withLock { $0 } == 1)
                return tensors.map { Array($0.values) }
            }
        }
        #expect(tensors == [[4, 5], [1, 2, 3], [6, 7, 8, 9]])
        // The aligned F32 tensor is read in place; a and c (3 + 4 floats) share one block.
        #expect(counting.requests.withLock { $0 } == [7 * MemoryLayout<Float>.stride])
        #expect(counting.live.withLock { $0 } == 0)
    }

    @Test func aBodyWithoutConversionsTakesNothing() throws {
        var writer = SafetensorsWriter()
        try writer.add("w", shape: [4], floats: [1, 2, 3, 4])
        let bytes = writer.bytes()
        let header = try parseHeader(bytes)
        let counting = CountingAllocator()
        try bytes.withUnsafeBytes { buffer in
            try header.withFloatTensors(in: buffer, sparseShape: nil, scratch: counting.allocator) { _ in }
        }
        #expect(counting.requests.withLock { $0 }.isEmpty)
    }

    @Test func theBlockIsGivenBackWhenATensorIsRefused() throws {
        var writer = SafetensorsWriter()
        try writer.add("a", shape: [2], floats: [1, 2], as: .BF16)
        try writer.add("i", shape: [1], integers: [3] as [Int64])
        let bytes = writer.bytes()
        let header = try parseHeader(bytes)
        let counting = CountingAllocator()
        expectSafetensorsError(.unsupportedDType, tensor: "i") {
            try bytes.withUnsafeBytes { buffer in
                try header.withFloatTensors(in: buffer, sparseShape: nil, scratch: counting.allocator) { _ in }
            }
        }
        // Only the float tensor was planned for: an integer tensor never sizes the block.
        #expect(counting.requests.withLock { $0 } == [2 * MemoryLayout<Float>.stride])
        #expect(counting.live.withLock { $0 } == 0)
    }

    /// Tensors large enough to be split over threads decode to exactly the serial conversion's bits.
    @Test(arguments: [DType.BF16, .F16])
    func aParallelConversionIsBitIdenticalToTheSerialOne(dtype: DType) throws {
        let count = 3 * (1 << 20) + 12_345
        let values = Self.values(count)
        var writer = SafetensorsWriter()
        try writer.add("g", shape: [count], floats: values, as: dtype)
        try writer.add("h", shape: [7], floats: Array(values.prefix(7)), as: dtype)
        let bytes = writer.bytes()
        let header = try parseHeader(bytes)
        let decoded = try [Parallelism.serial, Parallelism(threads: 4)].map { parallelism in
            try bytes.withUnsafeBytes { buffer in
                try header.withFloatTensors(in: buffer, sparseShape: nil, parallelism: parallelism) { tensors in
                    tensors.map { $0.values.map(\.bitPattern) }
                }
            }
        }
        let expected = try bytes.withUnsafeBytes { buffer in
            try header.tensors.map { try header.floats($0, in: buffer).map(\.bitPattern) }
        }
        #expect(decoded[0] == expected)
        #expect(decoded[1] == expected)
    }
}
