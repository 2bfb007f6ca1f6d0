import NIOCore
import OptimizerKit
import OptimizerWire
import Testing

@testable import OptimizerServer

/// ``ArrivingSums`` sums a step body's aligned float32 tensors as it arrives, in pieces of any size, to the
/// bits of the step's own sums; it gives up (the step then sums as before) on anything unexpected.
struct ArrivingSumsTests {
    static let grain = 1 << 16

    /// Float32 tensors of many sizes (t0…t5), then 16-bit ones, the first of an odd length so that
    /// the float32 tensor after them (t9) is unaligned: those four are left to the step.
    static func body() throws -> (ByteBuffer, [String: [Float]]) {
        var tensors: [String: [Float]] = [:]
        var body = Body()
        let layout: [(Int, DType)] = [
            (5, .F32), (Self.grain, .F32), (3 * Self.grain + 7, .F32), (9 * Self.grain, .F32), (0, .F32), (1, .F32),
            (3, .BF16), (2 * Self.grain + 5, .BF16), (Self.grain + 1, .F16), (4 * Self.grain + 3, .F32),
        ]
        for (index, (count, dtype)) in layout.enumerated() {
            let values = (0..<count).map { Float(($0 * 7919 + index) % 1000) / 37 - 13 }
            body = try body.float("t\(index)", [count], values, as: dtype)
            // What the step sums: the values as they are on the wire, read back as float32.
            var bytes = [UInt8](repeating: 0, count: count * dtype.bitWidth / 8)
            values.withUnsafeBufferPointer { source in
                bytes.withUnsafeMutableBytes { FloatConversion.encode(source, as: dtype, into: $0) }
            }
            tensors["t\(index)"] = bytes.withUnsafeBytes { raw in
                [Float](unsafeUninitializedCapacity: count) { floats, initialized in
                    FloatConversion.decode(raw, from: dtype, into: floats)
                    initialized = count
                }
            }
        }
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
    func sumsEveryAlignedFloat32TensorToTheStepsBits(piece: Int) throws {
        let (body, tensors) = try Self.body()
        let header = try body.withUnsafeReadableBytes { try SafetensorsHeader(parsing: $0) }
        #expect(header.entry(named: "t9")!.byteRange.lowerBound % 4 == 2, "the last float32 tensor is unaligned")
        let sums = Self.arrive(body, piece: piece)
        let summed = (0...5).map { "t\($0)" }
        #expect(Set(sums.keys) == Set(summed))
        for name in summed {
            let values = try #require(tensors[name])
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
