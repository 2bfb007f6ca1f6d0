import NIOCore
import OptimizerKit
import OptimizerWire
import Testing

@testable import OptimizerServer

/// ``ArrivingSums`` sums a step body's float32 tensors as it arrives, in pieces of any size, to the
/// bits of the step's own sums; it gives up (the step then sums as before) on anything unexpected.
struct ArrivingSumsTests {
    static let grain = 1 << 16

    static func body() throws -> (ByteBuffer, [String: [Float]]) {
        var tensors: [String: [Float]] = [:]
        var body = Body()
        for (index, count) in [5, Self.grain, 3 * Self.grain + 7, 9 * Self.grain, 0, 1].enumerated() {
            let values = (0..<count).map { Float(($0 * 7919 + index) % 1000) / 37 - 13 }
            tensors["t\(index)"] = values
            body = try body.float("t\(index)", [count], values)
        }
        // A bfloat16 tensor between them is skipped (its sum comes from its float32 conversion).
        body = try body.float("half", [3], [1, 2, 3], as: .BF16)
        return (body.buffer, tensors)
    }

    /// Feeds `body` to `sums` from one buffer of its size, in pieces of at most `piece` bytes.
    static func arrive(_ body: ByteBuffer, piece: Int, declared: Int? = nil) -> [String: Double] {
        var sums = ArrivingSums(length: declared ?? body.readableBytes)
        var received = ByteBuffer()
        received.reserveCapacity(body.readableBytes)
        var rest = body
        var random = SystemRandomNumberGenerator()
        while rest.readableBytes > 0 {
            var chunk = rest.readSlice(length: min(rest.readableBytes, Int.random(in: 1...piece, using: &random)))!
            received.writeBuffer(&chunk)
            received.withUnsafeReadableBytes { sums.received($0) }
        }
        return received.withUnsafeReadableBytes { sums.finish($0) }
    }

    @Test(arguments: [61, 4096, 300_000, 1 << 30])
    func sumsEveryFloat32TensorToTheStepsBits(piece: Int) throws {
        let (body, tensors) = try Self.body()
        let sums = Self.arrive(body, piece: piece)
        #expect(Set(sums.keys) == Set(tensors.keys))
        for (name, values) in tensors {
            let expected = values.withUnsafeBufferPointer { Reduction.sumOfSquares($0) }
            #expect(sums[name]?.bitPattern == expected.bitPattern, "\(name)")
        }
    }

    @Test func givesUpOnABodyOfAnotherLengthOrAHeaderThatDoesNotParse() throws {
        let (body, _) = try Self.body()
        #expect(Self.arrive(body, piece: 65536, declared: body.readableBytes + 4).isEmpty)
        #expect(Self.arrive(body, piece: 65536, declared: body.readableBytes - 4).isEmpty)
        var broken = body
        broken.setBytes(Array("[".utf8), at: 8)
        #expect(Self.arrive(broken, piece: 65536).isEmpty)
        // A header length past the body, or past any header's limit, is not waited for.
        for claimed in [UInt64(body.readableBytes), UInt64.max] {
            var overlong = body
            overlong.setInteger(claimed, at: 0, endianness: .little)
            #expect(Self.arrive(overlong, piece: 4096).isEmpty)
        }
    }

    @Test func givesUpWhenTheBodyMoves() throws {
        let (body, _) = try Self.body()
        var sums = ArrivingSums(length: body.readableBytes)
        body.getSlice(at: 0, length: 1000)!.withUnsafeReadableBytes { sums.received($0) }
        let moved = ByteBuffer(buffer: body)
        #expect(Array(moved.readableBytesView).withUnsafeBytes { sums.finish($0) }.isEmpty)
    }
}
