import CChecksum
import Testing

/// CRC-32C, which guards every log record, body file and snapshot: the three-lane hardware path
/// agrees with the table path (and with the standard check value) at every length around its block
/// sizes, at every alignment, and when a CRC is continued across pieces.
struct CRC32CTests {
    static let bytes: [UInt8] = {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        return (0..<(3 * 8192 * 2 + 3 * 256 * 3 + 64)).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return UInt8(truncatingIfNeeded: state >> 56)
        }
    }()

    static func crc(_ seed: UInt32, _ range: Range<Int>, portable: Bool = false) -> UInt32 {
        bytes.withUnsafeBytes { all in
            let piece = UnsafeRawBufferPointer(rebasing: all[range])
            return portable
                ? optimizerd_crc32c_portable(seed, piece.baseAddress, piece.count)
                : optimizerd_crc32c(seed, piece.baseAddress, piece.count)
        }
    }

    @Test func theCheckValueIsStandard() {
        let check = Array("123456789".utf8)
        #expect(check.withUnsafeBytes { optimizerd_crc32c(0, $0.baseAddress, $0.count) } == 0xE306_9283)
        #expect(check.withUnsafeBytes { optimizerd_crc32c_portable(0, $0.baseAddress, $0.count) } == 0xE306_9283)
    }

    @Test(arguments: [0, 1, 3, 7])
    func theFastPathAgreesWithTheTableAtEveryLengthAroundItsBlocks(offset: Int) {
        let edges = [0, 1, 7, 8, 9, 255, 256, 767, 768, 769, 3 * 256 * 2 + 5, 3 * 8192 - 1, 3 * 8192, 3 * 8192 + 1]
        let lengths = edges + edges.map { $0 + 3 * 8192 } + [Self.bytes.count - offset]
        for length in lengths where offset + length <= Self.bytes.count {
            let range = offset..<(offset + length)
            #expect(Self.crc(0x1234_5678, range) == Self.crc(0x1234_5678, range, portable: true), "length \(length)")
        }
    }

    @Test func aCRCContinuedAcrossPiecesIsTheCRCOfTheWhole() {
        let whole = Self.crc(0, 0..<Self.bytes.count)
        for cut in [1, 8, 4096, 3 * 8192 + 3, Self.bytes.count - 1] {
            #expect(Self.crc(Self.crc(0, 0..<cut), cut..<Self.bytes.count) == whole, "cut at \(cut)")
        }
    }
}
