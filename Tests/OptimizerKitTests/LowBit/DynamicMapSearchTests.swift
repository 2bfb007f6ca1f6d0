import Testing

@testable import OptimizerKit

/// The AVX-512 quantizer reads a map's codes from ``DynamicMap/search`` (a binary-search tree in
/// registers) instead of ``DynamicMap/table``: both must give every one of the 65 536 cells the
/// same code, for both maps — checked on the tree itself (any CPU) and through the C quantizer in
/// every variant this CPU runs.
struct DynamicMapSearchTests {
    static let maps: [(String, DynamicMap)] = [("signed", .signed), ("unsigned", .unsigned)]

    @Test(arguments: maps)
    func treeGivesEveryCellItsTableCode(name: String, map: DynamicMap) {
        var mismatches = 0
        for cell in 0..<65536 {
            var node = 1
            for _ in 0..<8 { node = 2 * node + (cell >= Int(map.search[node]) ? 1 : 0) }
            if node - 256 != Int(map.table[cell]) { mismatches += 1 }
        }
        #expect(map.search.count == 256 && mismatches == 0, "\(name)")
    }

    @Test(arguments: maps)
    func everyVariantQuantizesEveryCellToItsTableCode(name: String, map: DynamicMap) throws {
        let values = try (0..<65536).map { try #require(Self.value(inCell: $0), "cell \($0)") }
        for variant in KernelVariant.supported {
            var mismatches = 0
            // Blocks of 255 cells and a 1 (absmax 1, so each value's cell is its own).
            for start in stride(from: 0, to: 65536, by: 255) {
                let cells = start..<min(start + 255, 65536)
                let block = [Float(1)] + cells.map { values[$0] }
                var codes = [UInt8](repeating: 77, count: block.count)
                var absmax: Float = -1
                block.withUnsafeBufferPointer { x in
                    codes.withUnsafeMutableBufferPointer { codes in
                        Int8AdamKernel.quantize(
                            x.baseAddress!, count: x.count, map: map, codes: codes.baseAddress!, absmax: &absmax, variant: variant
                        )
                    }
                }
                #expect(absmax == 1)
                for (offset, cell) in cells.enumerated() where codes[offset + 1] != map.table[cell] { mismatches += 1 }
            }
            #expect(mismatches == 0, "\(name) \(variant)")
        }
    }

    /// A value in [−1, 1] whose cell at scale 1 is `cell`: the cell's centre 2·cell/65535 − 1, or a
    /// few ulps from it.
    private static func value(inCell cell: Int) -> Float? {
        let centre = Float(2 * cell) / 65535 - 1
        var up = centre, down = centre
        for _ in 0..<16 {
            if DynamicMap.cell(up, scale: 1) == cell { return up }
            if DynamicMap.cell(down, scale: 1) == cell { return down }
            up = up.nextUp
            down = down.nextDown
        }
        return nil
    }
}
