import CompressNIO
import HTTPTypes
import NIOCore
import Testing

@testable import OptimizerServer

struct BodyCompressionTests {
    @Test func roundTripsGzipZlibAndRawDeflate() throws {
        let original = ByteBuffer(bytes: (0..<100_000).map { UInt8(truncatingIfNeeded: $0 % 251) })
        for (algorithm, coding) in [(ZlibAlgorithm.gzip, ContentCoding.gzip), (.zlib, .deflate), (.deflate, .deflate)] {
            let packed = try compressed(original, algorithm)
            #expect(try BodyCompression.decompress(packed, coding: coding, limit: 100_000) == original)
        }
    }

    @Test func aSmallBombIsRefusedAtTheLimit() throws {
        let bomb = try compressed(ByteBuffer(repeating: 0, count: 10 << 20))  // 10 MiB of zeros, ~10 KB compressed
        #expect(bomb.readableBytes < 20_000)
        let error = #expect(throws: ProblemError.self) { try BodyCompression.decompress(bomb, coding: .gzip, limit: 1 << 20) }
        #expect(error?.status == .contentTooLarge)
        #expect(try BodyCompression.decompress(bomb, coding: .gzip, limit: 10 << 20).readableBytes == 10 << 20)
    }

    @Test func corruptDataIs400() {
        let error = #expect(throws: ProblemError.self) {
            try BodyCompression.decompress(ByteBuffer(bytes: [0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6, 7, 8]), coding: .gzip, limit: 1000)
        }
        #expect(error?.status == .badRequest)
    }

    /// A stream cut anywhere before its end (a gzip body without its CRC trailer) and bytes after
    /// it are refused; several gzip members (RFC 1952) are one body.
    @Test func truncatedStreamsAndTrailingBytesAreRefusedAndGzipMembersJoin() throws {
        let original = ByteBuffer(bytes: (0..<20_000).map { UInt8(truncatingIfNeeded: $0 % 251) })
        for (algorithm, coding) in [(ZlibAlgorithm.gzip, ContentCoding.gzip), (.zlib, .deflate)] {
            let packed = try compressed(original, algorithm)
            for cut in [1, 4, 8, packed.readableBytes / 2] {
                let error = #expect(throws: ProblemError.self, "\(coding) cut by \(cut)") {
                    try BodyCompression.decompress(packed.getSlice(at: 0, length: packed.readableBytes - cut)!, coding: coding, limit: 100_000)
                }
                #expect(error?.status == .badRequest)
            }
            var trailing = packed
            trailing.writeBytes([1, 2, 3, 4, 5, 6, 7, 8])
            let error = #expect(throws: ProblemError.self) { try BodyCompression.decompress(trailing, coding: coding, limit: 100_000) }
            #expect(error?.detail.contains("follow the end") == true)
        }
        let half = original.getSlice(at: 0, length: 10_000)!, rest = original.getSlice(at: 10_000, length: 10_000)!
        var members = try compressed(half)
        var second = try compressed(rest)
        members.writeBuffer(&second)
        #expect(try BodyCompression.decompress(members, coding: .gzip, limit: 100_000) == original)
    }

    @Test func compressesOnlyWhenWorthwhile() throws {
        let zeros = ByteBuffer(repeating: 0, count: 1 << 18)
        #expect(BodyCompression.compressIfWorthwhile(zeros, coding: .gzip) != nil)
        var generator = SystemRandomNumberGenerator()
        let noise = ByteBuffer(bytes: (0..<(1 << 18)).map { _ in UInt8.random(in: 0...255, using: &generator) })
        #expect(BodyCompression.compressIfWorthwhile(noise, coding: .gzip) == nil)
        #expect(BodyCompression.compressIfWorthwhile(zeros, coding: .identity) == nil)
        // Past the limit even zeros go as they are: compressing would cost more than sending.
        let largest = ByteBuffer(repeating: 0, count: BodyCompression.maxCompressedResponseBytes)
        #expect(BodyCompression.compressIfWorthwhile(largest, coding: .gzip) != nil)
        let larger = ByteBuffer(repeating: 0, count: BodyCompression.maxCompressedResponseBytes + 1)
        #expect(BodyCompression.compressIfWorthwhile(larger, coding: .gzip) == nil)
    }
}
